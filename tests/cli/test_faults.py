"""Faults a run meets: bad files for every entry point that reads them (exit code 2, the file named), outputs
that cannot be written, optimiser flags out of range, SIGKILL at random instants (the folder always loads and
resumes, the logs are never torn or doubled), SIGTERM and SIGINT during training and validation (a checkpoint,
exit 143 / 130, and --resume continues to the very weights of an uninterrupted run), also under mpiexec -n 2."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import emerging
from emerging.cli import train as train_cli
from emerging.cli import train_resflow as train_resflow_cli
from emerging.data.tfrecords import write_shards
from emerging.models.config import GlowConfig
from emerging.models.glow import Glow
from emerging.runs.checkpoints import checkpoint_stem, committed, latest
from emerging.runs.folder import best_checkpoint
from emerging.training import loop
from tests.helpers import DIGITS, ROOT, TINY, env, mpiexec_command

# the architecture of the session's trained_digits_run (conftest.py)
RUN_FLAGS = [*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior',
             '--epochs_full_valid', '2', '--epochs_full_sample', '100']


def emerging_command(capsys, *args):
    """(exit code, stderr) of `emerging ARGS`, in-process."""
    from emerging.cli.command import main
    code = main(list(args))
    return code, capsys.readouterr().err


def train_py(capsys, *args):
    """(exit code, stderr, trainer) of train.py ARGS, in-process."""
    code, trainer = train_cli.run(list(args))
    return code, capsys.readouterr().err, trainer


def data_file(run):
    return os.path.join(run, 'checkpoints', 'ckpt-3.data-00000-of-00001')


def truncate(path):
    raw = open(path, 'rb').read()
    open(path, 'wb').write(raw[:len(raw) // 2])


def flip(path):
    raw = bytearray(open(path, 'rb').read())
    raw[len(raw) // 3] ^= 0xFF
    open(path, 'wb').write(bytes(raw))


def edit_config(run, change):
    path = os.path.join(run, 'config.json')
    with open(path) as f:
        config = json.load(f)
    change(config)
    with open(path, 'w') as f:
        json.dump(config, f)


def other_architecture_index(run):
    """Put the index of a checkpoint of another architecture beside the latest checkpoint's data."""
    other = Glow(GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=1, width=8, flow_permutation=2))
    prefix = tf.train.Checkpoint(model=other).write(os.path.join(run, 'other', 'ckpt'))
    shutil.copy(prefix + '.index', os.path.join(run, 'checkpoints', 'ckpt-3.index'))


def mixed_best_of_an_earlier_version(run):
    """model_best_loss.ckpt as an earlier version kept it, its index of epoch 2 and its data of epoch 3 (what a
    kill between that version's two renames left)."""
    best = best_checkpoint(run)
    shutil.copy(best + '.index', os.path.join(run, 'model_best_loss.ckpt.index'))
    shutil.copy(data_file(run), os.path.join(run, 'model_best_loss.ckpt.data-00000-of-00001'))
    shutil.rmtree(os.path.join(run, 'best'))


# fault -> (what it does to a copy of the run, the weights it concerns, the file the message must name)
RUN_FAULTS = {
    'config.json empty': (lambda run: open(os.path.join(run, 'config.json'), 'w').close(), 'best', 'config.json'),
    'config.json a list': (lambda run: open(os.path.join(run, 'config.json'), 'w').write('[]'), 'best',
                           'config.json'),
    'config.json wrong type': (lambda run: edit_config(run, lambda c: c['model'].update(depth='two')), 'best',
                               'config.json'),
    'config.json without model': (lambda run: edit_config(run, lambda c: c.pop('model')), 'best', 'config.json'),
    'config.json unknown key': (lambda run: edit_config(run, lambda c: c['model'].update(colour=1)), 'best',
                                'config.json'),
    'truncated data': (lambda run: truncate(data_file(run)), 'latest', 'ckpt-3.data-00000-of-00001'),
    'flipped bytes in data': (lambda run: flip(data_file(run)), 'latest', 'ckpt-3.data-00000-of-00001'),
    'index of another architecture': (other_architecture_index, 'latest', 'ckpt-3.index'),
    'damaged pointer': (lambda run: open(os.path.join(run, 'checkpoints', 'checkpoint'), 'w').write('x'),
                        'latest', os.path.join('checkpoints', 'checkpoint')),
    'mixed best of an earlier version': (mixed_best_of_an_earlier_version, 'best', 'model_best_loss.ckpt'),
}


