"""The tabular benchmark loaders on files written in the archive's layouts: splits, columns, normalisation."""
import numpy as np
import pytest

from emerging.data import tabular
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
