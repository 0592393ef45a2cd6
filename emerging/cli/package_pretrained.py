"""Ship a trained run with the package as a pretrained model (`--pretrained NAME` of the `emerging` command).

    python scripts/package_pretrained.py --logdir demo_logs --name digits [--weights best]

Writes emerging/runs/pretrained/NAME/: the run's config.json, train.txt and test.txt, and
model_best_loss.ckpt holding the chosen weights of the model only (no optimiser
state, so a third of the size).  The package's digits model is demo.sh's run
packaged this way.
"""
import argparse
import os
import shutil
import sys

from emerging.choices import WEIGHTS


def main(argv=None):
    """package_pretrained.py: returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--logdir', required=True, help='the trained run')
    parser.add_argument('--name', required=True, help='the name under emerging/runs/pretrained/')
    parser.add_argument('--weights', choices=WEIGHTS, default='best')
    args = parser.parse_args(argv)

    import tensorflow as tf

    from emerging.runs.folder import BEST_CHECKPOINT, PRETRAINED, write_checkpoint_atomically
    from emerging.runs.load import load_run

    run = load_run(args.logdir, args.weights)
    target = os.path.join(PRETRAINED, args.name)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target)
    for name in ('config.json', 'train.txt', 'test.txt'):
        shutil.copy(os.path.join(args.logdir, name), target)
    write_checkpoint_atomically(tf.train.Checkpoint(model=run.model), os.path.join(target, BEST_CHECKPOINT))
    size = sum(os.path.getsize(os.path.join(target, f)) for f in os.listdir(target))
    print(f'{run.checkpoint} ({args.weights} weights) packaged as {target} ({size / 2 ** 20:.1f} MiB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
