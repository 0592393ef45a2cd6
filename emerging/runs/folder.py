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
  keep their best checkpoint as model_best_loss.ckpt; it still loads.

The pretrained models shipped with the package are such folders
(`pretrained_run('digits')`).  Everything read from a run folder is checked
first, and a problem is an `InputError` naming the file.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Optional

from emerging.choices import WEIGHTS, described
from emerging.errors import InputError
from emerging.models.config import GlowConfig
from emerging.models.registry import config_class
from emerging.runs.checkpoints import commit, committed, latest, verify

CONFIG_FILE = 'config.json'
BEST = 'best'
LEGACY_BEST = 'model_best_loss.ckpt'
CHECKPOINTS = 'checkpoints'
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
    with open(path + '.tmp', 'w') as f:
        json.dump(config, f, indent=1, default=str)
    os.replace(path + '.tmp', path)
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
        except (ValueError, TypeError) as error:
            raise InputError(f'{path}: "model": {error}') from None
        return model, config.get('hparams', {})
    log = os.path.join(logdir, 'train.txt')
    if not os.path.exists(log):
        raise InputError(f'{logdir} has neither {CONFIG_FILE} nor train.txt: not a training run folder')
    hparams = _read_json_object(log, "hyperparameter line of a run's train.txt", first_line=True)
    try:
        return GlowConfig.from_hparams(hparams), hparams
    except (ValueError, TypeError) as error:
        raise InputError(f'the hyperparameter line of {log}: {error}') from None


def _read_json_object(path: str, what: str, first_line: bool = False) -> dict:
    """The JSON object in a file (or on its first line), or an InputError naming the file."""
    where = f"{path}'s first line" if first_line else path
    try:
        with open(path) as f:
            text = f.readline() if first_line else f.read()
        value = json.loads(text)
    except OSError as error:
        raise InputError(f'cannot read {path}: {error.strerror}') from None
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f'{where} is not valid JSON ({error}): expected the {what}') from None
    if not isinstance(value, dict):
        raise InputError(f'{where} holds a JSON {type(value).__name__}, not the object of the {what}')
    return value


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
