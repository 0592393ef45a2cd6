"""The restricted pickle machine (emerging/pickles/): what pickle, NumPy and pandas write in protocols 0-5 read
back equal; a name outside the caller's table refused, never imported or called; every bound (depth, objects,
string bytes, memo, field lengths) an InputError before memory is taken; arrays built only when their shape, type
and bytes agree.  Also the galaxy pickle (`--problem space`) on it.  `Opcodes` writes pickles by hand, for the
inputs no pickler writes (the other readers' tests use it too)."""
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from emerging import pickles
from emerging.errors import InputError
from tests.helpers import ROOT, env


class Opcodes:
    """Pickle opcodes written by hand: each function returns the bytes that push one value."""

    @staticmethod
    def int(n):
        if -2 ** 31 <= n < 2 ** 31:
            return b'J' + struct.pack('<i', n)
        encoded = pickle.encode_long(n)
        return b'\x8a' + bytes([len(encoded)]) + encoded

    @staticmethod
    def text(value):
        raw = value.encode('utf-8', 'surrogatepass')
        return b'X' + struct.pack('<I', len(raw)) + raw

    @staticmethod
    def py2_str(raw):
        """A Python 2 `str` (bytes), as pickles written by Python 2 hold text and array data."""
        return b'T' + struct.pack('<i', len(raw)) + raw

    @staticmethod
    def name(module, name):
        return b'c' + module.encode() + b'\n' + name.encode() + b'\n'

    @staticmethod
    def tuple(*items):
        return b'(' + b''.join(items) + b't'

    @staticmethod
    def list(*items):
        return b']' + (b'(' + b''.join(items) + b'e' if items else b'')

    @staticmethod
    def dict(*pairs):
        return b'}' + (b'(' + b''.join(k + v for k, v in pairs) + b'u' if pairs else b'')

    @staticmethod
    def reduce(function, *args):
        return function + Opcodes.tuple(*args) + b'R'

    @staticmethod
    def newobj(cls, state):
        return cls + b')\x81' + state + b'b'

    @staticmethod
    def bomb(levels):
        """A pair of pairs of ... of one list, `levels` deep: 2^levels references, each level one memo entry."""
        return b']q\x000' + b'h\x00h\x00\x86q\x000' * levels + b'h\x00'

    @staticmethod
    def pickle(body, protocol=2):
        return b'\x80' + bytes([protocol]) + body + b'.'

    @staticmethod
    def dtype(code, order='<'):
        o = Opcodes
        return (o.reduce(o.name('numpy', 'dtype'), o.py2_str(code.encode()), o.int(0), o.int(1))
                + o.tuple(o.int(3), o.py2_str(order.encode()), b'NNN', o.int(-1), o.int(-1),
                          o.int(63 if code.startswith('O') else 0)) + b'b')

    @staticmethod
    def array(array, shape=None, core='numpy.core'):
        """A NumPy array as old NumPy under Python 2 pickled it (`shape`: the shape to claim, default its own)."""
        o = Opcodes
        shape = array.shape if shape is None else shape
        if array.dtype == object:
            data = o.list(*(o.py2_str(str(item).encode()) for item in array.ravel()))
            code = 'O8'
        else:
            data = o.py2_str(np.ascontiguousarray(array).tobytes())
            code = array.dtype.str[1:]
        return (o.reduce(o.name(f'{core}.multiarray', '_reconstruct'), o.name('numpy', 'ndarray'),
                         o.tuple(o.int(0)), o.py2_str(b'b'))
                + o.tuple(o.int(1), o.tuple(*map(o.int, shape)), o.dtype(code, array.dtype.str[0]), b'\x89',
                          data) + b'b')


def pushed(body, allowed=None, **options):
    return pickles.load(Opcodes.pickle(body), 'made.pkl', allowed or {}, **options)


@pytest.mark.parametrize('protocol', range(6))
def test_what_pickle_writes_in_every_protocol_reads_back_equal(protocol):
    arrays = {'float': np.arange(12, dtype=np.float32).reshape(3, 4), 'fortran': np.asfortranarray(np.eye(3)),
              'big-endian': np.arange(5, dtype='>i4'), 'bool': np.array([True, False]),
              'uint8': np.arange(256, dtype=np.uint8), 'objects': np.array(['a', 'bc', None], dtype=object),
              'empty': np.zeros((0, 3)), 'scalar': np.float64(2.5)}
    value = {'text': 'ünïcode', 'bytes': b'\x00\xff', 'numbers': [0, -1, 2 ** 70, 1.5, True, None],
             'nested': ((1, 2), frozenset({3}), {4}), 'arrays': arrays, 'shared': [arrays['float']] * 2}
    allowed = {**pickles.numpy_arrays(), ('builtins', 'set'): set, ('builtins', 'frozenset'): frozenset}
    data = pickle.dumps(value, protocol=protocol)
    back, expected = pickles.load(data, 'value.pkl', allowed), pickle.loads(data)
    assert {k: v for k, v in back.items() if k not in ('arrays', 'shared')} == \
        {k: v for k, v in value.items() if k not in ('arrays', 'shared')}
    for name, array in expected['arrays'].items():
        assert back['arrays'][name].dtype == array.dtype and back['arrays'][name].shape == array.shape, name
        np.testing.assert_array_equal(back['arrays'][name], arrays[name], err_msg=name)
    assert back['shared'][0] is back['shared'][1]


