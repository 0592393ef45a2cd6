"""PyTorch checkpoint files read without PyTorch, and without running anything they name.

`torch.save` writes a zip archive: `{name}/data.pkl`, a pickle of the saved
object whose tensors point, by key, at raw storages `{name}/data/{key}`
(little-endian unless `{name}/byteorder` says otherwise).  The pickle is read
by an unpickler that builds only plain containers (dict, OrderedDict, list,
tuple, set), `argparse.Namespace` (the public training scripts save their
flags as one), and tensors and parameters, as NumPy arrays.  Any other class a
pickle names is refused by name (a pickle can name code that runs while it
loads), unless its module is in `objects`: those become `PickledObject`
stand-ins that only keep the attributes the pickle sets (the public Residual
Flows code saves its EMA helper object, which holds the whole model).

Files of the pre-1.6 format (`torch.save(..., _use_new_zipfile_serialization=False)`) are refused
with a message saying how to convert them.
"""
from __future__ import annotations

import argparse
import collections
import io
import pickle
import zipfile
from typing import Sequence

import numpy as np

from emerging.errors import InputError

# torch's storage class names -> NumPy dtypes (bfloat16 is read as the upper half of a float32)
STORAGE_DTYPES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32, 'HalfStorage': np.float16, 'LongStorage': np.int64,
    'IntStorage': np.int32, 'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_, 'BFloat16Storage': 'bfloat16',
}
CONTAINERS = {('collections', 'OrderedDict'): collections.OrderedDict, ('argparse', 'Namespace'): argparse.Namespace,
              ('builtins', 'set'): set, ('builtins', 'frozenset'): frozenset, ('builtins', 'slice'): slice}


class PickledObject:
    """Stands in for an object of a class the reader does not build: keeps the attributes the pickle sets.

    Attributes:
      pickled_class: 'module.ClassName' of the object that was saved.
    """

    pickled_class = ''

    def __init__(self, *args, **kwargs):
        self.__dict__['constructor_args'] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__.update(state if isinstance(state, dict) else {'state': state})

    def __repr__(self):
        return f'<{self.pickled_class}>'


def _rebuild_tensor(storage, offset, size, stride, *unused):
    itemsize = storage.itemsize
    if not size:
        return np.array(storage[offset])
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *unused):
    return data


def _reconstruct(cls, base, state):
    return cls.__new__(cls)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages, objects):
        super().__init__(file)
        self.storages, self.objects, self.stand_ins = storages, tuple(objects), {}

    def find_class(self, module, name):
        module = 'builtins' if module == '__builtin__' else module  # protocol 2 spells it so
        if (module, name) in CONTAINERS:
            return CONTAINERS[(module, name)]
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return _rebuild_tensor
        if module == 'torch._utils' and name == '_rebuild_parameter':
            return _rebuild_parameter
        if module == 'torch' and name in STORAGE_DTYPES:
            return name
        if module == 'copyreg' and name == '_reconstructor':
            return _reconstruct
        if self.objects and module.startswith(self.objects):
            key = f'{module}.{name}'
            if key not in self.stand_ins:
                self.stand_ins[key] = type(name, (PickledObject,), {'pickled_class': key})
            return self.stand_ins[key]
        raise pickle.UnpicklingError(f'{module}.{name} is not something a checkpoint holds; refused')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage'):
            raise pickle.UnpicklingError(f'unknown persistent id {pid!r}')
        _, storage_type, key, _, numel = pid[:5]
        return self.storages(storage_type, str(key), int(numel))


def read_torch_file(path: str, objects: Sequence[str] = ()) -> object:
    """What `torch.save` saved in `path`, with NumPy arrays for tensors.

    Args:
      path: a file written by `torch.save` (PyTorch >= 1.6, the zip format).
      objects: module prefixes whose classes may appear, read as `PickledObject` stand-ins
        (e.g. 'resflows.', 'torch.nn.').

    Returns:
      The saved object.

    Raises:
      InputError: naming the file when it is not such a checkpoint, or names a class it should not.
    """
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f'{path}: no such file') from None
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f'{path} is not a PyTorch checkpoint of the zip format that torch.save writes by default '
                         f'({error}); an old-format file is converted by loading it with torch.load and saving it '
                         f'again') from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith('/data.pkl')]
        if len(pickles) != 1:
            raise InputError(f'{path} is a zip archive but not a torch.save checkpoint (no single data.pkl)')
        root = pickles[0][:-len('data.pkl')]
        little = archive.read(root + 'byteorder').decode().strip() != 'big' if root + 'byteorder' in names else True

        def storage(storage_type, key, numel):
            dtype = STORAGE_DTYPES[storage_type]
            try:
                raw = archive.read(f'{root}data/{key}')
            except KeyError:
                raise pickle.UnpicklingError(f'the storage {key} is missing from the archive') from None
            if dtype == 'bfloat16':
                halves = np.frombuffer(raw, '<u2' if little else '>u2')[:numel]
                return (halves.astype(np.uint32) << 16).view(np.float32)
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder('<' if little else '>'))[:numel]
            return array.astype(np.dtype(dtype))

        try:
            return _Unpickler(io.BytesIO(archive.read(pickles[0])), storage, objects).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
                IndexError, zipfile.BadZipFile) as error:
            raise InputError(f'{path}: cannot read the checkpoint: {error}') from None
