"""Residual Flows on vectors (emerging.vector.residual): the training log-det estimators against the exact log-det
(in distribution: the mean of many draws within 4 measured standard errors), the exact log-det against autodiff and
finite differences, inverses, the Lipschitz bound, finite gradients, and the other layers of train_toy.py's model."""
import math

import numpy as np
import pytest
import tensorflow as tf

from emerging.choices import VECTOR_ACTIVATIONS
from emerging.vector import (
    VectorActivation,
    VectorActNorm,
    VectorCouplingBlock,
    VectorFlowStack,
    VectorMovingBatchNorm,
    VectorResidualBlock,
    build_toy_flow,
)

HIDDEN = (16, 16)


@pytest.fixture(autouse=True)
def seeded():
    tf.random.set_seed(0)


def block(activation='swish', scale=20., seed=0, **kwargs):
    """A block whose spectral normalisation is active: every kernel scaled up (the zero-initialised last one back
    to a full-size one first), then 200 power iterations."""
    layer = VectorResidualBlock(2, HIDDEN, activation, rng=np.random.default_rng(seed), **kwargs)
    for linear in layer.linears:
        linear.kernel.assign(linear.kernel * (scale * 1000. if linear.units == 2 else scale))
    layer.update_spectral_norms(200)
    return layer


def aligned_block(coeff=0.8, noise=0.2, **kwargs):
    """A block with a large log-det for the estimator tests: elu, zero biases, kernels 20 (a b^T, b b^T, b a^T)
    for positive unit vectors a, b, plus noise, so that on positive inputs J ~ coeff^3 a a^T: Lip(g) ~ 0.45,
    log-det ~ 0.37, and the roulette's variance is finite (that needs Lip(g) < 1/sqrt(2) for Geometric(0.5))."""
    layer = VectorResidualBlock(2, HIDDEN, 'elu', coeff=coeff, rng=np.random.default_rng(0), **kwargs)
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 1., 2), rng.uniform(0.5, 1., HIDDEN[0])
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    for linear, (left, right) in zip(layer.linears, [(a, b), (b, b), (b, a)]):
        kernel = np.outer(left, right) + noise * rng.normal(size=[len(left), len(right)]) / math.sqrt(len(left))
        linear.kernel.assign(20. * kernel)
        linear.bias.assign(tf.zeros_like(linear.bias))
    layer.update_spectral_norms(200)
    return layer


def positive_points(n=4, seed=1):
    return tf.constant(np.random.default_rng(seed).uniform(0.2, 1.5, [n, 2]), tf.float32)


def points(n=4, seed=1, scale=1.5):
    return tf.constant(np.random.default_rng(seed).normal(0., scale, [n, 2]), tf.float32)


def draws_of_estimate(layer, x, calls=200, rows=250):
    """The per-call means of the training estimate at each point of x [n, 2] (every call draws one number of
    terms for the whole batch, so calls, not rows, are the independent draws): [calls, n]."""
    generator = tf.random.Generator.from_seed(3)
    estimate = tf.function(lambda t: layer.forward_and_log_det(t, training=True, rng=generator)[1])
    tiled = tf.tile(x, [rows, 1])
    return np.stack([estimate(tiled).numpy().reshape(rows, len(x)).mean(axis=0) for _ in range(calls)])


# ---- the log-det --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs', [dict(n_dist='geometric'), dict(n_dist='poisson'), dict(n_samples=3),
                                    dict(exact_trace=True), dict(exact_trace=True, n_dist='poisson')])
@pytest.mark.slow
def test_training_estimate_is_unbiased(kwargs):
    layer = aligned_block(**kwargs)
    x = positive_points()
    exact = layer.brute_force_log_det(x).numpy()
    draws = draws_of_estimate(layer, x)
    mean, se = draws.mean(axis=0), draws.std(axis=0, ddof=1) / math.sqrt(len(draws))
    assert np.all(np.abs(mean - exact) < 4. * se + 1e-6), (mean, exact, se)
    # the test can tell: the series cut after its two exact terms is off by far more than the standard error
    jacobian = layer.jacobian_g(x).numpy().astype(np.float64)
    two_terms = np.trace(jacobian, axis1=1, axis2=2) - np.trace(jacobian @ jacobian, axis1=1, axis2=2) / 2.
    assert np.min(np.abs(two_terms - exact) / se) > 5., (two_terms, exact, se)


