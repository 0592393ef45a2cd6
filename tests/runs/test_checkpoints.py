"""Checkpoint folders with one commit point (a kill or a full disk before it leaves the old checkpoints, and its
leftovers go with the next commit), and checkpoints refused by name when missing, truncated, damaged (a manifest
naming files outside its checkpoint too) or of another model."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from emerging.errors import InputError
from emerging.runs.checkpoints import MANIFEST, DiskFull, check_matches, commit, committed, latest, verify


def weights(seed=0, shape=(50, 20)):
    rng = np.random.default_rng(seed)
    return tf.train.Checkpoint(w=tf.Variable(rng.normal(size=shape).astype(np.float32)), step=tf.Variable(seed))


def test_commit_names_the_latest_keeps_the_last_two_and_tensorflow_reads_the_pointer(tmp_path):
    folder = str(tmp_path / 'checkpoints')
    dropped = []
    for epoch in (1, 2, 3):
        commit(weights(epoch), folder, f'ckpt-{epoch}', keep=2, on_delete=dropped.append)
    assert committed(folder) == ['ckpt-2', 'ckpt-3'] and dropped == ['ckpt-1']
    assert latest(folder) == os.path.join(folder, 'ckpt-3') == tf.train.latest_checkpoint(folder)
    assert sorted(os.listdir(folder)) == ['checkpoint'] + [f'ckpt-{e}{s}' for e in (2, 3) for s in (
        '.data-00000-of-00001', '.index', MANIFEST)]
    with open(os.path.join(folder, 'ckpt-3' + MANIFEST)) as f:
        manifest = json.load(f)
    assert set(manifest) == {'ckpt-3.index', 'ckpt-3.data-00000-of-00001'}
    assert manifest['ckpt-3.index']['bytes'] == os.path.getsize(os.path.join(folder, 'ckpt-3.index'))
    with pytest.raises(ValueError, match='committed already'):
        commit(weights(4), folder, 'ckpt-3')


def test_a_write_cut_off_before_the_commit_leaves_the_old_checkpoint_and_is_cleaned_up(tmp_path, monkeypatch):
    folder = str(tmp_path)
    commit(weights(1), folder, 'ckpt-1')
    checkpoint = weights(2)
    write = checkpoint.write

    def killed(prefix):
        write(prefix)
        raise KeyboardInterrupt('killed between the write and the pointer')

    monkeypatch.setattr(checkpoint, 'write', killed)
    with pytest.raises(KeyboardInterrupt):
        commit(checkpoint, folder, 'ckpt-2')
    assert committed(folder) == ['ckpt-1']
    verify(latest(folder))
    os.makedirs(os.path.join(folder, 'ckpt-2_temp'))  # what TensorFlow's own write leaves when cut off
    open(os.path.join(folder, 'checkpoint.tmp123'), 'w').close()
    commit(weights(3), folder, 'ckpt-3')
    assert sorted({name.split('.')[0] for name in os.listdir(folder)}) == ['checkpoint', 'ckpt-1', 'ckpt-3']


def damage(prefix, how):
    data = prefix + '.data-00000-of-00001'
    raw = bytearray(open(data, 'rb').read())
    if how == 'truncated':
        raw = raw[:len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0xFF
    open(data, 'wb').write(bytes(raw))
    return data


@pytest.mark.parametrize('how', ['truncated', 'flipped'])
@pytest.mark.parametrize('with_manifest', [True, False])
def test_a_damaged_data_file_is_refused_by_name(tmp_path, how, with_manifest):
    prefix = commit(weights(), str(tmp_path), 'ckpt-1')
    if not with_manifest:  # a checkpoint of an earlier version: TensorFlow's checksums find it
        os.remove(prefix + MANIFEST)
    data = damage(prefix, how)
    expected = data if with_manifest else prefix
    with pytest.raises(InputError, match=expected):
        verify(prefix)


def test_missing_files_and_a_damaged_manifest_or_pointer_are_named(tmp_path):
    prefix = commit(weights(), str(tmp_path), 'ckpt-1')
    with pytest.raises(InputError, match='no checkpoint at'):
        verify(str(tmp_path / 'ckpt-9'))
    with open(prefix + MANIFEST, 'w') as f:
        f.write('{"ckpt-1.index": 3')
    with pytest.raises(InputError, match=f'{prefix + MANIFEST} is damaged'):
        verify(prefix)
    os.remove(prefix + MANIFEST)
    os.remove(prefix + '.data-00000-of-00001')
    with pytest.raises(InputError, match='cannot read checkpoint'):
        verify(prefix)
    with open(tmp_path / 'checkpoint', 'w') as f:
        f.write('nothing useful\n')
    with pytest.raises(InputError, match='names no checkpoint'):
        latest(str(tmp_path))


def test_an_index_of_another_checkpoint_beside_this_data_is_refused(tmp_path):
    mine = commit(weights(1), str(tmp_path / 'a'), 'ckpt-1')
    other = commit(weights(2, shape=(20, 50)), str(tmp_path / 'b'), 'ckpt-1')
    os.replace(other + '.index', mine + '.index')
    with pytest.raises(InputError, match=mine + '.index'):
        verify(mine)


@pytest.mark.parametrize('listed', ['/dev/zero', '../elsewhere.index', 'ckpt-9.index'])
def test_a_manifest_naming_a_file_outside_its_checkpoint_is_refused_unopened(tmp_path, listed):
    prefix = commit(weights(1), str(tmp_path), 'ckpt-1')
    entry = {'bytes': 0, 'sha256': ''}
    (tmp_path / ('ckpt-1' + MANIFEST)).write_text(json.dumps({'ckpt-1.index': entry, listed: entry}))
    with pytest.raises(InputError, match='not a file of checkpoint ckpt-1'):
        verify(prefix)


@pytest.mark.parametrize('error', [
    OSError(28, 'No space left on device'),
    tf.errors.ResourceExhaustedError(None, None, 'x.tempstate1; No space left on device')])
def test_a_full_disk_during_a_commit_names_the_checkpoint_and_keeps_the_last_one(tmp_path, monkeypatch, error):
    folder = str(tmp_path)
    commit(weights(1), folder, 'ckpt-1')
    checkpoint = weights(2)

    def full(prefix, options=None):
        raise error

    monkeypatch.setattr(checkpoint, 'write', full)
    with pytest.raises(DiskFull, match=f'no space left on device writing {tmp_path / "ckpt-2"}'):
        commit(checkpoint, folder, 'ckpt-2')
    assert committed(folder) == ['ckpt-1']
    verify(latest(folder))


def test_out_of_memory_is_not_a_full_disk(tmp_path, monkeypatch):
    checkpoint = weights(2)

    def out_of_memory(prefix, options=None):
        raise tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor')

    monkeypatch.setattr(checkpoint, 'write', out_of_memory)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        commit(checkpoint, str(tmp_path), 'ckpt-2')


def test_check_matches_lists_every_difference(tmp_path):
    stored = tf.train.Checkpoint(model=tf.Module())
    stored.model.a = tf.Variable(tf.zeros([2, 3]))
    stored.model.b = tf.Variable(tf.zeros([4]))
    prefix = commit(stored, str(tmp_path), 'ckpt-1')
    reader = tf.train.Checkpoint(model=tf.Module())
    reader.model.a = tf.Variable(tf.zeros([3, 3]))
    reader.model.c = tf.Variable(tf.zeros([1]))
    with pytest.raises(InputError) as error:
        check_matches(prefix, reader, ['model'], 'the test model')
    message = str(error.value)
    assert 'does not fit the test model (3 differences)' in message
    assert 'model/a/.ATTRIBUTES/VARIABLE_VALUE: shape [2, 3] in the checkpoint, [3, 3] in the model' in message
    assert 'model/c/.ATTRIBUTES/VARIABLE_VALUE: missing from the checkpoint' in message
    assert 'model/b/.ATTRIBUTES/VARIABLE_VALUE: in the checkpoint, not in the model' in message
    same = tf.train.Checkpoint(model=tf.Module())
    same.model.a, same.model.b = tf.Variable(tf.ones([2, 3])), tf.Variable(tf.ones([4]))
    check_matches(prefix, same, ['model', 'optimizer'], 'the test model')  # no optimizer stored: not compared
