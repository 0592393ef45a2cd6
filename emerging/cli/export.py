"""`emerging export`: a SavedModel of a run (signatures: see emerging/runs/export.py)."""
from emerging.cli import common
from emerging.cli.paths import check_output_folder


def add_parser(subparsers):
    parser = subparsers.add_parser('export', help='write a SavedModel of a run',
                                   description='Write a SavedModel of a run that loads without this project.')
    common.add_run_arguments(parser)
    parser.add_argument('--export_dir', required=True, help='folder for the SavedModel')
    parser.set_defaults(run=run)


def run(args):
    from emerging.runs.export import export_savedmodel
    check_output_folder(args.export_dir, '--export_dir')
    loaded = common.load(args)
    export_savedmodel(loaded.model, args.export_dir)
    print(f'SavedModel of {loaded.checkpoint} ({loaded.weights} weights) written to {args.export_dir}')
    return 0
