import numpy as np
import tensorflow as tf

from emerging.flows.permutations import Reverse, Shuffle
from tests.flows.flow_checks import check_flow_layer


def test_reverse_contract():
    layer = Reverse()
    layer.build([None, 3, 3, 4])
    check_flow_layer(layer, [2, 3, 3, 4], np.random.default_rng(0))
    x = tf.reshape(tf.range(4.), [1, 1, 1, 4])
    np.testing.assert_array_equal(layer.forward(x, tf.zeros([1]))[0].numpy().ravel(), [3, 2, 1, 0])


def test_shuffle_contract_and_saved_permutation(tmp_path):
    layer = Shuffle(rng=np.random.default_rng(3))
    layer.build([None, 3, 3, 6])
    check_flow_layer(layer, [2, 3, 3, 6], np.random.default_rng(0))
    perm = layer.indices.numpy()
    assert sorted(perm) == list(range(6))
    np.testing.assert_array_equal(perm[layer.indices_inverse.numpy()], np.arange(6))
    x = tf.reshape(tf.range(6.), [1, 1, 1, 6])
    np.testing.assert_array_equal(layer.forward(x, tf.zeros([1]))[0].numpy().ravel(), perm)
    # the permutation travels with a checkpoint
    path = tf.train.Checkpoint(layer=layer).write(str(tmp_path / 'ckpt'))
    other = Shuffle(rng=np.random.default_rng(99))
    other.build([None, 3, 3, 6])
    tf.train.Checkpoint(layer=other).read(path).assert_consumed()
    np.testing.assert_array_equal(other.indices.numpy(), perm)
