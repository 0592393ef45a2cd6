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
the last checkpoint kept; so is a full disk (exit code 2 naming the file it
was writing and the intact last checkpoint).  Errors are printed by the chief
as "<prog>: error: <message>".

A training run claims its folder first (the chief only: under Horovod only
rank 0 writes it; with --resume every process also checks its own input
position; every rank learns the outcome and all stop with exit code 2 when
one is refused): it locks it (emerging.runs.lock: a second run in the
same folder is refused, naming the holder), then refuses a folder that holds
a run unless `resume` (the run's files are checked and its flags compared
with these first) or `overwrite` (the earlier run's files are deleted once
every other check has passed) says what to do with it.
"""
import dataclasses
import os
import sys
from typing import Callable, Optional

from emerging.errors import InputError


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
    overwrite: bool = False      # delete the run logdir holds and start a new one there
    export_dir: str = ''
    verbose: bool = False
    progress: bool = True
    logdir_flag: str = '--logdir'  # the flag that names the run folder, for messages
    # {hyperparameter key: its flag} of what a resumed run must keep (its variables, its input streams)
    resume_flags: dict = dataclasses.field(default_factory=dict)


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
    from emerging.runs.checkpoints import check_matches, is_disk_full
    from emerging.runs.export import export_savedmodel
    from emerging.runs.folder import checkpoint_for, clear_run, resolve_checkpoint, write_config
    from emerging.training.distributed import Distributed
    from emerging.training.loop import Trainer, TrainingDiverged
    from emerging.training.preemption import Stopped

    dist = Distributed()
    chief = dist.is_chief
    run, lock = None, None

    def fail(message, code=2, every_process=False):
        if chief or every_process:
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
        if options.inference and options.overwrite:
            raise InputError('--inference reads the run in the folder and --overwrite deletes it: give one of them')
    except (ValueError, FileNotFoundError) as error:
        return fail(error)
    lock, refused = claim_for_every_process(dist, run, options, prog)
    if refused:
        return 2, None
    try:
        try:
            weights_from = None
            if options.inference:
                weights_from = resolve_checkpoint(options.restore_path) if options.restore_path else \
                    checkpoint_for(options.logdir, 'best')
            elif options.restore_path:
                weights_from = resolve_checkpoint(options.restore_path)
            elif options.resume:
                weights_from = latest_checkpoint(options.logdir)
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
        trainer = None
        try:
            if chief:
                if options.overwrite:
                    cleared = clear_run(options.logdir)
                    if cleared:
                        print(f'--overwrite: deleted the earlier run\'s {", ".join(cleared)} in {options.logdir}',
                              flush=True)
                if not options.inference:
                    write_config(options.logdir, run.model, run.train, run.data, run.hparams)
                counts = model.parameter_counts()
                print('parameters: ' + ', '.join(f'{k} {v:,}' for k, v in counts.items()), flush=True)
            trainer = Trainer(model, run.train, data, dist, options.logdir, run.hparams, verbose=options.verbose,
                              progress=options.progress)
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
        except Exception as error:  # a full disk may surface from any writer: Python's, TensorFlow's, PIL's
            if not is_disk_full(error):
                raise
            # any process may find its disk full (its input position): each says so, then mpiexec ends the others
            return fail(disk_full_message(error, options.logdir), every_process=True)[0], trainer
        if options.export_dir and chief:
            export_savedmodel(model, options.export_dir)
            print(f'SavedModel written to {options.export_dir}', flush=True)
        return 0, trainer
    finally:
        if lock is not None:
            lock.release()


def latest_checkpoint(logdir: str) -> Optional[str]:
    """The latest committed checkpoint of a run folder, or None."""
    from emerging.runs.checkpoints import latest
    from emerging.runs.folder import CHECKPOINTS
    return latest(os.path.join(logdir, CHECKPOINTS))


def claim_for_every_process(dist, run: RunConfig, options: LaunchOptions, prog: str) -> tuple:
    """The chief claims the run folder (`claim_folder`), every process of a resumed run checks its own input
    position, and every process learns whether any was refused (a refused process says why).

    Args:
      dist: this process's `Distributed`.
      run: the `RunConfig` these flags give.
      options: the `LaunchOptions`.
      prog: the program's name, the prefix of its error messages.

    Returns:
      (the chief's `RunLock` or None, whether a process was refused: then every one stops, the lock released).
    """
    from emerging.training.state import check_input_position
    lock, refusal = None, None
    try:
        if dist.is_chief and not options.inference:
            lock = claim_folder(run, options)
        if options.resume:
            check_input_position(options.logdir, dist.rank)
    except InputError as error:
        refusal = error
    refused = bool(dist.agree([int(refusal is not None)], name='run_folder_claimed')[0])
    if refused:
        if refusal is not None:
            print(f'{prog}: error: {refusal}', file=sys.stderr, flush=True)
        if lock is not None:
            lock.release()
        lock = None
    return lock, refused


def disk_full_message(error: BaseException, logdir: str) -> str:
    """What to tell a user whose run found the disk full: the file, the intact checkpoint, what to do.

    Args:
      error: the exception (`DiskFull`, an OSError, a TensorFlow error).
      logdir: the run folder.

    Returns:
      The message.
    """
    path = getattr(error, 'path', None) or getattr(error, 'filename', None) or f'in {logdir}'
    last = latest_checkpoint(logdir)
    kept = f'the last checkpoint ({last}) is intact' if last else 'no checkpoint had been written yet'
    return f'no space left on device writing {path}: {kept}; free space and continue with --resume'


def claim_folder(run: RunConfig, options: LaunchOptions):
    """Make and lock the run folder, and check what it holds against what the options say to do with it.

    Args:
      run: the `RunConfig` these flags give.
      options: the `LaunchOptions`.

    Returns:
      The `RunLock`, held.

    Raises:
      InputError: naming the folder: held by another run; holding a run without --resume or --overwrite; with
        --resume, a run that cannot be continued (a file named) or was made with other flags (the flag named);
        both flags at once; --overwrite of the folder --restore_path reads from.
    """
    from emerging.runs.folder import check_resumable, check_same_run, refuse_existing_run
    from emerging.runs.lock import RunLock
    flag = options.logdir_flag
    if options.resume and options.overwrite:
        raise InputError('--resume continues the run and --overwrite deletes it: give one of them')
    if options.overwrite and options.restore_path and _inside(options.restore_path, options.logdir):
        raise InputError(f'--restore_path {options.restore_path} is inside {flag} {options.logdir}, which '
                         f'--overwrite would delete first: copy it elsewhere, or choose another folder')
    existed = os.path.isdir(options.logdir)
    os.makedirs(options.logdir, exist_ok=True)
    lock = RunLock(options.logdir, flag).acquire()
    try:
        if options.resume:
            if check_resumable(options.logdir, flag) is not None:
                check_same_run(options.logdir, run.model, run.hparams, options.resume_flags)
        elif not options.overwrite:
            refuse_existing_run(options.logdir, flag)
    except InputError:
        lock.release()
        if not existed:
            _remove_if_empty(options.logdir)  # made here: a refused run leaves nothing
        raise
    return lock


def _remove_if_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass  # another run has started writing in it


def _inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or under it."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


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
