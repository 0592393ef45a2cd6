import os
import pickle
import runpy
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from emerging.cli import train
from emerging.data.augment import augment
from emerging.data.images import get_data
from emerging.data.problems import DataConfig
from emerging.data.tfrecords import REWRITE, write_shards
from emerging.errors import InputError
from tests.helpers import ROOT, TINY

# one flow step of one level (the model does not matter here)
SMALLEST_MODEL = [*TINY, '--n_levels', '1', '--depth', '1', '--width', '8']
# one epoch of two steps, then a full validation (test.txt's line)
SMALL = [*SMALLEST_MODEL, '--n_batch_train', '32', '--n_batch_init', '32', '--n_train', '64', '--epochs', '2',
         '--epochs_full_valid', '1', '--epochs_full_sample', '100', '--n_test', '50']


def images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=[n, size, size, 3]).astype(np.uint8)


def run_training(tmp_path, argv):
    """train.py ARGV on the smallest model for one epoch, in-process: its trainer, once test.txt holds a line."""
    code, trainer = train.run([*argv, *SMALL, '--logdir', str(tmp_path / 'logs')])
    assert code == 0
    lines = open(tmp_path / 'logs' / 'test.txt').read().splitlines()
    assert len(lines) == 2
    return trainer


def test_digits_sharded_contiguously_per_process():
    halves = [get_data(DataConfig(problem='digits', rank=r, size=2, dal=0, local_batch_train=8,
                                  local_batch_test=10, local_batch_init=8)) for r in range(2)]
    first = [next(iter(h.test))[0].numpy() for h in halves]
    assert not np.array_equal(first[0], first[1])
    assert halves[0].image_shape == (8, 8, 3) and halves[0].n_y == 10
    x, y = halves[0].init_batch
    assert x.dtype == np.uint8 and x.shape == (8, 8, 8, 3) and y.dtype == np.int32


@pytest.mark.parametrize('problem, native', [('cifar10', 32), ('mnist', 32)])
@pytest.mark.slow
def test_tfds_problems_train_on_mock_data(tmp_path, monkeypatch, problem, native):
    from emerging.data import images
    # mock_data serves examples of a data set that is not prepared on disk: nothing is downloaded
    monkeypatch.setattr(images, '_unreachable_download_host', lambda url_infos: '')
    with tfds.testing.mock_data(num_examples=100):
        data = get_data(DataConfig(problem=problem, image_size=native, local_batch_train=8, local_batch_test=10,
                                   local_batch_init=8))
        x, y = next(iter(data.train))
        assert x.shape == (8, native, native, 3) and x.dtype == tf.uint8
        run_training(tmp_path, ['--problem', problem, '--image_size', '8', '--anchor_size', '8'])


@pytest.mark.slow
def test_tfrecord_problem_trains_on_written_shards(tmp_path):
    data_dir = str(tmp_path / 'celeba')
    write_shards(images(96, 16), np.zeros(96), data_dir, 'train', n_shards=2)
    write_shards(images(64, 16, seed=1), np.zeros(64), data_dir, 'validation', n_shards=1)
    run_training(tmp_path, ['--problem', 'celeba', '--data_dir', data_dir, '--image_size', '16',
                            '--anchor_size', '16'])


def test_lsun_realnvp_random_crops(tmp_path):
    data_dir = str(tmp_path / 'lsun')
    for split in ('train', 'validation'):
        write_shards(images(40, 16), np.zeros(40), os.path.join(data_dir, 'bedroom'), split, resolution=8)
    data = get_data(DataConfig(problem='lsun_realnvp', data_dir=data_dir, category='bedroom', image_size=8,
                               local_batch_train=4, local_batch_test=4, local_batch_init=4))
    x, _ = next(iter(data.train))
    assert x.shape == (4, 8, 8, 3)


