"""CheckpointState on a two-weight stand-in model: epoch checkpoints with their input positions,
the best checkpoint, restore errors, resume (a damaged input position refused by name), a full disk, and the
Polyak swap."""
import os

import numpy as np
import pytest
import tensorflow as tf

from emerging.errors import InputError
from emerging.runs.checkpoints import DiskFull, committed
from emerging.runs.folder import best_checkpoint
from emerging.training.optim import Optimizer
from emerging.training.state import CheckpointState, read_input_position
from tests.helpers import StubDistributed


class TwoWeights(tf.Module):
    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = tf.Variable(rng.normal(size=[3, 2]).astype(np.float32))
        self.b = tf.Variable(rng.normal(size=[2]).astype(np.float32))


def make_state(logdir, rank=0, seed=0):
    model = TwoWeights(seed)
    optimizer = Optimizer(model.trainable_variables, beta2=0.9)
    train_iter, test_iter = iter(tf.data.Dataset.range(1000)), iter(tf.data.Dataset.range(7).repeat())
    state = CheckpointState(model, optimizer, str(logdir), StubDistributed(rank, 2),
                            {'train': train_iter, 'test': test_iter})
    return state, train_iter


def train(state, train_iter, epochs):
    """Stand-in epochs: one optimiser step, three batches drawn, counters moved, then the save."""
    for epoch in epochs:
        state.optimizer.apply([tf.ones_like(v) for v in state.model.trainable_variables], 0.01)
        for _ in range(3):
            next(train_iter)
        state.count(64, 32)
        state.epoch.assign(epoch)
        state.save()


def test_epoch_checkpoints_pair_with_input_positions_and_keep_two(tmp_path):
    chief, chief_iter = make_state(tmp_path)
    other, other_iter = make_state(tmp_path, rank=1)
    train(chief, chief_iter, [1, 2, 3, 4])
    train(other, other_iter, [1, 2, 3, 4])
    files = sorted(os.listdir(tmp_path / 'checkpoints'))
    assert sorted({name.split('.')[0] for name in files}) == [
        'checkpoint', 'ckpt-3', 'ckpt-4', 'input-rank0-3', 'input-rank0-4', 'input-rank1-3', 'input-rank1-4']
    assert tf.train.latest_checkpoint(str(tmp_path / 'checkpoints')).endswith('ckpt-4')


def test_a_non_chief_saves_only_its_input_position(tmp_path):
    state, it = make_state(tmp_path, rank=1)
    train(state, it, [1])
    assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['input-rank1-1.data-00000-of-00001',
                                                            'input-rank1-1.index', 'input-rank1-1.manifest.json']


def test_resume_restores_weights_counters_and_the_data_position(tmp_path):
    state, it = make_state(tmp_path)
    assert state.resume() is None
    train(state, it, [1, 2])
    expected = [next(it).numpy() for _ in range(3)]
    fresh, fresh_iter = make_state(tmp_path, seed=1)
    assert fresh.resume() == 'ckpt-2'
    assert fresh.counters() == {'n_processed': 128, 'n_images': 64} and int(fresh.epoch.numpy()) == 2
    for mine, theirs in zip([*fresh.model.variables, *fresh.optimizer.variables],
                            [*state.model.variables, *state.optimizer.variables]):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert [next(fresh_iter).numpy() for _ in range(3)] == expected == [6, 7, 8]


def test_resume_refuses_a_run_without_a_checkpoint_pointer(tmp_path):
    state, it = make_state(tmp_path)
    train(state, it, [1])
    (tmp_path / 'train.txt').write_text('{}\n{"epoch": 1}\n')
    os.remove(tmp_path / 'checkpoints' / 'checkpoint')
    fresh, _ = make_state(tmp_path, seed=1)
    with pytest.raises(InputError, match='checkpoints/checkpoint, which names its latest checkpoint, is missing'):
        fresh.resume()


def test_resume_without_an_input_position_says_so(tmp_path, capsys):
    state, it = make_state(tmp_path)
    train(state, it, [1])
    for name in os.listdir(tmp_path / 'checkpoints'):
        if name.startswith('input-'):
            os.remove(tmp_path / 'checkpoints' / name)
    fresh, fresh_iter = make_state(tmp_path, seed=1)
    assert fresh.resume() == 'ckpt-1'
    assert 'no saved input position beside ckpt-1' in capsys.readouterr().out
    assert next(fresh_iter).numpy() == 0


