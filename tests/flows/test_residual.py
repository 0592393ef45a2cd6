"""The invertible residual block z = x + g(x): Lipschitz bound, log-det estimators (value and gradient),
inverse, and parameters.

The log-det estimates are random (a Gaussian probe and, beyond the exact terms, Russian roulette), so they
are checked two ways: with the randomness replaced by fixed values (the probe through `tf.random.normal`,
the roulette draws through `draw_terms`), where the estimate must equal the series computed here in
float64; and in distribution, where the mean of many draws must be within 3 standard errors of the
brute-force log-det (or its gradient).  `tf.random.set_seed` makes every run draw the same numbers.
"""
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import tensorflow as tf

from emerging.flows import residual_log_det
from emerging.flows.residual import ResidualBlock
from emerging.flows.residual_log_det import EVAL_EXACT_TERMS, roulette_weights
from tests.flows.flow_checks import Eager, assert_bijective_and_finite, brute_force_log_det

SHAPE = [3, 4, 4, 2]
ZERO = tf.UnconnectedGradients.ZERO


@pytest.fixture(autouse=True)
def seeded():
    tf.random.set_seed(0)


def block(fc=False, activation='elu', scale=20., seed=0, converge=False, **kwargs):
    """A block whose spectral normalisation is active: kernels scaled up, then the power iteration run.
    `converge`: run it to 1e-7 instead of the default sn_tol 1e-3 (the stored u, v then stay put under
    the training calls' extra iterations, so a reference computed before them still applies after)."""
    layer = ResidualBlock(hidden=8, activation=activation, fc=fc, rng=np.random.default_rng(seed), **kwargs)
    layer.build([None, *SHAPE[1:]])
    for linear in layer.linears:
        linear.kernel.assign(linear.kernel * scale)
    if converge:
        for linear in layer.linears:
            linear.tol = 1e-7
        tf.function(layer.update_spectral_norms)()  # thousands of iterations: in a graph
        for linear in layer.linears:
            linear.tol = layer.sn_tol
    layer.update_spectral_norms()
    return layer


def inputs(seed=1, scale=1.):
    return tf.constant(np.random.default_rng(seed).normal(0., scale, SHAPE), tf.float32)


def probe(seed=5):
    return tf.constant(np.random.default_rng(seed).normal(size=SHAPE), tf.float32)


def fixed_probe(monkeypatch, v):
    """Every tf.random.normal call returns the probe v (only the block's estimator calls it)."""
    def normal(shape, *args, **kwargs):
        return tf.reshape(v, shape)  # fails unless the shapes agree
    monkeypatch.setattr(tf.random, 'normal', normal)


def series(jacobian, v, coefficients):
    """sum_k coefficients[k-1] v^T J^k v per example, float64 (J [N, D, D], v [N, ...])."""
    jacobian = np.asarray(jacobian, np.float64)
    v = np.asarray(v, np.float64).reshape(len(jacobian), -1)
    u, total = v.copy(), np.zeros(len(v))
    for c in coefficients:
        u = np.einsum('nij,nj->ni', jacobian, u)
        total += c * np.sum(u * v, axis=1)
    return total


# ---- the Lipschitz bound ----------------------------------------------------------------------------

@pytest.mark.parametrize('fc', [False, True])
@pytest.mark.parametrize('activation', ['elu', 'swish', 'softplus'])
def test_lipschitz_constant_of_g_is_below_one(fc, activation):
    """Random kernels scaled up by 20: every layer's raw operator norm is far above coeff, and g stays a
    contraction.  Observed largest singular values of dg/dx: conv ~0.25 (elu), 0.03-0.09 (swish, softplus);
    fc ~0.55 (elu at small x), 0.06-0.18 (swish, softplus); so only fc + elu is asserted > 0.5 here, the
    tightness of the bound is `test_aligned_kernels_reach_the_bound`'s."""
    layer = block(fc, activation)
    assert all(float(linear.sigma()) > 10. * layer.coeff for linear in layer.linears)
    for x in (inputs(scale=0.1), inputs(scale=3.)):
        singular = np.linalg.svd(layer.jacobian_g(x).numpy(), compute_uv=False).max(axis=1)
        assert np.all(singular < 1.), singular
    if fc and activation == 'elu':
        singular = np.linalg.svd(layer.jacobian_g(inputs(scale=0.1)).numpy(), compute_uv=False).max(axis=1)
        assert np.all(singular > 0.5), singular