def test_write_tfrecords_tool_round_trip(tmp_path, monkeypatch):
    """scripts/write_tfrecords.py, run in-process as its command line runs it, writes shards the reader reads
    back as they were."""
    array = images(10, 8)
    np.save(tmp_path / 'x.npy', array)
    np.save(tmp_path / 'y.npy', np.arange(10))
    script = os.path.join(ROOT, 'scripts', 'write_tfrecords.py')
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the script puts the repository first
    for split in ('train', 'validation'):
        monkeypatch.setattr(sys, 'argv', [script, '--images', str(tmp_path / 'x.npy'), '--labels',
                                          str(tmp_path / 'y.npy'), '--out', str(tmp_path / 'd'), '--split', split,
                                          '--size', '8'])
        with pytest.raises(SystemExit) as exit_status:
            runpy.run_path(script, run_name='__main__')
        assert exit_status.value.code == 0
    data = get_data(DataConfig(problem='imagenet', data_dir=str(tmp_path / 'd'), image_size=8,
                               local_batch_train=10, local_batch_test=10, local_batch_init=10))
    x, y = next(iter(data.test))
    np.testing.assert_array_equal(x.numpy(), array)
    np.testing.assert_array_equal(y.numpy(), np.arange(10))


@pytest.mark.slow
def test_space_pickle(tmp_path):
    path = tmp_path / 'galaxy.pkl'
    with open(path, 'wb') as f:
        pickle.dump((images(80, 16), images(30, 16, 1), images(20, 16, 2)), f)
    trainer = run_training(tmp_path, ['--problem', 'space', '--data_dir', str(path), '--image_size', '16',
                                      '--anchor_size', '16'])
    assert trainer.config.n_train == 5000  # forced, as the original


def test_missing_and_incomplete_shards(tmp_path):
    config = dict(problem='celeba', image_size=16, local_batch_train=4, local_batch_test=4, local_batch_init=4)
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        get_data(DataConfig(data_dir=str(tmp_path / 'nowhere'), **config))
    with pytest.raises(InputError, match=r'train-r04-s-\*-of-\*.tfrecords'):
        get_data(DataConfig(data_dir=str(tmp_path), **config))
    paths = write_shards(images(8, 16), np.zeros(8), str(tmp_path), 'train', n_shards=2)
    os.remove(paths[1])
    with pytest.raises(InputError, match='1 of 2 shards are missing.*train-r04-s-0001-of-0002'):
        get_data(DataConfig(data_dir=str(tmp_path), **config))


def test_shard_with_other_image_size(tmp_path):
    write_shards(images(8, 32), np.zeros(8), str(tmp_path), 'train', resolution=16)
    write_shards(images(8, 16), np.zeros(8), str(tmp_path), 'validation')
    with pytest.raises(InputError, match=r'holds images of shape \[32, 32, 3\], but --image_size 16'):
        get_data(DataConfig(problem='celeba', data_dir=str(tmp_path), image_size=16, local_batch_train=4,
                            local_batch_test=4, local_batch_init=4))


def test_corrupt_record_stops_cleanly(tmp_path, capsys):
    data_dir = tmp_path / 'data'
    [path] = write_shards(images(64, 8), np.zeros(64), str(data_dir), 'train')
    write_shards(images(16, 8), np.zeros(16), str(data_dir), 'validation')
    raw = bytearray(open(path, 'rb').read())
    record_length = len(raw) // 64  # records of one length
    raw[32 * record_length + 20] ^= 0xFF  # record 32's data: its framing is whole, so it is found when read
    open(path, 'wb').write(bytes(raw))
    code, _ = train.run(['--problem', 'celeba', '--data_dir', str(data_dir), '--image_size', '8', '--anchor_size',
                         '8', '--n_batch_train', '8', '--n_batch_init', '8', '--n_train', '256', '--n_test', '10',
                         '--epochs', '2', *SMALLEST_MODEL, '--logdir', str(tmp_path / 'logs')])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f'bad input record in {path}: damaged: record 32 (counting from 0) fails its checksum (of the data)' \
        in err, err
    assert f'; {REWRITE} (' in err
    assert not os.path.exists(tmp_path / 'logs' / 'checkpoints')