def test_python_2_pickles_of_old_numpy_read_back_equal():
    array = np.arange(6, dtype='<f8').reshape(2, 3)
    back = pushed(Opcodes.array(array), pickles.numpy_arrays())
    np.testing.assert_array_equal(back, array)
    names = pushed(Opcodes.array(np.array(['Meth', 'Eth'], dtype=object)), pickles.numpy_arrays())
    assert names.tolist() == ['Meth', 'Eth']


class RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}',)


def test_a_name_outside_the_table_is_refused_and_never_imported_or_called(tmp_path):
    marker = tmp_path / 'ran'
    with pytest.raises(InputError, match=r'made\.pkl: .*(posix|os)\.system is not something this file may hold'):
        pickles.load(pickle.dumps({'a': RunsCode(marker)}), 'made.pkl', pickles.numpy_arrays())
    assert not marker.exists()
    code = ('import sys\nfrom emerging import pickles\n'
            'data = b"\\x80\\x02cxml.dom.minidom\\nparseString\\n."\n'
            'try:\n    pickles.load(data, "x", {})\nexcept pickles.InputError as error:\n    print(error)\n'
            'print("xml.dom.minidom" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.splitlines() == ['x: not a pickle this reader builds: xml.dom.minidom.parseString is not '
                                          'something this file may hold; refused (opcode at byte 2)', 'False']


def test_a_marker_is_a_value_not_a_call_and_only_resolved_names_are_called():
    with pytest.raises(InputError, match='calls numpy.ndarray, which is not a builder it may call'):
        pushed(Opcodes.reduce(Opcodes.name('numpy', 'ndarray'), Opcodes.tuple(Opcodes.int(10 ** 9))),
               pickles.numpy_arrays())
    with pytest.raises(InputError, match=r'calls \(\), which is not a builder'):
        pushed(Opcodes.tuple() + Opcodes.tuple() + b'R')
    with pytest.raises(InputError, match=r'sets the state of \[\], which takes none'):
        pushed(Opcodes.list() + Opcodes.dict() + b'b')


def test_nesting_past_the_depth_bound_is_refused_before_anything_recurses():
    deep = Opcodes.int(0) + b'\x85' * 100_000  # tuples of tuples, each one opcode
    with pytest.raises(InputError, match='objects nested more than 200 deep'):
        pushed(deep)
    assert len(pushed(Opcodes.int(0) + b'\x85' * 199)) == 1
    with pytest.raises(InputError, match='more than 200 open MARKs'):
        pushed(b'(' * 100_000)
    bomb = pushed(Opcodes.bomb(60))
    assert len(bomb) == 2 and bomb[0] is bomb[1]


def test_a_container_changed_after_it_was_placed_is_refused():
    # a list placed inside a tuple, then grown: its recorded depth would no longer hold
    body = b']q\x00' + b'h\x00\x85' + b'h\x00' + Opcodes.int(1) + b'a'
    with pytest.raises(InputError, match='changes a list after placing it inside another object'):
        pushed(body)


@pytest.mark.parametrize('limit, body, message', [
    (pickles.Limits(objects=50), b'(' + Opcodes.int(1) * 60 + b'l', 'more than 50 objects'),
    (pickles.Limits(text_bytes=1000), b'(' + Opcodes.text('x' * 600) * 2 + b'l', 'more than 1000 bytes of strings'),
    (pickles.Limits(memo=10), Opcodes.int(1) + b''.join(b'r' + struct.pack('<I', k) for k in range(11)),
     'more than 10 memo entries'),
])
def test_each_bound_is_named(limit, body, message):
    with pytest.raises(InputError, match=message):
        pushed(body, limits=limit)


