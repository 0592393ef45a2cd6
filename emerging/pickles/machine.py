"""The pickle machine: a pure-Python interpreter of the pickle opcodes that builds only what it is allowed to.

`load(data, source, allowed)` interprets the opcodes of protocols 0-5 (what `pickle`, `torch.save`, NumPy and
pandas write) without `pickle.Unpickler`: a name the pickle refers to (GLOBAL, STACK_GLOBAL, INST) is looked up
in `allowed`, the caller's table of builders, and nothing else is ever imported or called.  An object that takes
its state from a later BUILD is returned by its builder as `Build(object, set_state)`, and only that setter sets it;
`Marker` is a name a pickle may pass but not call.  `Limits` bounds one load, `load_file` reads a file within
`memory_bound()`, `describe` shortens a value for messages.  `reconstructor` and `set_attributes` are the builders
of plain objects (copyreg's protocol 0-1 form, a BUILD's attributes) a caller's table may include.
"""
from __future__ import annotations

import codecs
import dataclasses
import os
import struct
from typing import Callable, Mapping

import numpy as np

from emerging.errors import InputError

MEMORY_BOUND_VARIABLE = 'EMERGING_MAX_READ_BYTES'
MAX_INTEGER_BYTES = 1024  # LONG4 integers: no pickle this project reads holds one past 8192 bits
MODULE_RENAMES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}  # Python 2's names, as protocol 2 writes them


@dataclasses.dataclass(frozen=True)
class Limits:
    """The bounds of one load.

    Attributes:
      depth: the deepest nesting of containers and built objects (and of open MARKs).
      objects: objects built (references to memoised ones are free).
      text_bytes: total bytes of the str, bytes and bytearray objects made.
      memo: entries of the memo.
    """
    depth: int = 200
    objects: int = 4_000_000
    text_bytes: int = 8 * 2 ** 30
    memo: int = 4_000_000


LIMITS = Limits()


class Build:
    """What a builder returns for an object whose state a later BUILD opcode sets.

    Attributes:
      value: the object, pushed on the stack.
      set_state: called as set_state(value, state) by the object's BUILD (at most once).
    """

    def __init__(self, value, set_state: Callable[[object, object], None]):
        self.value, self.set_state = value, set_state


