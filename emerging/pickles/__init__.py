"""A restricted pickle reader: a pure-Python machine for the pickle opcodes that builds only what it is allowed to.

`load(data, source, allowed)` interprets the opcodes of protocols 0-5 (what `pickle`, `torch.save`, NumPy and
pandas write) without `pickle.Unpickler`: a name the pickle refers to (GLOBAL, STACK_GLOBAL, INST) is looked up
in `allowed`, the caller's table of builders, and nothing else is ever imported or called.  An object that takes
its state from a later BUILD is returned by its builder as `Build(object, set_state)`, and only that setter sets it.

The machine is bounded by construction (`Limits`): the nesting depth of every object (so nothing that later walks
the result recurses past it), the number of objects built, the total bytes of the strings and bytes it makes, the
memo's size, and the length of every length-prefixed field against the bytes left.  A container placed inside
another is never changed afterwards (a pickle that does so is refused), which keeps every recorded depth exact.
Every violation, and anything else wrong with the bytes, is an `InputError` naming the source and what is wrong.

`numpy_arrays()` is the table of builders for NumPy arrays and dtypes (numeric and object arrays only; the
lengths of shape and data agree before any array is made).  `memory_bound()` is the bytes a reader may build from
one file.

* machine.py  the opcode interpreter: `load`, `load_file`, `Limits`, `Build`, `Marker`, `memory_bound`,
              `describe`; the builders of plain objects (`reconstructor`, `set_attributes`)
* arrays.py   `numpy_arrays`: the builders of NumPy arrays, dtypes and scalars
"""
from emerging.errors import InputError
from emerging.pickles.arrays import MAX_ARRAY_DIMENSIONS, numpy_arrays
from emerging.pickles.machine import (
    MEMORY_BOUND_VARIABLE,
    Build,
    Limits,
    Marker,
    describe,
    load,
    load_file,
    memory_bound,
    reconstructor,
    set_attributes,
)

__all__ = ['Build', 'InputError', 'Limits', 'MAX_ARRAY_DIMENSIONS', 'MEMORY_BOUND_VARIABLE', 'Marker', 'describe',
           'load', 'load_file', 'memory_bound', 'numpy_arrays', 'reconstructor', 'set_attributes']
