"""The logit transform.  Its data domain is [0, 1), so the shared contract check (inputs ~ N(0, 1) on the data
side) does not apply; the same checks are made here on data in (0, 1) and on any real latent."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.logit import LogitBijector, LogitTransform
from tests.flows.flow_checks import Eager, assert_bijective_and_finite

SHAPE = [3, 3, 3, 2]


def layer_for(alpha):
    layer = LogitTransform(alpha)
    layer.build([None, *SHAPE[1:]])
    return layer


def data(seed=0, low=0.02, high=0.98):
    return tf.constant(np.random.default_rng(seed).uniform(low, high, SHAPE), tf.float32)


def full_jacobian_log_det(f, x):
    """log|det| of the full Jacobian [N, D, D] of f (float64 slogdet), and the Jacobian."""
    n = x.shape[0]
    flat = tf.reshape(x, [n, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        out = tf.reshape(f(tf.reshape(flat, x.shape)), [n, -1])
    jacobian = tape.batch_jacobian(out, flat).numpy().astype(np.float64)
    return np.linalg.slogdet(jacobian)[1], jacobian


@pytest.mark.parametrize('alpha', [1e-6, 0.05, 0.2])
def test_map_and_log_det_against_the_jacobian(alpha):
    layer = layer_for(alpha)
    x = data()
    z, log_det = layer.forward(x, tf.zeros([SHAPE[0]]))
    s = alpha + (1. - 2. * alpha) * x.numpy().astype(np.float64)
    np.testing.assert_allclose(z.numpy(), np.log(s / (1. - s)), rtol=1e-5, atol=1e-5)
    exact, jacobian = full_jacobian_log_det(lambda t: layer.forward(t, tf.zeros([SHAPE[0]]))[0], x)
    # elementwise: the Jacobian is diagonal and its log-det the sum of the log derivatives
    off_diagonal = jacobian - np.einsum('nii->ni', jacobian)[:, :, None] * np.eye(jacobian.shape[1])
    np.testing.assert_array_equal(off_diagonal, 0.)
    np.testing.assert_allclose(log_det.numpy(), exact, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_det.numpy(), np.sum(np.log((1. - 2. * alpha) / (s * (1. - s))), axis=(1, 2, 3)),
                               rtol=1e-5)
    # the latent -> data direction: its log-det against its own Jacobian
    bijector = layer.bijector
    exact_forward, _ = full_jacobian_log_det(bijector.forward, z)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(z, event_ndims=3).numpy(), exact_forward,
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('alpha', [1e-6, 0.05])
def test_round_trips(alpha):
    layer = layer_for(alpha)
    x = data()
    z, log_det = layer.forward(x, tf.zeros([SHAPE[0]]))
    x_back, log_det_back = layer.reverse(z, log_det)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)
    np.testing.assert_allclose(log_det_back.numpy(), 0., atol=1e-3)
    # TFP direction, fresh tensors so that TFP's cache does not answer
    bijector = layer.bijector
    np.testing.assert_allclose(bijector.forward(tf.identity(z)).numpy(), x.numpy(), atol=1e-5)
    latent = tf.constant(np.random.default_rng(1).normal(0., 2., SHAPE), tf.float32)
    data_point = bijector.forward(latent)
    assert np.all((data_point.numpy() >= -alpha / (1. - 2. * alpha) - 1e-6)
                  & (data_point.numpy() <= 1. + alpha / (1. - 2. * alpha) + 1e-6))
    np.testing.assert_allclose(bijector.inverse(tf.identity(data_point)).numpy(), latent.numpy(), atol=1e-3)
    assert_bijective_and_finite(layer.make_bijector(), latent.numpy(), x.numpy(), event_ndims=3, atol=1e-3,
                                rtol=1e-4, sess=Eager)


@pytest.mark.parametrize('alpha', [1e-6, 0.05])
def test_forward_log_det_is_minus_the_inverse_log_det_at_the_image(alpha):
    bijector = layer_for(alpha).bijector
    latent = tf.constant(np.random.default_rng(2).normal(0., 2., SHAPE), tf.float32)
    image = tf.identity(bijector.forward(latent))  # a new tensor: recomputed, not read from TFP's cache
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(latent, event_ndims=3).numpy(),
                               -bijector.inverse_log_det_jacobian(image, event_ndims=3).numpy(), rtol=1e-4, atol=1e-3)
    x = data(3)
    z, log_det = bijector.inverse_and_log_det(x)
    _, forward_log_det = bijector.forward_and_log_det(tf.identity(z))
    np.testing.assert_allclose(forward_log_det.numpy(), -log_det.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('alpha', [1e-6, 0.05])
def test_finite_on_the_whole_dequantised_range(alpha):
    """Dequantised pixels lie in [0, 1): both ends give finite latents and log-dets."""
    layer = layer_for(alpha)
    x = tf.constant(np.resize([0., 0.5 / 256, 1. - 1. / 512, 255.999 / 256], SHAPE), tf.float32)
    z, log_det = layer.forward(x, tf.zeros([SHAPE[0]]))
    assert np.all(np.isfinite(z.numpy())) and np.all(np.isfinite(log_det.numpy()))
    with tf.GradientTape() as tape:
        tape.watch(x)
        z, log_det = layer.forward(x, tf.zeros([SHAPE[0]]))
        loss = tf.reduce_sum(tf.square(z)) - tf.reduce_sum(log_det)
    assert np.all(np.isfinite(tape.gradient(loss, x).numpy()))


def test_no_weights_and_shape_checked():
    layer = layer_for(0.05)
    assert layer.trainable_weights == [] and layer.parameter_count() == 0
    with pytest.raises(ValueError):
        LogitTransform(0.05).build([None, 3, 3])


@pytest.mark.parametrize('alpha', [-0.1, -1e-9, 0.5, 0.7])
def test_bad_alpha_is_an_error(alpha):
    with pytest.raises(ValueError, match='alpha'):
        LogitTransform(alpha)
    with pytest.raises(ValueError, match='alpha'):
        LogitBijector(alpha)
