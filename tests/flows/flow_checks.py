"""The shared check every flow layer must pass (the flow-layer contract of emerging/flows/base.py)."""
import numpy as np
import tensorflow as tf

# TFP's bijector test utility as shipped with TensorFlow (tensorflow-probability's
# wheel does not include its own copy); it takes a session, so `Eager` stands in.
from tensorflow.python.ops.distributions.bijector_test_util import assert_bijective_and_finite


class Eager:
    """`sess.run` for eager tensors."""

    @staticmethod
    def run(tensors):
        return [t.numpy() for t in tensors]


def perturb(layer, rng, scale):
    """Move every float trainable weight away from its (often identity) init."""
    for w in layer.trainable_weights:
        if w.dtype.is_floating:
            w.assign_add(rng.normal(0., scale, w.shape).astype(w.dtype.as_numpy_dtype))


def brute_force_log_det(layer, x):
    """log|det dz/dx| per example from the full Jacobian (float64 slogdet)."""
    n = x.shape[0]
    flat = tf.reshape(x, [n, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        z, _ = layer.forward(tf.reshape(flat, x.shape), tf.zeros([n]))
        z = tf.reshape(z, [n, -1])
    jacobian = tape.batch_jacobian(z, flat).numpy().astype(np.float64)
    return np.linalg.slogdet(jacobian)[1]


def check_flow_layer(layer, shape, rng, atol=1e-4, log_det_tol=1e-3, nonzero_grads=True, traced_atol=1e-5):
    """`traced_atol`: eager against tf.function (bfloat16 kernels differ between the two by ~1e-3)."""
    x = tf.constant(rng.normal(size=shape), tf.float32)
    n = shape[0]
    # the cached bijector is first built inside a tf.function and must stay usable outside it
    object.__setattr__(layer, '_cached_bijector', None)
    traced = tf.function(lambda t: layer.forward(t, tf.zeros([n])))(x)
    z, log_det = layer.forward(x, tf.zeros([n]))
    np.testing.assert_allclose(traced[0].numpy(), z.numpy(), atol=traced_atol)
    log_det = np.broadcast_to(log_det.numpy(), [n])
    assert z.shape == x.shape

    # round trips both ways
    x_back, log_det_back = layer.reverse(z, tf.constant(log_det))
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=atol)
    np.testing.assert_allclose(np.broadcast_to(log_det_back.numpy(), [n]), 0., atol=log_det_tol)
    z_fresh = tf.constant(rng.normal(size=shape), tf.float32)
    x_from_z, _ = layer.reverse(z_fresh, tf.zeros([n]))
    z_again, _ = layer.forward(x_from_z, tf.zeros([n]))
    np.testing.assert_allclose(z_again.numpy(), z_fresh.numpy(), atol=atol)

    # log-det against the brute-force Jacobian
    np.testing.assert_allclose(log_det, brute_force_log_det(layer, x), rtol=log_det_tol, atol=log_det_tol)

    # the TFP bijector is the same map in TFP's direction
    bijector = layer.bijector
    np.testing.assert_allclose(bijector.inverse(x).numpy(), z.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(bijector.inverse_log_det_jacobian(x, event_ndims=3).numpy(), [n]),
                               log_det, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bijector.forward(z).numpy(), x.numpy(), atol=atol)
    np.testing.assert_allclose(np.broadcast_to(bijector.forward_log_det_jacobian(z, event_ndims=3).numpy(), [n]),
                               -log_det, rtol=1e-3, atol=log_det_tol)

    # TFP's own check (through TFP's cache: bijective, log-dets consistent, all finite)
    fresh = layer.make_bijector()
    assert_bijective_and_finite(fresh, z_fresh.numpy(), x.numpy(), event_ndims=3, atol=atol, rtol=1e-4, sess=Eager)

    # gradients of a density-like loss reach every weight, finite (and non-zero)
    with tf.GradientTape() as tape:
        z, log_det_t = layer.forward(x, tf.zeros([n]))
        loss = tf.reduce_mean(tf.reduce_sum(tf.square(z), axis=[1, 2, 3]) - log_det_t)
    grads = tape.gradient(loss, layer.trainable_weights)
    for w, g in zip(layer.trainable_weights, grads):
        assert g is not None, f'no gradient for {w.name}'
        g = tf.convert_to_tensor(g).numpy()
        assert np.all(np.isfinite(g)), f'non-finite gradient for {w.name}'
        if nonzero_grads:
            assert np.any(g != 0), f'zero gradient for {w.name}'