@pytest.fixture
def damaged(request, trained_digits_run, tmp_path):
    damage, weights, named = RUN_FAULTS[request.param]
    run = str(tmp_path / 'run')
    shutil.copytree(trained_digits_run, run)
    damage(run)
    return run, weights, named


@pytest.mark.slow
@pytest.mark.parametrize('damaged', list(RUN_FAULTS), indirect=True)
def test_bad_run_files_are_named_by_every_command_that_reads_them(damaged, tmp_path, capsys):
    run, weights, named = damaged
    for command in (['evaluate', '--logdir', run, '--weights', weights, '--n_test', '50'],
                    ['export', '--logdir', run, '--weights', weights, '--export_dir', str(tmp_path / 'sm')]):
        code, err = emerging_command(capsys, *command)
        assert code == 2 and named in err and 'Traceback' not in err, (command, err)
    assert not os.path.exists(tmp_path / 'sm')
    if weights == 'latest':  # train.py reads the checkpoints to resume or fine-tune from them
        before = sorted(os.listdir(os.path.join(run, 'checkpoints')))
        for flags in (['--resume', '--logdir', run], ['--restore_path', os.path.join(run, 'checkpoints'),
                                                     '--logdir', str(tmp_path / 'tuned')]):
            code, err, _ = train_py(capsys, *RUN_FLAGS, '--epochs', '5', *flags)
            assert code == 2 and named in err, (flags, err)
        assert sorted(os.listdir(os.path.join(run, 'checkpoints'))) == before
        assert not os.path.exists(tmp_path / 'tuned' / 'train.txt')


@pytest.mark.slow
def test_a_glow_run_is_refused_by_the_residual_flows_command_line(trained_digits_run, tmp_path, capsys):
    run = str(tmp_path / 'run')
    shutil.copytree(trained_digits_run, run)
    config = open(os.path.join(run, 'config.json')).read()
    resflow = ['--data', 'digits', '--nblocks', '1-1', '--idim', '8', '--fc-idim', '4', '--batchsize', '64',
               '--nepochs', '1', '--no-progress']
    for save, message in ((str(tmp_path / 'new'), 'does not fit the resflow model'),  # fine-tune from it
                          (run, f'--resume: {run} holds a glow run, not a resflow one')):  # continue it
        code, _ = train_resflow_cli.run([*resflow, '--resume', run, '--save', save])
        err = capsys.readouterr().err
        assert code == 2 and message in err and 'Traceback' not in err, err
    assert open(os.path.join(run, 'config.json')).read() == config  # not overwritten


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    folder = tmp_path / 'folder.png'
    folder.mkdir()
    for out, expected in ((a_file / 'samples.png', 'is a file'), (folder, 'is a folder')):
        code, err = emerging_command(capsys, 'sample', '--pretrained', 'digits', '--out', str(out))
        assert code == 2 and '--out' in err and expected in err, err
    code, err = emerging_command(capsys, 'export', '--pretrained', 'digits', '--export_dir', str(a_file / 'sm'))
    assert code == 2 and '--export_dir' in err and 'is a file' in err, err
    code, err, _ = train_py(capsys, *DIGITS, *TINY, '--logdir', str(a_file / 'run'))
    assert code == 2 and '--logdir' in err and 'is a file' in err, err
    code, err, _ = train_py(capsys, *DIGITS, *TINY, '--logdir', str(tmp_path / 'run'), '--export_dir',
                            str(a_file / 'sm'))
    assert code == 2 and '--export_dir' in err and not os.path.exists(tmp_path / 'run'), err


@pytest.mark.parametrize('flag, value, field', [
    ('--polyak_epochs', '0', 'polyak_epochs'), ('--polyak_epochs', '-1', 'polyak_epochs'), ('--beta1', '2', 'beta1'),
    ('--lr', '-1', 'lr'), ('--lr', 'nan', 'lr'), ('--weight_decay', '0', 'weight_decay'),
    ('--save_every_minutes', '-1', 'save_every_minutes')])
def test_optimiser_flags_out_of_range_stop_before_any_work(tmp_path, capsys, flag, value, field):
    code, err, trainer = train_py(capsys, *DIGITS, *TINY, flag, value, '--logdir', str(tmp_path / 'run'))
    assert code == 2 and trainer is None and f'error: {field} must be' in err, err
    assert not os.path.exists(tmp_path / 'run')


