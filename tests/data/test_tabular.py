"""The tabular benchmark loaders on files written in the archive's layouts: splits, columns, normalisation; the
GAS pickle as this pandas and as the archive's old pandas wrote it, read by the restricted pickle machine (one
that would run code is refused); garbage, truncated or mistyped files of every kind named, never a traceback."""
import os
import pickle

import numpy as np
import pytest

from emerging.data import tabular
from emerging.errors import InputError
from tests.data import tabular_files


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return tabular_files.write_all(str(tmp_path_factory.mktemp('tabular')))


def sizes(parts):
    return [len(part) for part in parts]


def test_power_drops_two_columns_adds_noise_and_splits_in_order(data_dir):
    train, validation, test = tabular.load('power', data_dir)
    assert sizes((train, validation, test)) == [243, 27, 30] and train.shape[1] == 6
    both = np.vstack((train, validation))
    np.testing.assert_allclose(both.mean(axis=0), 0., atol=1e-5)
    np.testing.assert_allclose(both.std(axis=0), 1., atol=1e-5)
    again = tabular.load('power', data_dir)
    for part, repeat in zip((train, validation, test), again):
        np.testing.assert_array_equal(part, repeat)  # the shuffle and the noise are seeded
    raw = np.load(f'{data_dir}/power/data.npy')
    # the rows are shuffled (RandomState(42)): in file order a column would correlate with the file's
    kept = np.delete(np.delete(raw, 3, axis=1), 1, axis=1)
    rows = np.vstack((train, validation, test))
    correlation = np.corrcoef(rows[:, 4], kept[:, 4])[0, 1]  # a sub-metering (noise uniform in [0, 1))
    assert abs(correlation) < 0.5


def test_gas_drops_the_labels_and_the_correlated_column(data_dir):
    train, validation, test = tabular.load('gas', data_dir)
    assert sizes((train, validation, test)) == [243, 27, 30] and train.shape[1] == 4  # b, c, d, e: a went first
    rows = np.vstack((train, validation, test))
    import pandas as pd
    b = pd.read_pickle(f'{data_dir}/gas/ethylene_CO.pickle')['b'].to_numpy()
    np.testing.assert_allclose(rows[:, 0], (b - b.mean()) / b.std(ddof=1), atol=1e-5)
    np.testing.assert_allclose(rows.std(axis=0, ddof=1), 1., atol=1e-5)


def test_hepmass_keeps_the_signal_and_the_continuous_features(data_dir):
    train, validation, test = tabular.load('hepmass', data_dir)
    assert train.shape[1] == test.shape[1] == 4  # f0, f1, f3, f4: f2 and mass are discrete
    assert sizes((train, validation, test)) == [135, 15, 75]  # the label-1 halves; 10% of train validates
    raw = np.loadtxt(f'{data_dir}/hepmass/1000_train.csv', delimiter=',', skiprows=1)
    signal = raw[raw[:, 0] == 1][:, [1, 2, 4, 5]]
    expected = (signal - signal.mean(axis=0)) / signal.std(axis=0, ddof=1)
    np.testing.assert_allclose(np.vstack((train, validation)), expected, atol=1e-5)


def test_miniboone_splits_and_normalises_by_train_and_validation(data_dir):
    train, validation, test = tabular.load('miniboone', data_dir)
    assert sizes((train, validation, test)) == [243, 27, 30] and train.shape[1] == 7
    raw = np.load(f'{data_dir}/miniboone/data.npy')
    mean, std = raw[:270].mean(axis=0), raw[:270].std(axis=0)
    np.testing.assert_allclose(test, (raw[270:] - mean) / std, atol=1e-5)


def test_bsds300_is_used_as_it_is(data_dir):
    train, validation, test = tabular.load('bsds300', data_dir)
    assert sizes((train, validation, test)) == [300, 60, 80] and train.shape[1] == 63


