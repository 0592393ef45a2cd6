"""The pickle readers and the tabular files under the fuzz contract (tests/fuzz/contract.py): PyTorch checkpoints
(their data.pkl mutated inside a valid archive, and the archive's bytes mutated), the galaxy pickle, the GAS pickle
(this pandas's and the archive's old pandas's), the BSDS300 HDF5, the HEPMASS CSV and the POWER .npy.  Each is
mutated byte-wise and field-wise (a pickle's integers and strings, a .npy header's shape and type, a CSV's cells
replaced by huge, negative or wrongly typed values); the kept inputs of every kind are replayed."""
import io
import os
import pickle
import pickletools
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emerging.data import tabular
from emerging.data.images import _load_space
from emerging.runs.torch_files import read_torch_file
from tests.data import tabular_files
from tests.fuzz.contract import FUZZ, holds, mutated, regression_files
from tests.test_pickles import Opcodes

TENSORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'runs', 'pytorch', 'tensors.pt')
TORCH_OBJECTS = ('public.', 'torch.nn.')
MAX_BYTES = 32 * 2 ** 20  # the readers' bound here, well inside the contract's 256 MiB
TRICKY_INTEGERS = (-1, 0, 1, 2 ** 31 - 1, 2 ** 32, 10 ** 12, 2 ** 62, -2 ** 40)
TRICKY_VALUES = (b'N', b')', b'}', b']', Opcodes.text('x'), Opcodes.text(''), b'G' + np.array(1.5, '>f8').tobytes())
INTEGER_OPCODES = {'BININT', 'BININT1', 'BININT2', 'LONG1', 'INT', 'LONG'}
TEXT_OPCODES = {'BINUNICODE', 'SHORT_BINUNICODE', 'SHORT_BINSTRING', 'BINSTRING'}


@st.composite
def fields_changed(draw, valid: bytes, max_edits: int = 3) -> bytes:
    """A strategy: a protocol-2 pickle with one to `max_edits` integers or strings replaced by tricky values."""
    fields = [(position, end) for (opcode, _, position), (_, _, end) in
              zip(pickletools.genops(valid), list(pickletools.genops(valid))[1:])
              if opcode.name in INTEGER_OPCODES | TEXT_OPCODES]
    chosen = sorted(draw(st.lists(st.sampled_from(fields), min_size=1, max_size=max_edits, unique=True)),
                    reverse=True)
    data = valid
    for position, end in chosen:
        value = draw(st.one_of(st.sampled_from(TRICKY_INTEGERS).map(Opcodes.int), st.sampled_from(TRICKY_VALUES)))
        data = data[:position] + value + data[end:]
    return data


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp('fuzz'))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return path


# PyTorch checkpoints

with zipfile.ZipFile(TENSORS) as _archive:
    TORCH_MEMBERS = {name: _archive.read(name) for name in _archive.namelist()}
TORCH_PICKLE = TORCH_MEMBERS['tensors/data.pkl']
with open(TENSORS, 'rb') as _file:
    TORCH_ARCHIVE = _file.read()


def read_torch(path):
    return read_torch_file(path, objects=TORCH_OBJECTS, max_bytes=MAX_BYTES)


