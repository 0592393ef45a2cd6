"""A training run read back: `load_run` gives its model with trained weights (run folders: folder.py)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from emerging.choices import WEIGHTS, described
from emerging.errors import InputError
from emerging.models.registry import build_model
from emerging.runs.checkpoints import check_matches
from emerging.runs.folder import checkpoint_for, pretrained_run, read_config, resolve_checkpoint

PRETRAINED_PREFIX = 'pretrained:'


@dataclasses.dataclass
class Run:
    """A loaded run: the model with the chosen weights and the run's configuration.

    Args:
      logdir: the run folder.
      model: the model (an `ImageFlowModel`) with the weights.
      model_config: its configuration.
      hparams: the run's flags and derived values.
      checkpoint: the checkpoint prefix the weights came from.
      weights: 'best', 'latest' or 'polyak'.
    """
    logdir: str
    model: object
    model_config: object
    hparams: dict
    checkpoint: str
    weights: str


def load_run(logdir: str, weights: str = 'best', checkpoint: Optional[str] = None) -> Run:
    """The model of a run with its best, latest or Polyak-averaged weights.

    Args:
      logdir: the run folder (train.py's --logdir, train_resflow.py's --save), or 'pretrained:NAME' for a
        pretrained model shipped with the package ('pretrained:digits').
      weights: 'best' (the best validation checkpoint), 'latest' (the latest epoch's) or 'polyak' (the
        latest Polyak averages).
      checkpoint: a checkpoint prefix to read instead of the run's own (with weights='polyak', its Polyak
        averages).

    Returns:
      A `Run`.

    Raises:
      InputError: naming the file, when the folder or checkpoint does not hold what is asked for, or is
        damaged, or holds another architecture.
    """
    import tensorflow as tf

    from emerging.averaging import PolyakAverage

    if weights not in WEIGHTS:
        raise InputError(f'unknown weights {weights!r}; allowed: {described(WEIGHTS)}')
    if logdir.startswith(PRETRAINED_PREFIX):
        logdir = pretrained_run(logdir[len(PRETRAINED_PREFIX):])
    model_config, hparams = read_config(logdir)
    prefix = resolve_checkpoint(checkpoint) if checkpoint else checkpoint_for(logdir, weights)
    stored = dict(tf.train.list_variables(prefix))
    model = build_model(model_config)
    objects = {'model': model}
    if weights == 'polyak':
        if not any(name.startswith('optimizer/') for name in stored):
            raise InputError(f'{prefix} holds no optimiser state, so no Polyak averages: use --weights best or '
                             f'latest')
        # the decay only debiases the average; the run's value is in its hyperparameters (the optimiser's
        # Polyak average has these variable names, so the optimiser's checkpoint state fills it)
        decay = float(hparams.get('polyak_decay', hparams.get('beta2', 0.999)))
        objects['optimizer'] = PolyakAverage(model.trainable_variables, decay)
    reader = tf.train.Checkpoint(**objects)
    check_matches(prefix, reader, list(objects), f'the {model_config.kind} model described in {logdir}',
                  subset_roots=['optimizer'])
    status = reader.read(prefix)
    status.expect_partial()
    if not bool(model.initialized.numpy()):
        raise InputError(f'{prefix} holds no trained (initialised) model of this configuration')
    status.assert_existing_objects_matched()
    if weights == 'polyak':
        for variable, average in zip(model.trainable_variables, objects['optimizer'].polyak_values()):
            variable.assign(average)
    return Run(logdir=logdir, model=model, model_config=model_config, hparams=hparams, checkpoint=prefix,
               weights=weights)


def load_pretrained(name: str) -> Run:
    """A pretrained model shipped with the package, with its best weights (the only ones it ships), as
    `load_run` gives it.

    Args:
      name: the model's name ('digits': Glow with emerging convolutions on scikit-learn's 8x8 digits).

    Returns:
      A `Run`.
    """
    return load_run(PRETRAINED_PREFIX + name)
