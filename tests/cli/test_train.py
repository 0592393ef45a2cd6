"""train.py end to end on tiny models and data the tests make themselves: the logs, checkpoints, sample grids and
status lines of a run, inference, export (a SavedModel that loads in a fresh process without this project),
--resume after a kill, divergence, bad input, XLA with Polyak evaluation, training without Horovod.

Runs are in-process (`emerging.cli.train.run`); the one process started is the SavedModel's, whose freshness is
what it checks.  The session's `trained_digits_run` serves the tests that read a finished run; those that write
into one work on a copy.  A SIGKILL at random instants and SIGTERM / SIGINT with an exact resume are
tests/cli/test_faults.py's."""
import importlib
import importlib.abc
import json
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from emerging.cli import train as train_cli
from emerging.data.tfrecords import write_shards
from emerging.models.config import GlowConfig
from emerging.models.glow import Glow
from emerging.runs.folder import best_checkpoint
from emerging.training import distributed
from tests.helpers import DIGITS, ROOT, TINY, env, read_log

TRAIN_KEYS = ['epoch', 'n_processed', 'n_images', 'train_time', 'loss', 'bits_x', 'bits_y', 'pred_loss']
TEST_KEYS = ['epoch', 'n_processed', 'n_images', 'loss', 'bits_x', 'bits_y', 'pred_loss']
# the flags of the session's trained_digits_run (conftest.py): epochs 1-3, a full validation at epoch 2
RUN_FLAGS = [*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior',
             '--epochs_full_valid', '2', '--epochs_full_sample', '100']
# one flow step of one level: for what does not depend on the model (the data position, the processes)
SMALLEST_MODEL = [*TINY, '--n_levels', '1', '--depth', '1', '--width', '8']
RUN_CONFIG = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, flow_permutation=3, flow_coupling=1,
                        learnprior=True, n_y=10)


def train_py(capsys, *args):
    """(exit code, stdout, stderr, trainer) of train.py ARGS, in-process."""
    code, trainer = train_cli.run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err, trainer


def copy_of(run, tmp_path):
    """A copy of the run folder `run` to write into (the session's run is shared)."""
    copy = str(tmp_path / 'run')
    shutil.copytree(run, copy)
    return copy


def model_from(checkpoint):
    """The trained_digits_run architecture with the weights of `checkpoint`."""
    model = Glow(RUN_CONFIG)
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
    return model


@pytest.mark.slow  # reads the session's trained run
def test_logs_have_the_original_keys_and_formats(trained_digits_run):
    hparams, train_lines = read_log(os.path.join(trained_digits_run, 'train.txt'))
    assert hparams['flow_permutation'] == 3 and hparams['train_its'] == 2
    assert [line['epoch'] for line in train_lines] == [1, 2, 3]
    for line in train_lines:
        assert list(line) == TRAIN_KEYS
        for key in ('loss', 'bits_x', 'bits_y', 'pred_loss'):
            assert isinstance(line[key], str) and len(line[key].split('.')[1]) == 4
    _, test_lines = read_log(os.path.join(trained_digits_run, 'test.txt'))
    assert [line['epoch'] for line in test_lines] == [2]
    assert list(test_lines[0]) == TEST_KEYS
    assert 6. < float(test_lines[0]['bits_x']) < 9.


@pytest.mark.slow  # reads the session's trained run
def test_checkpoints_and_tensorboard_are_written(trained_digits_run):
    """The best checkpoint is that of the validated epoch 2, the latest that of the last epoch, 3."""
    assert best_checkpoint(trained_digits_run).endswith(os.path.join('best', 'ckpt-2'))
    assert tf.train.latest_checkpoint(os.path.join(trained_digits_run, 'checkpoints')).endswith('ckpt-3')
    assert os.listdir(os.path.join(trained_digits_run, 'tensorboard'))


@pytest.mark.slow
def test_inference_round_trips(trained_digits_run, tmp_path, capsys):
    run = copy_of(trained_digits_run, tmp_path)
    code, _, err, _ = train_py(capsys, *RUN_FLAGS, '--inference', '--logdir', run)
    assert code == 0, err
    x, z, recon = (np.load(os.path.join(run, f'{name}.npy')) for name in ('x', 'z', 'recon'))
    assert x.shape == (300, 8, 8, 3) and z.shape == (300, 8 * 8 * 3) and recon.dtype == np.uint8
    assert np.abs(recon.astype(int) - x.astype(int)).max() <= 1 and np.mean(recon == x) > 0.99


