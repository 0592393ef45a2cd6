"""`emerging import-resflow`: a checkpoint of the public Residual Flows code as a run folder of this port.

    emerging import-resflow --checkpoint checkpt.pth --logdir OUT [--weights ema|model]

Reads train_img.py's checkpoint without PyTorch (emerging/runs/torch_files.py: containers, tensors and
stand-ins for its objects, nothing that runs), takes the architecture from its saved flags (`args`, through
train_resflow.py's command line, so a flag value this port does not implement is named), maps every weight
(emerging/runs/resflow_import.py) and writes {logdir}/config.json, {logdir}/best/ (the EMA's weights, which the
public code evaluates and samples with, or with --weights model the trained weights) and
{logdir}/checkpoints/ (the trained weights with the EMA as their Polyak average: `--weights latest` and
`--weights polyak`).  Every `emerging` subcommand and `load_run` then use the folder like a native run, and
train_resflow.py --resume OUT continues from its weights.  Any name or shape that does not fit stops the import
with the complete list before anything is written.  A --logdir that holds a run is refused, or with --overwrite its
run is deleted first.
"""
import os

from emerging.cli.paths import check_output_folder
from emerging.errors import InputError
from emerging.pickles import describe

# the classes a train_img.py checkpoint names: its EMA helper holds the whole model
PICKLED_OBJECTS = ('resflows.', 'torch.nn.')


def add_parser(subparsers):
    parser = subparsers.add_parser('import-resflow', help='import a checkpoint of the public Residual Flows code',
                                   description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', required=True, help="train_img.py's checkpoint (checkpt.pth, most_recent.pth)")
    parser.add_argument('--logdir', required=True, help='the run folder to write (must not hold a run)')
    parser.add_argument('--overwrite', action='store_true', help='--logdir holds a run: delete it first')
    parser.add_argument('--weights', choices=('ema', 'model'), default='ema',
                        help="the run's best weights: the EMA (as the public code evaluates, default) or the model's")
    parser.set_defaults(run=run)


def public_run_config(public_args, path):
    """The `RunConfig` train_resflow.py derives from the flags a public checkpoint saved.

    Args:
      public_args: the checkpoint's `args` (an argparse.Namespace of train_img.py's flags).
      path: the checkpoint, for messages.

    Returns:
      A `RunConfig` (a `ResFlowConfig` model).

    Raises:
      InputError: naming the flag this port does not implement, or the file when it saved no flags.
    """
    import argparse

    from emerging.cli import train_resflow
    if not isinstance(public_args, argparse.Namespace):
        raise InputError(f'{path} holds no "args" Namespace: not a checkpoint of train_img.py')
    if getattr(public_args, 'logit_transform', True) is not True:
        raise InputError(f'{path} was trained with --logit-transform {public_args.logit_transform}: this port '
                         f'always starts with the logit transform')
    flags = vars(train_resflow.build_parser().parse_args([]))
    saved = {k: v for k, v in vars(public_args).items() if k in flags}
    for name, value in saved.items():
        if not _of_the_flags_type(value, flags[name]):
            raise InputError(f'{path}: its saved flag --{name.replace("_", "-")} is {describe(value)}, not of type '
                             f'{type(flags[name]).__name__} as train_img.py saves it')
    flags.update(saved)
    flags.update(save='', resume=None)
    try:
        return train_resflow.derive(argparse.Namespace(**flags))
    except (ValueError, TypeError, AttributeError) as error:  # a saved value of the right type may still not fit
        raise InputError(f'{path}: {error}') from None


def _of_the_flags_type(value, default) -> bool:
    """Whether a saved flag's value has the type of the flag's default (an int where a float is meant; any
    value where the default is None)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def run(args):

    from emerging.models.resflow import ResFlow
    from emerging.runs.folder import CHECKPOINTS, clear_run, refuse_existing_run
    from emerging.runs.lock import RunLock
    from emerging.runs.resflow_import import import_public_resflow
    from emerging.runs.torch_files import read_torch_file

    check_output_folder(args.logdir, '--logdir')
    if not args.overwrite:
        refuse_existing_run(args.logdir, resumable=False)
    saved = read_torch_file(args.checkpoint, objects=PICKLED_OBJECTS)
    if not isinstance(saved, dict) or not isinstance(saved.get('state_dict'), dict):
        raise InputError(f'{args.checkpoint} holds no "state_dict": not a checkpoint of train_img.py')
    run_config = public_run_config(saved.get('args'), args.checkpoint)
    shadow = getattr(saved.get('ema'), 'shadow_params', None)
    if args.weights == 'ema' and not isinstance(shadow, dict):
        raise InputError(f'{args.checkpoint} holds no EMA (its "ema" has no shadow_params): use --weights model')
    model = ResFlow(run_config.model)
    try:
        report = import_public_resflow(model, saved['state_dict'], shadow if isinstance(shadow, dict) else None)
    except InputError as error:
        raise InputError(f'{args.checkpoint}: {error}') from None
    os.makedirs(args.logdir, exist_ok=True)
    lock = RunLock(args.logdir).acquire()
    try:
        if args.overwrite:
            clear_run(args.logdir)
        else:
            refuse_existing_run(args.logdir, resumable=False)  # again, now that no other run can start in it
        best = write_folder(args, run_config, model, report)
    finally:
        lock.release()
    print(f'imported {len(report["imported"])} tensors from {args.checkpoint} (left out {len(report["skipped"])}: '
          f'the roulette parameters, logging statistics, the last sigmas, actnorm flags)')
    print(f'wrote {args.logdir}: config.json, {os.path.relpath(best, args.logdir)} ({args.weights} weights), '
          f'{CHECKPOINTS}/ckpt-0 (the model with the EMA as its Polyak average)')
    return 0


def write_folder(args, run_config, model, report):
    """Write the imported run into --logdir: checkpoints/ckpt-0 (the trained weights with the EMA as their
    Polyak average), best/ (the --weights), config.json; returns best's prefix."""
    import tensorflow as tf

    from emerging.averaging import PolyakAverage
    from emerging.runs.checkpoints import commit
    from emerging.runs.folder import CHECKPOINTS, write_best, write_config
    hparams = dict(run_config.hparams, imported_from=os.path.abspath(args.checkpoint), imported_weights=args.weights)
    polyak = PolyakAverage(model.trainable_variables, run_config.train.polyak_decay)
    if report['ema'] is not None:
        polyak.assign_averages(report['ema'])
    commit(tf.train.Checkpoint(model=model, optimizer=polyak), os.path.join(args.logdir, CHECKPOINTS), 'ckpt-0')
    if args.weights == 'ema':
        polyak.swap_polyak()
    best = write_best(tf.train.Checkpoint(model=model), args.logdir, 'ckpt-0')
    write_config(args.logdir, run_config.model, run_config.train, run_config.data, hparams)
    return best
