"""Recorder: the JSON-lines logs (a resumed log that is gone or garbled refused by name), the status line,
TensorBoard and sample PNGs, a full disk named with the file (no model needed)."""
import errno
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from emerging.choices import TEMPERATURES
from emerging.errors import InputError
from emerging.runs.checkpoints import DiskFull
from emerging.training.recorder import SEPARATOR, Recorder, image_grid
from emerging.training.steps import STATS

HPARAMS = {'problem': 'digits', 'lr': 0.001}


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines()]


def log_epochs(recorder, epochs):
    for epoch in epochs:
        recorder.train_epoch(epoch, n_processed=100 * epoch, n_images=50 * epoch, train_time=2 * epoch,
                             results=np.array([7.123456, 7.1, 0., 1.], np.float32), lr=1e-3, ips=10.)
        if epoch % 2 == 0:
            recorder.test_epoch(epoch, n_processed=100 * epoch, n_images=50 * epoch,
                                results=np.array([6.5, 6.5, 0.25, 1.], np.float32))


def test_logs_have_the_original_keys_and_formats(tmp_path):
    recorder = Recorder(str(tmp_path), HPARAMS)
    recorder.open_logs()
    log_epochs(recorder, [1, 2])
    train, test = lines(tmp_path / 'train.txt'), lines(tmp_path / 'test.txt')
    assert train[0] == test[0] == HPARAMS
    assert train[1] == {'epoch': 1, 'n_processed': 100, 'n_images': 50, 'train_time': 2, 'loss': '7.1235',
                        'bits_x': '7.1000', 'bits_y': '0.0000', 'pred_loss': '1.0000'}
    assert list(train[2]) == ['epoch', 'n_processed', 'n_images', 'train_time', *STATS]
    assert test[1:] == [{'epoch': 2, 'n_processed': 200, 'n_images': 100, 'loss': '6.5000', 'bits_x': '6.5000',
                         'bits_y': '0.2500', 'pred_loss': '1.0000'}]
    recorder.flush()
    assert os.listdir(tmp_path / 'tensorboard')


def test_resume_drops_the_epochs_after_the_checkpoint(tmp_path):
    recorder = Recorder(str(tmp_path), HPARAMS)
    recorder.open_logs()
    log_epochs(recorder, [1, 2, 3, 4])
    resumed = Recorder(str(tmp_path), {'problem': 'other'})
    resumed.open_logs(resume_epoch=2)
    train = lines(tmp_path / 'train.txt')
    assert train[0] == HPARAMS  # the run's own hyperparameter line stays
    assert [line['epoch'] for line in train[1:]] == [1, 2]
    assert [line['epoch'] for line in lines(tmp_path / 'test.txt')[1:]] == [2]
    assert sorted(os.listdir(tmp_path)) == ['tensorboard', 'test.txt', 'train.txt']  # no temporary left
    log_epochs(resumed, [3])
    assert [line['epoch'] for line in lines(tmp_path / 'train.txt')[1:]] == [1, 2, 3]


def test_a_new_run_starts_fresh_logs(tmp_path):
    recorder = Recorder(str(tmp_path), HPARAMS)
    recorder.open_logs()
    log_epochs(recorder, [1, 2])
    again = Recorder(str(tmp_path), {'problem': 'other'})
    again.open_logs()
    assert lines(tmp_path / 'train.txt') == [{'problem': 'other'}]


BAD_LOGS = {
    'garbled': (lambda path: open(path, 'w').write('{"problem": "dig\n'), "train.txt's first line is not valid JSON"),
    'a folder': (lambda path: (os.remove(path), os.mkdir(path)), 'train.txt is a folder'),
    'missing': (os.remove, 'No such file'),
    'a list': (lambda path: open(path, 'w').write('[1]\n{"epoch": 1}\n'), 'holds a JSON list'),
}


@pytest.mark.parametrize('damage', list(BAD_LOGS))
def test_a_resumed_log_that_is_gone_or_garbled_is_refused_by_name_and_kept(tmp_path, damage):
    recorder = Recorder(str(tmp_path), HPARAMS)
    recorder.open_logs()
    log_epochs(recorder, [1, 2])
    path = str(tmp_path / 'train.txt')
    change, message = BAD_LOGS[damage]
    change(path)
    before = open(path, 'rb').read() if os.path.isfile(path) else None
    with pytest.raises(InputError, match=message) as raised:
        Recorder(str(tmp_path), HPARAMS).open_logs(resume_epoch=2)
    assert 'train.txt' in str(raised.value)
    assert (open(path, 'rb').read() if os.path.isfile(path) else None) == before


def test_a_run_resumed_within_its_first_epoch_may_start_its_logs(tmp_path):
    Recorder(str(tmp_path), HPARAMS).open_logs(resume_epoch=0)  # an imported run: no log yet
    assert lines(tmp_path / 'train.txt') == [HPARAMS]


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')


def test_a_full_disk_names_the_log_and_leaves_whole_lines(tmp_path, monkeypatch):
    recorder = Recorder(str(tmp_path), HPARAMS)
    recorder.open_logs()
    log_epochs(recorder, [1])
    monkeypatch.setattr(os, 'fsync', no_space)
    with pytest.raises(DiskFull) as raised:
        log_epochs(recorder, [2])
    assert raised.value.path == str(tmp_path / 'train.txt')


