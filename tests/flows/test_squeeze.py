import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.actnorm import ActNorm
from emerging.flows.coupling import Coupling
from emerging.flows.squeeze import Squeezed, squeeze2d, unsqueeze2d
from tests.flows.flow_checks import check_flow_layer, perturb


def test_squeeze_layout_and_inverse():
    x = tf.reshape(tf.range(2 * 4 * 6 * 3, dtype=tf.float32), [2, 4, 6, 3])
    z = squeeze2d(x)
    assert z.shape == (2, 2, 3, 12)
    # channel 4c + 2a + b of the output holds pixel (2i + a, 2j + b) of channel c
    for c, a, b in [(0, 0, 0), (1, 0, 1), (2, 1, 0), (2, 1, 1)]:
        np.testing.assert_array_equal(z[:, :, :, 4 * c + 2 * a + b].numpy(), x[:, a::2, b::2, c].numpy())
    np.testing.assert_array_equal(unsqueeze2d(z).numpy(), x.numpy())


def test_squeezed_contract():
    rng = np.random.default_rng(0)
    layer = Squeezed(Coupling(8, 1, rng=rng))
    layer.build([None, 4, 6, 2])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, 4, 6, 2], rng)


def test_squeezed_initializes_its_inner_layer_on_the_squeezed_input():
    layer = Squeezed(ActNorm())
    layer.build([None, 4, 4, 3])
    x = tf.random.normal([16, 4, 4, 3], mean=2., stddev=3.)
    z = layer.initialize(x)
    assert z.shape == x.shape
    squeezed = squeeze2d(z).numpy()
    np.testing.assert_allclose(squeezed.mean(axis=(0, 1, 2)), 0., atol=1e-4)
    np.testing.assert_allclose(squeezed.std(axis=(0, 1, 2)), 1., atol=1e-3)


def test_odd_sizes_are_rejected():
    with pytest.raises(ValueError, match='even to squeeze'):
        Squeezed(ActNorm()).build([None, 3, 4, 2])
