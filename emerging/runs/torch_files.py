"""PyTorch checkpoint files read without PyTorch, and without running anything they name.

`torch.save` writes a zip archive: `{name}/data.pkl`, a pickle of the saved
object whose tensors point, by key, at raw storages `{name}/data/{key}`
(little-endian unless `{name}/byteorder` says otherwise).  The pickle is read
by `emerging.pickles` (a pickle machine that calls only the builders it is
given) with builders for plain containers (dict, OrderedDict, list, tuple,
set), `argparse.Namespace` (the public training scripts save their flags as
one), and tensors and parameters, as NumPy arrays.  Any other class a pickle
names is refused by name (a pickle can name code that runs while it loads),
unless its module is in `objects`: those become `PickledObject` stand-ins
that only keep the attributes the pickle sets (the public Residual Flows code
saves its EMA helper object, which holds the whole model).

Memory is bounded before it is taken: every archive member's declared size is
checked before it is read (in chunks, so a member that inflates past its
declared size is refused), every storage's bytes against its declared element
count, every tensor's offset, size and strides against its storage, and the
bytes of all storages and of all tensors against `max_bytes`.

Files of the pre-1.6 format (`torch.save(..., _use_new_zipfile_serialization=False)`) are refused
with a message saying how to convert them.
"""
from __future__ import annotations

import argparse
import collections
import zipfile
import zlib
from typing import Sequence

import numpy as np

from emerging import pickles
from emerging.errors import InputError

# torch's storage class names -> NumPy dtypes (bfloat16 is read as the upper half of a float32)
STORAGE_DTYPES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32, 'HalfStorage': np.float16, 'LongStorage': np.int64,
    'IntStorage': np.int32, 'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_, 'BFloat16Storage': 'bfloat16',
}
CHUNK = 2 ** 20  # bytes read from an archive member at a time
BYTEORDER_BYTES = 16
# what reading a damaged archive raises (zipfile passes on zlib's, struct's and its own errors)
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
                  NotImplementedError, RuntimeError, OverflowError, KeyError, IndexError, TypeError)


class PickledObject:
    """Stands in for an object of a class the reader does not build: keeps the attributes the pickle sets.

    Attributes:
      pickled_class: 'module.ClassName' of the object that was saved.
    """

    pickled_class = ''

    def __init__(self, *args, **kwargs):
        self.__dict__['constructor_args'] = args

    def __setstate__(self, state):
        if not isinstance(state, (dict, tuple)):
            state = {'state': state}
        pickles.set_attributes(self, state)

    def __repr__(self):
        return f'<{self.pickled_class}>'


class _Storage:
    """A storage of the archive: its elements as a 1-D array."""

    def __init__(self, key, array):
        self.key, self.array = key, array


def _set_stand_in_state(target, state):
    target.__setstate__(state)


def _with_attributes(kind):
    def build(*args, **kwargs):
        return pickles.Build(kind(*args, **kwargs), pickles.set_attributes)
    build.__qualname__ = kind.__qualname__
    return build


def _sizes(values, what):
    if not isinstance(values, (tuple, list)) or len(values) > pickles.MAX_ARRAY_DIMENSIONS \
            or not all(type(n) is int and n >= 0 for n in values):
        raise ValueError(f'a tensor {what} {pickles.describe(values)}, not non-negative integers')
    return tuple(values)