def test_a_full_disk_names_the_sample_grid(tmp_path, monkeypatch):
    recorder = Recorder(str(tmp_path), HPARAMS)
    monkeypatch.setattr(Image.Image, 'save', no_space)
    with pytest.raises(DiskFull) as raised:
        recorder.sample_grids(5, lambda y, t: np.zeros([len(y), 8, 8, 3], np.uint8), image_size=8, n_y=10)
    assert raised.value.path == str(tmp_path / 'epoch_5_sample_0.png')


def test_a_non_chief_writes_and_prints_nothing(tmp_path, capsys):
    recorder = Recorder(str(tmp_path), HPARAMS, chief=False, verbose=True)
    recorder.open_logs()
    log_epochs(recorder, [1, 2])
    recorder.step(1, 0, np.zeros(4), 1e-3)
    recorder.status(2, 1, 1, 1., 1., 1., 1., 1., np.zeros(4), np.zeros(4), ' *')

    def sample(y, temperature):
        raise AssertionError('a non-chief does not sample')

    assert recorder.sample_grids(2, sample, image_size=8, n_y=10) == []
    recorder.flush()
    assert os.listdir(tmp_path) == []
    assert capsys.readouterr().out == ''


def test_status_line(tmp_path, capsys):
    recorder = Recorder(str(tmp_path), HPARAMS)
    train, test = np.array([7.5, 7.123456, 0., 1.], np.float32), np.array([7.25, 7.25, 0., 1.], np.float32)
    recorder.status(2, 640, 320, 1234.56, 1.04, 0.25, 0.5, 1.86, train, test, ' *')
    recorder.status(3, 960, 480, 1000., 1., 0., 0., 1., train, [], '')
    header, first, second = capsys.readouterr().out.splitlines()
    assert header == ('epoch n_processed n_images ips dtrain dtest dsample dtot [train loss bits_x bits_y pred_loss] '
                      '[test loss bits_x bits_y pred_loss] (* best checkpoint written)')
    assert first == '2 640 320 1234.6 1.0 0.2 0.5 1.9 [7.5000 7.1235 0.0000 1.0000] [7.2500 7.2500 0.0000 1.0000]  *'
    assert second == '3 960 480 1000.0 1.0 0.0 0.0 1.0 [7.5000 7.1235 0.0000 1.0000] [] '


def test_status_lines_parse_as_compare_families_reads_them(tmp_path, capsys):
    from emerging.cli.compare_families import parse_images_per_second
    recorder = Recorder(str(tmp_path), HPARAMS)
    for epoch, ips in ((1, 10.), (2, 300.), (3, 600.)):
        recorder.status(epoch, 64 * epoch, 64 * epoch, ips, 1., 0., 0., 1., np.zeros(4), [], '')
    assert parse_images_per_second(capsys.readouterr().out) == 400.  # the first epoch's left out


def test_verbose_step_lines(tmp_path, capsys):
    Recorder(str(tmp_path), HPARAMS, verbose=True).step(3, 7, np.array([1., 2., 3., 4.]), 0.0015)
    Recorder(str(tmp_path), HPARAMS).step(3, 8, np.zeros(4), 0.1)
    out = capsys.readouterr().out
    assert out.startswith("3 7 {'loss': '1.0000', 'bits_x': '2.0000'") and out.rstrip().endswith('lr 0.0015')
    assert len(out.splitlines()) == 1


def test_sample_grids(tmp_path):
    recorder = Recorder(str(tmp_path), HPARAMS)
    calls = []

    def sample(size, channels):
        def fn(y, temperature):
            calls.append((y.numpy(), temperature.numpy()))
            return np.full([len(y), size, size, channels], len(calls), np.uint8)
        return fn

    paths = recorder.sample_grids(5, sample(8, 3), image_size=8, n_y=10)
    assert paths == [str(tmp_path / f'epoch_5_sample_{k}.png') for k in range(8)]
    for k, path in enumerate(paths):
        image = tf.io.decode_png(tf.io.read_file(path)).numpy()
        assert image.shape == (89, 89, 3)  # 10 x 10 samples of 8 x 8, 9 separators each way
        assert np.all(image[:8, :8] == k + 1) and np.all(image[81:, 81:] == k + 1) and np.all(image[8] == SEPARATOR)
    np.testing.assert_array_equal(calls[0][0], np.arange(100) % 10)
    assert [t[0] for _, t in calls] == list(np.float32(TEMPERATURES)) and all(len(t) == 100 for _, t in calls)
    # above 64 px: 4 x 4 samples; one channel is written as a grey PNG
    calls.clear()
    paths = recorder.sample_grids(6, sample(72, 1), image_size=72, n_y=3)
    assert tf.io.decode_png(tf.io.read_file(paths[0])).numpy().shape == (291, 291, 1)
    np.testing.assert_array_equal(calls[0][0], [0, 1, 2, 0] * 4)  # one class per column
    assert not [name for name in os.listdir(tmp_path) if 'tmp' in name]


def test_image_grid_separates_cells_and_leaves_the_rest_black():
    images = np.arange(1, 6, dtype=np.uint8)[:, None, None, None] * np.ones([5, 2, 3, 1], np.uint8)
    grid = image_grid(images, 2)
    assert grid.shape == (3 * 2 + 2, 2 * 3 + 1, 1)
    cells = [grid[top:top + 2, left:left + 3] for top in (0, 3, 6) for left in (0, 4)]
    for value, cell in zip([1, 2, 3, 4, 5, 0], cells):
        assert np.all(cell == value)
    assert np.all(grid[[2, 5]] == SEPARATOR) and np.all(grid[:, 3] == SEPARATOR)
    assert image_grid(images[:1], 1).shape == (2, 3, 1)  # no border
