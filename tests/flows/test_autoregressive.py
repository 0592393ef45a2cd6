import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.autoregressive import Autoregressive, linear_ar_mask
from tests.flows.flow_checks import check_flow_layer, perturb


@pytest.mark.parametrize('upper', [False, True])
def test_autoregressive_contract(upper):
    rng = np.random.default_rng(0)
    layer = Autoregressive(upper=upper, depth=8, rng=rng)
    layer.build([None, 4, 3, 4])
    perturb(layer, rng, 0.2)
    check_flow_layer(layer, [2, 4, 3, 4], rng)


def test_output_depends_only_on_later_positions():
    rng = np.random.default_rng(1)
    layer = Autoregressive(depth=8, rng=rng)
    layer.build([None, 4, 4, 2])
    perturb(layer, rng, 0.3)
    x = tf.constant(rng.normal(size=[1, 4, 4, 2]), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z, _ = layer.forward(x, tf.zeros([1]))
        target = z[0, 1, 1, 1]
    grad = tape.gradient(target, x).numpy()[0]
    # earlier raster positions and later channels of the same pixel do not matter
    assert np.all(grad[0] == 0) and np.all(grad[1, 0] == 0)
    assert grad[1, 1, 0] != 0 and grad[1, 1, 1] != 0
    assert np.any(grad[2:] != 0)


def test_mask_matches_original_grouping():
    np.testing.assert_array_equal(linear_ar_mask(2, 4, zero_diagonal=True),
                                  [[0, 0, 1, 1], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match='divide one another'):
        linear_ar_mask(5, 96)
