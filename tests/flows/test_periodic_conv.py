import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.periodic_conv import PeriodicConv
from tests.flows.flow_checks import check_flow_layer, perturb


@pytest.mark.parametrize('shape', [(4, 4, 3), (3, 5, 2), (2, 2, 4), (1, 2, 2)])
def test_periodic_contract(shape):
    rng = np.random.default_rng(0)
    layer = PeriodicConv(rng=rng)
    layer.build([None, *shape])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, *shape], rng)


def test_forward_is_circular_convolution():
    rng = np.random.default_rng(1)
    layer = PeriodicConv(rng=rng)
    layer.build([None, 4, 5, 2])
    x = rng.normal(size=[1, 4, 5, 2])
    z, _ = layer.forward(tf.constant(x, tf.float32), tf.zeros([1]))
    w = layer.w.numpy()
    expected = np.zeros_like(x)
    for i in range(4):
        for j in range(5):
            for a in range(3):
                for b in range(3):
                    expected[0, i, j] += x[0, (i + a - 1) % 4, (j + b - 1) % 5] @ w[a, b]
    np.testing.assert_allclose(z.numpy(), expected, atol=1e-5)