def shards(tmp_path, bad_record=None):
    """Glow-format shards of 8x8 images; with `bad_record` (an index), that train record's data is 100 bytes."""
    data_dir = str(tmp_path / 'data')
    rng = np.random.default_rng(0)
    write_shards(rng.integers(0, 256, [50, 8, 8, 3]), np.zeros(50), data_dir, 'validation')
    [path] = write_shards(rng.integers(0, 256, [64, 8, 8, 3]), np.zeros(64), data_dir, 'train')
    if bad_record is not None:
        records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        example = tf.train.Example.FromString(records[bad_record])
        example.features.feature['data'].bytes_list.value[0] = bytes(100)
        records[bad_record] = example.SerializeToString()
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)
    return data_dir, path


@pytest.mark.parametrize('bad_record', [0, 40])
@pytest.mark.slow
def test_a_record_of_the_wrong_length_is_named(tmp_path, capsys, bad_record):
    data_dir, path = shards(tmp_path, bad_record)
    code, err, _ = train_py(capsys, '--problem', 'celeba', '--data_dir', data_dir, '--image_size', '8',
                            '--anchor_size', '8', '--n_batch_train', '8', '--n_batch_init', '8', '--n_train', '64',
                            '--n_test', '50', '--epochs', '3', *TINY, '--logdir', str(tmp_path / 'run'))
    assert code == 2 and path in err and ('bytes' in err or 'not a 8x8x3 image' in err), err
    assert not os.path.exists(tmp_path / 'run' / 'checkpoints')


def test_a_galaxy_pickle_of_float_images_is_refused(tmp_path, capsys):
    import pickle
    images = np.random.default_rng(0).random([20, 64, 64, 3])
    with open(tmp_path / 'galaxies.pkl', 'wb') as f:
        pickle.dump((images, images[:5], images[:5]), f)
    code, err, _ = train_py(capsys, '--problem', 'space', '--data_dir', str(tmp_path / 'galaxies.pkl'),
                            *TINY, '--logdir', str(tmp_path / 'run'))
    assert code == 2 and 'galaxies.pkl: x_train holds float64 values' in err, err


# ---- interruption --------------------------------------------------------------------------------------

# the smallest Glow train.py builds (one level of one step, 8 hidden channels): what the interruption tests check
# (checkpoints, logs, exact resumption) does not depend on the model's size, and a smaller one starts sooner
SMALLEST = ['--n_levels', '1', '--depth', '1', '--width', '8', '--no_progress', '--gradient_checkpointing', '0']
INTERRUPTED = [*DIGITS, *SMALLEST, '--n_train', '160', '--n_batch_train', '16', '--n_batch_init', '32', '--epochs', '4',
               '--epochs_full_valid', '1', '--epochs_full_sample', '100', '--flow_permutation', '3', '--seed', '2']


def signal_on_call(monkeypatch, step, signum, call_number):
    """Make the trainer's `step` ('train' or 'test') send `signum` to this process after its call_number-th call."""
    build = loop.build_steps

    def build_and_wrap(*args, **kwargs):
        steps = dict(zip(('train', 'test', 'sample'), build(*args, **kwargs)))
        inner, calls = steps[step], [0]

        def wrapped(*a):
            out = inner(*a)
            calls[0] += 1
            if calls[0] == call_number:
                os.kill(os.getpid(), signum)
            return out

        steps[step] = wrapped
        return steps['train'], steps['test'], steps['sample']

    monkeypatch.setattr(loop, 'build_steps', build_and_wrap)


def weights_of(trainer):
    return [v.numpy() for v in list(trainer.model.variables) + list(trainer.optimizer.variables)]


def log_lines(run, name):
    with open(os.path.join(run, name)) as f:
        lines = [json.loads(line) for line in f.read().splitlines()[1:]]
    return [{k: v for k, v in line.items() if k != 'train_time'} for line in lines]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    run = str(tmp_path_factory.mktemp('uninterrupted'))
    code, trainer = train_cli.run([*INTERRUPTED, '--logdir', run])
    assert code == 0
    return run, weights_of(trainer)


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize('step, call_number, where', [('train', 13, 'epoch 2, after step 3 of 10'),
                                                      ('test', 3, 'the validation of epoch 1')])