class Marker:
    """A name a pickle may refer to as a value but not call (e.g. numpy.ndarray as the argument of _reconstruct).

    Attributes:
      name: 'module.name'.
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return self.name


def memory_bound() -> int:
    """The bytes a reader may build from one file: $EMERGING_MAX_READ_BYTES, or min(8 GiB, physical memory / 2).

    Returns:
      The bound in bytes.

    Raises:
      InputError: when the variable is set to something other than a positive integer.
    """
    value = os.environ.get(MEMORY_BOUND_VARIABLE, '')
    if value:
        if not value.isdigit() or int(value) <= 0:
            raise InputError(f'{MEMORY_BOUND_VARIABLE}={value!r}: expected a positive number of bytes')
        return int(value)
    try:
        physical = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError):  # no sysconf: the fixed part of the bound
        physical = 16 * 2 ** 30
    return min(8 * 2 ** 30, physical // 2)


def describe(value, limit: int = 80) -> str:
    """A short description of a value for messages: its repr cut to `limit` characters (never a deep walk)."""
    if isinstance(value, (str, bytes, bytearray, int, float, bool, type(None))):
        text = repr(value[:limit] if isinstance(value, (str, bytes, bytearray)) else value)
        return text if len(text) <= limit else text[:limit] + '...'
    if isinstance(value, np.ndarray):
        return f'an array {value.dtype} {list(value.shape)}'
    if isinstance(value, Marker):
        return value.name
    if isinstance(value, (tuple, list)) and len(value) <= 8 and all(isinstance(v, _LEAVES) for v in value):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + '...'
    return f'a {type(value).__name__}'


def load(data: bytes, source: str, allowed: Mapping[tuple[str, str], object], *,
         persistent_load: Callable[[object], object] | None = None,
         fallback: Callable[[str, str], object] | None = None, limits: Limits = LIMITS,
         encoding: str = 'latin1') -> object:
    """The object a pickle holds, built with the caller's builders only.

    Args:
      data: the pickle's bytes (anything after its STOP opcode is ignored, as `pickle.loads` does).
      source: what the bytes are, for messages (a file's path, or path and archive member).
      allowed: {(module, name): builder} for every name the pickle may refer to; a builder is called with the
        arguments the pickle gives it (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) and returns the object or a `Build`;
        a `Marker` may be passed as a value but not called.
      persistent_load: builds the object of a persistent id (None: a pickle with one is refused).
      fallback: fallback(module, name) gives the builder of a name not in `allowed`, or None to refuse it.
      limits: the bounds.
      encoding: how Python 2 `str` opcodes are decoded ('latin1' keeps every byte; 'bytes' keeps them as bytes).

    Returns:
      The unpickled object.

    Raises:
      InputError: naming `source` and what is wrong: a name not allowed, a bound passed, a malformed opcode, an
        argument a builder refuses.
    """
    return _Machine(data, source, allowed, persistent_load, fallback, limits, encoding).run()


def load_file(path: str, allowed: Mapping[tuple[str, str], object], *, max_bytes: int | None = None,
              **options) -> object:
    """`load` on a file, whose size is checked against `max_bytes` (default `memory_bound()`) before it is read.

    Args:
      path: the pickle file.
      allowed: as `load`.
      max_bytes: the largest file read.
      **options: `load`'s keyword arguments.

    Returns:
      The unpickled object.

    Raises:
      InputError: naming the file when it is missing, too large, or not a pickle `allowed` can build.
    """
    bound = memory_bound() if max_bytes is None else max_bytes
    try:
        size = os.path.getsize(path)
        if size > bound:
            raise InputError(f'{path}: {size} bytes, more than the {bound} bytes a file may have here (set '
                             f'{MEMORY_BOUND_VARIABLE} to read a larger one)')
        with open(path, 'rb') as f:
            data = f.read(size + 1)  # the size read, not the bound: read() reserves what it is asked for
    except OSError as error:
        raise InputError(f'{path}: cannot be read ({error.strerror or error})') from None
    if len(data) > size:
        raise InputError(f'{path}: grew past its {size} bytes while it was read')
    options.setdefault('limits', dataclasses.replace(LIMITS, text_bytes=bound))
    return load(data, path, allowed, **options)


_LEAVES = (str, bytes, int, float, complex, bool, type(None))
_CALL_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, struct.error)


class _Refused(Exception):
    """What is wrong, raised inside the machine; `run` names the source and the byte."""


class _Machine:
    """One load: the stack, the MARK stack, the memo and the bookkeeping of the bounds."""

    def __init__(self, data, source, allowed, persistent_load, fallback, limits, encoding):
        self.data, self.source, self.limits, self.encoding = data, source, limits, encoding
        self.allowed, self.fallback, self.persistent = allowed, fallback, persistent_load
        self.position = 0
        self.stack, self.marks, self.memo = [], [], {}
        self.callables = {}  # id -> builder: only what a name resolved to may be called
        self.tracked = {}  # id -> [object, depth, placed inside another object]
        self.pending = {}  # id -> (object, set_state) waiting for its BUILD
        self.objects = self.text_bytes = 0

    def run(self):
        opcode_at = 0
        try:
            while True:
                opcode_at = self.position
                code = self._take(1)[0]
                handler = _DISPATCH.get(code)
                if handler is None:
                    raise _Refused(f'unknown opcode {code:#04x}')
                if handler is _stop:
                    if not self.stack:
                        raise _Refused('STOP with nothing on the stack')
                    return self.stack[-1]
                handler(self)
        except _Refused as error:
            raise InputError(f'{self.source}: not a pickle this reader builds: {error} (opcode at byte '
                             f'{opcode_at})') from None
        except RecursionError:  # kept out by the depth bound; named should a builder still recurse
            raise InputError(f'{self.source}: nested too deeply') from None
        except _CALL_ERRORS as error:
            raise InputError(f'{self.source}: not a pickle this reader builds: {type(error).__name__}: '
                             f'{str(error)[:300]} (opcode at byte {opcode_at})') from None

    # reading

    def _take(self, n):
        if n < 0 or self.position + n > len(self.data):
            raise _Refused(f'the pickle ends early: {n} bytes wanted at byte {self.position}, '
                           f'{len(self.data) - self.position} left')
        start = self.position
        self.position += n
        return self.data[start:self.position]

    def _unpack(self, fmt):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _line(self):
        end = self.data.find(b'\n', self.position)
        if end < 0:
            raise _Refused('a line without its newline')
        return self._take(end + 1 - self.position)[:-1]

    # bookkeeping

    def _count(self, value):
        self.objects += 1
        if self.objects > self.limits.objects:
            raise _Refused(f'more than {self.limits.objects} objects')
        if isinstance(value, (str, bytes, bytearray)):
            self.text_bytes += len(value)
            if self.text_bytes > self.limits.text_bytes:
                raise _Refused(f'more than {self.limits.text_bytes} bytes of strings')
        return value

    def _place(self, children):
        """The depth of a container holding `children`; the children are marked as placed."""
        depth = 0
        for child in children:
            entry = self.tracked.get(id(child))
            if entry is not None and entry[0] is child:
                entry[2] = True
                depth = max(depth, entry[1])
        if depth + 1 > self.limits.depth:
            raise _Refused(f'objects nested more than {self.limits.depth} deep')
        return depth + 1

    def _new_container(self, value, children):
        self.tracked[id(value)] = [value, self._place(children), False]
        return self._count(value)

    def _grow(self, container, children, kind):
        entry = self.tracked.get(id(container))
        if not isinstance(container, kind) or entry is None or entry[0] is not container:
            raise _Refused(f'adds items to {describe(container)}, not a {kind.__name__} the pickle made')
        if entry[2]:
            raise _Refused(f'changes a {type(container).__name__} after placing it inside another object')
        entry[1] = max(entry[1], self._place(children))

    def _push(self, value):
        self.stack.append(self._count(value))

    def _pop(self):
        if not self.stack:
            raise _Refused('an opcode needs an object and the stack is empty')
        return self.stack.pop()

    def _pop_two(self):
        second, first = self._pop(), self._pop()
        return [first, second]

    def _pop_three(self):
        third, second, first = self._pop(), self._pop(), self._pop()
        return [first, second, third]

    def _top(self):
        if not self.stack:
            raise _Refused('an opcode needs an object and the stack is empty')
        return self.stack[-1]

    def _mark(self):
        if len(self.marks) >= self.limits.depth:
            raise _Refused(f'more than {self.limits.depth} open MARKs')
        self.marks.append(self.stack)
        self.stack = []

    def _pop_mark(self):
        if not self.marks:
            raise _Refused('an opcode needs a MARK and there is none')
        items, self.stack = self.stack, self.marks.pop()
        return items

    def _memoise(self, key):
        if key not in self.memo and len(self.memo) >= self.limits.memo:
            raise _Refused(f'more than {self.limits.memo} memo entries')
        self.memo[key] = self._top()

    def _recall(self, key):
        if key not in self.memo:
            raise _Refused(f'memo entry {key} was never stored')
        self.stack.append(self.memo[key])

    # names and calls

    def _resolve(self, module, name):
        module = MODULE_RENAMES.get(module, module)
        builder = self.allowed.get((module, name))
        if builder is None and self.fallback is not None:
            builder = self.fallback(module, name)
        if builder is None:
            raise _Refused(f'{module[:100]}.{name[:100]} is not something this file may hold; refused')
        self.callables[id(builder)] = builder
        return builder

    def _call(self, builder, args, kwargs=None):
        if self.callables.get(id(builder)) is not builder or isinstance(builder, Marker) or not callable(builder):
            raise _Refused(f'calls {describe(builder)}, which is not a builder it may call')
        if not isinstance(args, tuple) or not isinstance(kwargs or {}, dict):
            raise _Refused(f'calls {describe(builder)} with {describe(args)} for arguments')
        if kwargs and not all(isinstance(key, str) for key in kwargs):
            raise _Refused('keyword arguments that are not names')
        children = list(args) + list((kwargs or {}).values())
        depth = self._place(children)
        try:
            result = builder(*args, **(kwargs or {}))
        except _CALL_ERRORS as error:
            name = getattr(builder, '__qualname__', type(builder).__name__)
            raise _Refused(f'{name}: {str(error)[:300]}') from None
        if isinstance(result, Build):
            self.pending[id(result.value)] = (result.value, result.set_state)
            result = result.value
        self._track(result, depth)
        self._push(result)

    def _track(self, value, depth):
        """Record a built object's depth; one built before (a builder may return an argument) keeps its record."""
        if not isinstance(value, _LEAVES) and id(value) not in self.tracked:
            self.tracked[id(value)] = [value, depth, False]

    def _build(self):
        state = self._pop()
        target = self._top()
        waiting = self.pending.pop(id(target), None)
        if waiting is None or waiting[0] is not target:
            raise _Refused(f'sets the state of {describe(target)}, which takes none')
        self._grow(target, [state], object)
        try:
            waiting[1](target, state)
        except _CALL_ERRORS as error:
            raise _Refused(f'the state of {describe(target)}: {str(error)[:300]}') from None

    def _text(self, raw):
        if self.encoding == 'bytes':
            return raw
        return raw.decode(self.encoding)


def _stop(machine):
    """STOP: handled by `_Machine.run`."""


def _proto(m):
    version = m._take(1)[0]
    if version > 5:
        raise _Refused(f'pickle protocol {version} (at most 5 exists)')


def _frame(m):
    size = m._unpack('<Q')
    if size > len(m.data) - m.position:
        raise _Refused(f'a frame of {size} bytes, more than the {len(m.data) - m.position} left')


def _int(m):
    line = m._line()
    if line in (b'00', b'01'):
        m._push(line == b'01')
    else:
        m._push(int(line))


def _long(m):
    m._push(int(m._line().rstrip(b'L')))


def _long_bytes(m, size):
    if size > MAX_INTEGER_BYTES:
        raise _Refused(f'an integer of {size} bytes (at most {MAX_INTEGER_BYTES} are read)')
    m._push(int.from_bytes(m._take(size), 'little', signed=True))


def _string(m):
    line = m._line()
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b'"', b"'"):
        raise _Refused('a STRING opcode without quotes')
    m._push(m._text(codecs.escape_decode(line[1:-1])[0]))


