"""A training run folder, read back: `load_run` gives its model with trained weights.

A run folder (train.py's `--logdir`) holds:

* config.json, written when the run starts: {"emerging_version", "model_kind"
  ("glow" or "resflow"), "model" (its ModelConfig or ResFlowConfig), "train"
  (the TrainConfig), "data" (the data configuration of process 0), "hparams"
  (every flag and derived value, as train.txt's first line)};
* train.txt / test.txt, whose first line holds the hyperparameters: runs
  without config.json (runs of the original code, imported TF1 checkpoints)
  are read from it;
* model_best_loss.ckpt (weights 'best'), checkpoints/ckpt-{epoch} (weights
  'latest'; their optimiser state also holds the Polyak averages: weights
  'polyak').

The pretrained models shipped with the package are such folders
(`pretrained_run('digits')`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import emerging
from emerging.config import ModelConfig
from emerging.training.state import BEST_CHECKPOINT, check_readable

WEIGHTS = ('best', 'latest', 'polyak')
CONFIG_FILE = 'config.json'
MODEL_KINDS = {'ModelConfig': 'glow', 'ResFlowConfig': 'resflow'}  # configuration class -> config.json's model_kind
PRETRAINED = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pretrained')


@dataclasses.dataclass
class Run:
    """A loaded run: the model with the chosen weights and the run's configuration."""
    logdir: str
    model: object
    model_config: ModelConfig
    hparams: dict
    checkpoint: str
    weights: str


def write_config(logdir: str, model: ModelConfig, train, data, hparams: dict) -> str:
    """Write {logdir}/config.json (through a temporary file); `train` and `data` are dataclasses."""
    config = {'emerging_version': emerging.__version__, 'model_kind': MODEL_KINDS[type(model).__name__],
              'model': dataclasses.asdict(model),
              'train': dataclasses.asdict(train), 'data': dataclasses.asdict(data), 'hparams': hparams}
    path = os.path.join(logdir, CONFIG_FILE)
    with open(path + '.tmp', 'w') as f:
        json.dump(config, f, indent=1, default=str)
    os.replace(path + '.tmp', path)
    return path


def read_config(logdir: str) -> tuple[ModelConfig, dict]:
    """(model configuration, hyperparameters) of a run folder, from config.json or else train.txt."""
    if not os.path.isdir(logdir):
        raise FileNotFoundError(f'{logdir} is not a folder: expected a training run (train.py --logdir)')
    path = os.path.join(logdir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            config = json.load(f)
        model = dict(config['model'], image_shape=tuple(config['model']['image_shape']))
        kind = config.get('model_kind', 'glow')
        if kind == 'resflow':
            from emerging.config import ResFlowConfig
            return ResFlowConfig(**dict(model, n_blocks=tuple(model['n_blocks']))), config.get('hparams', {})
        return ModelConfig(**model), config.get('hparams', {})
    log = os.path.join(logdir, 'train.txt')
    if not os.path.exists(log):
        raise FileNotFoundError(f'{logdir} has neither {CONFIG_FILE} nor train.txt: not a training run folder')
    with open(log) as f:
        try:
            hparams = json.loads(f.readline())
        except json.JSONDecodeError as error:
            raise ValueError(f'the first line of {log} is not the JSON hyperparameter line: {error}') from None
    return ModelConfig.from_hparams(hparams), hparams


def checkpoint_for(logdir: str, weights: str) -> str:
    """The checkpoint prefix that holds a run's `weights` ('best', 'latest' or 'polyak')."""
    if weights not in WEIGHTS:
        raise ValueError(f'unknown weights {weights!r}; allowed: {", ".join(WEIGHTS)}')
    if weights == 'best':
        prefix = os.path.join(logdir, BEST_CHECKPOINT)
        if not os.path.exists(prefix + '.index'):
            raise FileNotFoundError(f'{logdir} has no {BEST_CHECKPOINT} (written at the first full validation, '
                                    f'every --epochs_full_valid epochs): try --weights latest')
        return prefix
    import tensorflow as tf
    prefix = tf.train.latest_checkpoint(os.path.join(logdir, 'checkpoints'))
    if prefix is None:
        raise FileNotFoundError(f'{logdir}/checkpoints holds no checkpoint (one is written after every epoch)')
    return prefix


def load_run(logdir: str, weights: str = 'best', checkpoint: Optional[str] = None) -> Run:
    """The model of the run in `logdir` with its best, latest or Polyak-averaged weights.

    `checkpoint`: a checkpoint prefix to read instead of the run's own (with
    weights='polyak', its Polyak averages).  Raises FileNotFoundError or
    ValueError, naming the file, when the folder or checkpoint does not hold
    what is asked for.
    """
    import tensorflow as tf

    from emerging.optim import Optimizer

    if weights not in WEIGHTS:
        raise ValueError(f'unknown weights {weights!r}; allowed: {", ".join(WEIGHTS)}')
    model_config, hparams = read_config(logdir)
    prefix = checkpoint or checkpoint_for(logdir, weights)
    check_readable(prefix)
    stored = dict(tf.train.list_variables(prefix))
    model = build_model(model_config)
    objects = {'model': model}
    if weights == 'polyak':
        if not any(name.startswith('optimizer/') for name in stored):
            raise ValueError(f'{prefix} holds no optimiser state, so no Polyak averages: use --weights best or latest')
        # beta2 (the Polyak decay) only debiases the average; the run's value is in its hyperparameters
        beta2 = float(hparams.get('beta2', 0.999))
        objects['optimizer'] = Optimizer(model.trainable_variables, beta2=beta2,
                                         polyak_decay=float(hparams.get('polyak_decay', beta2)))
    status = tf.train.Checkpoint(**objects).read(prefix)
    status.expect_partial()
    if not bool(model.initialized.numpy()):
        raise ValueError(f'{prefix} holds no trained (initialised) model of this configuration')
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(f'{prefix} does not match the model described in {logdir}: '
                         f'{str(error).splitlines()[0]}') from None
    if weights == 'polyak':
        for variable, average in zip(model.trainable_variables, objects['optimizer'].polyak_values()):
            variable.assign(average)
    return Run(logdir=logdir, model=model, model_config=model_config, hparams=hparams, checkpoint=prefix,
               weights=weights)


def build_model(config):
    """The model a configuration describes: `Glow` for a ModelConfig, `ResFlow` for a ResFlowConfig."""
    if type(config).__name__ == 'ResFlowConfig':
        from emerging.resflow import ResFlow
        return ResFlow(config)
    from emerging.model import Glow
    return Glow(config)


def pretrained_run(name: str) -> str:
    """The run folder of a pretrained model shipped with the package."""
    available = sorted(os.listdir(PRETRAINED)) if os.path.isdir(PRETRAINED) else []
    if name not in available:
        raise ValueError(f'unknown pretrained model {name!r}; available: {", ".join(available) or "none"}')
    return os.path.join(PRETRAINED, name)
