"""A run folder's config.json and train.txt are checked before use: each fault is an InputError naming the file;
checkpoint paths resolve (a prefix, a folder, a run, the original's model_best_loss.ckpt name).  A folder holding
a run is refused for a new run, cleared only of the run's files by --overwrite, and checked file by file and flag
by flag before --resume; its lock admits one process at a time and is taken over from a dead one."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from emerging.errors import InputError
from emerging.models.config import GlowConfig
from emerging.runs.checkpoints import commit
from emerging.runs.folder import (
    check_resumable,
    check_same_run,
    clear_run,
    read_config,
    refuse_existing_run,
    resolve_checkpoint,
    run_files,
    write_best,
)
from emerging.runs.lock import LOCK_FILE, RunLock
from tests.helpers import ROOT, env

GLOW = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16).to_dict()
BAD_CONFIGS = {
    'empty': ('', 'is not valid JSON'),
    'a list': ('[1, 2]', 'holds a JSON list, not the object'),
    'no model': ('{"model_kind": "glow"}', 'lacks "model"'),
    'model not an object': ('{"model": 3}', '"model" must be a JSON object'),
    'unknown kind': (json.dumps({'model_kind': 'realnvp', 'model': GLOW}), "unknown model kind 'realnvp'"),
    'wrong type': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, depth='two')}),
                   "depth must be an integer, got 'two'"),
    'a bool for a number': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, width=True)}),
                            'width must be an integer, got True'),
    'unknown key': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, colour='red')}),
                    "unknown field 'colour'"),
    'bad value': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, n_levels=5)}), 'not divisible by 2'),
    'bad shape': (json.dumps({'model_kind': 'glow', 'model': dict(GLOW, image_shape=[8, 'x', 3])}),
                  'image_shape must be a list of integers'),
}


@pytest.mark.parametrize('case', list(BAD_CONFIGS))
def test_a_bad_config_json_is_named(tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    (tmp_path / 'config.json').write_text(text)
    with pytest.raises(InputError, match=str(tmp_path / 'config.json')) as error:
        read_config(str(tmp_path))
    assert expected in str(error.value)


@pytest.mark.parametrize('first_line, expected', [
    ('', 'is not valid JSON'), ('[]', 'holds a JSON list'), ('{"depth": 2}', 'lack image_size'),
    ('{"image_size": 8, "n_levels": 2, "depth": "x", "width": 4, "flow_permutation": 2}', 'invalid literal')])
def test_a_bad_train_txt_is_named(tmp_path, first_line, expected):
    (tmp_path / 'train.txt').write_text(first_line + '\n')
    with pytest.raises(InputError, match=str(tmp_path / 'train.txt')) as error:
        read_config(str(tmp_path))
    assert expected in str(error.value)


def test_checkpoint_paths_resolve(tmp_path):
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.))
    run = str(tmp_path / 'run')
    best = write_best(checkpoint, run, 'ckpt-2')
    latest = commit(checkpoint, os.path.join(run, 'checkpoints'), 'ckpt-3')
    assert resolve_checkpoint(best) == best
    assert resolve_checkpoint(run) == best
    assert resolve_checkpoint(os.path.join(run, 'model_best_loss.ckpt')) == best  # the original's name
    assert resolve_checkpoint(os.path.join(run, 'checkpoints')) == latest
    assert write_best(checkpoint, run, 'ckpt-2').endswith('ckpt-2-1')  # a new name, never the committed one
    legacy = checkpoint.write(str(tmp_path / 'old' / 'model_best_loss.ckpt'))  # an earlier version's best
    assert resolve_checkpoint(legacy) == legacy == resolve_checkpoint(str(tmp_path / 'old'))
    with pytest.raises(InputError, match='no checkpoint at'):
        resolve_checkpoint(str(tmp_path / 'nothing'))


def make_run(folder, epochs=(1, 2), hparams=None):
    """A run folder as train.py leaves it: config.json, the logs, checkpoints/ and best/, samples, TensorBoard."""
    hparams = hparams or {'flow_permutation': 2, 'n_batch_train': 32, 'n_processes': 1}
    os.makedirs(folder, exist_ok=True)
    model = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16)
    (folder / 'config.json').write_text(json.dumps({'model_kind': 'glow', 'model': model.to_dict(),
                                                    'hparams': hparams}))
    for log in ('train.txt', 'test.txt'):
        (folder / log).write_text(json.dumps(hparams) + '\n' + ''.join(f'{{"epoch": {e}}}\n' for e in epochs))
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.))
    for epoch in epochs:
        commit(checkpoint, str(folder / 'checkpoints'), f'ckpt-{epoch}')
    write_best(checkpoint, str(folder), f'ckpt-{epochs[-1]}')
    (folder / 'epoch_2_sample_0.png').write_bytes(b'png')
    os.makedirs(folder / 'tensorboard')
    return model, hparams


def test_a_new_or_empty_folder_holds_no_run_and_a_run_folder_is_refused_by_name(tmp_path):
    assert run_files(str(tmp_path / 'new')) == [] and run_files(str(tmp_path)) == []
    refuse_existing_run(str(tmp_path))
    make_run(tmp_path / 'run')
    assert run_files(str(tmp_path / 'run')) == ['best', 'checkpoints', 'config.json', 'test.txt', 'train.txt']
    with pytest.raises(InputError) as error:
        refuse_existing_run(str(tmp_path / 'run'), '--save')
    assert f'--save {tmp_path / "run"} holds a run' in str(error.value)
    assert '--resume' in str(error.value) and '--overwrite' in str(error.value)
    with pytest.raises(InputError, match='it must be a new folder, or add --overwrite') as error:
        refuse_existing_run(str(tmp_path / 'run'), resumable=False)
    assert '--resume' not in str(error.value)


def test_overwrite_deletes_the_runs_files_and_nothing_else(tmp_path):
    make_run(tmp_path)
    (tmp_path / 'x.npy').write_bytes(b'old inference')
    (tmp_path / 'notes.md').write_text('mine')
    (tmp_path / 'model_best_loss.ckpt.index').write_bytes(b'an earlier version\'s best')
    assert clear_run(str(tmp_path)) == ['best', 'checkpoints', 'config.json', 'epoch_2_sample_0.png',
                                        'model_best_loss.ckpt.index', 'tensorboard', 'test.txt', 'train.txt', 'x.npy']
    assert sorted(os.listdir(tmp_path)) == ['notes.md']


def test_resume_finds_the_latest_checkpoint_and_a_new_folder_none(tmp_path):
    assert check_resumable(str(tmp_path)) is None
    make_run(tmp_path)
    assert check_resumable(str(tmp_path)) == str(tmp_path / 'checkpoints' / 'ckpt-2')


def remove(path):
    os.remove(path)


def make_folder(path):
    os.remove(path)
    os.mkdir(path)


RESUME_FAULTS = {
    'pointer missing': (lambda run: remove(run / 'checkpoints' / 'checkpoint'), 'checkpoints/checkpoint',
                        'is missing: nothing to continue from'),
    'pointer garbled': (lambda run: (run / 'checkpoints' / 'checkpoint').write_bytes(b'\xff\xfe'),
                        'checkpoints/checkpoint', 'is not UTF-8 text'),
    'pointer names nothing': (lambda run: (run / 'checkpoints' / 'checkpoint').write_text('x'),
                              'checkpoints/checkpoint', 'names no checkpoint'),
    'train.txt missing': (lambda run: remove(run / 'train.txt'), 'train.txt', 'is missing'),
    'train.txt garbled': (lambda run: (run / 'train.txt').write_bytes(b'{"epo\x00\n'), 'train.txt',
                          'is not valid JSON'),
    'train.txt a folder': (lambda run: make_folder(run / 'train.txt'), 'train.txt', 'is a folder'),
    'test.txt a list': (lambda run: (run / 'test.txt').write_text('[]\n'), 'test.txt', 'holds a JSON list'),
    'checkpoint truncated': (lambda run: open(run / 'checkpoints' / 'ckpt-2.data-00000-of-00001', 'r+b').truncate(1),
                             'ckpt-2.data-00000-of-00001', 'truncated'),
}


@pytest.mark.parametrize('fault', list(RESUME_FAULTS))
def test_resume_refuses_a_run_it_cannot_continue_naming_the_file(tmp_path, fault):
    make_run(tmp_path)
    damage, named, message = RESUME_FAULTS[fault]
    damage(tmp_path)
    with pytest.raises(InputError, match=message) as error:
        check_resumable(str(tmp_path))
    assert named in str(error.value)


def test_a_run_without_logs_resumes_within_its_first_epoch(tmp_path):
    make_run(tmp_path, epochs=(0,))
    os.remove(tmp_path / 'train.txt')
    os.remove(tmp_path / 'test.txt')
    assert check_resumable(str(tmp_path)).endswith('ckpt-0')


def test_a_run_stopped_before_it_saved_anything_starts_afresh_and_one_that_saved_is_refused(tmp_path):
    """Killed before its first checkpoint (config.json, TensorBoard, the logs' hyperparameter lines, a checkpoint
    cut off before its index was written): --resume starts afresh.  Any trace of a save without the pointer
    (a checkpoint's index, best/, a logged epoch) is refused: the pointer was lost, not never written."""
    make_run(tmp_path, epochs=(1,))
    for folder in ('best', 'checkpoints'):
        shutil.rmtree(tmp_path / folder)
    for log in ('train.txt', 'test.txt'):
        (tmp_path / log).write_text('{"n_batch_train": 32}\n')
    os.makedirs(tmp_path / 'checkpoints' / 'ckpt-0-step3_temp')
    assert check_resumable(str(tmp_path)) is None
    index, best, log = tmp_path / 'checkpoints' / 'ckpt-0-step3.index', tmp_path / 'best', tmp_path / 'test.txt'
    hparams_line = log.read_text()
    for save, undo in ((lambda: index.write_bytes(b''), lambda: os.remove(index)),
                       (lambda: best.mkdir(), lambda: best.rmdir()),
                       (lambda: log.write_text(hparams_line + '{"epoch": 1}\n'), lambda: log.write_text(hparams_line))):
        save()
        with pytest.raises(InputError, match='checkpoints/checkpoint, which names its latest checkpoint, is missing'):
            check_resumable(str(tmp_path))
        undo()
        assert check_resumable(str(tmp_path)) is None


def test_resume_with_other_flags_names_the_flag_and_its_value_in_the_run(tmp_path):
    model, hparams = make_run(tmp_path)
    flags = {'flow_permutation': '--flow_permutation', 'n_batch_train': '--n_batch_train',
             'n_processes': 'the number of processes'}
    check_same_run(str(tmp_path), model, dict(hparams), flags)
    for key, value, expected in (('flow_permutation', 3, 'made with --flow_permutation 2, not 3'),
                                 ('n_batch_train', 64, 'made with --n_batch_train 32, not 64'),
                                 ('n_processes', 2, 'made with the number of processes 1, not 2')):
        with pytest.raises(InputError, match=expected):
            check_same_run(str(tmp_path), model, dict(hparams, **{key: value}), flags)
    wider = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=32)
    with pytest.raises(InputError, match='a model whose width is 16, these flags give 32'):
        check_same_run(str(tmp_path), wider, hparams, flags)
    lighter = GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=2, width=16, gradient_checkpointing=False)
    check_same_run(str(tmp_path), lighter, hparams, flags)  # memory only: a resumed run may change it


def test_the_lock_admits_one_holder_and_names_it(tmp_path):
    with RunLock(str(tmp_path)) as lock:
        assert lock.held
        pid, host = (tmp_path / LOCK_FILE).read_text().split()
        assert int(pid) == os.getpid()
        with pytest.raises(InputError) as error:
            RunLock(str(tmp_path), '--save').acquire()
        assert f'--save {tmp_path} is in use by another run (pid {os.getpid()} on {host}' in str(error.value)
    assert not (tmp_path / LOCK_FILE).exists()
    RunLock(str(tmp_path)).acquire().release()


HOLD = ('import sys, time\n'
        'from emerging.runs.lock import RunLock\n'
        'RunLock(sys.argv[1]).acquire()\n'
        'print("held", flush=True)\n'
        'time.sleep(600)\n')


def test_the_lock_of_another_process_refuses_and_is_taken_over_when_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path)], cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(InputError, match=f'pid {holder.pid} on '):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # left by the killed process: stale, since the kernel dropped its lock
    lock = RunLock(str(tmp_path)).acquire()
    assert (tmp_path / LOCK_FILE).read_text().split()[0] == str(os.getpid())
    lock.release()
