import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from emerging.flows.residual import ResidualBlock, roulette_weights
from tests.flows.flow_checks import brute_force_log_det

SHAPE = [3, 4, 4, 2]


@pytest.fixture(autouse=True)
def seeded():
    """The estimators are random: every test draws the same numbers on every run."""
    tf.random.set_seed(0)


def block(fc=False, activation='elu', scale=20., seed=0, **kwargs):
    """A block whose spectral normalisation is active (kernels scaled up, then the power iteration run)."""
    layer = ResidualBlock(hidden=8, activation=activation, fc=fc, rng=np.random.default_rng(seed), **kwargs)
    layer.build([None, *SHAPE[1:]])
    for linear in layer.linears:
        linear.kernel.assign(linear.kernel * scale)
    layer.update_spectral_norms()
    return layer


def inputs(seed=1):
    return tf.constant(np.random.default_rng(seed).normal(0., 1., SHAPE), tf.float32)


@pytest.mark.parametrize('fc', [False, True])
def test_contract(fc):
    """The shared contract, with the log-det checked in distribution: one Gaussian probe makes
    every estimate (also at evaluation) random, so it is compared by its mean (and TFP's
    assert_bijective_and_finite, which compares single log-det values, does not apply)."""
    layer = block(fc, activation='swish')
    x = inputs()
    z, log_det = layer.forward(x, tf.zeros([3]))
    x_back, _ = layer.reverse(z, tf.zeros([3]))
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(layer.bijector.inverse(x).numpy(), z.numpy(), atol=1e-6)
    np.testing.assert_allclose(layer.bijector.forward(z).numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(tf.function(lambda t: layer.forward(t, tf.zeros([3]))[0])(x).numpy(), z.numpy(),
                               atol=1e-5)
    exact = brute_force_log_det(layer, x)
    np.testing.assert_allclose(layer.brute_force_log_det(x).numpy(), exact, atol=1e-4)
    forward = tf.function(lambda: layer.forward(x, tf.zeros([3]))[1])
    reverse = tf.function(lambda: layer.reverse(z, tf.zeros([3]))[1])
    for estimate, sign in ((forward, 1.), (reverse, -1.)):
        draws = np.array([estimate().numpy() for _ in range(300)]) * sign
        assert np.all(np.abs(draws.mean(0) - exact) < 3.5 * draws.std(0) / np.sqrt(300) + 1e-4)


@pytest.mark.parametrize('fc', [False, True])
@pytest.mark.parametrize('activation', ['elu', 'swish', 'softplus'])
def test_lipschitz_constant_of_g_is_below_one(fc, activation):
    layer = block(fc, activation)
    x = inputs() * 3.
    singular = np.linalg.svd(layer.jacobian_g(x).numpy(), compute_uv=False).max(axis=1)
    assert np.all(singular < 1.)
    # the bound is what keeps it there: every raw kernel's operator norm is above coeff
    assert all(float(linear.sigma()) > layer.coeff for linear in layer.linears)


@pytest.mark.slow  # hundreds of estimates
@pytest.mark.parametrize('fc', [False, True])
@pytest.mark.parametrize('n_dist', ['poisson', 'geometric'])
def test_training_log_det_estimate_is_unbiased(fc, n_dist):
    layer = block(fc, n_dist=n_dist)
    x = inputs()
    exact = layer.brute_force_log_det(x).numpy()
    estimate = tf.function(lambda: layer.forward_and_log_det(x, training=True)[1])
    draws = np.array([estimate().numpy() for _ in range(400)])
    mean, stderr = draws.mean(axis=0), draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(mean - exact) < 3. * stderr + 1e-4), (mean, exact, stderr)
    # evaluation (20 exact terms) is unbiased too, with a smaller variance than training's
    evaluation = tf.function(lambda: layer.forward_and_log_det(x)[1])
    eval_draws = np.array([evaluation().numpy() for _ in range(400)])
    assert np.all(np.abs(eval_draws.mean(0) - exact) < 3. * eval_draws.std(0) / 20. + 1e-4)


