"""No run is overwritten: train.py and train_resflow.py refuse a folder that holds a run unless --resume or
--overwrite says what to do with it; a run locks its folder (a second process is refused by name, also under
Horovod's other ranks); --resume refuses, naming the file or the flag, a run it cannot continue exactly, and
leaves every file as it was; a full disk is a named error that keeps the last checkpoint; an import into a run
folder is refused too (--overwrite replaces the run)."""
import errno
import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf
from PIL import Image

from emerging.cli import train as train_cli
from emerging.cli import train_resflow as train_resflow_cli
from emerging.runs.checkpoints import commit
from emerging.runs.folder import write_config
from emerging.runs.lock import RunLock
from emerging.training import distributed
from tests.helpers import DIGITS, ROOT, TINY, env, read_log

# the architecture of the session's trained_digits_run (conftest.py): trained for epochs 1-3
RUN_FLAGS = [*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior',
             '--epochs_full_valid', '2', '--epochs_full_sample', '100']


def snapshot(folder):
    """{relative path: SHA-256} of every file under `folder`."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def train_py(capsys, *args):
    """(exit code, stderr) of train.py ARGS, in-process."""
    code, _ = train_cli.run(list(args))
    return code, capsys.readouterr().err


def fake_run(folder, flags=RUN_FLAGS):
    """A run folder as train.py ARGS leaves it after epoch 1 (its config.json from these very flags; a stand-in
    checkpoint): what the checks before any training read."""
    args = train_cli.build_parser().parse_args([*flags, '--logdir', str(folder)])
    run = train_cli.derive(args)
    os.makedirs(folder, exist_ok=True)
    write_config(str(folder), run.model, run.train, run.data, run.hparams)
    for log in ('train.txt', 'test.txt'):
        (folder / log).write_text('{"problem": "digits"}\n{"epoch": 1}\n')
    commit(tf.train.Checkpoint(v=tf.Variable(1.)), str(folder / 'checkpoints'), 'ckpt-1')
    return str(folder)


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    run = fake_run(tmp_path / 'run')
    before = snapshot(run)
    code, err = train_py(capsys, *RUN_FLAGS, '--epochs', '3', '--logdir', run)
    assert code == 2 and f'train.py: error: --logdir {run} holds a run' in err
    assert '--resume' in err and '--overwrite' in err and 'Traceback' not in err
    assert snapshot(run) == before
    for flag in ('--resume', '--inference'):
        code, err = train_py(capsys, *RUN_FLAGS, flag, '--overwrite', '--logdir', run)
        assert code == 2 and 'give one of them' in err
    assert snapshot(run) == before


def test_resflow_refuses_a_save_folder_holding_a_run(tmp_path, capsys):
    run = fake_run(tmp_path / 'run')
    code, _ = train_resflow_cli.run(['--data', 'digits', '--nblocks', '1', '--idim', '8', '--save', run])
    assert code == 2 and f'--save {run} holds a run' in capsys.readouterr().err


@pytest.mark.parametrize('flag, value, expected', [
    ('--flow_permutation', '2', 'was made with --flow_permutation 3, not 2'),
    ('--n_batch_train', '16', 'was made with --n_batch_train 32, not 16'),
    ('--width', '32', 'was made with --width 16, not 32'),
    ('--seed', '1', 'was made with --seed 0, not 1'),
])
def test_resume_with_flags_that_change_the_run_names_the_flag_and_changes_nothing(tmp_path, capsys, flag, value,
                                                                                    expected):
    run = fake_run(tmp_path / 'run')
    before = snapshot(run)
    code, err = train_py(capsys, *RUN_FLAGS, flag, value, '--resume', '--logdir', run)
    assert code == 2 and expected in err and 'Traceback' not in err, err
    assert snapshot(run) == before


@pytest.mark.parametrize('damage, named', [
    (lambda run: os.remove(os.path.join(run, 'checkpoints', 'checkpoint')), os.path.join('checkpoints', 'checkpoint')),
    (lambda run: open(os.path.join(run, 'train.txt'), 'w').write('{"pro'), 'train.txt'),
    (lambda run: (os.remove(os.path.join(run, 'train.txt')), os.mkdir(os.path.join(run, 'train.txt'))), 'train.txt'),
])
def test_resume_of_a_run_it_cannot_continue_names_the_file_and_changes_nothing(tmp_path, capsys, damage, named):
    run = fake_run(tmp_path / 'run')
    damage(run)
    before = snapshot(run)
    code, err = train_py(capsys, *RUN_FLAGS, '--resume', '--logdir', run)
    assert code == 2 and os.path.join(run, named) in err and 'Traceback' not in err, err
    assert snapshot(run) == before


@pytest.mark.slow
def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_afresh(tmp_path, capsys):
    """What a kill before the first checkpoint leaves (config.json, TensorBoard, the logs' hyperparameter lines):
    --resume trains from the first epoch, as into a new folder."""
    run = fake_run(tmp_path / 'run')
    shutil.rmtree(os.path.join(run, 'checkpoints'))
    for log in ('train.txt', 'test.txt'):
        (tmp_path / 'run' / log).write_text('{"problem": "digits"}\n')
    os.makedirs(os.path.join(run, 'tensorboard'))
    code, err = train_py(capsys, *RUN_FLAGS, '--epochs', '2', '--resume', '--logdir', run)
    assert code == 0, err
    assert [line['epoch'] for line in read_log(os.path.join(run, 'train.txt'))[1]] == [1]


def test_a_locked_folder_is_refused_naming_the_holder(tmp_path, capsys):
    run = str(tmp_path / 'run')
    os.makedirs(run)
    with RunLock(run):
        code, err = train_py(capsys, *RUN_FLAGS, '--logdir', run)
    assert code == 2 and f'--logdir {run} is in use by another run (pid {os.getpid()} on ' in err
    assert os.listdir(run) == []


class Rank:
    """Stands in for Distributed as process `rank` of 2 whose chief was refused (`agree` sums to 1)."""

    def __init__(self, rank):
        self.rank, self.size, self.is_chief, self.note = rank, 2, rank == 0, 'stand-in'
        self.agreed = []

    def agree(self, counts, name):
        self.agreed.append(name)
        return [1]


def test_a_rank_other_than_the_chief_stops_with_exit_2_when_the_chief_is_refused(tmp_path, capsys, monkeypatch):
    run = fake_run(tmp_path / 'run')
    before = snapshot(run)
    ranks = []
    monkeypatch.setattr(distributed, 'Distributed', lambda: ranks.append(Rank(1)) or ranks[-1])
    code, trainer = train_cli.run([*RUN_FLAGS, '--logdir', run])
    assert code == 2 and trainer is None and ranks[0].agreed == ['run_folder_claimed']
    assert capsys.readouterr().err == ''  # the chief says why
    assert snapshot(run) == before


# ---- runs that train ------------------------------------------------------------------------------------------


@pytest.fixture
def trained_copy(trained_digits_run, tmp_path):
    run = str(tmp_path / 'run')
    shutil.copytree(trained_digits_run, run)
    return run


@pytest.mark.slow
def test_overwrite_starts_over_deleting_only_the_runs_files(trained_copy, capsys):
    (open(os.path.join(trained_copy, 'notes.md'), 'w')).write('mine')
    old = tf.train.latest_checkpoint(os.path.join(trained_copy, 'checkpoints'))
    code, _ = train_cli.run([*RUN_FLAGS, '--flow_permutation', '2', '--epochs', '2', '--overwrite',
                             '--logdir', trained_copy])
    out = capsys.readouterr().out
    assert code == 0 and '--overwrite: deleted the earlier run' in out
    assert open(os.path.join(trained_copy, 'notes.md')).read() == 'mine'
    hparams, lines = read_log(os.path.join(trained_copy, 'train.txt'))
    assert hparams['flow_permutation'] == 2 and [line['epoch'] for line in lines] == [1]
    assert not os.path.exists(old + '.index') and not os.path.exists(os.path.join(trained_copy, 'best'))


@pytest.mark.slow
def test_resume_with_a_truncated_input_position_names_it_and_changes_nothing(trained_copy, capsys):
    position = os.path.join(trained_copy, 'checkpoints', 'input-rank0-3.data-00000-of-00001')
    with open(position, 'r+b') as f:
        f.truncate(os.path.getsize(position) // 2)
    before = snapshot(trained_copy)
    code, err = train_py(capsys, *RUN_FLAGS, '--epochs', '5', '--resume', '--logdir', trained_copy)
    assert code == 2 and 'input-rank0-3.data-00000-of-00001 is truncated' in err and 'Traceback' not in err, err
    assert snapshot(trained_copy) == before


def no_space_in_checkpoints(self, prefix, options=None):
    raise tf.errors.ResourceExhaustedError(None, None, f'{prefix}_temp/part-00000; No space left on device')


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')


FSYNC = os.fsync


def no_space_in_train_txt(fd):
    """os.fsync, but the appends to train.txt find the disk full."""
    if os.readlink(f'/proc/self/fd/{fd}').endswith(os.sep + 'train.txt'):
        no_space()
    FSYNC(fd)


# where the disk fills -> (what to patch, the file the message names)
FULL_DISKS = {
    'checkpoint': ((tf.train.Checkpoint, 'write', no_space_in_checkpoints),
                   os.path.join('checkpoints', 'input-rank0-4')),
    'log': ((os, 'fsync', no_space_in_train_txt), 'train.txt'),
    'sample grid': ((Image.Image, 'save', no_space), 'epoch_4_sample_0.png'),
}


@pytest.mark.slow
@pytest.mark.parametrize('where', list(FULL_DISKS))
def test_a_full_disk_is_named_keeps_the_last_checkpoint_and_resume_continues(trained_copy, capsys, monkeypatch,
                                                                              where):
    (target, name, replacement), named = FULL_DISKS[where]
    monkeypatch.setattr(target, name, replacement)
    flags = [*RUN_FLAGS, '--epochs', '5', '--epochs_full_valid', '1000', '--epochs_full_sample', '1', '--resume',
             '--logdir', trained_copy]
    code, err = train_py(capsys, *flags)
    last = os.path.join(trained_copy, 'checkpoints', 'ckpt-3')
    assert code == 2 and 'Traceback' not in err, err
    assert (f'no space left on device writing {os.path.join(trained_copy, named)}: the last checkpoint ({last}) is '
            f'intact; free space and continue with --resume') in err
    monkeypatch.undo()
    if where == 'checkpoint':  # the others end the same way: the run as it was at its last checkpoint
        code, err = train_py(capsys, *flags)
        assert code == 0, err
        _, lines = read_log(os.path.join(trained_copy, 'train.txt'))
        assert [line['epoch'] for line in lines] == [1, 2, 3, 4]


@pytest.mark.slow
def test_two_runs_started_together_in_one_folder_one_is_refused_by_name(tmp_path):
    run = str(tmp_path / 'run')
    command = [sys.executable, os.path.join(ROOT, 'train.py'), *DIGITS, *TINY, '--epochs', '3',
               '--epochs_full_sample', '100', '--logdir', run]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read(), p.pid) for p in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (_, _, winner), (_, refused, _) = sorted(results, key=lambda result: result[0])
    refusal = (f'train.py: error: --logdir {run} is in use by another run (pid {winner} on ' in refused
               or f'--logdir {run} holds a run' in refused)  # the second started after the first had finished
    assert refusal, refused
    _, lines = read_log(os.path.join(run, 'train.txt'))
    assert [line['epoch'] for line in lines] == [1, 2]
    assert not os.path.exists(os.path.join(run, '.lock'))


@pytest.mark.slow
def test_an_import_into_a_run_folder_is_refused_and_overwrite_replaces_the_run(tmp_path, capsys):
    from emerging.cli.command import main
    checkpoint = os.path.join(ROOT, 'tests', 'runs', 'pytorch', 'resflow_mnist.pth')
    run = fake_run(tmp_path / 'run')
    (tmp_path / 'run' / 'notes.md').write_text('mine')
    before = snapshot(run)
    assert main(['import-resflow', '--checkpoint', checkpoint, '--logdir', run]) == 2
    assert f'--logdir {run} holds a run' in capsys.readouterr().err and snapshot(run) == before
    assert main(['import-resflow', '--checkpoint', checkpoint, '--logdir', run, '--overwrite']) == 0
    capsys.readouterr()
    assert sorted(os.listdir(run)) == ['best', 'checkpoints', 'config.json', 'notes.md']
    assert not os.path.exists(os.path.join(run, 'train.txt'))
