"""Ship a trained run with the package as a pretrained model (`--pretrained NAME` of the `emerging` command).

    python scripts/package_pretrained.py --logdir demo_logs --name digits [--weights best]

Writes emerging/runs/pretrained/NAME/: the run's config.json, train.txt and test.txt, and
best/ holding the chosen weights of the model only (no optimiser
state, so a third of the size).  The package's digits model is demo.sh's run
packaged this way.
"""
import argparse
import os
import shutil
import sys

from emerging.choices import WEIGHTS

PROG = 'package_pretrained.py'


def build_parser(prog=PROG):
    """package_pretrained.py's parser (`prog`: the program's name in the usage line and error messages)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument('--logdir', required=True, help='the trained run')
    parser.add_argument('--name', required=True, help='the name under emerging/runs/pretrained/')
    parser.add_argument('--weights', choices=WEIGHTS, default='best',
                        help='the best validation checkpoint, the latest epoch\'s, or its Polyak averages')
    return parser


def main(argv=None, prog=PROG):
    """package_pretrained.py: returns the exit code.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    args = build_parser(prog).parse_args(argv)
    # the target folder is deleted and rewritten: a name that is not one folder would reach outside pretrained/
    if args.name in ('', '.', '..') or os.path.basename(args.name) != args.name:
        print(f'{prog}: error: --name {args.name!r} must be a plain folder name', file=sys.stderr)
        return 2

    import tensorflow as tf

    from emerging.runs.folder import PRETRAINED, write_best
    from emerging.runs.load import load_run

    try:
        run = load_run(args.logdir, args.weights)
    except (ValueError, FileNotFoundError) as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    target = os.path.join(PRETRAINED, args.name)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target)
    for name in ('config.json', 'train.txt', 'test.txt'):
        shutil.copy(os.path.join(args.logdir, name), target)
    write_best(tf.train.Checkpoint(model=run.model), target, 'ckpt-0')
    size = sum(os.path.getsize(os.path.join(folder, f)) for folder, _, files in os.walk(target) for f in files)
    print(f'{run.checkpoint} ({args.weights} weights) packaged as {target} ({size / 2 ** 20:.1f} MiB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