def aligned(layer, scale=20.):
    """Rank-one kernels whose singular vectors line up (positive a in the input space, positive b in the
    hidden one), zero biases: on a positive input every activation is in its slope-1 region, so
    dg/dx = coeff^3 a a^T at every pixel (fc: on the whole vector)."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1., layer.linears[0].kernel.shape[-2])
    b = rng.uniform(0.5, 1., layer.hidden)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    for linear, (left, right) in zip(layer.linears, [(a, b), (b, b), (b, a)]):
        kernel = np.zeros(linear.kernel.shape, np.float32)
        if layer.fc:
            kernel[:] = scale * np.outer(left, right)
        else:  # the centre tap only: the operator norm of the convolution is the matrix's
            kernel[kernel.shape[0] // 2, kernel.shape[1] // 2] = scale * np.outer(left, right)
        linear.kernel.assign(kernel)
        linear.bias.assign(tf.zeros_like(linear.bias))
    layer.update_spectral_norms()


@pytest.mark.parametrize('fc', [False, True])
def test_aligned_kernels_reach_the_bound(fc):
    layer = block(fc, 'elu')
    aligned(layer)
    x = tf.constant(np.random.default_rng(4).uniform(0.1, 1., SHAPE), tf.float32)
    singular = np.linalg.svd(layer.jacobian_g(x).numpy(), compute_uv=False).max(axis=1)
    np.testing.assert_allclose(singular, layer.coeff ** 3, rtol=1e-3)
    assert np.all(singular < 1.)
    # the same network with the raw kernels would be far from a contraction
    raw = []
    for act, linear in zip(layer.activations, layer.linears):
        raw += (act.params() if act is not None else []) + [tf.convert_to_tensor(linear.kernel), linear.bias]
    with tf.GradientTape() as tape:
        tape.watch(x)
        g = tf.reshape(layer.g(x, raw), [SHAPE[0], -1])
    raw_jacobian = tf.reshape(tape.batch_jacobian(g, x), [SHAPE[0], g.shape[1], g.shape[1]]).numpy()
    assert np.all(np.linalg.svd(raw_jacobian, compute_uv=False).max(axis=1) > 100.)
    # even this close to the bound the fixed-point inverse converges (to ~1e-5 Lip / (1 - Lip) ~ 2e-4; seen 1.4e-5)
    z, _ = layer.forward_and_log_det(x)
    np.testing.assert_allclose(layer.invert(z).numpy(), x.numpy(), atol=2e-4)


def test_spectral_norms_update_only_in_training():
    layer = block()
    x = inputs()
    for linear in layer.linears:
        linear.kernel.assign(linear.kernel * 1.5)
    before = [linear.u.numpy().copy() for linear in layer.linears]
    layer.forward_and_log_det(x)
    assert all(np.array_equal(b, linear.u.numpy()) for b, linear in zip(before, layer.linears))
    layer.forward_and_log_det(x, training=True)
    assert not any(np.array_equal(b, linear.u.numpy()) for b, linear in zip(before, layer.linears))


# ---- the log-det value ------------------------------------------------------------------------------

@pytest.mark.parametrize('fc', [False, True])
def test_evaluation_estimate_for_a_fixed_probe_is_the_matrix_logarithm(fc, monkeypatch):
    """20 exact terms: v^T log(I + J) v for the probe v, to 1e-3 (the single estimate is random only
    through v: its spread over probes is ~0.5 here, so it is not within 1e-3 of log det(I + J))."""
    layer = block(fc)
    x, v = inputs(), probe()
    jacobian = layer.jacobian_g(x).numpy().astype(np.float64)
    eye = np.eye(jacobian.shape[1])
    flat_v = v.numpy().reshape(SHAPE[0], -1).astype(np.float64)
    expected = [u @ scipy.linalg.logm(eye + j).real @ u for j, u in zip(jacobian, flat_v)]
    fixed_probe(monkeypatch, v)
    z, log_det = layer.forward_and_log_det(x)
    np.testing.assert_allclose(log_det.numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(z.numpy(), (x + layer.g(x)).numpy())
    # and through the bijector in both directions (forward: minus the estimate at the inverse point)
    np.testing.assert_allclose(layer.bijector.inverse_and_log_det(x)[1].numpy(), expected, atol=1e-3)
    x_back, forward_log_det = layer.bijector.forward_and_log_det(z)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(forward_log_det.numpy(), -np.asarray(expected), atol=2e-3)
    # with the probe fixed the log-dets are (nearly) deterministic: TFP's bijector check applies
    assert_bijective_and_finite(layer.make_bijector(), probe(6).numpy(), x.numpy(), event_ndims=3, atol=1e-4,
                                rtol=1e-4, sess=Eager)


@pytest.mark.parametrize('n_dist, mode', [('poisson', dict()), ('poisson', dict(neumann_grad=False)),
                                          ('poisson', dict(grad_in_forward=True)),
                                          ('poisson', dict(neumann_grad=False, grad_in_forward=True)),
                                          ('geometric', dict())])
@pytest.mark.slow
def test_training_estimate_for_fixed_draws_is_the_weighted_series(n_dist, mode, monkeypatch):
    """Fixed probe and fixed roulette draws N = (3, 1): n = 3 + n_exact_terms terms with the roulette
    weights, sum_k (-1)^(k+1) / k w_k v^T J^k v, whatever the gradient mode."""
    layer = block(n_dist=n_dist, **mode)
    x, v = inputs(), probe()
    draws = tf.constant([3, 1], tf.int32)
    n, weights = roulette_weights(draws, layer.n_exact_terms, n_dist)
    assert int(n) == 5
    coefficients = [(-1) ** (k + 1) / k * w for k, w in zip(range(1, 6), weights.numpy())]
    fixed_probe(monkeypatch, v)
    monkeypatch.setattr(residual_log_det, 'draw_terms', lambda n_samples, dist, rng=None: draws)
    log_det = layer.forward_and_log_det(x, training=True)[1]
    # J after the call: training first runs the power iteration, which moves the normalised kernels
    expected = series(layer.jacobian_g(x).numpy(), v.numpy(), coefficients)
    np.testing.assert_allclose(log_det.numpy(), expected, rtol=1e-5, atol=1e-6)
    traced = tf.function(lambda: layer.forward_and_log_det(x, training=True)[1])()
    expected = series(layer.jacobian_g(x).numpy(), v.numpy(), coefficients)
    np.testing.assert_allclose(traced.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('n_power_series, neumann_grad', [(1, True), (4, True), (4, False)])
def test_truncated_series_is_deterministic_for_a_fixed_probe(n_power_series, neumann_grad, monkeypatch):
    """n_power_series = n: exactly n terms with weight 1 (biased, no roulette)."""
    layer = block(n_power_series=n_power_series, neumann_grad=neumann_grad, converge=True)
    x, v = inputs(), probe()
    fixed_probe(monkeypatch, v)
    first = layer.forward_and_log_det(x, training=True)[1].numpy()
    second = layer.forward_and_log_det(x, training=True)[1].numpy()
    expected = series(layer.jacobian_g(x).numpy(), v.numpy(),
                      [(-1) ** (k + 1) / k for k in range(1, n_power_series + 1)])
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second, first, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('fc', [False, True])
@pytest.mark.parametrize('n_dist', ['poisson', 'geometric'])
@pytest.mark.slow
def test_log_det_estimates_are_unbiased(fc, n_dist):
    """Mean of 300 training estimates (with the default 2 exact terms, and with none: then every term,
    the large first one too, hangs on the roulette weights) and of 300 evaluation estimates within 3
    standard errors (+1e-4) of the brute-force log det(I + J), per example."""
    layer = block(fc, converge=True)
    layer.n_dist = n_dist
    x = inputs(scale=0.1)  # fc: Lip(g) ~0.55
    exact = layer.brute_force_log_det(x).numpy()
    np.testing.assert_allclose(exact, brute_force_log_det(layer, x), atol=1e-4)  # the layer's own is right
    for training, n_exact in ((True, 2), (True, 0), (False, None)):
        layer.n_exact_terms = n_exact
        estimate = tf.function(lambda: layer.forward_and_log_det(x, training=training)[1])
        draws = np.array([estimate().numpy() for _ in range(300)])
        mean, stderr = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
        assert np.all(np.abs(mean - exact) < 3. * stderr + 1e-4), (training, n_exact, mean, exact, stderr)


# ---- the log-det gradient ---------------------------------------------------------------------------

def exact_gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_mean(layer.brute_force_log_det(x))
    return [g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables], unconnected_gradients=ZERO)]


def gradient_draws(layer, x, n):
    @tf.function
    def draw():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(layer.forward_and_log_det(x, training=True)[1])
        return tape.gradient(loss, [x, *layer.trainable_variables], unconnected_gradients=ZERO)
    draws = [[g.numpy() for g in draw()] for _ in range(n)]
    return [np.array(per_tensor) for per_tensor in zip(*draws)]


@pytest.mark.parametrize('fc, mode', [(True, dict(neumann_grad=True, grad_in_forward=False)),
                                      (True, dict(neumann_grad=True, grad_in_forward=True)),
                                      (True, dict(neumann_grad=False, grad_in_forward=False)),
                                      (False, dict(neumann_grad=True, grad_in_forward=False))])
@pytest.mark.slow
def test_log_det_gradient_is_unbiased(fc, mode):
    """Mean of 200 gradients of mean(training log-det) against the gradient of mean(brute-force log-det),
    with respect to x and every variable, on a batch of 32 (each example brings its own probe, so the
    batch mean is 10x less noisy than one example's; fc at small x: Lip(g) ~0.55, so the higher terms
    of the series matter).  Every entry of the first two biases within 3 standard errors (+1e-5); every
    entry of everything (~1,500) within 4.5 (a bound for the whole family; single entries reach ~4.4 by
    chance: the estimates are heavy-tailed); and per tensor the mean squared z-score below 2 (~1 when
    unbiased; a sign error in the Neumann series gives 10-30 standard errors).
    The spectral norms are converged tightly first: with sn_tol 1e-3 the training calls' extra power
    iterations move the normalised kernels, and the brute-force gradient with them, by up to 3e-3."""
    layer = block(fc=fc, activation='elu', converge=True, **mode)
    x = tf.constant(np.random.default_rng(1).normal(0., 0.1, [32, *SHAPE[1:]]), tf.float32)
    exact = exact_gradients(layer, x)
    draws = gradient_draws(layer, x, 200)
    tensors = [x, *layer.trainable_variables]
    strict = [i for i, t in enumerate(tensors) if t is layer.linears[0].bias or t is layer.linears[1].bias]
    assert len(strict) == 2
    for i, (tensor, g_exact, g_draws) in enumerate(zip(tensors, exact, draws)):
        if tensor is layer.linears[-1].bias:  # the log-det does not depend on the last bias
            np.testing.assert_array_equal(g_draws, 0.)
            np.testing.assert_array_equal(g_exact, 0.)
            continue
        assert np.any(g_exact != 0.), i
        mean, stderr = g_draws.mean(axis=0), g_draws.std(axis=0) / np.sqrt(len(g_draws))
        z_scores = np.abs(mean - g_exact) / (stderr + 1e-12)
        bound = 3. if i in strict else 4.5
        assert np.all(np.abs(mean - g_exact) <= bound * stderr + 1e-5), (i, np.sort(z_scores.ravel())[-5:])
        assert np.mean(z_scores ** 2) < 2., (i, tensor.name, np.mean(z_scores ** 2))


@pytest.mark.parametrize('neumann_grad', [True, False])
@pytest.mark.slow
def test_gradient_in_the_forward_pass_equals_the_plain_gradient(neumann_grad):
    """Same seed inside the same tf.function: identical draws, so grad_in_forward must give the same
    log-det and the same gradients (x and every variable) as grad_in_forward=False; a different seed
    gives a different log-det (the comparison is not vacuous)."""
    x = inputs()

    def run(grad_in_forward, seed):
        layer = block(activation='swish', neumann_grad=neumann_grad, grad_in_forward=grad_in_forward)

        @tf.function
        def step():
            tf.random.set_seed(seed)
            with tf.GradientTape() as tape:
                tape.watch(x)
                z, log_det = layer.forward_and_log_det(x, training=True)
                loss = -tf.reduce_mean(log_det) + tf.reduce_mean(tf.square(z))
            return [log_det] + tape.gradient(loss, [x, *layer.trainable_variables], unconnected_gradients=ZERO)
        return [t.numpy() for t in step()]

    plain, in_forward, other_seed = run(False, 7), run(True, 7), run(False, 8)
    assert not np.allclose(plain[0], other_seed[0])
    assert len(plain) == len(in_forward) == 2 + 9  # log-det, x, 3 x (kernel, bias), 3 betas
    for a, b in zip(plain, in_forward):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('fc, mode', [(False, dict()), (False, dict(grad_in_forward=True)),
                                      (False, dict(neumann_grad=False)),
                                      (False, dict(neumann_grad=False, grad_in_forward=True)),
                                      (False, dict(n_power_series=3)),
                                      (False, dict(n_power_series=3, neumann_grad=False, grad_in_forward=True)),
                                      (False, dict(n_dist='geometric')), (True, dict()),
                                      (True, dict(grad_in_forward=True)), (True, dict(neumann_grad=False))])
def test_gradients_are_finite_and_reach_every_weight(fc, mode):
    layer = block(fc, activation='swish', **mode)
    x = inputs()
    for training in (True, False):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            z, log_det = layer.forward_and_log_det(x, training=training)
            output = tf.reduce_sum(tf.square(z))
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(z), axis=[1, 2, 3]) - log_det)
        for target in (output, loss):
            grads = tape.gradient(target, [x, *layer.trainable_variables])
            for variable, g in zip(['x'] + layer.trainable_variables, grads):
                assert g is not None, variable
                g = tf.convert_to_tensor(g).numpy()
                assert np.all(np.isfinite(g)) and np.any(g != 0), (training, variable)
        del tape


# ---- the inverse ------------------------------------------------------------------------------------

@pytest.mark.parametrize('fc', [False, True])
@pytest.mark.parametrize('activation', ['elu', 'swish'])
def test_inverse_recovers_the_input(fc, activation):
    layer = block(fc, activation=activation)
    x = inputs(scale=2.)
    z, _ = layer.forward_and_log_det(x)
    np.testing.assert_allclose(layer.invert(z).numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(tf.function(layer.invert)(z).numpy(), x.numpy(), atol=1e-4)
    np.testing.assert_allclose(layer.bijector.inverse(x).numpy(), z.numpy(), atol=1e-6)
    np.testing.assert_allclose(layer.bijector.forward(layer.bijector.inverse(x)).numpy(), x.numpy(), atol=1e-4)
    # latent side: forward (fixed point) then inverse
    latent = inputs(seed=9)
    np.testing.assert_allclose(layer.bijector.inverse(tf.identity(layer.bijector.forward(latent))).numpy(),
                               latent.numpy(), atol=1e-4)
    # map_only: the same maps, a zero log-det
    y, zero = layer.bijector.inverse_and_log_det(x, map_only=True)
    np.testing.assert_allclose(y.numpy(), z.numpy(), atol=1e-6)
    np.testing.assert_array_equal(zero.numpy(), np.zeros(SHAPE[0]))


# ---- roulette weights and parameters ----------------------------------------------------------------

@pytest.mark.parametrize('n_exact', [0, 2, 5])
def test_roulette_weights(n_exact):
    draws = np.random.default_rng(n_exact).poisson(2., 7).astype(np.int32)
    n, weights = roulette_weights(tf.constant(draws), n_exact, 'poisson')
    assert int(n) == draws.max() + n_exact and weights.shape == (int(n),)
    k = np.arange(1, int(n) + 1)
    j = k - n_exact
    expected = np.where(j <= 0, 1., np.array([np.mean(draws >= i) for i in j]) / scipy.stats.poisson.sf(j - 1, 2.))
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5)

    draws = np.random.default_rng(n_exact).geometric(0.5, 7).astype(np.int32)
    n, weights = roulette_weights(tf.constant(draws), n_exact, 'geometric')
    assert int(n) == draws.max() + n_exact
    k = np.arange(1, int(n) + 1)
    j = k - n_exact
    expected = np.where(j <= 0, 1., np.array([np.mean(draws >= i) for i in j]) / 0.5 ** (j - 1.))
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize('n_dist', ['poisson', 'geometric'])
def test_draws_follow_the_distribution_the_weights_assume(n_dist):
    """The weights divide by P(N >= j): the sampler must draw N with exactly those tail probabilities."""
    n = 200_000
    draws = residual_log_det.draw_terms(n, n_dist).numpy()
    for j in range(1, 7):
        p = scipy.stats.poisson.sf(j - 1, 2.) if n_dist == 'poisson' else 0.5 ** (j - 1)
        assert abs(np.mean(draws >= j) - p) < 4. * np.sqrt(p * (1. - p) / n) + 1e-9, (j, np.mean(draws >= j), p)
    assert draws.min() >= (0 if n_dist == 'poisson' else 1)


def test_evaluation_uses_twenty_exact_terms(monkeypatch):
    seen = []
    original = residual_log_det.roulette_weights
    monkeypatch.setattr(residual_log_det, 'roulette_weights', lambda *a: seen.append(a[1:]) or original(*a))
    layer = block(n_exact_terms=3)
    layer.forward_and_log_det(inputs())
    layer.forward_and_log_det(inputs(), training=True)
    assert EVAL_EXACT_TERMS == 20 and seen == [(20, 'poisson'), (3, 'poisson')]


@pytest.mark.parametrize('kwargs', [dict(kernels='3-x'), dict(kernels='3'), dict(kernels=''), dict(activation='relu'),
                                    dict(n_dist='binomial'), dict(coeff=1.), dict(coeff=1.5), dict(coeff=0.),
                                    dict(n_power_series=0), dict(hidden=0), dict(n_samples=0),
                                    dict(n_exact_terms=-1)])
def test_bad_parameters_are_errors(kwargs):
    with pytest.raises(ValueError):
        ResidualBlock(**kwargs)


def test_build_needs_a_known_nhwc_shape():
    with pytest.raises(ValueError, match='NHWC'):
        ResidualBlock(hidden=4).build([None, 4, 4])
    with pytest.raises(ValueError, match='NHWC'):
        ResidualBlock(hidden=4).build([None, None, 4, 2])
