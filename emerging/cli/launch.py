"""One training or inference run from parsed configurations: what train.py and train_resflow.py share.

`launch` builds the data and the model a `RunConfig` describes (any
registered model kind), writes
config.json, then trains (fresh, fine-tuned from `restore_path`, or resumed
exactly from the run folder) or runs inference, and exports a SavedModel
when asked.  It returns (exit code, trainer or None): 0 done, 2 bad input
(before any work, nothing written), 3 diverged (the last good checkpoint
kept), 143 / 130 stopped by SIGTERM / SIGINT (a checkpoint of the exact
position written: continue with --resume).  A corrupt or malformed input
record found during training is bad input too: exit code 2 naming the shard,
the last checkpoint kept.  Errors are printed by the chief as
"<prog>: error: <message>".
"""
import dataclasses
import os
import sys
from typing import Callable, Optional


@dataclasses.dataclass
class RunConfig:
    """What a command line derives: the model's configuration, the `TrainConfig`, this process's `DataConfig`
    and every flag and derived value (train.txt's first line)."""
    model: object
    train: object
    data: object
    hparams: dict


@dataclasses.dataclass(frozen=True)
class LaunchOptions:
    """How to run: the run folder, fine-tuning or inference, resuming, export, printing."""
    logdir: str
    restore_path: str = ''       # fine-tune from this checkpoint prefix (fresh counters), or infer with it
    inference: bool = False
    resume: bool = False         # continue exactly from the latest checkpoint in logdir
    export_dir: str = ''
    verbose: bool = False
    progress: bool = True
    logdir_flag: str = '--logdir'  # the flag that names the run folder, for messages


def launch(derive: Callable, options: LaunchOptions, prog: str, data_dir: str = '') -> tuple[int, Optional[object]]:
    """Train or infer as the options say.

    Args:
      derive: (rank, size) -> RunConfig, raising ValueError naming the flag.
      options: the `LaunchOptions`.
      prog: the program's name, the prefix of its error messages.
      data_dir: the data folder, searched for the corrupt shard when a record does not parse.

    Returns:
      (exit code, the `Trainer`, or None when it stopped before building one).
    """
    import tensorflow as tf

    from emerging.data.images import get_data
    from emerging.errors import InputError
    from emerging.models.registry import build_model
    from emerging.runs.checkpoints import check_matches, latest
    from emerging.runs.export import export_savedmodel
    from emerging.runs.folder import CHECKPOINTS, checkpoint_for, resolve_checkpoint, write_config
    from emerging.training.distributed import Distributed
    from emerging.training.loop import Trainer, TrainingDiverged
    from emerging.training.preemption import Stopped

    dist = Distributed()
    chief = dist.is_chief
    run = None

    def fail(message, code=2):
        if chief:
            print(f'{prog}: error: {message}', file=sys.stderr, flush=True)
        return code, None

    def bad_data(error):
        from emerging.data.tfrecords import find_bad_shards
        bad = find_bad_shards(data_dir, run.data.image_size, run.data.image_size, run.data.channels,
                              allow_larger=run.data.problem == 'lsun_realnvp') if data_dir else []
        where = '; '.join(f'{path}: {reason}' for path, reason in bad) or data_dir
        return fail(f'bad input record in {where} ({error.message.splitlines()[0][:300]})')

    def is_bad_record(error):
        from emerging.data.tfrecords import BAD_RECORD
        return isinstance(error, tf.errors.DataLossError) or BAD_RECORD in error.message

    try:
        run = derive(dist.rank, dist.size)
        check_outputs(options)
        weights_from = None
        if options.inference:
            weights_from = resolve_checkpoint(options.restore_path) if options.restore_path else checkpoint_for(
                options.logdir, 'best')
        elif options.restore_path:
            weights_from = resolve_checkpoint(options.restore_path)
        elif options.resume:
            weights_from = latest(os.path.join(options.logdir, CHECKPOINTS))
        if chief:
            print(dist.note, flush=True)
        tf.random.set_seed(run.model.seed)
        data = get_data(run.data)
        model = build_model(run.model)
        if weights_from is not None:  # before anything is written: a checkpoint of another model is refused
            check_matches(weights_from, tf.train.Checkpoint(model=model), ['model'],
                          f'the {run.model.kind} model these flags describe')
    except (ValueError, FileNotFoundError) as error:
        return fail(error)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        if not is_bad_record(error):
            raise
        return bad_data(error)
    if chief:
        os.makedirs(options.logdir, exist_ok=True)
        if not options.inference:
            write_config(options.logdir, run.model, run.train, run.data, run.hparams)
        counts = model.parameter_counts()
        print('parameters: ' + ', '.join(f'{k} {v:,}' for k, v in counts.items()), flush=True)
    trainer = Trainer(model, run.train, data, dist, options.logdir, run.hparams, verbose=options.verbose,
                      progress=options.progress)
    try:
        if options.inference:
            trainer.restore(weights_from)
            trainer.inference()
            if chief:
                print(f'inference: wrote x.npy, z.npy, recon.npy to {options.logdir}', flush=True)
            return 0, trainer
        if options.restore_path:
            # fine-tuning: the weights and optimiser state, no data-dependent init, fresh counters
            trainer.restore(weights_from, counters=False)
        trainer.train(resume=options.resume)
    except InputError as error:
        return fail(error)[0], trainer
    except Stopped as stop:
        if chief:
            print(f'{prog}: {stop}\n{prog}: continue with the same command and --resume', file=sys.stderr,
                  flush=True)
        return stop.exit_code, trainer
    except TrainingDiverged as error:
        return fail(error, code=3)[0], trainer
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        if not is_bad_record(error):
            raise
        return bad_data(error)[0], trainer
    if options.export_dir and chief:
        export_savedmodel(model, options.export_dir)
        print(f'SavedModel written to {options.export_dir}', flush=True)
    return 0, trainer


def check_outputs(options: LaunchOptions) -> None:
    """Refuse, before any work, a run folder or export folder that cannot be written.

    Args:
      options: the `LaunchOptions`.

    Raises:
      InputError: naming the path.
    """
    from emerging.cli.paths import check_output_folder
    check_output_folder(options.logdir, options.logdir_flag)
    if options.export_dir:
        check_output_folder(options.export_dir, '--export_dir')