class _Reader:
    """One checkpoint: its archive, the storages read so far and the bytes built."""

    def __init__(self, path, archive, root, little, objects, max_bytes):
        self.path, self.archive, self.root, self.little = path, archive, root, little
        self.objects, self.max_bytes = tuple(objects), max_bytes
        self.raw, self.stand_ins = {}, {}
        self.storage_bytes = self.tensor_bytes = 0

    def allowed(self):
        names = {('collections', 'OrderedDict'): _with_attributes(collections.OrderedDict),
                 ('argparse', 'Namespace'): _with_attributes(argparse.Namespace), ('builtins', 'set'): set,
                 ('builtins', 'frozenset'): frozenset, ('builtins', 'slice'): slice,
                 ('torch._utils', '_rebuild_tensor_v2'): self.rebuild_tensor,
                 ('torch._utils', '_rebuild_tensor'): self.rebuild_tensor,
                 ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
                 ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter}
        names.update({('torch', name): pickles.Marker(f'torch.{name}') for name in STORAGE_DTYPES})
        names.update(pickles.reconstructor(lambda cls: cls in self.stand_ins.values()))
        return names

    def stand_in(self, module, name):
        """The builder of a stand-in for a class of an allowed module, or None."""
        if not (self.objects and module.startswith(self.objects)):
            return None
        key = f'{module}.{name}'
        if key not in self.stand_ins:
            kind = type(name, (PickledObject,), {'pickled_class': key})
            self.stand_ins[key] = lambda *args, **kwargs: pickles.Build(kind(*args, **kwargs), _set_stand_in_state)
        return self.stand_ins[key]

    def member(self, name, least=0):
        """An archive member's bytes, its declared size checked against the bound before it is read."""
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise ValueError(f'{name} is missing from the archive') from None
        if info.file_size < least:
            raise ValueError(f'{name} holds {info.file_size} bytes, fewer than the {least} its use needs')
        if self.storage_bytes + info.file_size > self.max_bytes:
            raise ValueError(f'{name} declares {info.file_size} bytes, past the {self.max_bytes} bytes '
                             f'{pickles.MEMORY_BOUND_VARIABLE} (default: min(8 GiB, half the physical memory)) '
                             f'allows for one file')
        self.storage_bytes += info.file_size
        chunks, left = [], info.file_size
        with self.archive.open(info) as stream:
            while left > 0:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    raise ValueError(f'{name} ends after {info.file_size - left} of its {info.file_size} bytes')
                chunks.append(chunk)
                left -= len(chunk)
            if stream.read(1):
                raise ValueError(f'{name} inflates past its declared {info.file_size} bytes')
        return b''.join(chunks)

    def storage(self, pid):
        """The persistent id ('storage', type, key, location, numel) as a `_Storage`."""
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage'):
            raise ValueError(f'persistent id {pickles.describe(pid)} is not a storage')
        _, kind, key, _, numel = pid[:5]
        if not isinstance(kind, pickles.Marker) or kind.name[len('torch.'):] not in STORAGE_DTYPES:
            raise ValueError(f'storage type {pickles.describe(kind)}')
        if not isinstance(key, (str, int)) or type(numel) is not int or numel < 0:
            raise ValueError(f'storage key {pickles.describe(key)} of {pickles.describe(numel)} elements')
        dtype = STORAGE_DTYPES[kind.name[len('torch.'):]]
        itemsize = 2 if dtype == 'bfloat16' else np.dtype(dtype).itemsize
        name = f'{self.root}data/{key}'
        if name not in self.raw:
            self.raw[name] = self.member(name, numel * itemsize)
        raw = self.raw[name]
        if len(raw) < numel * itemsize:
            raise ValueError(f'{name} holds {len(raw)} bytes, fewer than {numel} elements of {itemsize} bytes')
        order = '<' if self.little else '>'
        if dtype == 'bfloat16':
            halves = np.frombuffer(raw, order + 'u2', count=numel)
            return _Storage(key, (halves.astype(np.uint32) << 16).view(np.float32))
        return _Storage(key, np.frombuffer(raw, np.dtype(dtype).newbyteorder(order), count=numel)
                        .astype(np.dtype(dtype)))

    def rebuild_tensor(self, storage, offset, size, stride, *unused):
        """A tensor as the NumPy array it views, its extent checked against its storage before it is built."""
        if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
            raise ValueError(f'a tensor on {pickles.describe(storage)} at offset {pickles.describe(offset)}')
        size, stride = _sizes(size, 'size'), _sizes(stride, 'stride')
        if len(size) != len(stride):
            raise ValueError(f'a tensor of size {list(size)} with strides {list(stride)}')
        array = storage.array
        numel = 1
        for n in size:
            numel *= n
        if numel == 0:
            return np.zeros(size, array.dtype)
        last = offset + sum((n - 1) * step for n, step in zip(size, stride))
        if last >= array.size:
            raise ValueError(f'a tensor of size {list(size)}, strides {list(stride)} at offset {offset} reaches '
                             f'element {last} of storage {storage.key}, which has {array.size}')
        self.tensor_bytes += numel * array.itemsize
        if self.tensor_bytes > self.max_bytes:
            raise ValueError(f'a tensor of size {list(size)} ({numel * array.itemsize} bytes) takes the tensors '
                             f'past the {self.max_bytes} bytes {pickles.MEMORY_BOUND_VARIABLE} (default: min(8 GiB, '
                             f'half the physical memory)) allows for one file')
        # every element viewed is inside the storage (checked above), so the strided view reads nothing else
        view = np.lib.stride_tricks.as_strided(array[offset:], shape=size,
                                               strides=tuple(step * array.itemsize for step in stride),
                                               writeable=False)
        return np.array(view)


def _rebuild_parameter(data, *unused):
    if not isinstance(data, np.ndarray):
        raise ValueError(f'a parameter of {pickles.describe(data)}, not a tensor')
    return data


def _open(path):
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f'{path}: no such file') from None
    except ARCHIVE_ERRORS as error:
        raise InputError(f'{path} is not a PyTorch checkpoint of the zip format that torch.save writes by default '
                         f'({str(error)[:200]}); an old-format file is converted by loading it with torch.load and '
                         f'saving it again') from None


def _byteorder(reader, names):
    name = reader.root + 'byteorder'
    if name not in names:
        return True
    order = reader.member(name)[:BYTEORDER_BYTES].decode('ascii', 'replace').strip()
    if order not in ('little', 'big'):
        raise ValueError(f'{name} says {order!r}, not little or big')
    return order == 'little'


def read_torch_file(path: str, objects: Sequence[str] = (), max_bytes: int | None = None) -> object:
    """What `torch.save` saved in `path`, with NumPy arrays for tensors.

    Args:
      path: a file written by `torch.save` (PyTorch >= 1.6, the zip format).
      objects: module prefixes whose classes may appear, read as `PickledObject` stand-ins
        (e.g. 'resflows.', 'torch.nn.').
      max_bytes: the most bytes the archive's members, and separately the tensors, may take (default
        `pickles.memory_bound()`: $EMERGING_MAX_READ_BYTES or min(8 GiB, half the physical memory)).

    Returns:
      The saved object.

    Raises:
      InputError: naming the file when it is not such a checkpoint, names a class it should not, or asks for
        more memory than the bound.
    """
    bound = pickles.memory_bound() if max_bytes is None else max_bytes
    archive = _open(path)
    with archive:
        try:
            names = archive.namelist()
            found = [n for n in names if n.endswith('/data.pkl')]
            if len(found) != 1:
                raise InputError(f'{path} is a zip archive but not a torch.save checkpoint (no single data.pkl)')
            reader = _Reader(path, archive, found[0][:-len('data.pkl')], True, objects, bound)
            reader.little = _byteorder(reader, names)
            data = reader.member(found[0])
            return pickles.load(data, f'{path} ({found[0]})', reader.allowed(), persistent_load=reader.storage,
                                fallback=reader.stand_in, limits=pickles.Limits(text_bytes=bound))
        except ARCHIVE_ERRORS as error:
            if isinstance(error, InputError):
                raise
            raise InputError(f'{path}: cannot read the checkpoint: {str(error)[:300]}') from None