@pytest.mark.slow
def test_a_long_fixed_series_is_the_exact_log_det():
    x = positive_points()
    exact_trace = aligned_block(exact_trace=True, n_power_series=40)
    np.testing.assert_allclose(exact_trace.forward_and_log_det(x, training=True)[1].numpy(),
                               exact_trace.brute_force_log_det(x).numpy(), atol=1e-5)
    probe = aligned_block(n_power_series=40)  # Hutchinson with a fixed series: unbiased through the probe only
    exact = probe.brute_force_log_det(x).numpy()
    draws = draws_of_estimate(probe, x, calls=100)
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 4. * draws.std(axis=0, ddof=1) / 10. + 1e-6)


def test_gradient_of_the_estimate_is_unbiased():
    """Backpropagation through the roulette series (train_toy.py's neumann_grad=False): the mean gradient with
    respect to the first kernel is the gradient of the exact log-det."""
    layer = aligned_block()
    x = positive_points(2)
    kernel = layer.linears[0].kernel
    with tf.GradientTape() as tape:
        exact = tf.reduce_sum(layer.brute_force_log_det(x))
    expected = tape.gradient(exact, kernel).numpy()
    generator = tf.random.Generator.from_seed(4)
    tiled = tf.tile(x, [100, 1])

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            estimate = tf.reduce_sum(layer.forward_and_log_det(tiled, training=True, rng=generator)[1]) / 100.
        return tape.gradient(estimate, kernel)

    draws = np.stack([gradient().numpy() for _ in range(200)])
    mean, se = draws.mean(axis=0), draws.std(axis=0, ddof=1) / math.sqrt(len(draws))
    assert np.all(np.abs(mean - expected) < 4.5 * se + 1e-6), np.max(np.abs(mean - expected) / (se + 1e-12))
    assert np.abs(expected).max() > 10. * se.max()  # a gradient the draws resolve


