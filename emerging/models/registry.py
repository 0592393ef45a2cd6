"""The registered image-flow models: the name a run's config.json records -> configuration and model.

`MODELS` maps each kind to its configuration class (TensorFlow-free) and to
the module and class of its model (imported only when a model is built).
A new family registers here; the trainer, the command line, the export and
`load_run` then take it as they take the others.
"""
import importlib

from emerging.models.config import GlowConfig, ResFlowConfig

#: kind -> (configuration class, (module, class) of the model)
MODELS = {
    'glow': (GlowConfig, ('emerging.models.glow', 'Glow')),
    'resflow': (ResFlowConfig, ('emerging.models.resflow', 'ResFlow')),
}


def _entry(kind: str):
    if kind not in MODELS:
        raise ValueError(f'unknown model kind {kind!r}; registered: {", ".join(MODELS)}')
    return MODELS[kind]


def config_class(kind: str):
    """The configuration class of a registered model kind.

    Args:
      kind: a key of `MODELS`.

    Returns:
      The `ImageFlowConfig` subclass.
    """
    return _entry(kind)[0]


def model_class(kind: str):
    """The model class of a registered model kind (imports its module, and TensorFlow).

    Args:
      kind: a key of `MODELS`.

    Returns:
      The `ImageFlowModel` subclass.
    """
    module, name = _entry(kind)[1]
    return getattr(importlib.import_module(module), name)


def build_model(config):
    """The model a configuration describes.

    Args:
      config: an `ImageFlowConfig` of a registered kind (`GlowConfig`, `ResFlowConfig`).

    Returns:
      The model (`Glow`, `ResFlow`), built, with fresh weights.
    """
    return model_class(config.kind)(config)