def test_a_signal_checkpoints_and_resume_continues_exactly(uninterrupted, tmp_path, capsys, monkeypatch, signum,
                                                           step, call_number, where):
    expected_run, expected_weights = uninterrupted
    run = str(tmp_path / 'run')
    signal_on_call(monkeypatch, step, signum, call_number)
    code, err, _ = train_py(capsys, *INTERRUPTED, '--logdir', run)
    assert code == 128 + signum, err
    assert f'stopped by {signal.Signals(signum).name} at {where}' in err and '--resume' in err
    monkeypatch.undo()
    code, err, resumed = train_py(capsys, *INTERRUPTED, '--logdir', run, '--resume')
    assert code == 0, err
    for mine, theirs in zip(weights_of(resumed), expected_weights):
        np.testing.assert_array_equal(mine, theirs)
    for log in ('train.txt', 'test.txt'):
        assert log_lines(run, log) == log_lines(expected_run, log)


@pytest.mark.slow
def test_time_based_saves_within_an_epoch(tmp_path, capsys):
    run = str(tmp_path / 'run')
    code, err, trainer = train_py(capsys, *INTERRUPTED, '--epochs', '2', '--save_every_minutes', '1e-9',
                                  '--logdir', run)
    assert code == 0, err
    names = [os.path.basename(p) for p in glob.glob(os.path.join(run, 'checkpoints', 'ckpt-*.index'))]
    assert sorted(names) == ['ckpt-0-step9.index', 'ckpt-1.index']  # the last two: within epoch 1, its end


def assert_loadable_and_logs_whole(run):
    """The run folder loads (the latest and the best weights, when written) and its logs have whole lines,
    every epoch once."""
    if latest(os.path.join(run, 'checkpoints')) is not None:
        emerging.load_run(run, 'latest')
    if best_checkpoint(run) is not None:
        emerging.load_run(run, 'best')
    for name in ('train.txt', 'test.txt'):
        path = os.path.join(run, name)
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            assert not text or text.endswith('\n'), f'{name} ends in a cut-off line'
            epochs = [json.loads(line)['epoch'] for line in text.splitlines()[1:]]
            assert epochs == sorted(set(epochs)), f'{name} repeats an epoch: {epochs}'


def cut_off_writes(run):
    """Files of checkpoints/ and best/ that belong to a checkpoint the pointer does not name: a write a kill cut
    off (the next commit removes them)."""
    found = []
    for folder in ('checkpoints', 'best'):
        path = os.path.join(run, folder)
        named = set(committed(path)) if os.path.isdir(path) else set()
        for name in os.listdir(path) if os.path.isdir(path) else []:
            stem = checkpoint_stem(name)
            owner = 'ckpt-' + stem.split('-', 2)[2] if stem.startswith('input-') else stem
            if owner.startswith('ckpt-') and owner not in named:
                found.append(name)
    return found


def warm_train_py(flags, out):
    """train.py FLAGS in a process started now, run when told (`go`): until then it imports TensorFlow
    (tests/training/warm_train_py.py) while the process before it trains."""
    with open(out, 'w') as stdout:
        return subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'training', 'warm_train_py.py'), *flags],
                                cwd=ROOT, env=env(), stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.STDOUT,
                                text=True)


def go(process):
    process.stdin.write('go\n')
    process.stdin.close()


