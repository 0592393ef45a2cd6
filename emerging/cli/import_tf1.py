"""`emerging import-tf1`: a checkpoint of the original TF1 code as a run folder of this port.

Takes train.py's flags exactly as the original run was started (the
architecture flags must match; the others are recorded) and writes
{logdir}/best/ (the run's best checkpoint) and {logdir}/train.txt (the
hyperparameter line), into a folder that holds no run (or, with
--overwrite, after deleting the run it holds), so that `emerging evaluate | sample | ... --logdir
LOGDIR`, `train.py ... --inference --logdir LOGDIR`, `train.py ...
--restore_path LOGDIR` (fine-tuning) and `emerging export` work on it.
Every `model/` variable of the checkpoint must map onto the model and every
model weight must be in the checkpoint with the same shape; otherwise nothing
is written and every problem is listed.
"""
import json
import os

from emerging.errors import InputError


def add_parser(subparsers):
    from emerging.cli.train import build_parser
    parser = subparsers.add_parser('import-tf1', parents=[build_parser()], add_help=False, conflict_handler='resolve',
                                   help='import a checkpoint of the original TF1 code',
                                   description=__doc__.splitlines()[0])
    parser.add_argument('--tf1_checkpoint', required=True, help='checkpoint prefix written by the original code')
    parser.set_defaults(run=run)


def run(args):
    from emerging.cli.paths import check_output_folder
    from emerging.cli.train import derive
    from emerging.models.glow import Glow
    from emerging.runs.folder import refuse_existing_run
    from emerging.runs.lock import RunLock
    from emerging.runs.tf1_import import import_tf1_checkpoint
    from emerging.runs.tf_checkpoint_index import check_tf1_checkpoint

    check_output_folder(args.logdir, '--logdir')
    if args.resume:
        raise InputError('--resume: an import writes a new run; it continues none')
    if not args.overwrite:
        refuse_existing_run(args.logdir, resumable=False)
    flags = {k: v for k, v in vars(args).items() if k not in ('tf1_checkpoint', 'run', 'command')}
    run_config = derive(type(args)(**flags))
    check_tf1_checkpoint(args.tf1_checkpoint)  # its files, before a model is built
    model = Glow(run_config.model)
    report = import_tf1_checkpoint(model, args.tf1_checkpoint)
    os.makedirs(args.logdir, exist_ok=True)
    with RunLock(args.logdir):
        prefix, log = write_run(args, run_config, model)
    print(f'imported {len(report["imported"])} variables from {args.tf1_checkpoint} '
          f'(skipped {len(report["skipped"])} that are not weights: Polyak averages, optimiser state)')
    print(f'wrote {prefix} and {log}')
    return 0


def write_run(args, run_config, model):
    """Write the imported run into the locked --logdir: best/ and train.txt, after deleting the run it holds with
    --overwrite (or refusing it without); returns (the checkpoint prefix, train.txt's path)."""
    import tensorflow as tf

    from emerging.runs.checkpoints import atomic_write
    from emerging.runs.folder import clear_run, refuse_existing_run, write_best
    if args.overwrite:
        clear_run(args.logdir)
    else:
        refuse_existing_run(args.logdir, resumable=False)  # again, now that no other run can start in it
    prefix = write_best(tf.train.Checkpoint(model=model), args.logdir, 'ckpt-0')
    hparams = dict(run_config.hparams, imported_from=os.path.abspath(args.tf1_checkpoint))
    for key in ('tf1_checkpoint', 'run', 'command'):
        hparams.pop(key, None)
    log = os.path.join(args.logdir, 'train.txt')
    atomic_write(log, json.dumps(hparams) + '\n')
    return prefix, log