def read_torch_pickle(folder, data):
    """The checkpoint tensors.pt with `data` for its data.pkl."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        for name, member in TORCH_MEMBERS.items():
            archive.writestr(name, data if name == 'tensors/data.pkl' else member)
    return read_torch(write(os.path.join(folder, 'member.pt'), buffer.getvalue()))


@FUZZ
@given(data=st.one_of(mutated(TORCH_PICKLE), fields_changed(TORCH_PICKLE)))
@pytest.mark.slow
def test_torch_checkpoint_pickles(folder, data):
    holds('torch_pickle', data, read_torch_pickle, folder, data)


@FUZZ
@given(data=mutated(TORCH_ARCHIVE))
def test_torch_checkpoint_archives(folder, data):
    holds('torch_archive', data, read_torch, write(os.path.join(folder, 'archive.pt'), data))


@pytest.mark.parametrize('data', regression_files('torch_pickle'))
def test_kept_torch_checkpoint_pickles(folder, data):
    holds('torch_pickle', data, read_torch_pickle, folder, data)


@pytest.mark.parametrize('data', regression_files('torch_archive'))
def test_kept_torch_checkpoint_archives(folder, data):
    holds('torch_archive', data, read_torch, write(os.path.join(folder, 'archive.pt'), data))


# the galaxy pickle

def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, [n, 4, 4, 3]).astype(np.uint8)


GALAXY = [pickle.dumps((_images(3, 0), _images(2, 1), _images(2, 2)), protocol=protocol) for protocol in (2, 5)]


def read_galaxy(folder, data):
    return _load_space(write(os.path.join(folder, 'galaxy.pkl'), data))


@FUZZ
@given(data=st.one_of(st.sampled_from(GALAXY).flatmap(mutated), fields_changed(GALAXY[0])))
def test_galaxy_pickles(folder, data):
    holds('galaxy_pickle', data, read_galaxy, folder, data)


@pytest.mark.parametrize('data', regression_files('galaxy_pickle'))
def test_kept_galaxy_pickles(folder, data):
    holds('galaxy_pickle', data, read_galaxy, folder, data)


# the GAS pickle

_FRAME = tabular_files.gas_frame(np.random.default_rng(0))[:12]
GAS = [pickle.dumps(_FRAME, protocol=2), pickle.dumps(_FRAME, protocol=5), tabular_files.old_pandas_pickle(_FRAME)]


def read_gas(folder, data):
    write(os.path.join(folder, 'gas', 'gas', 'ethylene_CO.pickle'), data)
    return tabular.load('gas', os.path.join(folder, 'gas'))


@FUZZ
@given(data=st.one_of(st.sampled_from(GAS).flatmap(mutated), fields_changed(GAS[0]), fields_changed(GAS[2])))
def test_gas_pickles(folder, data):
    holds('gas_pickle', data, read_gas, folder, data)


@pytest.mark.parametrize('data', regression_files('gas_pickle'))
def test_kept_gas_pickles(folder, data):
    holds('gas_pickle', data, read_gas, folder, data)


# the tabular files: BSDS300 HDF5, HEPMASS CSV, POWER .npy

def _small_files(root):
    rng = np.random.default_rng(0)
    import h5py
    os.makedirs(os.path.join(root, 'BSDS300'), exist_ok=True)
    with h5py.File(os.path.join(root, 'BSDS300', 'BSDS300.hdf5'), 'w') as file:
        for part, rows in (('train', 12), ('validation', 10), ('test', 10)):
            file.create_dataset(part, data=rng.uniform(-1., 1., [rows, 3]).astype(np.float32))
    tabular_files.write_hepmass(root, rng)
    tabular_files.write_power(root, rng)
    files = {}
    for name in ('BSDS300/BSDS300.hdf5', 'hepmass/1000_test.csv', 'power/data.npy'):
        with open(os.path.join(root, name), 'rb') as f:
            files[name] = f.read()
    files['hepmass/1000_train.csv'] = b'\n'.join(open(os.path.join(root, 'hepmass', '1000_train.csv'), 'rb')
                                                 .read().splitlines()[:41]) + b'\n'
    files['power/data.npy'] = _npy(np.load(os.path.join(root, 'power', 'data.npy'))[:12])
    return files


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope='module')
def tabular_dir(folder):
    root = os.path.join(folder, 'tabular')
    files = _small_files(root)
    for name, data in files.items():
        write(os.path.join(root, name), data)
    return root, files


def read_tabular(tabular_dir, dataset, name, data):
    root, files = tabular_dir
    for other, valid in files.items():
        write(os.path.join(root, other), data if other == name else valid)
    return tabular.load(dataset, root)


@st.composite
def cells_changed(draw, valid: bytes, max_edits: int = 3) -> bytes:
    """A strategy: a CSV with one to `max_edits` cells replaced by huge, negative, empty or text values."""
    lines = [line.split(b',') for line in valid.splitlines()]
    for _ in range(draw(st.integers(1, max_edits))):
        row = draw(st.integers(0, len(lines) - 1))
        column = draw(st.integers(0, len(lines[row]) - 1))
        lines[row][column] = draw(st.sampled_from((b'1e308', b'-1e308', b'nan', b'inf', b'', b'text', b'"', b'1,2',
                                                   b'9' * 400, b'-0')))
    return b'\n'.join(b','.join(cells) for cells in lines) + b'\n'


@st.composite
def header_changed(draw, valid: bytes) -> bytes:
    """A strategy: a .npy file whose header claims another shape or type, its data unchanged."""
    shape = draw(st.sampled_from(((12, 8), (10 ** 12, 8), (12, 8, 1), (-1, 8), (0, 8), (8, 12), (96,), ())))
    dtype = draw(st.sampled_from(('<f8', '<f4', '>f8', '|u1', '<i8', '|O', '<U2', '|b1', '<c16')))
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {'descr': dtype, 'fortran_order': draw(st.booleans()),
                                                  'shape': shape})
    return buffer.getvalue() + valid[-12 * 8 * 8:]


KINDS = {'tabular_hdf5': ('bsds300', 'BSDS300/BSDS300.hdf5'), 'tabular_csv': ('hepmass', 'hepmass/1000_train.csv'),
         'tabular_npy': ('power', 'power/data.npy')}


@FUZZ
@given(data=st.data())
def test_bsds300_hdf5_files(tabular_dir, data):
    valid = tabular_dir[1]['BSDS300/BSDS300.hdf5']
    example = data.draw(mutated(valid, max_edits=8))
    holds('tabular_hdf5', example, read_tabular, tabular_dir, 'bsds300', 'BSDS300/BSDS300.hdf5', example)


@FUZZ
@given(data=st.data())
def test_hepmass_csv_files(tabular_dir, data):
    valid = tabular_dir[1]['hepmass/1000_train.csv']
    example = data.draw(st.one_of(mutated(valid), cells_changed(valid)))
    holds('tabular_csv', example, read_tabular, tabular_dir, 'hepmass', 'hepmass/1000_train.csv', example)


@FUZZ
@given(data=st.data())
def test_power_npy_files(tabular_dir, data):
    valid = tabular_dir[1]['power/data.npy']
    example = data.draw(st.one_of(mutated(valid), header_changed(valid)))
    holds('tabular_npy', example, read_tabular, tabular_dir, 'power', 'power/data.npy', example)


@pytest.mark.parametrize('kind, data', [pytest.param(kind, kept.values[0], id=f'{kind}-{kept.id}')
                                        for kind in sorted(KINDS) for kept in regression_files(kind)])
def test_kept_tabular_files(tabular_dir, kind, data):
    dataset, name = KINDS[kind]
    holds(kind, data, read_tabular, tabular_dir, dataset, name, data)