@pytest.mark.slow
def test_sigkill_at_random_instants_never_leaves_a_run_that_fails_to_load(tmp_path, capsys):
    """20 kills at random instants of a run that checkpoints almost continuously (every step and epoch), so that
    many land in a checkpoint write; after each, the folder loads and --resume goes on; at the end a --resume
    completes two more epochs and the logs hold every epoch once.

    The smallest model and validation: the kills are about the writes.  Most of each process's life is its start;
    the next process imports TensorFlow while this one traces its steps and trains.  The killed
    processes are given more epochs than they can reach on any machine; the last --resume (in this process:
    --epochs may change on --resume) two beyond the last one logged.  Not `serial`: it signals only the processes
    it started, waits for their commits rather than for a time, and kills at random instants whatever the load."""
    run = str(tmp_path / 'run')
    flags = [*DIGITS, *SMALLEST, '--n_train', '160', '--n_batch_train', '16', '--n_batch_init', '32', '--n_test', '20',
             '--epochs_full_valid', '1', '--epochs_full_sample', '1000', '--save_every_minutes', '1e-9',
             '--logdir', run, '--resume']
    killed_flags = [*flags, '--epochs', '1000']
    rng = np.random.default_rng(0)
    kills = during_writes = 0
    process = warm_train_py(killed_flags, tmp_path / 'out0.txt')
    started = [process]
    try:
        while kills < 20:
            out = tmp_path / f'out{kills}.txt'
            before = committed(os.path.join(run, 'checkpoints')) if os.path.isdir(os.path.join(run, 'checkpoints')) \
                else []
            go(process)
            if kills < 19:
                started.append(warm_train_py(killed_flags, tmp_path / f'out{kills + 1}.txt'))
            deadline = time.time() + 120
            while process.poll() is None and time.time() < deadline:  # until this process has trained and committed
                if os.path.isdir(os.path.join(run, 'checkpoints')) and committed(os.path.join(run, 'checkpoints')) \
                        not in ([], before):
                    break
                time.sleep(0.02)
            assert process.poll() is None, out.read_text()
            time.sleep(rng.uniform(0., 1.))
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            during_writes += bool(cut_off_writes(run))
            assert_loadable_and_logs_whole(run)
            process = started[-1]
    finally:
        for leftover in started:
            if leftover.poll() is None:
                leftover.kill()
                leftover.wait()
    assert during_writes >= 1, 'no kill landed in a checkpoint write'
    with open(os.path.join(run, 'train.txt')) as f:
        logged = [json.loads(line)['epoch'] for line in f.read().splitlines()[1:]]
    epochs = (logged[-1] if logged else 0) + 3
    code, err, _ = train_py(capsys, *flags, '--epochs', str(epochs))
    assert code == 0, err[-3000:]
    assert_loadable_and_logs_whole(run)
    with open(os.path.join(run, 'train.txt')) as f:
        assert [json.loads(line)['epoch'] for line in f.read().splitlines()[1:]] == list(range(1, epochs))


@pytest.mark.slow
@pytest.mark.serial
def test_sigterm_to_one_process_stops_both_and_resumes_exactly(tmp_path):
    """SIGTERM to one process of `mpiexec -n 2 train.py` after epoch 1: the job stops (exit code not 0, one
    `stopped by SIGTERM`), and --resume ends with the model and optimiser variables and the train.txt of an
    uninterrupted two-process run.  Real command lines, each its own mpiexec launch: what is checked is how the
    job of train.py ends when one of its processes is signalled, so they cannot share test_horovod.py's launch."""
    flags = [*INTERRUPTED, '--epochs', '4', '--n_train', '320']

    def mpi_train(*extra, wait=True):
        command = [*mpiexec_command(2), sys.executable, os.path.join(ROOT, 'train.py'), *flags, *extra]
        if wait:
            return subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=900)
        out = open(tmp_path / 'interrupted.txt', 'w')
        return subprocess.Popen(command, cwd=ROOT, env=env(), stdout=out, stderr=subprocess.STDOUT)

    expected = mpi_train('--logdir', str(tmp_path / 'whole'))
    assert expected.returncode == 0, expected.stderr[-3000:]
    run = str(tmp_path / 'run')
    process = mpi_train('--logdir', run, wait=False)
    deadline = time.time() + 300
    while '\n1 ' not in (tmp_path / 'interrupted.txt').read_text() and time.time() < deadline:
        time.sleep(0.05)  # until the status line of epoch 1
    ranks = subprocess.run(['pgrep', '-f', f'train.py .*--logdir {run}'], capture_output=True, text=True)
    pids = sorted(int(pid) for pid in ranks.stdout.split() if int(pid) != process.pid)
    assert len(pids) >= 2, ranks.stdout
    os.kill(pids[-1], signal.SIGTERM)  # one process only, as a scheduler may do
    process.wait(timeout=300)
    output = (tmp_path / 'interrupted.txt').read_text()
    assert process.returncode != 0 and output.count('stopped by SIGTERM') == 1, output[-3000:]
    resumed = mpi_train('--logdir', run, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    mine = tf.train.load_checkpoint(latest(os.path.join(run, 'checkpoints')))
    theirs = tf.train.load_checkpoint(latest(str(tmp_path / 'whole' / 'checkpoints')))
    for key in theirs.get_variable_to_shape_map():
        if key.startswith(('model/', 'optimizer/')):
            np.testing.assert_array_equal(mine.get_tensor(key), theirs.get_tensor(key), err_msg=key)
    assert log_lines(run, 'train.txt') == log_lines(str(tmp_path / 'whole'), 'train.txt')
