"""Input pipelines (never imports the model).

The names below come from `data_utils.data` on first use, so that the
TensorFlow-free modules (`data_utils.toy2d`, `data_utils.tabular`) import
without starting TensorFlow.
"""
import importlib

_PUBLIC = ('DEFAULT_IMAGE_SIZE', 'N_Y', 'PROBLEMS', 'TFRECORD_PROBLEMS', 'Data', 'DataConfig', 'default_n_test',
           'get_data')

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module('data_utils.data'), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