def test_missing_files_and_bad_layouts_are_clear_errors(tmp_path):
    with pytest.raises(tabular.TabularDataError, match=r'power/data\.npy.*zenodo record 1161203'):
        tabular.load('power', str(tmp_path))
    with pytest.raises(tabular.TabularDataError, match='unknown tabular dataset'):
        tabular.load('cifar', str(tmp_path))
    rng = np.random.default_rng(1)
    tabular_files.write_power(str(tmp_path), rng, columns=7)
    with pytest.raises(tabular.TabularDataError, match=r'expected an array \[N, 8\], got shape \[300, 7\]'):
        tabular.load('power', str(tmp_path))
    tabular_files.write_bsds300(str(tmp_path), rng, parts=('train', 'test'))
    with pytest.raises(tabular.TabularDataError, match='missing the datasets validation'):
        tabular.load('bsds300', str(tmp_path))


def test_the_gas_pickle_of_the_archives_old_pandas_reads_as_this_pandas_writes_it(tmp_path):
    import pandas as pd
    new, old = str(tmp_path / 'new'), str(tmp_path / 'old')
    tabular_files.write_gas(new, np.random.default_rng(3))
    tabular_files.write_gas(old, np.random.default_rng(3), old_pandas=True)
    frame = pd.read_pickle(os.path.join(new, 'gas', 'ethylene_CO.pickle'))
    pd.testing.assert_frame_equal(tabular._gas_frame(os.path.join(old, 'gas', 'ethylene_CO.pickle')),
                                  frame.reset_index(drop=True))
    for part, same in zip(tabular.load('gas', new), tabular.load('gas', old)):
        np.testing.assert_array_equal(part, same)


class RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}',)


def gas_file(root, data):
    os.makedirs(os.path.join(root, 'gas'), exist_ok=True)
    with open(os.path.join(root, 'gas', 'ethylene_CO.pickle'), 'wb') as f:
        f.write(data)
    return str(root)