def _sized(m, fmt):
    size = m._unpack(fmt)
    if size < 0:
        raise _Refused(f'a negative length {size}')
    return m._take(size)


def _unicode(raw):
    return raw.decode('utf-8', 'surrogatepass')


def _global(m):
    module = m._line().decode('utf-8')
    name = m._line().decode('utf-8')
    m._push(m._resolve(module, name))


def _stack_global(m):
    name, module = m._pop(), m._pop()
    if not (isinstance(module, str) and isinstance(name, str)):
        raise _Refused('STACK_GLOBAL without a module and a name')
    m._push(m._resolve(module, name))


def _reduce(m):
    args = m._pop()
    builder = m._pop()
    m._call(builder, args)


def _newobj(m):
    args = m._pop()
    m._call(m._pop(), args)


def _newobj_ex(m):
    kwargs, args = m._pop(), m._pop()
    m._call(m._pop(), args, kwargs)


def _inst(m):
    module = m._line().decode('utf-8')
    name = m._line().decode('utf-8')
    args = tuple(m._pop_mark())
    m._call(m._resolve(module, name), args)


def _obj(m):
    items = m._pop_mark()
    if not items:
        raise _Refused('OBJ without a class')
    m._call(items[0], tuple(items[1:]))


def _persistent(m, pid):
    if m.persistent is None:
        raise _Refused('refers to data outside the pickle (a persistent id), which this file does not have')
    depth = m._place([pid])
    try:
        value = m.persistent(pid)
    except _CALL_ERRORS as error:
        raise _Refused(f'persistent id: {str(error)[:300]}') from None
    m._track(value, depth)
    m._push(value)


