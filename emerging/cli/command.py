"""The `emerging` command line: work with a trained run (or a pretrained model).

    emerging evaluate    test bits/dim with its standard error
    emerging sample      sample grids at several temperatures (PNG) or raw samples (NPY)
    emerging interpolate a row of images between two images, through the latent space
    emerging manipulate  attribute manipulation along mean latent differences
    emerging export      a SavedModel of a run
    emerging import-tf1  a checkpoint of the original TF1 code as a run of this port
    emerging import-resflow  a checkpoint of the public Residual Flows code as a run of this port

Installed as the console script `emerging` (this module's `main`); also
`python -m emerging`.  Each
subcommand has `--help`.  Bad input (a flag, a file, a shape) stops before any
work with a message naming it and exit code 2.
"""
import argparse
import importlib
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# subcommand -> module of emerging.cli; each module has add_parser(subparsers) and run(args) -> exit code
SUBCOMMANDS = {'evaluate': 'evaluate', 'sample': 'sample', 'interpolate': 'interpolate',
               'manipulate': 'manipulate', 'export': 'export', 'import-tf1': 'import_tf1',
               'import-resflow': 'import_resflow'}


def build_parser():
    """The `emerging` parser with every subcommand's."""
    parser = argparse.ArgumentParser(prog='emerging', description=__doc__.splitlines()[0])
    parser.add_argument('--version', action='version', version=_version())
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
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
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'emerging {args.command}: error: {error}', file=sys.stderr, flush=True)
        return 2
