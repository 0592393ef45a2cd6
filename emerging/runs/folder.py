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
* model_best_loss.ckpt (weights 'best'), checkpoints/ckpt-{epoch} (weights
  'latest'; their optimiser state also holds the Polyak averages: weights
  'polyak').

The pretrained models shipped with the package are such folders
(`pretrained_run('digits')`).  Checkpoints are written through temporary
files (`write_checkpoint_atomically`), so a crash never leaves half of one.
"""
from __future__ import annotations

import dataclasses
import json
import os

from emerging.choices import WEIGHTS, described
from emerging.models.config import GlowConfig
from emerging.models.registry import config_class

CONFIG_FILE = 'config.json'
BEST_CHECKPOINT = 'model_best_loss.ckpt'
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

    Args:
      logdir: the run folder.

    Returns:
      (the model's configuration, the hyperparameters dict).

    Raises:
      FileNotFoundError, ValueError: naming the folder or file when it is not a run's.
    """
    if not os.path.isdir(logdir):
        raise FileNotFoundError(f'{logdir} is not a folder: expected a training run (train.py --logdir)')
    path = os.path.join(logdir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            config = json.load(f)
        model = config_class(config.get('model_kind', 'glow')).from_dict(config['model'])
        return model, config.get('hparams', {})
    log = os.path.join(logdir, 'train.txt')
    if not os.path.exists(log):
        raise FileNotFoundError(f'{logdir} has neither {CONFIG_FILE} nor train.txt: not a training run folder')
    with open(log) as f:
        try:
            hparams = json.loads(f.readline())
        except json.JSONDecodeError as error:
            raise ValueError(f'the first line of {log} is not the JSON hyperparameter line: {error}') from None
    return GlowConfig.from_hparams(hparams), hparams


def checkpoint_for(logdir: str, weights: str) -> str:
    """The checkpoint prefix that holds a run's weights.

    Args:
      logdir: the run folder.
      weights: 'best', 'latest' or 'polyak'.

    Returns:
      The checkpoint prefix.
    """
    if weights not in WEIGHTS:
        raise ValueError(f'unknown weights {weights!r}; allowed: {described(WEIGHTS)}')
    if weights == 'best':
        prefix = os.path.join(logdir, BEST_CHECKPOINT)
        if not os.path.exists(prefix + '.index'):
            raise FileNotFoundError(f'{logdir} has no {BEST_CHECKPOINT} (written at the first full validation, '
                                    f'every --epochs_full_valid epochs): try --weights latest')
        return prefix
    import tensorflow as tf
    prefix = tf.train.latest_checkpoint(os.path.join(logdir, CHECKPOINTS))
    if prefix is None:
        raise FileNotFoundError(f'{logdir}/{CHECKPOINTS} holds no checkpoint (one is written after every epoch)')
    return prefix


def check_readable(path: str) -> None:
    """Raise ValueError('cannot read checkpoint ...') unless `path` is a readable checkpoint prefix."""
    import tensorflow as tf
    try:
        tf.train.load_checkpoint(path)
    except Exception as error:
        raise ValueError(f'cannot read checkpoint {path!r}: {type(error).__name__}: '
                         f'{str(error).splitlines()[0]}') from None


def write_checkpoint_atomically(checkpoint, prefix: str) -> str:
    """checkpoint.write(prefix) via temporary files, so a crash never leaves half of one.

    Args:
      checkpoint: a `tf.train.Checkpoint`.
      prefix: the checkpoint prefix to write.

    Returns:
      `prefix`.
    """
    written = checkpoint.write(prefix + '.tmp')
    for suffix in ('.data-00000-of-00001', '.index'):
        os.replace(written + suffix, prefix + suffix)
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
        raise ValueError(f'unknown pretrained model {name!r}; available: {", ".join(available) or "none"}')
    return os.path.join(PRETRAINED, name)
