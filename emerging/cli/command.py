"""The `emerging` command line: every program of the project, and work with a trained run.

Programs (PROGRAMS below; `emerging --help` lists them), each with its own
command line, that of its script in the repository (`emerging train` is
train.py, `emerging toy` scripts/toy_density.py, ...).

Working with a run (or a pretrained model, --pretrained digits):

    emerging evaluate    test bits/dim with its standard error
    emerging sample      sample grids at several temperatures (PNG) or raw samples (NPY)
    emerging interpolate a row of images between two images, through the latent space
    emerging manipulate  attribute manipulation along mean latent differences
    emerging export      a SavedModel of a run
    emerging import-tf1  a checkpoint of the original TF1 code as a run of this port
    emerging import-resflow  a checkpoint of the public Residual Flows code as a run of this port

Installed as the console script `emerging` (this module's `main`); also
`python -m emerging`.  Each subcommand has `--help`, which, like a bad flag,
answers without starting TensorFlow.  Bad input (a flag, a file, a shape)
stops before any work with a message naming it and exit code 2.
"""
import argparse
import importlib
import sys

# program -> (module of emerging.cli with main(argv, prog) -> exit code, its line in `emerging --help`); the
# program parses its own flags, and is imported only when it runs
PROGRAMS = {
    'train': ('train', "train.py: Glow-family flows with the original's flags (Horovod under mpiexec)"),
    'train-resflow': ('train_resflow', "scripts/train_resflow.py: Residual Flows with the public code's flags"),
    'toy': ('toy', 'scripts/toy_density.py: 2-D densities and energies with BNAF, MAF, RealNVP'),
    'resflow-toy': ('resflow_toy', 'scripts/train_resflow_toy.py: 2-D densities with Residual Flows'),
    'tabular': ('tabular', 'scripts/tabular_density.py: the tabular benchmarks with BNAF, MAF, RealNVP'),
    'compare-families': ('compare_families', 'scripts/compare_families.py: one table across flow families'),
    'plot': ('plot_logs', 'scripts/plot_logs.py: curves of one or more runs'),
    'write-tfrecords': ('write_tfrecords', 'scripts/write_tfrecords.py: Glow-format shards from images'),
    'check-gpu': ('check_gpu', "scripts/check_gpu.py: GPUs, Horovod's build and one train step per process"),
}
# subcommand -> module of emerging.cli; each module has add_parser(subparsers) and run(args) -> exit code
SUBCOMMANDS = {'evaluate': 'evaluate', 'sample': 'sample', 'interpolate': 'interpolate',
               'manipulate': 'manipulate', 'export': 'export', 'import-tf1': 'import_tf1',
               'import-resflow': 'import_resflow'}


def build_parser():
    """The `emerging` parser with every subcommand's."""
    parser = argparse.ArgumentParser(prog='emerging', description=__doc__.splitlines()[0])
    parser.add_argument('--version', action='version', version=_version())
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, (_, summary) in PROGRAMS.items():  # listed here; main() hands their arguments to them
        subparsers.add_parser(name, add_help=False, help=summary)
    for module in SUBCOMMANDS.values():
        importlib.import_module(f'emerging.cli.{module}').add_parser(subparsers)
    return parser


def _version():
    import emerging
    return f'emerging {emerging.__version__}'


def main(argv=None) -> int:
    """Run one `emerging` subcommand.

    Args:
      argv: the arguments (default: the process's).

    Returns:
      The exit code: 0 done, 2 bad input (the message printed).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PROGRAMS:
        program = importlib.import_module(f'emerging.cli.{PROGRAMS[argv[0]][0]}')
        return program.main(argv[1:], prog=f'emerging {argv[0]}')
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'emerging {args.command}: error: {error}', file=sys.stderr, flush=True)
        return 2