def gradient_draws(layer, x, n):
    @tf.function
    def draw():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(layer.forward_and_log_det(x, training=True)[1])
        return tape.gradient(loss, layer.trainable_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    draws = [[g.numpy() for g in draw()] for _ in range(n)]
    return [np.array(per_variable) for per_variable in zip(*draws)]


@pytest.mark.slow  # hundreds of gradients
@pytest.mark.parametrize('mode', [dict(neumann_grad=True, grad_in_forward=False),
                                  dict(neumann_grad=True, grad_in_forward=True),
                                  dict(neumann_grad=False, grad_in_forward=False)])
def test_gradient_estimators_are_unbiased(mode):
    layer = block(**mode)
    x = inputs()
    with tf.GradientTape() as tape:
        exact_loss = tf.reduce_mean(layer.brute_force_log_det(x))
    exact = tape.gradient(exact_loss, layer.trainable_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    draws = gradient_draws(layer, x, 200)
    for variable, g_exact, g_draws in zip(layer.trainable_variables, exact, draws):
        mean, stderr = g_draws.mean(axis=0), g_draws.std(axis=0) / np.sqrt(len(g_draws))
        tolerance = 3.5 * stderr + 1e-5 + 1e-3 * np.abs(g_exact.numpy())
        bad = np.abs(mean - g_exact.numpy()) > tolerance
        # 3.5 standard errors per entry: allow the odd entry out among hundreds
        assert bad.mean() < 0.01, (variable.name, mean[bad], g_exact.numpy()[bad])


def test_gradient_in_the_forward_pass_equals_the_plain_neumann_gradient():
    x = inputs()
    results = []
    for grad_in_forward in (False, True):
        layer = block(neumann_grad=True, grad_in_forward=grad_in_forward)

        @tf.function
        def step():
            tf.random.set_seed(7)
            with tf.GradientTape() as tape:
                tape.watch(x)
                z, log_det = layer.forward_and_log_det(x, training=True)
                loss = tf.reduce_mean(log_det) + tf.reduce_mean(tf.square(z))
            return tape.gradient(loss, [x, *layer.trainable_variables])
        results.append([g.numpy() for g in step()])
    for plain, in_forward in zip(*results):
        np.testing.assert_allclose(in_forward, plain, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('mode', [dict(), dict(grad_in_forward=True), dict(neumann_grad=False),
                                  dict(n_power_series=3)])
def test_gradients_are_finite_and_reach_every_weight(mode):
    layer = block(activation='swish', **mode)
    x = inputs()
    with tf.GradientTape() as tape:
        tape.watch(x)
        z, log_det = layer.forward_and_log_det(x, training=True)
        loss = tf.reduce_mean(tf.reduce_sum(tf.square(z), axis=[1, 2, 3]) - log_det)
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    for g in grads:
        assert np.all(np.isfinite(g.numpy())) and np.any(g.numpy() != 0)


def test_truncated_series_uses_exactly_n_terms():
    layer = block(n_power_series=1)
    x = inputs()
    # one term: v^T J v, whose mean over probes is tr(J)
    trace = np.trace(layer.jacobian_g(x).numpy(), axis1=1, axis2=2)
    draws = np.array([layer.forward_and_log_det(x, training=True)[1].numpy() for _ in range(300)])
    assert np.all(np.abs(draws.mean(0) - trace) < 3.5 * draws.std(0) / np.sqrt(300) + 1e-5)


@pytest.mark.parametrize('fc', [False, True])
def test_inverse_recovers_the_input(fc):
    layer = block(fc, activation='swish')
    x = inputs() * 2.
    z, _ = layer.forward_and_log_det(x)
    np.testing.assert_allclose(layer.invert(z).numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(layer.bijector.forward(layer.bijector.inverse(x)).numpy(), x.numpy(), atol=1e-4)


def test_spectral_norms_update_only_in_training():
    layer = block()
    x = inputs()
    for linear in layer.linears:
        linear.kernel.assign(linear.kernel * 1.5)
    before = [linear.u.numpy().copy() for linear in layer.linears]
    layer.forward_and_log_det(x)
    assert all(np.array_equal(b, linear.u.numpy()) for b, linear in zip(before, layer.linears))
    layer.forward_and_log_det(x, training=True)
    assert not all(np.array_equal(b, linear.u.numpy()) for b, linear in zip(before, layer.linears))


def test_roulette_weights():
    draws = tf.constant([0, 1, 3, 2], tf.int32)
    n, weights = roulette_weights(draws, 2, 'poisson')
    assert int(n) == 5
    expected = [1., 1.] + [np.mean(draws.numpy() >= j) / scipy.stats.poisson.sf(j - 1, 2.) for j in (1, 2, 3)]
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5)
    draws = tf.constant([1, 4], tf.int32)
    n, weights = roulette_weights(draws, 0, 'geometric')
    assert int(n) == 4
    np.testing.assert_allclose(weights.numpy(), [np.mean(draws.numpy() >= j) / 0.5 ** (j - 1) for j in (1, 2, 3, 4)],
                               rtol=1e-6)


@pytest.mark.parametrize('kwargs', [dict(kernels='3-x'), dict(kernels='3'), dict(activation='relu'),
                                    dict(n_dist='binomial'), dict(coeff=1.), dict(n_power_series=0)])
def test_bad_parameters_are_errors(kwargs):
    with pytest.raises(ValueError):
        ResidualBlock(**kwargs)
