"""`.npy` files read with their header checked against the file before the data is read; TensorFlow-free.

Every `.npy` file the project reads goes through `read_npy`: the command-line tools' `--images`, `--labels`,
`--attribute_file` and saved directions, and the tabular benchmarks' POWER and MINIBOONE.  A header declaring
more data than the file holds allocates nothing, and an object array (a pickle) is never loaded.
"""
import math
import os
import tokenize

import numpy as np

from emerging.errors import InputError

NUMBERS = 'biufc'  # NumPy dtype kinds: booleans, integers, floats, complex numbers


def read_npy(path: str, what: str, kinds: str = NUMBERS) -> np.ndarray:
    """A .npy file's array, its header checked against the file's size before the data is read.

    Args:
      path: the file.
      what: names the file in messages ('--labels y.npy').
      kinds: the NumPy dtype kinds accepted (numbers by default).

    Returns:
      The array (any shape).

    Raises:
      InputError: naming `what`: missing or unreadable, not a .npy file of format 1.0 or 2.0, an array of another
        kind (objects, strings, records), a negative dimension, or a size other than the header declares.
    """
    from numpy.lib import format as npy
    try:
        with open(path, 'rb') as f:
            version = npy.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise InputError(f'{what}: .npy format version {version[0]}.{version[1]}, not 1.0 or 2.0')
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None \
                    or min(shape, default=0) < 0:
                raise InputError(f'{what}: an array of {dtype} of shape {list(shape)}, not numbers')
            count = math.prod(shape)
            left = os.fstat(f.fileno()).st_size - f.tell()
            if count * dtype.itemsize != left:
                raise InputError(f'{what}: its header declares {count:,} values of {dtype.itemsize} bytes, the file '
                                 f'holds {left:,} bytes after it')
            data = f.read(left)
    except InputError:
        raise
    except (OSError, EOFError) as error:
        raise InputError(f'{what}: cannot be read ({type(error).__name__}: {error})') from None
    except (ValueError, TypeError, KeyError, SyntaxError, OverflowError, RecursionError, tokenize.TokenError) as error:
        # what numpy's header parser raises (it tokenizes the header's text and reads it with ast.literal_eval)
        raise InputError(f'{what}: not a .npy array ({type(error).__name__}: {str(error)[:200]})') from None
    return np.frombuffer(data, dtype, count).reshape(shape, order='F' if fortran else 'C')
