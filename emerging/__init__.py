"""emerging: Glow-family normalizing flows (1x1, emerging, periodic and
autoregressive convolutions) and Residual Flows in TensorFlow 2 / Keras /
TensorFlow Probability, trained on one process or many with Horovod.

The public names below are imported on first use, so that `import emerging`
alone does not start TensorFlow.
"""
import importlib

__version__ = '0.2.0'

_PUBLIC = {
    'ModelConfig': 'emerging.config',
    'TrainConfig': 'emerging.config',
    'ResFlowConfig': 'emerging.config',
    'Glow': 'emerging.model',
    'ResFlow': 'emerging.resflow',
    'GlowBijector': 'emerging.model',
    'Optimizer': 'emerging.optim',
    'DynamicLossScale': 'emerging.optim',
    'Distributed': 'emerging.distributed',
    'Trainer': 'emerging.training',
    'TrainingDiverged': 'emerging.training',
    'CheckpointState': 'emerging.training',
    'Recorder': 'emerging.training',
    'load_run': 'emerging.run',
    'Run': 'emerging.run',
    'export_savedmodel': 'emerging.export',
    'import_tf1_checkpoint': 'emerging.tf1_import',
}

__all__ = ['__version__', *_PUBLIC]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
