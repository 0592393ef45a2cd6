"""The data package under the name of the project's first layout, for scripts written against it.

Kept at the repository root and not installed (like train.py).  Each of its modules is the `emerging.data`
module it names, the same module object, not a copy:

    data_utils            emerging.data, with the names of emerging.data.problems (PROBLEMS, N_Y, ...)
    data_utils.data       emerging.data.images
    data_utils.augment    emerging.data.augment
    data_utils.tabular    emerging.data.tabular
    data_utils.tfrecords  emerging.data.tfrecords
    data_utils.toy2d      emerging.data.toy2d

Names are looked up on first use, so that `data_utils.toy2d` and `data_utils.tabular` import without TensorFlow.
"""
import importlib

import emerging.data

__all__ = [*emerging.data.__all__, 'DEFAULT_IMAGE_SIZE', 'N_Y', 'PROBLEMS', 'TFRECORD_PROBLEMS', 'default_n_test']


def __getattr__(name):
    if name in emerging.data.__all__:
        return getattr(emerging.data, name)
    if name in __all__:
        return getattr(importlib.import_module('emerging.data.problems'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(__all__))