def _tuple(m, items):
    value = tuple(items)
    m.stack.append(m._new_container(value, items))


def _pairs(items):
    if len(items) % 2:
        raise _Refused('an odd number of items for a dict')
    return list(zip(items[::2], items[1::2]))


def _dict(m):
    items = m._pop_mark()
    value = dict(_pairs(items))
    m.stack.append(m._new_container(value, items))


def _setitems(m, items):
    target = m._top()
    m._grow(target, items, dict)
    for key, value in _pairs(items):
        target[key] = value


def _appends(m, items):
    target = m._top()
    m._grow(target, items, list)
    target.extend(items)


def _additems(m):
    items = m._pop_mark()
    target = m._top()
    m._grow(target, items, set)
    target.update(items)


def _empty(kind):
    def push(m):
        value = kind()
        m.stack.append(m._new_container(value, ()))
    return push


def _refuse(what):
    def refused(m):
        raise _Refused(what)
    return refused


def _dup(m):
    m.stack.append(m._top())


def _pop_any(m):
    if m.stack:
        m.stack.pop()
    else:
        m._pop_mark()


def _get_line(m):
    return int(m._line())


_DISPATCH = {
    ord('('): _Machine._mark, ord('.'): _stop, ord('0'): _pop_any, ord('1'): lambda m: m._pop_mark(),
    ord('2'): _dup, ord('F'): lambda m: m._push(float(m._line())), ord('I'): _int,
    ord('J'): lambda m: m._push(m._unpack('<i')), ord('K'): lambda m: m._push(m._unpack('<B')),
    ord('L'): _long, ord('M'): lambda m: m._push(m._unpack('<H')), ord('N'): lambda m: m.stack.append(None),
    ord('P'): lambda m: _persistent(m, m._count(m._line().decode('ascii'))),
    ord('Q'): lambda m: _persistent(m, m._pop()), ord('R'): _reduce, ord('S'): _string,
    ord('T'): lambda m: m._push(m._text(_sized(m, '<i'))), ord('U'): lambda m: m._push(m._text(_sized(m, '<B'))),
    ord('V'): lambda m: m._push(m._line().decode('raw-unicode-escape')),
    ord('X'): lambda m: m._push(_unicode(_sized(m, '<I'))),
    ord('a'): lambda m: _appends(m, [m._pop()]), ord('b'): _Machine._build, ord('c'): _global, ord('d'): _dict,
    ord('}'): _empty(dict), ord('e'): lambda m: _appends(m, m._pop_mark()), ord('g'): lambda m: m._recall(_get_line(m)),
    ord('h'): lambda m: m._recall(m._unpack('<B')), ord('i'): _inst, ord('j'): lambda m: m._recall(m._unpack('<I')),
    ord('l'): lambda m: (lambda items: m.stack.append(m._new_container(list(items), items)))(m._pop_mark()),
    ord(']'): _empty(list), ord('o'): _obj, ord('p'): lambda m: m._memoise(_get_line(m)),
    ord('q'): lambda m: m._memoise(m._unpack('<B')), ord('r'): lambda m: m._memoise(m._unpack('<I')),
    ord('s'): lambda m: (lambda value, key: _setitems(m, [key, value]))(m._pop(), m._pop()),
    ord('t'): lambda m: _tuple(m, m._pop_mark()), ord(')'): lambda m: _tuple(m, ()),
    ord('u'): lambda m: _setitems(m, m._pop_mark()), ord('G'): lambda m: m._push(m._unpack('>d')),
    0x80: _proto, 0x81: _newobj, 0x82: _refuse('an extension code (EXT1), which no file here uses'),
    0x83: _refuse('an extension code (EXT2), which no file here uses'),
    0x84: _refuse('an extension code (EXT4), which no file here uses'),
    0x85: lambda m: _tuple(m, [m._pop()]), 0x86: lambda m: _tuple(m, m._pop_two()),
    0x87: lambda m: _tuple(m, m._pop_three()), 0x88: lambda m: m.stack.append(True),
    0x89: lambda m: m.stack.append(False), 0x8a: lambda m: _long_bytes(m, m._unpack('<B')),
    0x8b: lambda m: _long_bytes(m, m._unpack('<I')), ord('B'): lambda m: m._push(_sized(m, '<I')),
    ord('C'): lambda m: m._push(_sized(m, '<B')), 0x8c: lambda m: m._push(_unicode(_sized(m, '<B'))),
    0x8d: lambda m: m._push(_unicode(_sized(m, '<Q'))), 0x8e: lambda m: m._push(_sized(m, '<Q')),
    0x8f: _empty(set), 0x90: _additems,
    0x91: lambda m: (lambda items: m.stack.append(m._new_container(frozenset(items), items)))(m._pop_mark()),
    0x92: _newobj_ex, 0x93: _stack_global, 0x94: lambda m: m._memoise(len(m.memo)), 0x95: _frame,
    0x96: lambda m: m._push(bytearray(_sized(m, '<Q'))),
    0x97: _refuse('an out-of-band buffer (NEXT_BUFFER), which a file cannot carry'),
    0x98: _refuse('an out-of-band buffer (READONLY_BUFFER), which a file cannot carry'),
}



