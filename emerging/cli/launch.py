"""One training or inference run from parsed configurations: what train.py and train_resflow.py share.

`launch` builds the data and the model a `RunConfig` describes (any
registered model kind), writes
config.json, then trains (fresh, fine-tuned from `restore_path`, or resumed
exactly from the run folder) or runs inference, and exports a SavedModel
when asked.  It returns (exit code, trainer or None): 0 done, 2 bad input
(before any work, nothing written), 3 diverged (the last good checkpoint
kept), 4 corrupt input data.  Errors are printed by the chief as
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
    from emerging.models.registry import build_model
    from emerging.runs.export import export_savedmodel
    from emerging.runs.folder import BEST_CHECKPOINT, check_readable, write_config
    from emerging.training.distributed import Distributed
    from emerging.training.loop import Trainer, TrainingDiverged

    dist = Distributed()
    chief = dist.is_chief
    run = None

    def fail(message, code=2):
        if chief:
            print(f'{prog}: error: {message}', file=sys.stderr, flush=True)
        return code, None

    def corrupt_data(error):
        from emerging.data.tfrecords import find_corrupt_shards
        files = find_corrupt_shards(data_dir, run.data.image_size) if data_dir else []
        return fail(f'corrupt input record in {", ".join(files) if files else data_dir}: {error.message}', code=4)

    try:
        run = derive(dist.rank, dist.size)
        if options.restore_path or options.inference:
            check_readable(options.restore_path or os.path.join(options.logdir, BEST_CHECKPOINT))
        if chief:
            print(dist.note, flush=True)
        tf.random.set_seed(run.model.seed)
        data = get_data(run.data)
        model = build_model(run.model)
    except (ValueError, FileNotFoundError) as error:
        return fail(error)
    except tf.errors.DataLossError as error:
        return corrupt_data(error)
    if chief:
        os.makedirs(options.logdir, exist_ok=True)
        if not options.inference:
            write_config(options.logdir, run.model, run.train, run.data, run.hparams)
        counts = model.parameter_counts()
        print('parameters: ' + ', '.join(f'{k} {v:,}' for k, v in counts.items()), flush=True)
    trainer = Trainer(model, run.train, data, dist, options.logdir, run.hparams, verbose=options.verbose,
                      progress=options.progress)
    if options.inference:
        trainer.restore(options.restore_path or os.path.join(options.logdir, BEST_CHECKPOINT))
        trainer.inference()
        if chief:
            print(f'inference: wrote x.npy, z.npy, recon.npy to {options.logdir}', flush=True)
        return 0, trainer
    if options.restore_path:
        # fine-tuning: the weights and optimiser state, no data-dependent init, fresh counters
        trainer.restore(options.restore_path, counters=False)
    try:
        trainer.train(resume=options.resume)
    except TrainingDiverged as error:
        return fail(error, code=3)[0], trainer
    except tf.errors.DataLossError as error:
        return corrupt_data(error)[0], trainer
    if options.export_dir and chief:
        export_savedmodel(model, options.export_dir)
        print(f'SavedModel written to {options.export_dir}', flush=True)
    return 0, trainer
