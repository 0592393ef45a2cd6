"""The coupling network's layers against the original's formulation written out
literally (pad with the border channel, VALID convolution, then actnorm or
(+ b) * exp(3 logs)): same outputs and same gradients for the weights."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.nets.conv import Conv2dActnorm, Conv2dZeros, edge_conv, even_then_odd


def reference_conv(x, kernel):
    """The original's edge-bias convolution, literally: pad, append the border channel, VALID."""
    pad = kernel.shape[0] // 2
    if pad:
        paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
        border = tf.pad(tf.zeros_like(x[..., :1]), paddings, constant_values=1.)
        x = tf.concat([tf.pad(x, paddings), border], axis=-1)
    return tf.nn.conv2d(x, kernel, strides=1, padding='VALID')


def randomize(layer, rng, scale=0.3):
    for v in layer.trainable_variables:
        v.assign(rng.normal(0., scale, v.shape).astype(np.float32))


@pytest.mark.parametrize('kernel_size', [1, 3])
@pytest.mark.parametrize('relu', [False, True])
def test_edge_conv_matches_padded_convolution(kernel_size, relu):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=[2, 5, 4, 3]), tf.float32)
    c_in = 3 + (kernel_size > 1)
    kernel = tf.constant(rng.normal(size=[kernel_size, kernel_size, c_in, 6]), tf.float32)
    scale, bias = tf.constant(rng.uniform(.5, 2., 6), tf.float32), tf.constant(rng.normal(size=6), tf.float32)
    expected = (reference_conv(x, kernel) + bias) * scale
    expected = tf.nn.relu(expected) if relu else expected
    np.testing.assert_allclose(edge_conv(x, kernel * scale, bias * scale, relu).numpy(), expected.numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(edge_conv(x, kernel).numpy(), reference_conv(x, kernel).numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kernel_size', [1, 3])
def test_conv2d_actnorm_is_conv_then_actnorm_with_same_gradients(kernel_size):
    rng = np.random.default_rng(1)
    layer = Conv2dActnorm(5, kernel_size, rng=rng)
    layer.build([None, 4, 4, 2])
    randomize(layer, rng)
    x = tf.constant(rng.normal(size=[3, 4, 4, 2]), tf.float32)

    def reference():
        actnorm = layer.actnorm
        return (reference_conv(x, layer.w) + actnorm.bias) * tf.exp(actnorm.logs * actnorm.logscale_factor)

    variables = layer.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, expected = layer(x), reference()
        weights = tf.constant(rng.normal(size=ours.shape), tf.float32)
        loss_ours, loss_expected = tf.reduce_sum(ours * weights), tf.reduce_sum(expected * weights)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    for g_ours, g_expected in zip(tape.gradient(loss_ours, variables + [x]),
                                  tape.gradient(loss_expected, variables + [x])):
        np.testing.assert_allclose(g_ours.numpy(), g_expected.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_actnorm_data_dependent_init_and_relu():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=[8, 4, 4, 3]), tf.float32)
    layer = Conv2dActnorm(6, 3, rng=rng)
    layer.build(x.shape)
    out = layer.initialize(x).numpy()
    np.testing.assert_allclose(layer(x).numpy(), out, atol=1e-6)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0., atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1., atol=1e-4)
    with_relu = Conv2dActnorm(6, 3, rng=rng, relu=True)
    with_relu.build(x.shape)
    for source, target in zip(layer.weights, with_relu.weights):
        target.assign(source)
    np.testing.assert_allclose(with_relu(x).numpy(), np.maximum(layer(x).numpy(), 0.), atol=1e-6)


@pytest.mark.parametrize('kernel_size', [1, 3])
def test_conv2d_zeros_output_order_and_gradients(kernel_size):
    rng = np.random.default_rng(3)
    plain = Conv2dZeros(6, kernel_size)
    ordered = Conv2dZeros(6, kernel_size, output_order=even_then_odd(6))
    for layer in (plain, ordered):
        layer.build([None, 4, 4, 3])
    randomize(plain, rng)
    for source, target in zip(plain.weights, ordered.weights):
        target.assign(source)
    x = tf.constant(rng.normal(size=[2, 4, 4, 3]), tf.float32)
    expected = (reference_conv(x, plain.w) + plain.b) * tf.exp(plain.logs * 3.)
    np.testing.assert_allclose(plain(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ordered(x).numpy(),
                               np.concatenate([expected[..., 0::2], expected[..., 1::2]], -1), rtol=1e-5, atol=1e-5)
    # the weights keep the original's channel order: a loss on h[..., 0::2] gives the same gradients
    with tf.GradientTape(persistent=True) as tape:
        loss_plain = tf.reduce_sum(tf.square(plain(x)[..., 0::2]))
        loss_ordered = tf.reduce_sum(tf.square(ordered(x)[..., :3]))
    for g_plain, g_ordered in zip(tape.gradient(loss_plain, plain.trainable_variables),
                                  tape.gradient(loss_ordered, ordered.trainable_variables)):
        np.testing.assert_allclose(g_ordered.numpy(), g_plain.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kernel_size', [1, 3])
def test_conv2d_zeros_of_zeros_is_the_output_for_a_zero_input(kernel_size):
    rng = np.random.default_rng(4)
    layer = Conv2dZeros(4, kernel_size)
    layer.build([None, 3, 5, 6])
    randomize(layer, rng)
    np.testing.assert_allclose(layer.of_zeros(2, 3, 5).numpy(), layer(tf.zeros([2, 3, 5, 6])).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_output_order_must_be_a_permutation():
    with pytest.raises(ValueError, match='permutation of range'):
        Conv2dZeros(4, output_order=[0, 1, 1, 2])