# builders of plain objects

OBJECT = Marker('builtins.object')


def reconstructor(classes) -> dict:
    """The builders protocols 0 and 1 write an object with: copyreg._reconstructor(cls, object, None) -> cls().

    Args:
      classes: a function giving whether a builder may be called so (the caller's class builders).

    Returns:
      {(module, name): builder} to merge into `load`'s `allowed`.
    """
    def build(cls, base, state):
        if not classes(cls) or base is not OBJECT or state is not None:
            raise ValueError('copyreg._reconstructor of something other than an allowed class')
        return cls()
    build.__qualname__ = 'copyreg._reconstructor'
    return {('copyreg', '_reconstructor'): build, ('builtins', 'object'): OBJECT}


def set_attributes(target, state):
    """A BUILD's state as attributes (a dict, or Python's (dict, slots) pair), for `Build` of plain objects.

    Args:
      target: an object with a `__dict__`.
      state: {name: value} or (dict or None, dict or None).
    """
    if isinstance(state, tuple) and len(state) == 2:
        parts = [part for part in state if part is not None]
    else:
        parts = [state]
    for part in parts:
        if not isinstance(part, dict) or not all(isinstance(key, str) for key in part):
            raise ValueError(f'attributes {describe(part)}, not a dict of names')
        target.__dict__.update(part)
