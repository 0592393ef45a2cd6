import numpy as np
import tensorflow as tf

from emerging.flows.actnorm import ActNorm
from tests.flows.flow_checks import check_flow_layer, perturb


def test_actnorm_contract():
    rng = np.random.default_rng(0)
    layer = ActNorm()
    layer.build([None, 4, 4, 4])
    perturb(layer, rng, 0.3)
    check_flow_layer(layer, [2, 4, 4, 4], rng)


def test_data_dependent_init_normalises_and_only_initialize_initialises():
    rng = np.random.default_rng(1)
    layer = ActNorm()
    layer.build([None, 5, 5, 3])
    x = tf.constant(rng.normal(3., 4., size=[64, 5, 5, 3]), tf.float32)
    z = layer.initialize(x)
    np.testing.assert_allclose(layer.forward(x, tf.zeros([64]))[0].numpy(), z.numpy(), atol=1e-6)
    np.testing.assert_allclose(tf.reduce_mean(z, axis=[0, 1, 2]).numpy(), 0., atol=1e-4)
    np.testing.assert_allclose(tf.math.reduce_std(z, axis=[0, 1, 2]).numpy(), 1., atol=1e-3)
    # logs is stored divided by the logscale factor 3
    expected = -np.log(np.std(x.numpy(), axis=(0, 1, 2)) + 1e-6)[None, None, None]
    np.testing.assert_allclose(layer.logs.numpy() * 3., expected, rtol=1e-3)
    before = layer.bias.numpy().copy()
    layer.forward(x * 10., tf.zeros([64]))  # only `initialize` initialises
    np.testing.assert_array_equal(layer.bias.numpy(), before)


def test_actnorm_log_det_is_hw_sum_logs():
    layer = ActNorm()
    layer.build([None, 3, 5, 2])
    layer.logs.assign(tf.constant([[[[0.1, -0.2]]]]))
    _, log_det = layer.forward(tf.ones([1, 3, 5, 2]), tf.zeros([1]))
    np.testing.assert_allclose(log_det.numpy(), [15 * 3 * (0.1 - 0.2)], rtol=1e-5)


def test_per_element_actnorm_with_a_floor_on_the_initial_scale():
    """The Residual Flow variants: one shift and scale per position and channel, log-det sum f * logs,
    initial logs = -log(max(std, min_std)) / f."""
    rng = np.random.default_rng(2)
    layer = ActNorm(1., per_element=True, min_std=0.5)
    layer.build([None, 2, 3, 2])
    assert layer.bias.shape == [1, 2, 3, 2]
    scales = np.array([0.1, 3.] * 6).reshape(1, 2, 3, 2)
    x = tf.constant(rng.normal(1., 1., size=[256, 2, 3, 2]) * scales, tf.float32)
    z = layer.initialize(x)
    std = np.std(x.numpy(), axis=0, keepdims=True)
    np.testing.assert_allclose(layer.logs.numpy(), -np.log(np.maximum(std, 0.5)), rtol=1e-4)
    np.testing.assert_allclose(tf.reduce_mean(z, axis=0).numpy(), 0., atol=1e-4)
    _, log_det = layer.forward(x[:2], tf.zeros([2]))
    np.testing.assert_allclose(log_det.numpy(), layer.logs.numpy().sum(), rtol=1e-5)
    perturb(layer, rng, 0.3)
    check_flow_layer(layer, [2, 2, 3, 2], rng)
