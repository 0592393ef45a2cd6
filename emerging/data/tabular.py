"""The tabular density benchmarks of MAF (Papamakarios et al. 2017), as BNAF and later flows evaluate them.

`load(name, data_dir)` reads the preprocessed files of the MAF benchmark archive
(zenodo record 1161203, `data.tar.gz`; its `data/` folder is `data_dir`) and
returns float32 (train, validation, test) arrays [N, d], split and normalised
exactly as the public MAF / BNAF loaders do:

* power: `power/data.npy` [N, 8], shuffled by numpy RandomState(42); columns 3
  and 1 dropped; uniform noise added to break ties (gap 0.001, voltage 0.01, the
  three sub-meterings 1, time 0; drawn in the order voltage, gap, sub-meterings);
  the last 10% test, the last 10% of the rest validation; normalised by the mean
  and standard deviation of train + validation.  d = 6.
* gas: `gas/ethylene_CO.pickle`, a pandas DataFrame; columns Meth, Eth, Time
  dropped, then repeatedly the first column correlated above 0.98 with another;
  normalised (mean, sample std) over all rows; split as power.  d = 8.
* hepmass: `hepmass/1000_train.csv`, `hepmass/1000_test.csv`; the signal rows
  (first column 1) without that column (and without the test file's last column);
  normalised by the train mean and sample std; the features whose smallest value
  occurs more than 5 times in train dropped; the last 10% of train validation.
  d = 21.
* miniboone: `miniboone/data.npy` [N, 43], already cleaned; split and normalised
  as power.  d = 43.
* bsds300: `BSDS300/BSDS300.hdf5` with datasets train, validation, test (8x8
  patches less one pixel), used as they are.  d = 63.

Every file is checked before it is used, and a fault is a `TabularDataError`
(an `InputError`) naming the file: a .npy header is checked against the
file's size before anything is allocated; the GAS pickle is read by
`emerging.pickles` with builders for a DataFrame of numeric blocks only (under
pandas' current and old class names), so a pickle naming anything else, code
that would run while it loads, is refused; a CSV column of text, an HDF5
dataset that is not a matrix of numbers or declares more than the file holds,
garbage and truncated files are named.

`PUBLISHED_BNAF` holds BNAF's test log-likelihoods as negative nats (the
paper's table 2 sign flipped: test NLL), to print beside a result.
"""
from __future__ import annotations

import collections
import os
import tokenize

import numpy as np

from emerging import pickles
from emerging.data.npy import read_npy
from emerging.errors import InputError

FILES = {
    'power': ('power/data.npy',),
    'gas': ('gas/ethylene_CO.pickle',),
    'hepmass': ('hepmass/1000_train.csv', 'hepmass/1000_test.csv'),
    'miniboone': ('miniboone/data.npy',),
    'bsds300': ('BSDS300/BSDS300.hdf5',),
}
DATASETS = tuple(FILES)
PUBLISHED_BNAF = {'power': -0.61, 'gas': -12.06, 'hepmass': 14.71, 'miniboone': 8.95, 'bsds300': -157.36}


class TabularDataError(InputError):
    """A benchmark file is missing or not in the expected layout (named in the message)."""


MIN_ROWS = 10  # the splits take the last 10%: fewer rows leave one of them empty
NUMERIC_KINDS = 'biuf'
# what h5py, numpy's .npy header parser and pandas' CSV parser raise for a damaged file
PARSE_ERRORS = (OSError, ValueError, TypeError, KeyError, EOFError, SyntaxError, OverflowError, RuntimeError,
                UnicodeError, tokenize.TokenError, RecursionError)


def paths(name: str, data_dir: str) -> list[str]:
    """The files `name` needs under `data_dir`; a clear error when one is missing."""
    if name not in FILES:
        raise TabularDataError(f'unknown tabular dataset {name!r}; allowed: {", ".join(DATASETS)}')
    found = [os.path.join(data_dir, relative) for relative in FILES[name]]
    missing = [path for path in found if not os.path.isfile(path)]
    if missing:
        raise TabularDataError(
            f'{name}: missing {", ".join(missing)}; the files are the MAF benchmark archive (zenodo record 1161203, '
            f'data.tar.gz), and --data_dir is its extracted data/ folder')
    return found


def _split_last(data, fraction=0.1):
    n = int(fraction * data.shape[0])
    return data[:-n], data[-n:]


def _three_way(data):
    rest, test = _split_last(data)
    train, validation = _split_last(rest)
    return train, validation, test