def test_exact_log_det_matches_autodiff_and_finite_differences():
    layer = block()
    x = points(6)
    g, jacobian = layer.g_and_jacobian(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        g_again = layer.g(x)
    np.testing.assert_allclose(jacobian.numpy(), tape.batch_jacobian(g_again, x).numpy(), atol=1e-6)
    # finite differences of z = x + g(x) (central, step 1e-2; the error is O(step^2))
    step, x64 = 1e-2, x.numpy().astype(np.float64)
    columns = []
    for j in range(2):
        shift = np.zeros(2)
        shift[j] = step
        plus = layer(tf.constant(x64 + shift, tf.float32)).numpy()
        minus = layer(tf.constant(x64 - shift, tf.float32)).numpy()
        columns.append((plus - minus) / (2. * step))
    numeric = np.stack(columns, axis=2)  # [N, i, j] = dz_i / dx_j
    np.testing.assert_allclose(numeric, np.eye(2) + jacobian.numpy(), atol=2e-3)
    expected = np.linalg.slogdet(numeric)[1]
    np.testing.assert_allclose(layer.brute_force_log_det(x).numpy(), expected, atol=3e-3)
    # evaluation and --brute-force training both use it
    np.testing.assert_allclose(layer.forward_and_log_det(x)[1].numpy(), np.linalg.slogdet(
        np.eye(2) + jacobian.numpy().astype(np.float64))[1], atol=1e-5)
    brute = block(brute_force=True)
    np.testing.assert_allclose(brute.forward_and_log_det(x, training=True)[1].numpy(),
                               brute.brute_force_log_det(x).numpy(), atol=1e-6)


@pytest.mark.parametrize('activation', VECTOR_ACTIVATIONS)
def test_every_activation_has_the_jacobian_autodiff_finds(activation):
    layer = block(activation)
    x = points(5, seed=2)
    with tf.GradientTape() as tape:
        tape.watch(x)
        g = layer.g(x)
    np.testing.assert_allclose(layer.jacobian_g(x).numpy(), tape.batch_jacobian(g, x).numpy(), atol=1e-6)
    # and on a wider input: the vector-Jacobian product of the activation alone
    act = VectorActivation(activation)
    h = tf.constant(np.random.default_rng(3).normal(0., 2., [3, 6]), tf.float32)
    u = tf.constant(np.random.default_rng(4).normal(size=[3, 6]), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(h)
        y, vjp = act.apply_and_vjp(h, act.params())
    np.testing.assert_allclose(vjp(u).numpy(), tape.gradient(y, h, output_gradients=u).numpy(), atol=1e-6)


# ---- inverse, Lipschitz bound, gradients ------------------------------------------------------------------

@pytest.mark.parametrize('activation', ['swish', 'elu', 'maxmin', 'lcube'])
def test_inverse_of_forward_is_the_identity(activation):
    layer = block(activation)
    x = points(50, scale=3.)
    np.testing.assert_allclose(layer.invert(layer(x)).numpy(), x.numpy(), atol=1e-4)
    bijector = layer.bijector
    batch = tf.reshape(tf.tile(x, [3, 1]), [3, 50, 2])  # TFP's bijector on any batch shape
    np.testing.assert_allclose(bijector.inverse(bijector.forward(batch)).numpy(), batch.numpy(), atol=1e-4)
    assert bijector.forward_log_det_jacobian(batch, event_ndims=1).shape == [3, 50]


def test_lipschitz_constant_is_below_coeff_after_power_iterations():
    layer = block(coeff=0.9)
    assert all(float(linear.sigma()) > 10. for linear in layer.linears)  # the raw kernels are far above
    for linear in layer.linears:
        norm = np.linalg.norm(linear.normalised_kernel().numpy(), ord=2)
        assert norm <= 0.9 * (1. + 1e-4), norm
    for x in (points(200, scale=0.3), points(200, scale=3.)):
        singular = np.linalg.svd(layer.jacobian_g(x).numpy(), compute_uv=False).max(axis=1)
        assert np.all(singular < 0.9), singular.max()


def test_spectral_norms_update_only_when_asked():
    layer = VectorResidualBlock(2, HIDDEN, rng=np.random.default_rng(0))
    # the constructor ran 200 iterations: sigma is the kernel's norm
    for linear in layer.linears:
        np.testing.assert_allclose(float(linear.sigma()), np.linalg.norm(linear.kernel.numpy(), ord=2), rtol=1e-3)
    last = layer.linears[-1].kernel.numpy()
    assert np.abs(last).max() <= 1. / (1000. * math.sqrt(HIDDEN[-1]))  # the public zero_init
    for linear in layer.linears:
        linear.kernel.assign(linear.kernel * 3.)
    before = [linear.u.numpy().copy() for linear in layer.linears]
    layer.forward_and_log_det(points(), training=True)
    assert all(np.array_equal(b, linear.u.numpy()) for b, linear in zip(before, layer.linears))
    layer.update_spectral_norms()
    assert not all(np.array_equal(b, linear.u.numpy()) for b, linear in zip(before, layer.linears))


@pytest.mark.parametrize('kwargs', [dict(), dict(n_dist='poisson', n_samples=2), dict(exact_trace=True),
                                    dict(brute_force=True), dict(n_power_series=5), dict(activation='fullsort')])
def test_gradients_are_finite(kwargs):
    flow = build_toy_flow('iresnet', hidden=HIDDEN, n_blocks=2, actnorm=True, batchnorm=True, **kwargs)
    x = points(64, scale=2.)
    flow.initialize(x)
    with tf.GradientTape() as tape:
        z, log_det = flow.forward_and_log_det(x, training=True, rng=tf.random.Generator.from_seed(0))
        loss = -tf.reduce_mean(-0.5 * tf.reduce_sum(z ** 2, axis=1) + log_det)
    grads = tape.gradient(loss, flow.trainable_variables)
    assert np.isfinite(float(loss))
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    assert any(float(tf.reduce_max(tf.abs(g))) > 0. for g in grads)


# ---- the other layers and the stack ----------------------------------------------------------------------

def test_actnorm_initialises_from_its_first_batch():
    layer = VectorActNorm(2)
    x = points(500, scale=2.) + 3.
    y = layer.initialize(x).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0., atol=1e-5)
    np.testing.assert_allclose(y.var(axis=0, ddof=1), 1., rtol=1e-4)
    z, log_det = layer.forward_and_log_det(x)
    np.testing.assert_allclose(log_det.numpy(), np.sum(layer.log_scale.numpy()), rtol=1e-6)
    np.testing.assert_allclose(layer.invert(z).numpy(), x.numpy(), atol=1e-5)
    layer.initialize(x * 10.)  # initialised once only (a restored checkpoint keeps its values)
    np.testing.assert_allclose(layer(x).numpy(), y, atol=1e-5)
    small = VectorActNorm(2)
    small.initialize(points(500, scale=0.1))  # variance floored at 0.2
    np.testing.assert_allclose(small.log_scale.numpy(), -0.5 * math.log(0.2), rtol=1e-6)


def test_moving_batch_norm_shifts_by_the_running_mean_updated_in_training():
    layer = VectorMovingBatchNorm(2)
    x = points(100) + 2.
    y, log_det = layer.forward_and_log_det(x, training=True)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-6)  # used before its update (from 0)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x.numpy().mean(axis=0), rtol=1e-5)
    assert np.all(log_det.numpy() == 0.)
    before = layer.running_mean.numpy().copy()
    z = layer(x)
    np.testing.assert_array_equal(layer.running_mean.numpy(), before)
    np.testing.assert_allclose(layer.invert(z).numpy(), x.numpy(), atol=1e-6)
    assert layer.running_mean.trainable is False


