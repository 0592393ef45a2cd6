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


def test_log_det_and_its_gradient_compile_under_xla():
    """--jit_compile trains flow_permutation 4: the log-det path has no complex op."""
    rng = np.random.default_rng(3)
    layer = PeriodicConv(rng=rng)
    layer.build([None, 4, 6, 3])
    perturb(layer, rng, 0.2)
    x = tf.constant(rng.normal(size=[2, 4, 6, 3]), tf.float32)

    def loss_and_grads(x):
        with tf.GradientTape() as tape:
            z, log_det = layer.forward(x, tf.zeros([2]))
            loss = tf.reduce_sum(z ** 2) - tf.reduce_sum(log_det)
        return loss, tape.gradient(loss, [layer.w, layer.b])

    eager_loss, eager_grads = loss_and_grads(x)
    xla_loss, xla_grads = tf.function(loss_and_grads, jit_compile=True)(x)
    np.testing.assert_allclose(xla_loss.numpy(), eager_loss.numpy(), rtol=1e-5)
    for xla_grad, eager_grad in zip(xla_grads, eager_grads):
        np.testing.assert_allclose(xla_grad.numpy(), eager_grad.numpy(), rtol=1e-4, atol=1e-5)
    # and it is the log|det| of the complex frequency matrices
    reference = sum(np.linalg.slogdet(m)[1] * (1 if v in (0, 3) else 2)
                    for u, row in enumerate(layer.bijector._frequency_matrices(4, 6).numpy())
                    for v, m in enumerate(row))
    np.testing.assert_allclose(layer.bijector.inverse_log_det_jacobian(x, event_ndims=3).numpy(), reference,
                               rtol=1e-5)


@pytest.mark.parametrize('shape', [(16, 16, 12), (8, 8, 24), (5, 6, 3)])
def test_the_solve_is_a_float64_solve_to_float32_rounding(shape):
    """The latent -> data solve applies K^-1 in complex64: against the same solve in float64 (numpy) it differs by a
    few float32 ulps of the result, also for badly conditioned frequency matrices (cond(K) ~ 1600 at 16x16x12)."""
    rng = np.random.default_rng(4)
    layer = PeriodicConv(rng=rng)
    layer.build([None, *shape])
    perturb(layer, rng, 0.1)
    z = rng.normal(size=[3, *shape])
    x = layer.bijector.forward(tf.constant(z, tf.float32)).numpy()
    height, width, _ = shape
    matrices = layer.bijector._frequency_matrices(height, width).numpy()  # complex128 [H, W // 2 + 1, C, C]
    spectrum = np.fft.rfft2(np.transpose(z - layer.b.numpy(), [0, 3, 1, 2]))
    solved = np.einsum('ncuv,uvcd->nduv', spectrum, np.linalg.inv(matrices))
    reference = np.transpose(np.fft.irfft2(solved, s=[height, width]), [0, 2, 3, 1])
    scale = np.abs(reference).max()
    assert np.abs(x - reference).max() <= 8 * np.finfo(np.float32).eps * scale, (np.abs(x - reference).max(), scale)