def _normalise_by_train_and_validation(train, validation, test):
    both = np.vstack((train, validation))
    mean, std = both.mean(axis=0), both.std(axis=0)
    return tuple((part - mean) / std for part in (train, validation, test))


def _rows(path, data, least=MIN_ROWS):
    if data.shape[0] < least or data.shape[1] < 1:
        raise TabularDataError(f'{path}: {data.shape[0]} rows of {data.shape[1]} columns; at least {least} rows '
                               f'of one column are needed')
    return data


def _matrix(path, columns=None):
    try:
        data = read_npy(path, path, NUMERIC_KINDS)
    except InputError as error:
        raise TabularDataError(str(error)) from None
    if data.ndim != 2 or (columns is not None and data.shape[1] != columns):
        expected = f'[N, {columns}]' if columns is not None else '[N, d]'
        raise TabularDataError(f'{path}: expected an array {expected}, got shape {list(data.shape)}')
    return _rows(path, data.astype(np.float64))


def _power(path):
    rng = np.random.RandomState(42)
    data = _matrix(path, 8)
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(np.delete(data, 3, axis=1), 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sub_metering_noise = rng.rand(n, 3)
    data = data + np.hstack((gap_noise, voltage_noise, sub_metering_noise, np.zeros((n, 1))))
    return _normalise_by_train_and_validation(*_three_way(data))


class _Frame:
    """A pickled pandas DataFrame: its state names the block manager (`_mgr`, or `_data` in old pandas)."""

    def __init__(self, *args):
        self.manager = None

    def set_state(self, state):
        if not isinstance(state, dict):
            raise ValueError(f'a DataFrame state of {pickles.describe(state)}')
        self.manager = state.get('_mgr', state.get('_data'))


class _Manager:
    """A pickled pandas BlockManager: (blocks, axes) as pandas >= 1.4 reduces it, or the 0.14.1 state."""

    def __init__(self, blocks=(), axes=()):
        self.blocks, self.axes = list(blocks), list(axes)

    def set_state(self, state):
        extra = state[3] if isinstance(state, tuple) and len(state) >= 4 else None
        if not (isinstance(extra, dict) and isinstance(extra.get('0.14.1'), dict)):
            raise ValueError('a BlockManager state older than pandas 0.14.1')
        state = extra['0.14.1']
        blocks = state.get('blocks')
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            raise ValueError('a BlockManager state without its blocks')
        self.axes = list(state.get('axes') or ())
        self.blocks = [_Block(b.get('values'), b.get('mgr_locs')) for b in blocks]


class _Block:
    """A pickled block: values [columns, rows] and the columns they are (a slice or an array of positions)."""

    def __init__(self, values, placement, ndim=2):
        self.values, self.placement = values, placement


class _Index:
    """A pickled pandas Index: its values (a RangeIndex only its length)."""

    def __init__(self, kind, fields):
        if not isinstance(fields, dict):
            raise ValueError(f'an index of {pickles.describe(fields)}')
        if kind is _RANGE:
            start, stop, step = (fields.get(name, default) for name, default in (('start', 0), ('stop', 0),
                                                                                 ('step', 1)))
            if not all(type(n) is int for n in (start, stop, step)) or step == 0:
                raise ValueError('a RangeIndex whose start, stop and step are not integers')
            self.length, self.values = len(range(start, stop, step)), None
        elif kind is _INDEX and isinstance(fields.get('data'), np.ndarray) and fields['data'].ndim == 1:
            self.values = fields['data']
            self.length = len(self.values)
        else:
            raise ValueError('an index that is neither an Index of values nor a RangeIndex')


_INDEX, _RANGE = pickles.Marker('pandas Index'), pickles.Marker('pandas RangeIndex')


def _with_state(kind):
    def build(*args):
        return pickles.Build(kind(*args), lambda target, state: target.set_state(state))
    build.__qualname__ = kind.__qualname__
    return build


def _frame_names() -> dict:
    """The builders of a DataFrame pickle of numeric blocks, under pandas' names, old ones included."""
    names = {('pandas.core.frame', 'DataFrame'): _with_state(_Frame),
             ('pandas.core.internals.managers', 'BlockManager'): _with_state(_Manager),
             ('pandas._libs.internals', '_unpickle_block'): _Block,
             ('pandas.core.indexes.base', '_new_Index'): _Index, ('pandas.core.indexes.base', 'Index'): _INDEX,
             ('pandas.core.indexes.range', 'RangeIndex'): _RANGE, ('builtins', 'slice'): slice,
             **pickles.numpy_arrays()}
    classes = (names[('pandas.core.frame', 'DataFrame')], names[('pandas.core.internals.managers', 'BlockManager')])
    names.update(pickles.reconstructor(lambda cls: cls in classes))
    names[('pandas.core.internals', 'BlockManager')] = names[('pandas.core.internals.managers', 'BlockManager')]
    names[('pandas.core.index', '_new_Index')] = names[('pandas.core.indexes.base', '_new_Index')]
    names[('pandas.core.index', 'Index')] = _INDEX
    try:  # the old class names pandas itself knows (pickles of the MAF data were written by an old pandas)
        from pandas.compat.pickle_compat import _class_locations_map as renamed
    except ImportError:
        renamed = {}
    names.update({old: names[new] for old, new in renamed.items() if new in names and old not in names})
    return names


def _positions(placement, columns):
    if isinstance(placement, slice):
        return list(range(columns))[placement]
    if isinstance(placement, np.ndarray) and placement.ndim == 1 and placement.dtype.kind in 'iu':
        return placement.tolist()
    raise ValueError(f'block columns given as {pickles.describe(placement)}')


def _frame_matrix(frame):
    """(column names, float64 [rows, columns]) of a pickled DataFrame, every block checked against the axes."""
    manager = frame.manager if isinstance(frame, _Frame) else None
    if not isinstance(manager, _Manager) or len(manager.axes) != 2 \
            or not all(isinstance(axis, _Index) for axis in manager.axes):
        raise ValueError(f'it holds {pickles.describe(frame)}, not a DataFrame of two indexes')
    columns, rows = manager.axes
    names = columns.values.tolist() if columns.values is not None else []
    if len(names) != columns.length or not all(type(name) in (str, int) for name in names):
        raise ValueError('its column names are not strings or integers')
    placed, covered = [], set()
    for block in manager.blocks:
        values = block.values if isinstance(block, _Block) else None
        if not isinstance(values, np.ndarray) or values.dtype.kind not in NUMERIC_KINDS or values.ndim != 2:
            raise ValueError(f'a block of {pickles.describe(values)}, not numbers [columns, rows]')
        positions = _positions(block.placement, columns.length)
        if values.shape != (len(positions), rows.length) or not covered.isdisjoint(positions) \
                or not all(0 <= p < columns.length for p in positions) or len(set(positions)) != len(positions):
            raise ValueError(f'a block of shape {list(values.shape)} for columns {positions[:8]} of '
                             f'{columns.length} and {rows.length} rows')
        covered.update(positions)
        placed.append((positions, values))
    if len(covered) != columns.length:
        raise ValueError(f'{columns.length - len(covered)} of its {columns.length} columns are in no block')
    matrix = np.empty((rows.length, columns.length), np.float64)  # as many values as the blocks hold
    for positions, values in placed:
        matrix[:, positions] = values.T
    return names, matrix


def _gas_frame(path):
    """The GAS DataFrame, read by a pickle machine that builds only numeric blocks, indexes and arrays."""
    import pandas as pd
    frame = pickles.load_file(path, _frame_names())
    try:
        columns, matrix = _frame_matrix(frame)
        return pd.DataFrame(matrix, columns=columns)
    except (ValueError, TypeError) as error:
        raise TabularDataError(f'{path}: expected a pandas DataFrame of numbers: {str(error)[:300]}') from None


def _gas(path):
    frame = _gas_frame(path)
    if not {'Meth', 'Eth', 'Time'} <= set(frame.columns) or frame.shape[1] < 4:
        raise TabularDataError(f'{path}: expected a pandas DataFrame with columns Meth, Eth, Time and the sensors')
    _rows(path, frame.to_numpy())
    frame = frame.drop(columns=['Meth', 'Eth', 'Time'])
    while True:
        correlated = (frame.corr() > 0.98).to_numpy().sum(axis=1)
        if not np.any(correlated > 1):
            break
        frame = frame.drop(columns=frame.columns[np.where(correlated > 1)[0][0]])
    frame = (frame - frame.mean()) / frame.std()
    return _three_way(frame.to_numpy())


def _csv(path):
    """A CSV file of numbers as a DataFrame; a file pandas cannot parse, or a column of text, is named."""
    import pandas as pd
    try:
        table = pd.read_csv(path, index_col=False)
    except PARSE_ERRORS as error:
        raise TabularDataError(f'{path}: not a CSV table ({type(error).__name__}: {str(error)[:200]})') from None
    text = [str(name) for name, dtype in table.dtypes.items() if dtype.kind not in NUMERIC_KINDS]
    if text:
        raise TabularDataError(f'{path}: the columns {", ".join(text[:5])} hold text, not numbers')
    return table


def _hepmass(train_path, test_path):
    train, test = _csv(train_path), _csv(test_path)
    if min(train.shape[1], test.shape[1]) < 3:
        raise TabularDataError(f'{train_path}, {test_path}: expected a label column and features, got '
                               f'{train.shape[1]} and {test.shape[1]} columns')
    train = train[train[train.columns[0]] == 1].drop(columns=train.columns[0])
    test = test[test[test.columns[0]] == 1].drop(columns=test.columns[0])
    test = test.drop(columns=test.columns[-1])
    _rows(f'{train_path} (label 1)', train.to_numpy())
    _rows(f'{test_path} (label 1)', test.to_numpy(), 1)
    mean, std = train.mean(), train.std()
    train, test = ((train - mean) / std).to_numpy(), ((test - mean) / std).to_numpy()
    # as the public loaders: the count of each feature's smallest value decides (many repeats: a discrete feature)
    keep = [i for i, feature in enumerate(train.T)
            if collections.Counter(feature)[min(feature)] <= 5]
    train, test = train[:, keep], test[:, [i for i in keep if i < test.shape[1]]]
    train, validation = _split_last(train)
    return train, validation, test


def _miniboone(path):
    return _normalise_by_train_and_validation(*_three_way(_matrix(path)))


def _dataset(path, file, part):
    """One HDF5 dataset as float64, its shape, type and stored bytes checked before it is read."""
    import h5py
    dataset = file.get(part)
    if not isinstance(dataset, h5py.Dataset):
        raise TabularDataError(f'{path}: {part} is {pickles.describe(dataset)}, not a dataset')
    if len(dataset.shape or ()) != 2 or dataset.dtype.kind not in NUMERIC_KINDS or dataset.dtype.fields:
        raise TabularDataError(f'{path}: {part} is {dataset.dtype} of shape {list(dataset.shape or ())}, not a '
                               f'matrix of numbers')
    declared = dataset.size * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    filtered = dataset.compression is not None or dataset.shuffle or dataset.fletcher32 \
        or dataset.scaleoffset is not None
    bound = pickles.memory_bound() if filtered else min(stored, os.path.getsize(path))
    if declared > bound:
        raise TabularDataError(f'{path}: {part} declares {list(dataset.shape)} values ({declared} bytes), the file '
                               f'holds {stored} bytes of it')
    return _rows(f'{path}: {part}', np.asarray(dataset[()], np.float64))


def _bsds300(path):
    import h5py
    try:
        with h5py.File(path, 'r') as file:
            missing = {'train', 'validation', 'test'} - set(file.keys())
            if missing:
                raise TabularDataError(f'{path}: missing the datasets {", ".join(sorted(missing))}')
            return tuple(_dataset(path, file, part) for part in ('train', 'validation', 'test'))
    except TabularDataError:
        raise
    except PARSE_ERRORS as error:
        raise TabularDataError(f'{path}: not a readable HDF5 file ({type(error).__name__}: '
                               f'{str(error)[:200]})') from None


LOADERS = {'power': _power, 'gas': _gas, 'hepmass': _hepmass, 'miniboone': _miniboone, 'bsds300': _bsds300}


def load(name: str, data_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) float32 [N, d] of benchmark `name` from `data_dir`.

    Args:
      name: one of `DATASETS`.
      data_dir: the extracted data/ folder of the MAF benchmark archive.

    Returns:
      The three splits.

    Raises:
      TabularDataError: naming the file and what is wrong with it (missing, garbage, truncated, of the wrong type
        or layout, a pickle naming anything but a frame of numbers), before any array past its data is allocated.
    """
    files = paths(name, data_dir)
    with np.errstate(over='ignore', invalid='ignore', divide='ignore'):  # non-finite results are named below
        parts = LOADERS[name](*files)
    dims = {part.shape[1] for part in parts}
    if len(dims) != 1 or any(part.shape[0] == 0 for part in parts):
        raise TabularDataError(f'{name}: the splits disagree or are empty: shapes '
                               f'{[list(part.shape) for part in parts]}')
    with np.errstate(over='ignore', invalid='ignore'):  # what overflows is named below
        parts = tuple(part.astype(np.float32) for part in parts)
    for part in parts:
        if not np.all(np.isfinite(part)):
            raise TabularDataError(f'{name}: non-finite values after normalising, or past float32 (a constant '
                                   f'column, or values near the largest float?)')
    return parts
