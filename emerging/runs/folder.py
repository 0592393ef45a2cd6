"""A run folder: the files a training run writes, and how they are written and found.

A run folder (train.py's `--logdir`, train_resflow.py's `--save`) holds:

* config.json, written when the run starts: {"emerging_version",
  "model_kind" (a registered model kind, emerging.models.registry), "model"
  (its configuration's fields), "train" (the TrainConfig), "data" (the data
  configuration of process 0), "hparams" (every flag and derived value, as
  train.txt's first line)};
* train.txt / test.txt, whose first line holds the hyperparameters: runs
  without config.json (runs of the original code, imported TF1 checkpoints)
  are Glow runs read from it;
* best/ (weights 'best': the best validation checkpoint) and checkpoints/
  (weights 'latest': the last two epochs, or an epoch in progress when the
  run was stopped; their optimiser state also holds the Polyak averages:
  weights 'polyak'), each a folder of committed checkpoints (checkpoints.py:
  one commit point, so a kill at any instant leaves a complete checkpoint;
  manifests that let a load refuse a damaged file).  Runs of earlier versions
  keep their best checkpoint as model_best_loss.ckpt; it still loads;
* .lock while a run runs in it (emerging.runs.lock).

A folder holding any of config.json, train.txt, test.txt, checkpoints/,
best/ or model_best_loss.ckpt holds a run: a new run refuses it
(`refuse_existing_run`) unless told to continue it (`check_resumable`,
`check_same_run`) or to start over (`clear_run`).

The pretrained models shipped with the package are such folders
(`pretrained_run('digits')`).  Everything read from a run folder is checked
first, and a problem is an `InputError` naming the file.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
from typing import Optional

from emerging.choices import WEIGHTS, described
from emerging.errors import InputError
from emerging.models.config import GlowConfig
from emerging.models.registry import config_class
from emerging.runs.checkpoints import POINTER, atomic_write, commit, committed, latest, verify

CONFIG_FILE = 'config.json'
BEST = 'best'
LEGACY_BEST = 'model_best_loss.ckpt'
CHECKPOINTS = 'checkpoints'
LOGS = ('train.txt', 'test.txt')
# what shows that a folder holds a run, and what else a run writes that a new run would mix with
RUN_FILES = (CONFIG_FILE, *LOGS, CHECKPOINTS, BEST, LEGACY_BEST + '.*')
RUN_OUTPUTS = (*RUN_FILES, 'tensorboard', 'epoch_*_sample_*.png', 'x.npy', 'z.npy', 'recon.npy')
# model fields that change neither the variables nor the results, only memory use: a resumed run may change them
RESUMABLE_MODEL_FIELDS = ('gradient_checkpointing', 'mem_eff')
# longest config.json and train.txt first line read: a run's are a few KB, so this only stops a runaway read
MAX_JSON_BYTES = 16 * 2 ** 20
PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pretrained')


def write_config(logdir: str, model, train, data, hparams: dict) -> str:
    """Write {logdir}/config.json through a temporary file.

    Args:
      logdir: the run folder.
      model: the model's configuration (an `ImageFlowConfig`).
      train, data: the run's `TrainConfig` and this process's `DataConfig` (dataclasses).
      hparams: every flag and derived value.

    Returns:
      The path written.
    """
    import emerging
    config = {'emerging_version': emerging.__version__, 'model_kind': model.kind, 'model': model.to_dict(),
              'train': dataclasses.asdict(train), 'data': dataclasses.asdict(data), 'hparams': hparams}
    path = os.path.join(logdir, CONFIG_FILE)
    atomic_write(path, json.dumps(config, indent=1, default=str))
    return path


def read_config(logdir: str) -> tuple:
    """A run folder's model configuration and hyperparameters, from config.json or else train.txt.

    Both are checked before use: config.json must be the JSON object a run writes, with a registered
    "model_kind" and a "model" whose every field is known and of its type; train.txt's first line must be
    the JSON object of a run's hyperparameters.

    Args:
      logdir: the run folder.

    Returns:
      (the model's configuration, the hyperparameters dict).

    Raises:
      InputError: naming the folder or file and what is wrong with it.
    """
    if not os.path.isdir(logdir):
        raise InputError(f'{logdir} is not a folder: expected a training run (train.py --logdir)')
    path = os.path.join(logdir, CONFIG_FILE)
    if os.path.exists(path):
        config = _read_json_object(path, "config.json a run writes")
        if 'model' not in config:
            raise InputError(f'{path} lacks "model", the model\'s configuration: not a run\'s config.json')
        for key, kind in (('model', dict), ('hparams', dict), ('model_kind', str)):
            if key in config and not isinstance(config[key], kind):
                raise InputError(f'{path}: "{key}" must be a JSON {"object" if kind is dict else "string"}, '
                                 f'got {type(config[key]).__name__}')
        try:
            model = config_class(config.get('model_kind', 'glow')).from_dict(config['model'])
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise InputError(f'{path}: "model": {error}') from None
        return model, config.get('hparams', {})
    log = os.path.join(logdir, 'train.txt')
    if not os.path.exists(log):
        raise InputError(f'{logdir} has neither {CONFIG_FILE} nor train.txt: not a training run folder')
    hparams = read_hparams_line(log)
    try:
        return GlowConfig.from_hparams(hparams), hparams
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
        raise InputError(f'the hyperparameter line of {log}: {error}') from None


def read_hparams_line(path: str) -> dict:
    """The hyperparameters on the first line of a run's train.txt or test.txt.

    Args:
      path: the log file.

    Returns:
      The JSON object of that line.

    Raises:
      InputError: naming the file when it is missing, not a file, unreadable, or its first line is not a JSON
        object.
    """
    return _read_json_object(path, "hyperparameter line of a run's log", first_line=True)


def _read_json_object(path: str, what: str, first_line: bool = False) -> dict:
    """The JSON object in a file (or on its first line), or an InputError naming the file."""
    where = f"{path}'s first line" if first_line else path
    if os.path.isdir(path):
        raise InputError(f'{path} is a folder, not a file: expected the {what}')
    try:
        with open(path, 'rb') as f:
            raw = f.readline(MAX_JSON_BYTES + 1) if first_line else f.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise InputError(f'cannot read {path}: {error.strerror}') from None
    if len(raw) > MAX_JSON_BYTES:
        raise InputError(f'{where} is longer than {MAX_JSON_BYTES} bytes: not the {what}')
    try:
        value = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InputError(f'{where} is not valid JSON ({str(error)[:200]}): expected the {what}') from None
    if not isinstance(value, dict):
        raise InputError(f'{where} holds a JSON {type(value).__name__}, not the object of the {what}')
    return value


def run_files(logdir: str, patterns: tuple = RUN_FILES) -> list:
    """The files and folders in `logdir` that show it holds a run (see the module docstring).

    Args:
      logdir: a folder (it need not exist).
      patterns: the glob patterns of what shows a run (a density script's own).

    Returns:
      Their names, sorted ([] for a new or empty folder).
    """
    return sorted({os.path.basename(path) for pattern in patterns
                   for path in glob.glob(os.path.join(glob.escape(logdir), pattern))})


def refuse_existing_run(logdir: str, flag: str = '--logdir', resumable: bool = True,
                        patterns: tuple = RUN_FILES) -> None:
    """Refuse a folder that holds a run, for a run that would start afresh in it.

    Args:
      logdir: the run folder.
      flag: the flag that named it, for the message.
      resumable: whether the command can continue the run (--resume is then offered).
      patterns: the glob patterns of what shows a run (a density script's own).

    Raises:
      InputError: naming the folder, what shows it holds a run, and the flags that say what to do with it.
    """
    found = run_files(logdir, patterns)
    if found:
        resume = 'add --resume to continue it, or ' if resumable else 'it must be a new folder, or add '
        raise InputError(f'{flag} {logdir} holds a run ({", ".join(found)}): {resume}--overwrite to delete its '
                         f'checkpoints, logs and samples and start over; nothing was changed')


def clear_run(logdir: str, patterns: tuple = RUN_OUTPUTS) -> list:
    """Delete what a run wrote in `logdir` (`RUN_OUTPUTS`): config.json, the logs, the checkpoints, the best
    checkpoint, TensorBoard's curves, the sample grids and the inference arrays; anything else stays.

    Args:
      logdir: the run folder.
      patterns: the glob patterns of what a run writes (a density script's own).

    Returns:
      The names deleted, sorted.
    """
    paths = sorted({path for pattern in patterns for path in glob.glob(os.path.join(glob.escape(logdir), pattern))})
    for path in paths:
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    return [os.path.basename(path) for path in paths]


def check_script_output(folder: str, flag: str, shows_run: tuple, overwrite: bool, continued: str = '') -> None:
    """The density scripts' rule for their output folder: one that holds a run (a file of `shows_run`) is refused
    unless --overwrite, or the run continues from its own checkpoint there; --overwrite of the folder the
    checkpoint to continue from is in is refused (it would be deleted first).

    Args:
      folder: the output folder.
      flag: the flag that named it ('--output_dir', '--save').
      shows_run: the glob patterns of what shows it holds a run.
      overwrite: whether --overwrite was given.
      continued: the checkpoint prefix the run starts from ('' for none).

    Raises:
      InputError: naming the folder and the flags.
    """
    inside = bool(continued) and os.path.realpath(os.path.dirname(continued)) == os.path.realpath(folder)
    if overwrite and inside:
        raise InputError(f'the checkpoint to start from ({continued}) is in {flag} {folder}, which --overwrite '
                         f'would delete first: leave out --overwrite to continue there')
    if not overwrite and not inside:
        refuse_existing_run(folder, flag, resumable=False, patterns=shows_run)


def check_resumable(logdir: str, flag: str = '--logdir') -> Optional[str]:
    """What --resume continues: the latest checkpoint of the run in `logdir`, every file it needs checked.

    Args:
      logdir: the run folder.
      flag: the flag that named it, for the message.

    Returns:
      The latest checkpoint's prefix (verified), or None when the folder holds no run (new or empty) or a run
      stopped before it saved anything (config.json and the logs' hyperparameter lines only): the run starts
      afresh.

    Raises:
      InputError: naming the file, when the folder holds a run that cannot be continued exactly: its pointer
        file missing or damaged, its checkpoint damaged, a log missing (after the first epoch), not a file, or
        its first line not a JSON object.
    """
    if not run_files(logdir):
        return None
    pointer = os.path.join(logdir, CHECKPOINTS, POINTER)
    fix = 'fix or restore it, or start over with --overwrite (which deletes this run)'
    if not os.path.lexists(pointer) and not _saved_anything(logdir):
        return None  # stopped before its first checkpoint and first epoch: nothing to lose, it starts afresh
    if not os.path.isfile(pointer):
        raise InputError(f'--resume: {flag} {logdir} holds a run but {pointer}, which names its latest checkpoint, '
                         f'{"is not a file" if os.path.exists(pointer) else "is missing"}: nothing to continue '
                         f'from; {fix}')
    prefix = latest(os.path.join(logdir, CHECKPOINTS))
    verify(prefix)
    first_epoch = os.path.basename(prefix).split('-')[:2] == ['ckpt', '0']
    for name in LOGS:
        path = os.path.join(logdir, name)
        if not os.path.exists(path) and first_epoch:
            continue  # nothing logged before the first epoch ends (an imported run has no log): it starts here
        if not os.path.exists(path):
            raise InputError(f'--resume: {path} is missing: the run\'s log cannot be continued; {fix}')
        read_hparams_line(path)
    return prefix


def _saved_anything(logdir: str) -> bool:
    """Whether a run wrote a checkpoint (a TensorFlow index file, whole once written), a best checkpoint, or
    a log line after the hyperparameter line."""
    if glob.glob(os.path.join(glob.escape(logdir), CHECKPOINTS, '*.index')) or \
            run_files(logdir, (BEST, LEGACY_BEST + '.*')):
        return True
    for name in LOGS:
        path = os.path.join(logdir, name)
        try:
            with open(path, 'rb') as f:
                f.readline(MAX_JSON_BYTES + 1)
                if f.read(1):
                    return True
        except FileNotFoundError:
            continue
        except OSError:
            return True  # not a readable file: check_resumable names it
    return False


def check_same_run(logdir: str, model, hparams: dict, flags: dict) -> None:
    """Refuse to continue a run with flags that change its variables or its input streams.

    Args:
      logdir: the run folder (its config.json, or train.txt's first line).
      model: the model's configuration these flags give.
      hparams: the hyperparameters these flags give.
      flags: {hyperparameter key: the flag that sets it} of what must not change ('flow_permutation':
        '--flow_permutation').

    Raises:
      InputError: naming the first flag that differs and its value in the run; or a model field that differs
        when no flag of `flags` explains it.
    """
    stored_model, stored = read_config(logdir)
    if stored_model.kind != model.kind:
        raise InputError(f'--resume: {logdir} holds a {stored_model.kind} run, not a {model.kind} one: these flags '
                         f'cannot continue it; nothing was changed')
    for key, flag in flags.items():
        if key in stored and key in hparams and _as_json(stored[key]) != _as_json(hparams[key]):
            raise InputError(f'--resume: {logdir} was made with {flag} {_shown(stored[key])}, not '
                             f'{_shown(hparams[key])}: continue it with the same {flag}, or start a new run in '
                             f'another folder; nothing was changed')
    mine, theirs = model.to_dict(), stored_model.to_dict()
    for field in sorted((set(mine) | set(theirs)) - set(RESUMABLE_MODEL_FIELDS)):
        if _as_json(mine.get(field)) != _as_json(theirs.get(field)):
            raise InputError(f'--resume: {logdir} was made with a model whose {field} is {_shown(theirs.get(field))}, '
                             f'these flags give {_shown(mine.get(field))}: continue it with the flags it was made '
                             f'with; nothing was changed')


def _as_json(value):
    """A value as config.json holds it (tuples as lists, other objects as strings), for comparisons."""
    return json.loads(json.dumps(value, default=str))


def _shown(value) -> str:
    """A flag's value as typed on a command line."""
    return str(value) if not isinstance(value, str) else (value or "''")


def best_checkpoint(logdir: str) -> Optional[str]:
    """The prefix of a run's best validation checkpoint, or None when it has none.

    Args:
      logdir: the run folder.

    Returns:
      The latest checkpoint of {logdir}/best, or an earlier version's {logdir}/model_best_loss.ckpt, or None.
    """
    prefix = latest(os.path.join(logdir, BEST))
    if prefix is None and os.path.exists(os.path.join(logdir, LEGACY_BEST) + '.index'):
        prefix = os.path.join(logdir, LEGACY_BEST)
    return prefix


def checkpoint_for(logdir: str, weights: str) -> str:
    """The checkpoint prefix that holds a run's weights.

    Args:
      logdir: the run folder.
      weights: 'best', 'latest' or 'polyak'.

    Returns:
      The checkpoint prefix.

    Raises:
      InputError: when the run has no such checkpoint.
    """
    if weights not in WEIGHTS:
        raise InputError(f'unknown weights {weights!r}; allowed: {described(WEIGHTS)}')
    if weights == 'best':
        prefix = best_checkpoint(logdir)
        if prefix is None:
            raise InputError(f'{logdir} has no best checkpoint ({BEST}/, written at the first full validation, '
                             f'every --epochs_full_valid epochs): try --weights latest')
        return prefix
    prefix = latest(os.path.join(logdir, CHECKPOINTS))
    if prefix is None:
        raise InputError(f'{logdir}/{CHECKPOINTS} holds no checkpoint (one is written after every epoch)')
    return prefix


def resolve_checkpoint(path: str) -> str:
    """The checkpoint prefix a path names, verified.

    Args:
      path: what the user gave (--restore_path, --checkpoint): a checkpoint prefix, a checkpoint folder (its
        latest), a run folder (its best), or a run's model_best_loss.ckpt (its best, wherever this version
        keeps it).

    Returns:
      The checkpoint prefix, complete and undamaged.

    Raises:
      InputError: naming the path when it names no readable checkpoint.
    """
    prefix = path
    if not os.path.exists(path + '.index'):
        if os.path.isdir(path):
            prefix = latest(path) or best_checkpoint(path)
        elif os.path.basename(path) == LEGACY_BEST:
            prefix = best_checkpoint(os.path.dirname(path) or '.')
        else:
            prefix = None
    if prefix is None:
        raise InputError(f'no checkpoint at {path!r}: expected a checkpoint prefix (PREFIX.index exists), a '
                         f'checkpoint folder or a run folder')
    verify(prefix)
    return prefix


def write_best(checkpoint, logdir: str, name: str) -> str:
    """Make `checkpoint` the run's best one, committed as {logdir}/best/{name} (the only one kept).

    Args:
      checkpoint: a `tf.train.Checkpoint`.
      logdir: the run folder.
      name: the checkpoint's name ('ckpt-{epoch}'); another is chosen when it is the current best's.

    Returns:
      The checkpoint's prefix.
    """
    folder = os.path.join(logdir, BEST)
    taken = committed(folder)
    unique, n = name, 1
    while unique in taken:
        unique, n = f'{name}-{n}', n + 1
    prefix = commit(checkpoint, folder, unique, keep=1)
    for legacy in glob.glob(glob.escape(os.path.join(logdir, LEGACY_BEST)) + '.*'):
        os.remove(legacy)  # an earlier version's best, superseded
    return prefix


def pretrained_run(name: str) -> str:
    """The run folder of a pretrained model shipped with the package.

    Args:
      name: the model's name ('digits').

    Returns:
      The folder's path.
    """
    available = sorted(os.listdir(PRETRAINED)) if os.path.isdir(PRETRAINED) else []
    if name not in available:
        raise InputError(f'unknown pretrained model {name!r}; available: {", ".join(available) or "none"}')
    return os.path.join(PRETRAINED, name)
