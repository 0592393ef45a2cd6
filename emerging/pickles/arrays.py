"""The builders of NumPy arrays for the pickle machine: `numpy_arrays()`, the table of builders of numeric and
object arrays, their dtypes and scalars, as NumPy 1 and 2 pickle them (the lengths of shape and data agree before
any array is made).
"""
import numpy as np

from emerging.pickles.machine import Build, Marker, describe

MAX_ARRAY_DIMENSIONS = 64
NUMERIC_KINDS = 'biuf'
_NDARRAY = Marker('numpy.ndarray')


def _checked_dtype(dtype, kinds=NUMERIC_KINDS + 'O'):
    if not isinstance(dtype, np.dtype) or dtype.kind not in kinds or dtype.fields is not None \
            or dtype.subdtype is not None:
        raise ValueError(f'{describe(dtype)} is not a numeric or object dtype')
    return dtype


def _shape(shape):
    if not isinstance(shape, tuple) or len(shape) > MAX_ARRAY_DIMENSIONS \
            or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f'{describe(shape)} is not an array shape')
    return shape


def _size(shape):
    size = 1
    for n in shape:
        size *= n
    return size


def _raw(data):
    """An array's bytes: Python 2 pickles carry them as str, which the latin-1 decoding kept byte for byte."""
    if isinstance(data, str):
        return data.encode('latin1')
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f'array data is {describe(data)}, not bytes')
    return bytes(data)


def _dtype(code, align=False, copy=True):
    """numpy.dtype(code, align, copy) for the one-type codes numeric and object arrays pickle."""
    if not (isinstance(code, str) and 2 <= len(code) <= 3 and code[0] in NUMERIC_KINDS + 'O' and code[1:].isdigit()):
        raise ValueError(f'dtype {describe(code)} is not a numeric or object type')
    if align not in (0, 1) or copy not in (0, 1):
        raise ValueError('dtype flags that are not booleans')
    return Build(_checked_dtype(np.dtype(code, False, True)), _set_dtype_state)


def _set_dtype_state(dtype, state):
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
        raise ValueError(f'dtype state {describe(state)}')
    order, subarray, names, fields, itemsize, alignment, flags = state[1:8]
    if order not in ('<', '>', '|', '=') or (subarray, names, fields) != (None, None, None) \
            or itemsize not in (-1, dtype.itemsize) or alignment not in (-1, dtype.alignment) \
            or flags != dtype.flags or (len(state) == 9 and state[8] is not None):
        raise ValueError(f'dtype state {describe(state)} is not that of a plain {dtype}')
    dtype.__setstate__((3, order, None, None, None, -1, -1, dtype.flags))


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b'b', 'b'):
        raise ValueError('arguments that are not those numpy pickles an array with')
    return Build(np.ndarray((0,), np.int8), _set_array_state)


def _set_array_state(array, state):
    if not isinstance(state, tuple) or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
        raise ValueError(f'array state {describe(state)}')
    shape, dtype, fortran, data = state[-4:]
    shape, dtype = _shape(shape), _checked_dtype(dtype)
    if fortran not in (0, 1):
        raise ValueError(f'array order flag {describe(fortran)}')
    size = _size(shape)
    if dtype.kind == 'O':
        if not isinstance(data, list) or len(data) != size:
            raise ValueError(f'an object array of shape {list(shape)} with {describe(data)} for its items')
    else:
        data = _raw(data)
        if len(data) != size * dtype.itemsize:
            raise ValueError(f'an array {dtype} {list(shape)} needs {size * dtype.itemsize} bytes, the pickle holds '
                             f'{len(data)}')
    array.__setstate__((1, shape, dtype, bool(fortran), data))


def _scalar(dtype, data):
    dtype = _checked_dtype(dtype)
    if dtype.kind == 'O':
        return data
    data = _raw(data)
    if len(data) != dtype.itemsize:
        raise ValueError(f'a {dtype} scalar of {len(data)} bytes')
    return np.frombuffer(data, dtype)[0]


def _frombuffer(buffer, dtype, shape, order):
    dtype, shape = _checked_dtype(dtype, NUMERIC_KINDS), _shape(shape)
    buffer = _raw(buffer)
    if order not in ('C', 'F') or len(buffer) != _size(shape) * dtype.itemsize:
        raise ValueError(f'{len(buffer)} bytes for an array {dtype} {list(shape)} of order {describe(order)}')
    return np.frombuffer(buffer, dtype).reshape(shape, order=order)


def _encode(text, encoding):
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise ValueError('_codecs.encode other than of a str to latin1')
    return text.encode('latin1')


def _empty_bytes():
    """bytes(): how protocols 0-2 write b'' (the data of an empty array)."""
    return b''


def numpy_arrays() -> dict:
    """The builders of numeric and object NumPy arrays, their dtypes and scalars, as NumPy 1 and 2 pickle them.

    Returns:
      {(module, name): builder} to merge into `load`'s `allowed`.
    """
    names = {('numpy', 'ndarray'): _NDARRAY, ('numpy', 'dtype'): _dtype, ('_codecs', 'encode'): _encode,
             ('builtins', 'bytes'): _empty_bytes}
    for core in ('numpy.core', 'numpy._core'):
        names.update({(f'{core}.multiarray', '_reconstruct'): _reconstruct, (f'{core}.multiarray', 'scalar'): _scalar,
                      (f'{core}.numeric', '_frombuffer'): _frombuffer})
    return names