@pytest.fixture(scope='module')
def resumed_run(trained_digits_run, tmp_path_factory):
    """A copy of the session's run as a kill after epoch 4's train.txt line, before its checkpoint, leaves it
    (the latest checkpoint that of epoch 3), resumed in-process for epoch 4 with --export_dir: (the folder, its
    train.txt lines of epochs 1-3 before the resume, the SavedModel's folder)."""
    run = str(tmp_path_factory.mktemp('resumed') / 'run')
    shutil.copytree(trained_digits_run, run)
    _, before = read_log(os.path.join(run, 'train.txt'))
    with open(os.path.join(run, 'train.txt'), 'a') as f:
        f.write(json.dumps(dict(before[-1], epoch=4, n_processed=0)) + '\n')
    export_dir = os.path.join(run, 'savedmodel')
    code, _ = train_cli.run([*RUN_FLAGS, '--epochs', '5', '--epochs_full_valid', '1000', '--resume', '--logdir', run,
                             '--export_dir', export_dir])  # no validation: nothing of it is asserted
    assert code == 0
    return run, before, export_dir


@pytest.mark.slow
def test_resume_after_a_kill_keeps_the_logs_and_continues_the_counters(resumed_run):
    """The lines of the checkpointed epochs are kept as they were, the line of the epoch after the checkpoint is
    written again by the epoch trained again, and the counters continue from the checkpoint."""
    run, before, _ = resumed_run
    assert [line['epoch'] for line in before] == [1, 2, 3]
    _, after = read_log(os.path.join(run, 'train.txt'))
    assert [line['epoch'] for line in after] == [1, 2, 3, 4]
    assert after[:3] == before  # nothing rewritten, train_time included
    assert after[3]['n_processed'] == 4 * 2 * 32  # 2 steps of 32 images per epoch


SAVEDMODEL_CHECK = r'''
import json, sys
import numpy as np, tensorflow as tf
assert 'emerging' not in sys.modules
loaded = tf.saved_model.load(sys.argv[1])
x = tf.constant(np.load(sys.argv[2]))
bits = loaded.signatures['bits_per_dim'](x=x)['bits_x'].numpy()
z = loaded.signatures['encode'](x=x)['z']
recon = loaded.signatures['decode'](z=z)['x'].numpy()
samples = loaded.signatures['sample'](temperature=tf.fill([x.shape[0]], 0.7))['x'].numpy()
print(json.dumps({'bits': bits.tolist(), 'recon_max_err': int(np.abs(recon.astype(int) - x.numpy()).max()),
                  'sample_shape': list(samples.shape)}))
'''


@pytest.mark.slow
def test_savedmodel_in_a_fresh_process(resumed_run, tmp_path):
    """train.py --export_dir writes a SavedModel that a process without this project (nor it on its path) loads:
    the bits per dim of the final weights (those of the last epoch's checkpoint), a round trip, samples."""
    run, _, export_dir = resumed_run
    model = model_from(tf.train.latest_checkpoint(os.path.join(run, 'checkpoints')))
    x = np.random.default_rng(0).integers(0, 256, size=[5, 8, 8, 3]).astype(np.uint8)
    np.save(tmp_path / 'x.npy', x)
    script = tmp_path / 'check.py'
    script.write_text(SAVEDMODEL_CHECK)
    clean_env = {k: v for k, v in env().items() if k != 'PYTHONPATH'}
    out = subprocess.run([sys.executable, str(script), export_dir, str(tmp_path / 'x.npy')], cwd=str(tmp_path),
                         env=clean_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = model.losses_per_example(tf.constant(x), noise=False)['bits_x'].numpy()
    np.testing.assert_allclose(result['bits'], expected, rtol=1e-5)
    assert result['recon_max_err'] <= 1 and result['sample_shape'] == [5, 8, 8, 3]


@pytest.mark.slow
def test_export_script_for_an_existing_run(trained_digits_run, tmp_path, monkeypatch):
    """scripts/export_savedmodel.py, as its command line runs it: the run's best weights."""
    script = os.path.join(ROOT, 'scripts', 'export_savedmodel.py')
    monkeypatch.setattr(sys, 'argv', [script, '--logdir', trained_digits_run, '--export_dir', str(tmp_path / 'sm')])
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the script puts the repository first
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(script, run_name='__main__')
    assert exit_status.value.code == 0
    loaded = tf.saved_model.load(str(tmp_path / 'sm'))
    x = tf.constant(np.random.default_rng(1).integers(0, 256, size=[3, 8, 8, 3]), tf.uint8)
    bits = loaded.signatures['bits_per_dim'](x=x)['bits_x'].numpy()
    model = model_from(best_checkpoint(trained_digits_run))
    np.testing.assert_allclose(bits, model.losses_per_example(x, noise=False)['bits_x'].numpy(), rtol=1e-5)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(trained_digits_run, tmp_path, capsys):
    run = copy_of(trained_digits_run, tmp_path)
    checkpoints = os.path.join(run, 'checkpoints')
    snapshot = {name: open(os.path.join(checkpoints, name), 'rb').read() for name in os.listdir(checkpoints)}
    log_before = open(os.path.join(run, 'train.txt')).read()
    code, _, err, _ = train_py(capsys, *RUN_FLAGS, '--epochs', '6', '--resume', '--lr', '1e30',
                               '--epochs_warmup', '0', '--logdir', run)
    assert code == 3
    assert 'loss is not finite' in err and 'step' in err
    assert {name: open(os.path.join(checkpoints, name), 'rb').read()
            for name in os.listdir(checkpoints)} == snapshot
    assert open(os.path.join(run, 'train.txt')).read() == log_before


def test_unreadable_restore_path(tmp_path, capsys):
    code, _, err, _ = train_py(capsys, *DIGITS, *TINY, '--restore_path', str(tmp_path / 'nothing.ckpt'),
                               '--logdir', str(tmp_path))
    assert code == 2 and "no checkpoint at '" + str(tmp_path / 'nothing.ckpt') in err
    assert not os.path.exists(tmp_path / 'train.txt')


def test_n_levels_too_large_for_image(tmp_path, capsys):
    code, _, err, _ = train_py(capsys, *DIGITS, '--n_levels', '4', '--depth', '1', '--width', '4',
                               '--logdir', str(tmp_path))
    assert code == 2
    assert 'image size 8x8 is not divisible by 2^n_levels = 16' in err


class HorovodHidden(importlib.abc.MetaPathFinder):
    """An import of horovod fails, as where it is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == 'horovod' or name.startswith('horovod.'):
            raise ImportError('horovod hidden by the test')
        return None


@pytest.mark.slow
def test_without_horovod_trains_as_one_process(tmp_path, capsys, monkeypatch):
    """emerging.training.distributed imported where Horovod's import fails: one process, and the note says why."""
    for name in [name for name in sys.modules if name == 'horovod' or name.startswith('horovod.')]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, 'meta_path', [HorovodHidden(), *sys.meta_path])
    for name in ('hvd', '_IMPORT_ERROR', 'Distributed'):  # what the reload below replaces, put back after the test
        monkeypatch.setattr(distributed, name, getattr(distributed, name))
    importlib.reload(distributed)
    code, out, err, _ = train_py(capsys, *DIGITS, *SMALLEST_MODEL, '--epochs', '2', '--logdir', str(tmp_path / 'logs'))
    assert code == 0, err
    assert out.count('training as a single process') == 1
    assert 'horovod hidden by the test' in out