def test_augmentation_levels():
    x = tf.constant(images(16, 16))
    seed = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(augment(x, 'cifar10', 0, seed).numpy(), x.numpy())
    for problem, dal in (('cifar10', 1), ('mnist', 1), ('space', 1), ('cifar10', 2)):
        out = augment(x, problem, dal, seed)
        assert out.shape == x.shape and out.dtype == tf.uint8
        assert not np.array_equal(out.numpy(), x.numpy())
        np.testing.assert_array_equal(augment(x, problem, dal, seed).numpy(), out.numpy())
        assert not np.array_equal(augment(x, problem, dal, seed + 1).numpy(), out.numpy())


@pytest.mark.parametrize('augmentation', ['original', 'hflip'])
def test_augmented_batches_depend_only_on_seed_rank_and_position(augmentation):
    """The parallel map draws no shared random state: two pipelines give the same augmented
    batches, a different --seed or rank others."""
    def first_batches(seed=0, rank=0, n=4):
        data = get_data(DataConfig(problem='digits', seed=seed, rank=rank, size=2, dal=1, pmap=16,
                                   augmentation=augmentation, local_batch_train=16, local_batch_test=10,
                                   local_batch_init=8))
        batches = iter(data.train)
        return np.stack([next(batches)[0].numpy() for _ in range(n)])

    reference = first_batches()
    np.testing.assert_array_equal(first_batches(), reference)
    assert not np.array_equal(first_batches(seed=1), reference)
    unaugmented = get_data(DataConfig(problem='digits', seed=0, rank=0, size=2, dal=0, local_batch_train=16,
                                      local_batch_test=10, local_batch_init=8))
    assert not np.array_equal(next(iter(unaugmented.train))[0].numpy(), reference[0])
    # the other process's batches are other images, with their own transforms
    assert not np.array_equal(first_batches(rank=1), reference)


def test_tfds_data_that_cannot_be_downloaded_is_named(tmp_path, monkeypatch):
    """No data in --data_dir and no network: tfds's own build path fails in its downloader."""
    import tensorflow_datasets as tfds

    from emerging.data import images
    from emerging.data.images import get_data
    from emerging.data.problems import DataConfig

    def offline(*args, **kwargs):
        raise ConnectionError('network is unreachable (simulated by the test)')
    monkeypatch.setattr(images, '_unreachable_download_host', lambda url_infos: '')  # the host answers...
    monkeypatch.setattr(tfds.download.DownloadManager, 'download_and_extract', offline)
    monkeypatch.setattr(tfds.download.DownloadManager, 'download', offline)
    with pytest.raises(FileNotFoundError) as error:
        get_data(DataConfig(problem='cifar10', data_dir=str(tmp_path), image_size=32))
    message = str(error.value)
    assert "could not load 'cifar10'" in message and str(tmp_path) in message
    assert 'could not download it' in message and 'network is unreachable' in message
    assert 'tfds build cifar10 --data_dir DIR' in message


def test_unprepared_tfds_data_without_a_network_fails_in_seconds(tmp_path, monkeypatch):
    """The download hosts are tried once with a short timeout before tfds's downloader, whose retries take
    minutes to give up."""
    import socket
    import time

    from emerging.data.images import get_data
    from emerging.data.problems import DataConfig

    tried = []

    def unreachable(address, timeout=None):
        tried.append((address, timeout))
        raise OSError('[Errno -2] Name or service not known (simulated by the test)')
    monkeypatch.setattr(socket, 'create_connection', unreachable)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        get_data(DataConfig(problem='mnist', data_dir=str(tmp_path), image_size=32))
    assert time.monotonic() - start < 60
    assert tried == [(('storage.googleapis.com', 443), 5.0)]
    message = str(error.value)
    assert "no prepared 'mnist'" in message and str(tmp_path) in message
    assert 'storage.googleapis.com:443 cannot be reached (' in message and 'Name or service not known' in message
    assert 'tfds build mnist --data_dir DIR' in message