@pytest.mark.parametrize('damage, message', [
    (lambda path: open(path + '.data-00000-of-00001', 'r+b').truncate(3), 'is truncated or damaged'),
    (lambda path: os.remove(path + '.index'), 'does not exist'),
    (lambda path: open(path + '.manifest.json', 'w').write('{"x": '), 'manifest.json is damaged'),
])
def test_resume_refuses_a_damaged_input_position_by_name(tmp_path, damage, message):
    state, it = make_state(tmp_path)
    train(state, it, [1])
    path = state.input_state_path('ckpt-1')
    damage(path)
    fresh, _ = make_state(tmp_path, seed=1)
    with pytest.raises(InputError, match=message) as raised:
        fresh.resume()
    assert 'input-rank0-1' in str(raised.value)


def test_an_input_position_of_other_streams_is_refused_by_name(tmp_path):
    state, it = make_state(tmp_path)
    train(state, it, [1])
    other = tf.train.Checkpoint(train=iter(tf.data.Dataset.range(1000).batch(4)))
    with pytest.raises(InputError, match="input position .*input-rank0-1 does not fit"):
        read_input_position(other, state.input_state_path('ckpt-1'))


def test_a_full_disk_while_writing_the_input_position_names_it_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    state, it = make_state(tmp_path)
    train(state, it, [1])

    def full(path, options=None):
        raise tf.errors.ResourceExhaustedError(None, None, f'{path}.tempstate123; No space left on device')

    monkeypatch.setattr(state.inputs, 'write', full)
    with pytest.raises(DiskFull) as raised:
        train(state, it, [2])
    assert raised.value.path == state.input_state_path('ckpt-2')
    assert committed(str(tmp_path / 'checkpoints')) == ['ckpt-1']


def test_best_checkpoint_only_on_improvement_and_committed_at_one_point(tmp_path, monkeypatch):
    state, _ = make_state(tmp_path)
    assert state.save_if_best(5., epoch=1) and not state.save_if_best(5.5, epoch=2)
    assert sorted(os.listdir(tmp_path / 'best')) == ['checkpoint', 'ckpt-1.data-00000-of-00001', 'ckpt-1.index',
                                                     'ckpt-1.manifest.json']
    best = best_checkpoint(str(tmp_path))
    assert best.endswith('ckpt-1')
    assert tf.train.load_checkpoint(best).get_tensor('test_loss_best/.ATTRIBUTES/VARIABLE_VALUE') == 5.
    write = state.checkpoint.write

    def killed(prefix):
        write(prefix)
        raise KeyboardInterrupt('killed after writing, before the commit')

    monkeypatch.setattr(state.checkpoint, 'write', killed)
    with pytest.raises(KeyboardInterrupt):
        state.save_if_best(4., epoch=3)
    assert best_checkpoint(str(tmp_path)) == best  # the old best is still the best, and complete
    assert tf.train.load_checkpoint(best).get_tensor('test_loss_best/.ATTRIBUTES/VARIABLE_VALUE') == 5.
    monkeypatch.undo()
    assert state.save_if_best(3., epoch=4)
    best = best_checkpoint(str(tmp_path))
    assert best.endswith('ckpt-4') and tf.train.load_checkpoint(best).get_tensor(
        'test_loss_best/.ATTRIBUTES/VARIABLE_VALUE') == 3.
    # the cut-off write of epoch 3 and the superseded epoch 1 are gone
    assert sorted(os.listdir(tmp_path / 'best')) == ['checkpoint', 'ckpt-4.data-00000-of-00001', 'ckpt-4.index',
                                                     'ckpt-4.manifest.json']


def test_restore_reads_weights_and_names_an_unreadable_path(tmp_path):
    state, _ = make_state(tmp_path)
    prefix = state.save_best(1)
    other, _ = make_state(tmp_path, seed=1)
    other.restore(prefix)
    np.testing.assert_array_equal(other.model.w.numpy(), state.model.w.numpy())
    with pytest.raises(InputError, match=r"no checkpoint at '.*nothing\.ckpt'"):
        other.restore(str(tmp_path / 'nothing.ckpt'))


def test_polyak_weights_swap_in_and_back(tmp_path):
    state, it = make_state(tmp_path)
    train(state, it, [1, 2, 3])
    weights = [v.numpy() for v in state.model.trainable_variables]
    averages = [v.numpy() for v in state.optimizer.polyak_values()]
    assert not np.allclose(weights[0], averages[0])
    with state.polyak_weights():
        for v, average in zip(state.model.trainable_variables, averages):
            np.testing.assert_array_equal(v.numpy(), average)
    with pytest.raises(RuntimeError):
        with state.polyak_weights():
            raise RuntimeError('evaluation failed')
    with state.polyak_weights(enabled=False):
        for v, weight in zip(state.model.trainable_variables, weights):
            np.testing.assert_array_equal(v.numpy(), weight)
    for v, weight in zip(state.model.trainable_variables, weights):
        np.testing.assert_array_equal(v.numpy(), weight)
