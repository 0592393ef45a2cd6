"""train.py end to end on tiny models and data the tests make themselves."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from emerging.data.tfrecords import write_shards
from emerging.runs.folder import best_checkpoint
from tests.helpers import DIGITS, ROOT, TINY, env, read_log, train

pytestmark = pytest.mark.slow  # end-to-end: subprocesses and real training runs

TRAIN_KEYS = ['epoch', 'n_processed', 'n_images', 'train_time', 'loss', 'bits_x', 'bits_y', 'pred_loss']
TEST_KEYS = ['epoch', 'n_processed', 'n_images', 'loss', 'bits_x', 'bits_y', 'pred_loss']


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp('digits'))
    export_dir = os.path.join(logdir, 'savedmodel')
    result = train([*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior',
                    '--epochs', '4', '--epochs_full_valid', '2', '--epochs_full_sample', '2',
                    '--logdir', logdir, '--export_dir', export_dir])
    return logdir, export_dir, result


def test_logs_have_the_original_keys_and_formats(digits_run):
    logdir, _, result = digits_run
    hparams, train_lines = read_log(os.path.join(logdir, 'train.txt'))
    assert hparams['flow_permutation'] == 3 and hparams['train_its'] == 2
    assert [line['epoch'] for line in train_lines] == [1, 2, 3]
    for line in train_lines:
        assert list(line) == TRAIN_KEYS
        for key in ('loss', 'bits_x', 'bits_y', 'pred_loss'):
            assert isinstance(line[key], str) and len(line[key].split('.')[1]) == 4
    _, test_lines = read_log(os.path.join(logdir, 'test.txt'))
    assert [line['epoch'] for line in test_lines] == [2]
    assert list(test_lines[0]) == TEST_KEYS
    assert 6. < float(test_lines[0]['bits_x']) < 9.
    status = [line for line in result.stdout.splitlines() if line.startswith('2 ')]
    assert status and status[0].rstrip().endswith('*')  # best checkpoint written at the first validation
    assert 'Horovod' in result.stdout and 'parameters: 1x1' in result.stdout


def test_outputs_exist(digits_run):
    logdir, _, _ = digits_run
    for k in range(8):
        path = os.path.join(logdir, f'epoch_2_sample_{k}.png')
        image = tf.io.decode_png(tf.io.read_file(path)).numpy()
        assert image.shape == (89, 89, 3)  # 10 x 10 grid of 8 x 8 samples, one pixel between them
    assert best_checkpoint(logdir).endswith(os.path.join('best', 'ckpt-2'))
    assert tf.train.latest_checkpoint(os.path.join(logdir, 'checkpoints')).endswith('ckpt-3')
    assert os.listdir(os.path.join(logdir, 'tensorboard'))


def test_inference_round_trips(digits_run):
    logdir, _, _ = digits_run
    train([*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior', '--inference',
           '--logdir', logdir])
    x, z, recon = (np.load(os.path.join(logdir, f'{name}.npy')) for name in ('x', 'z', 'recon'))
    assert x.shape == (300, 8, 8, 3) and z.shape == (300, 8 * 8 * 3) and recon.dtype == np.uint8
    assert np.abs(recon.astype(int) - x.astype(int)).max() <= 1 and np.mean(recon == x) > 0.99


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


def test_savedmodel_in_a_fresh_process(digits_run, tmp_path):
    logdir, export_dir, _ = digits_run
    from emerging.models.config import GlowConfig
    from emerging.models.glow import Glow
    model = Glow(GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, flow_permutation=3,
                             flow_coupling=1, learnprior=True, n_y=10))
    # the export holds the final weights: those of the last epoch's checkpoint
    last = tf.train.latest_checkpoint(os.path.join(logdir, 'checkpoints'))
    tf.train.Checkpoint(model=model).read(last).expect_partial()
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


def test_kill_and_resume(tmp_path):
    logdir = str(tmp_path)
    args = [*DIGITS, *TINY, '--n_train', '320', '--epochs_full_valid', '1000', '--logdir', logdir]
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *args, '--epochs', '1000'],
                               cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = os.path.join(logdir, 'checkpoints')
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(checkpoints)
        if latest and int(latest.rsplit('-', 1)[1]) >= 2:
            break
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = int(tf.train.latest_checkpoint(checkpoints).rsplit('-', 1)[1])
    _, before = read_log(os.path.join(logdir, 'train.txt'))
    assert [line['epoch'] for line in before][:killed_at] == list(range(1, killed_at + 1))
    final = killed_at + 3
    train([*args, '--resume', '--epochs', str(final)])
    _, after = read_log(os.path.join(logdir, 'train.txt'))
    assert [line['epoch'] for line in after] == list(range(1, final))
    assert after[:killed_at] == before[:killed_at]  # nothing rewritten
    # counters continue from the checkpoint
    assert after[killed_at]['n_processed'] == (killed_at + 1) * 10 * 32


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    logdir = str(tmp_path)
    args = [*DIGITS, *TINY, '--epochs_full_valid', '1000', '--logdir', logdir]
    train([*args, '--epochs', '3'])
    checkpoints = os.path.join(logdir, 'checkpoints')
    snapshot = {name: open(os.path.join(checkpoints, name), 'rb').read() for name in os.listdir(checkpoints)}
    log_before = open(os.path.join(logdir, 'train.txt')).read()
    result = train([*args, '--epochs', '6', '--resume', '--lr', '1e30', '--epochs_warmup', '0'], check=False)
    assert result.returncode == 3
    assert 'loss is not finite' in result.stderr and 'step' in result.stderr
    assert {name: open(os.path.join(checkpoints, name), 'rb').read()
            for name in os.listdir(checkpoints)} == snapshot
    assert open(os.path.join(logdir, 'train.txt')).read() == log_before


def test_unreadable_restore_path(tmp_path):
    result = train([*DIGITS, *TINY, '--restore_path', str(tmp_path / 'nothing.ckpt'), '--logdir', str(tmp_path)],
                   check=False)
    assert result.returncode == 2 and "no checkpoint at '" + str(tmp_path / 'nothing.ckpt') in result.stderr
    assert not os.path.exists(tmp_path / 'train.txt')


def test_n_levels_too_large_for_image(tmp_path):
    result = train([*DIGITS, '--n_levels', '4', '--depth', '1', '--width', '4', '--logdir', str(tmp_path)],
                   check=False)
    assert result.returncode == 2
    assert 'image size 8x8 is not divisible by 2^n_levels = 16' in result.stderr


def test_export_script_for_an_existing_run(digits_run, tmp_path):
    logdir, _, _ = digits_run
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'export_savedmodel.py'), '--logdir', logdir,
                          '--export_dir', str(tmp_path / 'sm')], env=env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = tf.saved_model.load(str(tmp_path / 'sm'))
    x = tf.constant(np.random.default_rng(1).integers(0, 256, size=[3, 8, 8, 3]), tf.uint8)
    bits = loaded.signatures['bits_per_dim'](x=x)['bits_x'].numpy()
    from emerging.models.config import GlowConfig
    from emerging.models.glow import Glow
    model = Glow(GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, flow_permutation=3,
                             flow_coupling=1, learnprior=True, n_y=10))
    tf.train.Checkpoint(model=model).read(best_checkpoint(logdir)).expect_partial()
    np.testing.assert_allclose(bits, model.losses_per_example(x, noise=False)['bits_x'].numpy(), rtol=1e-5)


def test_without_horovod_trains_as_one_process(tmp_path):
    shim = tmp_path / 'shim' / 'horovod'
    shim.mkdir(parents=True)
    (shim / '__init__.py').write_text('raise ImportError("horovod hidden by the test")\n')
    run_env = env()
    run_env['PYTHONPATH'] = str(tmp_path / 'shim') + os.pathsep + run_env['PYTHONPATH']
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), *DIGITS, *TINY, '--epochs', '2',
                             '--logdir', str(tmp_path / 'logs')], cwd=ROOT, env=run_env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('training as a single process') == 1
    assert 'horovod hidden by the test' in result.stdout


@pytest.mark.parametrize('flow_permutation', ['3', '4'])
def test_jit_compile_and_polyak_eval(tmp_path, flow_permutation):
    result = train([*DIGITS, *TINY, '--flow_permutation', flow_permutation, '--jit_compile', '--polyak_eval',
                    '--epochs', '3', '--epochs_full_valid', '2', '--epochs_full_sample', '2',
                    '--logdir', str(tmp_path)])
    _, lines = read_log(os.path.join(tmp_path, 'test.txt'))
    assert len(lines) == 1 and np.isfinite(float(lines[0]['bits_x']))
    assert os.path.exists(os.path.join(tmp_path, 'epoch_2_sample_7.png'))
    assert 'Horovod' in result.stdout


@pytest.mark.parametrize('problem', ['digits', 'celeba'])
def test_resume_continues_at_the_exact_data_position(tmp_path, problem):
    """After --resume the next batch is the one the interrupted run would have drawn next
    (for digits, with the same random shifts)."""
    from emerging.cli import train as train_module
    if problem == 'digits':
        data_args = [*DIGITS, '--dal', '1']
    else:
        rng = np.random.default_rng(5)
        data_dir = str(tmp_path / 'data')
        for split, n in (('train', 96), ('validation', 50)):
            write_shards(rng.integers(0, 256, [n, 8, 8, 3]), np.zeros(n), data_dir, split, n_shards=3)
        data_args = ['--problem', 'celeba', '--data_dir', data_dir, '--image_size', '8', '--anchor_size', '8',
                     '--n_batch_train', '16', '--n_batch_init', '16', '--n_train', '48', '--n_test', '50']
    args = [*data_args, *TINY, '--epochs_full_valid', '1000', '--logdir', str(tmp_path / 'run')]
    code, first = train_module.run([*args, '--epochs', '3'])
    assert code == 0
    expected = [next(first.train_iter)[0].numpy() for _ in range(3)]
    code, resumed = train_module.run([*args, '--epochs', '3', '--resume'])  # restores epoch 2, trains nothing
    assert code == 0 and int(resumed.epoch.numpy()) == 2
    for batch in expected:
        np.testing.assert_array_equal(next(resumed.train_iter)[0].numpy(), batch)
    # a fresh pipeline would not have continued there
    code, fresh = train_module.run([*args, '--epochs', '1', '--logdir', str(tmp_path / 'fresh')])
    assert not np.array_equal(next(fresh.train_iter)[0].numpy(), expected[0])
