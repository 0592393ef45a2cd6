"""The logit transform: its domain is [0, 1), so the shared check (inputs ~ N(0, 1)) is replaced by the same
checks on inputs in (0, 1) and, from the latent side, on any real z."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.logit import LogitTransform


@pytest.mark.parametrize('alpha', [1e-6, 0.05])
def test_logit_on_the_unit_interval(alpha):
    layer = LogitTransform(alpha)
    layer.build([None, 3, 3, 2])
    x = tf.constant(np.random.default_rng(0).uniform(0.02, 0.98, [4, 3, 3, 2]), tf.float32)
    z, log_det = layer.forward(x, tf.zeros([4]))
    s = alpha + (1. - 2. * alpha) * x.numpy()
    np.testing.assert_allclose(z.numpy(), np.log(s / (1. - s)), rtol=1e-5, atol=1e-5)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z_again = layer.forward(x, tf.zeros([4]))[0]
    derivative = tape.gradient(z_again, x).numpy()  # an elementwise map: the Jacobian is diagonal
    np.testing.assert_allclose(log_det.numpy(), np.log(derivative).reshape(4, -1).sum(1), rtol=1e-4)
    x_back, log_det_back = layer.reverse(z, log_det)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)
    np.testing.assert_allclose(log_det_back.numpy(), 0., atol=1e-3)
    np.testing.assert_allclose(layer.bijector.forward(z).numpy(), x.numpy(), atol=1e-5)
    np.testing.assert_allclose(layer.bijector.inverse_log_det_jacobian(x, event_ndims=3).numpy(), log_det.numpy(),
                               rtol=1e-5)


def test_logit_from_the_latent_side():
    layer = LogitTransform(0.05)
    layer.build([None, 3, 3, 2])
    z = tf.constant(np.random.default_rng(1).normal(size=[3, 3, 3, 2]), tf.float32)
    x = layer.bijector.forward(z)
    assert np.all((x.numpy() > -0.06) & (x.numpy() < 1.06))
    np.testing.assert_allclose(layer.bijector.inverse(tf.identity(x)).numpy(), z.numpy(), atol=1e-4)
    np.testing.assert_allclose(layer.bijector.forward_log_det_jacobian(z, event_ndims=3).numpy(),
                               -layer.bijector.inverse_log_det_jacobian(tf.identity(x), event_ndims=3).numpy(),
                               rtol=1e-4)


@pytest.mark.parametrize('alpha', [-0.1, 0.5])
def test_bad_alpha_is_an_error(alpha):
    with pytest.raises(ValueError, match='alpha'):
        LogitTransform(alpha)