@pytest.mark.slow
@pytest.mark.parametrize('flow_permutation', ['3', '4'])
def test_jit_compile_and_polyak_eval(tmp_path, capsys, flow_permutation):
    """An XLA-compiled run that validates and samples with the Polyak averages: its test.txt line, its sample
    grids (10 x 10 samples of 8 x 8, one pixel between them), its status line (the best checkpoint's * at the
    first validation), Horovod's line and the parameter counts."""
    code, out, err, _ = train_py(capsys, *DIGITS, *TINY, '--depth', '1', '--width', '8', '--flow_permutation',
                                 flow_permutation, '--jit_compile', '--polyak_eval', '--epochs', '2',
                                 '--epochs_full_valid', '1', '--epochs_full_sample', '1', '--logdir', str(tmp_path))
    assert code == 0, err
    _, lines = read_log(os.path.join(tmp_path, 'test.txt'))
    assert len(lines) == 1 and np.isfinite(float(lines[0]['bits_x']))
    for k in range(8):
        image = tf.io.decode_png(tf.io.read_file(os.path.join(tmp_path, f'epoch_1_sample_{k}.png'))).numpy()
        assert image.shape == (89, 89, 3)
    status = [line for line in out.splitlines() if line.startswith('1 ')]
    assert status and status[0].rstrip().endswith('*')
    assert 'Horovod' in out and 'parameters: 1x1' in out


@pytest.mark.slow
def test_resume_continues_at_the_exact_data_position(tmp_path):
    """After --resume the next batch of Glow-format shards is the one the interrupted run would have drawn next.
    (For digits, with its random shifts, tests/cli/test_faults.py's resume after a signal ends on the very
    weights of an uninterrupted run.)"""
    rng = np.random.default_rng(5)
    data_dir = str(tmp_path / 'data')
    for split, n in (('train', 96), ('validation', 50)):
        write_shards(rng.integers(0, 256, [n, 8, 8, 3]), np.zeros(n), data_dir, split, n_shards=3)
    args = ['--problem', 'celeba', '--data_dir', data_dir, '--image_size', '8', '--anchor_size', '8',
            '--n_batch_train', '16', '--n_batch_init', '16', '--n_train', '48', '--n_test', '50', *SMALLEST_MODEL,
            '--epochs_full_valid', '1000', '--logdir', str(tmp_path / 'run')]
    code, first = train_cli.run([*args, '--epochs', '2'])
    assert code == 0
    expected = [next(first.train_iter)[0].numpy() for _ in range(3)]
    code, resumed = train_cli.run([*args, '--epochs', '2', '--resume'])  # restores epoch 1, trains nothing
    assert code == 0 and int(resumed.epoch.numpy()) == 1
    for batch in expected:
        np.testing.assert_array_equal(next(resumed.train_iter)[0].numpy(), batch)
    # a fresh pipeline would not have continued there
    code, fresh = train_cli.run([*args, '--epochs', '1', '--logdir', str(tmp_path / 'fresh')])
    assert not np.array_equal(next(fresh.train_iter)[0].numpy(), expected[0])
