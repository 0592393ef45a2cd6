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

`PUBLISHED_BNAF` holds BNAF's test log-likelihoods as negative nats (the
paper's table 2 sign flipped: test NLL), to print beside a result.
"""
from __future__ import annotations

import collections
import os

import numpy as np

FILES = {
    'power': ('power/data.npy',),
    'gas': ('gas/ethylene_CO.pickle',),
    'hepmass': ('hepmass/1000_train.csv', 'hepmass/1000_test.csv'),
    'miniboone': ('miniboone/data.npy',),
    'bsds300': ('BSDS300/BSDS300.hdf5',),
}
DATASETS = tuple(FILES)
PUBLISHED_BNAF = {'power': -0.61, 'gas': -12.06, 'hepmass': 14.71, 'miniboone': 8.95, 'bsds300': -157.36}


class TabularDataError(ValueError):
    """A benchmark file is missing or not in the expected layout."""


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


def _matrix(path, columns=None):
    data = np.load(path)
    if data.ndim != 2 or (columns is not None and data.shape[1] != columns):
        expected = f'[N, {columns}]' if columns is not None else '[N, d]'
        raise TabularDataError(f'{path}: expected an array {expected}, got shape {list(data.shape)}')
    return data.astype(np.float64)


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


def _gas(path):
    import pandas as pd
    frame = pd.read_pickle(path)
    if not isinstance(frame, pd.DataFrame) or not {'Meth', 'Eth', 'Time'} <= set(frame.columns):
        raise TabularDataError(f'{path}: expected a pandas DataFrame with columns Meth, Eth, Time and the sensors')
    frame = frame.drop(columns=['Meth', 'Eth', 'Time'])
    while True:
        correlated = (frame.corr() > 0.98).to_numpy().sum(axis=1)
        if not np.any(correlated > 1):
            break
        frame = frame.drop(columns=frame.columns[np.where(correlated > 1)[0][0]])
    frame = (frame - frame.mean()) / frame.std()
    return _three_way(frame.to_numpy())


def _hepmass(train_path, test_path):
    import pandas as pd
    train = pd.read_csv(train_path, index_col=False)
    test = pd.read_csv(test_path, index_col=False)
    if min(train.shape[1], test.shape[1]) < 3:
        raise TabularDataError(f'{train_path}, {test_path}: expected a label column and features, got '
                               f'{train.shape[1]} and {test.shape[1]} columns')
    train = train[train[train.columns[0]] == 1].drop(columns=train.columns[0])
    test = test[test[test.columns[0]] == 1].drop(columns=test.columns[0])
    test = test.drop(columns=test.columns[-1])
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


def _bsds300(path):
    import h5py
    with h5py.File(path, 'r') as file:
        missing = {'train', 'validation', 'test'} - set(file.keys())
        if missing:
            raise TabularDataError(f'{path}: missing the datasets {", ".join(sorted(missing))}')
        return tuple(np.asarray(file[part][:], np.float64) for part in ('train', 'validation', 'test'))


LOADERS = {'power': _power, 'gas': _gas, 'hepmass': _hepmass, 'miniboone': _miniboone, 'bsds300': _bsds300}


def load(name: str, data_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) float32 [N, d] of benchmark `name` from `data_dir`."""
    files = paths(name, data_dir)
    parts = LOADERS[name](*files)
    dims = {part.shape[1] for part in parts}
    if len(dims) != 1 or any(part.shape[0] == 0 for part in parts):
        raise TabularDataError(f'{name}: the splits disagree or are empty: shapes '
                               f'{[list(part.shape) for part in parts]}')
    for part in parts:
        if not np.all(np.isfinite(part)):
            raise TabularDataError(f'{name}: non-finite values after normalising (a constant column?)')
    return tuple(part.astype(np.float32) for part in parts)