@pytest.mark.parametrize('swap', [False, True])
def test_coupling_block_log_det_and_inverse(swap):
    layer = VectorCouplingBlock(2, HIDDEN, 'swish', swap=swap, rng=np.random.default_rng(0))
    x = points(20, scale=2.)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, log_det = layer.forward_and_log_det(x)
    jacobian = tape.batch_jacobian(y, x).numpy().astype(np.float64)
    np.testing.assert_allclose(log_det.numpy(), np.linalg.slogdet(jacobian)[1], atol=1e-5)
    kept = 1 if swap else 0
    np.testing.assert_array_equal(y.numpy()[:, kept], x.numpy()[:, kept])
    np.testing.assert_allclose(layer.invert(y).numpy(), x.numpy(), atol=1e-5)


@pytest.mark.parametrize('arch', ['iresnet', 'realnvp'])
def test_stack_layout_density_and_inverse(arch):
    flow = build_toy_flow(arch, hidden=HIDDEN, n_blocks=3, actnorm=True, batchnorm=True, seed=1)
    kinds = [type(layer).__name__ for layer in flow.flow_layers]
    if arch == 'iresnet':
        assert kinds == ['VectorActNorm'] + ['VectorResidualBlock', 'VectorActNorm', 'VectorMovingBatchNorm'] * 3
    else:
        assert kinds == ['VectorCouplingBlock', 'VectorCouplingBlock', 'VectorActNorm', 'VectorMovingBatchNorm'] * 3
        assert [layer.swap for layer in flow.flow_layers if hasattr(layer, 'swap')] == [False, True] * 3
    x = points(40, scale=2.)
    flow.initialize(x)
    z, log_det = flow.forward_and_log_det(x)
    expected = np.sum(-0.5 * z.numpy() ** 2 - 0.5 * math.log(2. * math.pi), axis=1) + log_det.numpy()
    np.testing.assert_allclose(flow.density_distribution().log_prob(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(flow.invert(z).numpy(), x.numpy(), atol=2e-4)
    assert flow.parameter_count == sum(int(np.prod(v.shape)) for v in flow.trainable_variables)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='coeff must be in'):
        VectorResidualBlock(2, HIDDEN, coeff=1.)
    with pytest.raises(ValueError, match='maxmin needs even widths'):
        VectorResidualBlock(2, (16, 15), 'maxmin')
    with pytest.raises(ValueError, match='unknown activation'):
        VectorActivation('gelu')
    with pytest.raises(ValueError, match='unknown n_dist'):
        VectorResidualBlock(2, HIDDEN, n_dist='uniform')
    with pytest.raises(ValueError, match='even dims'):
        VectorCouplingBlock(3, HIDDEN)
    with pytest.raises(ValueError, match='different dimensions'):
        VectorFlowStack([VectorActNorm(2), VectorActNorm(3)])
    with pytest.raises(ValueError, match='unknown arch'):
        build_toy_flow('glow')