@pytest.mark.parametrize('body, message', [
    (b'\x8e' + struct.pack('<Q', 2 ** 62), 'the pickle ends early: 4611686018427387904 bytes wanted'),
    (b'X' + struct.pack('<I', 2 ** 32 - 1), 'ends early'),
    (b'\x8b' + struct.pack('<I', 2 ** 31), 'an integer of 2147483648 bytes'),
    (b'r' + struct.pack('<I', 2 ** 32 - 1) + b'h\x05', 'an opcode needs an object and the stack is empty'),
    (b'h\x05', 'memo entry 5 was never stored'),
    (b'\x97', 'out-of-band buffer'),
    (b'\x82\x01', 'extension code'),
    (b'\xff', 'unknown opcode 0xff'),
    (Opcodes.int(1), 'ends early'),
    (b'Q', 'the stack is empty'),
    (Opcodes.text('x') + b'Q', 'a persistent id'),
])
def test_malformed_opcodes_are_named_without_allocating(body, message):
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=message):
            pickles.load(b'\x80\x04' + body, 'made.pkl', {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


@pytest.mark.parametrize('array, message', [
    (Opcodes.array(np.zeros(4), shape=(10 ** 12,)), r'needs 8000000000000 bytes, the pickle holds 32'),
    (Opcodes.array(np.zeros(4), shape=(-4,)), 'is not an array shape'),
    (Opcodes.array(np.array(['a'], dtype=object), shape=(10 ** 9,)), 'an object array of shape'),
    (Opcodes.reduce(Opcodes.name('numpy', 'dtype'), Opcodes.text('(1000000000,)f8'), b'\x89', b'\x88'),
     'is not a numeric or object type'),
    (Opcodes.reduce(Opcodes.name('numpy', 'dtype'), Opcodes.text('V8'), b'\x89', b'\x88'),
     'is not a numeric or object type'),
    (Opcodes.reduce(Opcodes.name('numpy.core.multiarray', 'scalar'),
                    Opcodes.reduce(Opcodes.name('numpy', 'dtype'), Opcodes.text('f8'), b'\x89', b'\x88'),
                    Opcodes.py2_str(b'\x00' * 3)), 'a float64 scalar of 3 bytes'),
])
def test_arrays_are_built_only_when_shape_type_and_bytes_agree(array, message):
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=message):
            pushed(array, pickles.numpy_arrays())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


def test_the_memory_bound_is_half_the_memory_up_to_8_gib_or_the_variable(monkeypatch):
    monkeypatch.delenv(pickles.MEMORY_BOUND_VARIABLE, raising=False)
    physical = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    assert pickles.memory_bound() == min(8 * 2 ** 30, physical // 2)
    monkeypatch.setenv(pickles.MEMORY_BOUND_VARIABLE, '12345')
    assert pickles.memory_bound() == 12345
    monkeypatch.setenv(pickles.MEMORY_BOUND_VARIABLE, '-1')
    with pytest.raises(InputError, match="EMERGING_MAX_READ_BYTES='-1': expected a positive number of bytes"):
        pickles.memory_bound()


def test_a_file_past_the_bound_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / 'big.pkl'
    path.write_bytes(pickle.dumps(np.zeros(1000)))
    with pytest.raises(InputError, match=r'big\.pkl: \d+ bytes, more than the 100 bytes a file may have here'):
        pickles.load_file(str(path), pickles.numpy_arrays(), max_bytes=100)
    with pytest.raises(InputError, match='cannot be read'):
        pickles.load_file(str(tmp_path / 'missing.pkl'), {})


# the galaxy pickle (--problem space)

def galaxy(tmp_path, value, protocol=4):
    path = tmp_path / 'galaxy.pkl'
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    return str(path)


def images(n, size=8):
    return np.random.default_rng(n).integers(0, 256, [n, size, size, 3]).astype(np.uint8)


@pytest.mark.parametrize('protocol', (2, 4, 5))
def test_the_galaxy_pickle_is_read_as_uint8_images(tmp_path, protocol):
    from emerging.data.images import _load_space
    train, val, test = images(5), images(3), images(2)
    (x_train, y_train), (x_test, y_test) = _load_space(galaxy(tmp_path, (train, val, test), protocol))
    np.testing.assert_array_equal(x_train, train)
    np.testing.assert_array_equal(x_test, np.concatenate([val, test]))
    assert y_train.shape == (5,) and y_test.shape == (5,)


def test_a_galaxy_pickle_that_is_not_three_image_arrays_is_named(tmp_path):
    from emerging.data.images import _load_space
    marker = tmp_path / 'ran'
    with pytest.raises(InputError, match=r'galaxy\.pkl: .*system is not something this file may hold; refused'):
        _load_space(galaxy(tmp_path, (images(2), RunsCode(marker), images(2))))
    assert not marker.exists()
    with pytest.raises(InputError, match=r'is not a pickle of \(x_train, x_val, x_test\) arrays: it holds an array '
                                         r'uint8 \[2, 8, 8, 3\], an array'):
        _load_space(galaxy(tmp_path, [images(2)] * 4))
    data = pickle.dumps((images(5), images(3), images(2)), protocol=2)
    (tmp_path / 'galaxy.pkl').write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match=r'galaxy\.pkl: not a pickle this reader builds: the pickle ends early'):
        _load_space(str(tmp_path / 'galaxy.pkl'))
    with pytest.raises(InputError, match='x_val holds float64 values'):
        _load_space(galaxy(tmp_path, (images(2), images(2) / 255., images(2))))
    (tmp_path / 'galaxy.pkl').write_bytes(Opcodes.pickle(Opcodes.bomb(60)))
    with pytest.raises(InputError, match='it holds a tuple, a tuple'):
        _load_space(str(tmp_path / 'galaxy.pkl'))