def test_a_gas_pickle_that_is_not_a_frame_of_numbers_is_named_and_runs_nothing(tmp_path):
    import pandas as pd
    marker = tmp_path / 'ran'
    with pytest.raises(InputError, match=r'ethylene_CO\.pickle: .*system is not something this file may hold'):
        tabular.load('gas', gas_file(tmp_path, pickle.dumps(RunsCode(marker))))
    assert not marker.exists()
    frame = tabular_files.gas_frame(np.random.default_rng(0))
    data = pickle.dumps(frame, protocol=2)
    with pytest.raises(InputError, match=r'ethylene_CO\.pickle: not a pickle this reader builds: the pickle ends'):
        tabular.load('gas', gas_file(tmp_path, data[:len(data) // 2]))
    text = frame.assign(a=['x'] * len(frame))
    with pytest.raises(tabular.TabularDataError, match=r'ethylene_CO\.pickle: expected a pandas DataFrame of numbers: '
                                                        r'a block of an array object \[1, 300\], not numbers'):
        tabular.load('gas', gas_file(tmp_path, pickle.dumps(text)))
    with pytest.raises(InputError, match=r'pandas\.core\.series\.Series is not something this file may hold'):
        tabular.load('gas', gas_file(tmp_path, pickle.dumps(frame['a'])))
    with pytest.raises(tabular.TabularDataError, match='expected a pandas DataFrame with columns Meth, Eth, Time'):
        tabular.load('gas', gas_file(tmp_path, pickle.dumps(frame.drop(columns=['Meth']))))
    with pytest.raises(tabular.TabularDataError, match='5 rows of 8 columns; at least 10 rows'):
        tabular.load('gas', gas_file(tmp_path, pickle.dumps(frame[:5])))
    with pytest.raises(tabular.TabularDataError, match='its column names are not strings or integers'):
        tabular.load('gas', gas_file(tmp_path, pickle.dumps(frame.set_axis([1.5] * 8, axis=1))))
    assert isinstance(pd.read_pickle(os.path.join(tmp_path, 'gas', 'ethylene_CO.pickle')), pd.DataFrame)


def npy_file(root, name, data):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    with open(os.path.join(root, name, 'data.npy'), 'wb') as f:
        f.write(data)
    return str(root)


def npy_header(shape, dtype='<f8'):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {'descr': dtype, 'fortran_order': False, 'shape': shape})
    return buffer.getvalue()


@pytest.mark.parametrize('data, match', [
    (npy_header((10 ** 12, 8)) + b'\0' * 64,
     r'its header declares 8,000,000,000,000 values of 8 bytes, the file holds 64'),
    (npy_header((300, 8)) + b'\0' * 64, 'its header declares 2,400 values'),
    (npy_header((3, 8), '|O'), 'not numbers'),
    (npy_header((3, 8), '<U4') + b'\0' * 384, 'not numbers'),
    (b'garbage' * 20, r'not a \.npy array \(ValueError: the magic string is not correct'),
    (b'', r'not a \.npy array \(ValueError: EOF'),
    (npy_header((5, 8)) + b'\0' * 320, 'power/data.npy: 5 rows of 8 columns; at least 10 rows'),
], ids=['huge', 'short', 'objects', 'text', 'garbage', 'empty', 'few rows'])
def test_a_npy_file_that_is_not_a_matrix_of_numbers_is_named_before_memory_is_taken(tmp_path, data, match):
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(tabular.TabularDataError, match=match):
            tabular.load('power', npy_file(tmp_path, 'power', data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20


def test_a_hepmass_csv_of_text_or_garbage_is_named(tmp_path):
    tabular_files.write_hepmass(str(tmp_path), np.random.default_rng(0))
    train = os.path.join(tmp_path, 'hepmass', '1000_train.csv')
    with open(train, 'w') as f:
        f.write('# label,f0,f1\n' + 'one,two,three\n' * 20)
    with pytest.raises(tabular.TabularDataError, match=r'1000_train\.csv: the columns # label, f0, f1 hold text'):
        tabular.load('hepmass', str(tmp_path))
    with open(train, 'wb') as f:
        f.write(b'\xff\xfe\x00\x01' * 100)
    with pytest.raises(tabular.TabularDataError, match=r'1000_train\.csv: (not a CSV table|the columns)'):
        tabular.load('hepmass', str(tmp_path))
    with open(train, 'w') as f:
        f.write('')
    with pytest.raises(tabular.TabularDataError, match=r'1000_train\.csv: not a CSV table \(EmptyDataError'):
        tabular.load('hepmass', str(tmp_path))


def test_a_bsds300_file_that_is_garbage_or_declares_more_than_it_holds_is_named(tmp_path):
    import h5py
    os.makedirs(os.path.join(tmp_path, 'BSDS300'))
    path = os.path.join(tmp_path, 'BSDS300', 'BSDS300.hdf5')
    with open(path, 'wb') as f:
        f.write(b'garbage' * 100)
    with pytest.raises(tabular.TabularDataError, match=r'BSDS300\.hdf5: not a readable HDF5 file \(OSError'):
        tabular.load('bsds300', str(tmp_path))
    with h5py.File(path, 'w') as file:
        file.create_dataset('train', shape=(10 ** 9, 63), dtype=np.float32)  # never written: nothing stored
        file.create_dataset('validation', data=np.zeros((20, 63)))
        file.create_group('test')
    with pytest.raises(tabular.TabularDataError, match=r'train declares \[1000000000, 63\] values \(252000000000 '
                                                        r'bytes\), the file holds 0 bytes of it'):
        tabular.load('bsds300', str(tmp_path))
    with h5py.File(path, 'a') as file:
        del file['train']
        file.create_dataset('train', data=np.array([['a'] * 63] * 20, dtype='S1'))
    with pytest.raises(tabular.TabularDataError, match=r'train is \|S1 of shape \[20, 63\], not a matrix of numbers'):
        tabular.load('bsds300', str(tmp_path))
    with h5py.File(path, 'a') as file:
        del file['train']
        file.create_dataset('train', data=np.zeros((20, 63)))
    with pytest.raises(tabular.TabularDataError, match='test is a Group, not a dataset'):
        tabular.load('bsds300', str(tmp_path))
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(tabular.TabularDataError, match=r'BSDS300\.hdf5: not a readable HDF5 file'):
        tabular.load('bsds300', str(tmp_path))


def test_tabular_density_names_a_bad_file_and_exits_2(tmp_path, capsys):
    from emerging.cli.tabular import main
    os.makedirs(os.path.join(tmp_path, 'BSDS300'))
    with open(os.path.join(tmp_path, 'BSDS300', 'BSDS300.hdf5'), 'wb') as f:
        f.write(b'garbage' * 100)
    code = main(['--dataset', 'bsds300', '--data_dir', str(tmp_path), '--output_dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 2 and 'BSDS300.hdf5: not a readable HDF5 file' in err and 'Traceback' not in err, err
