"""Spectrally normalised layers and 1-Lipschitz activations of the residual block's network g."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.nets.lipschitz import Activation, SpectralNormConv2D, SpectralNormDense

HEIGHT, WIDTH, C_IN, UNITS, D_IN = 4, 4, 3, 6, 5
KINDS = ['conv3', 'conv1', 'dense']


def conv_operator(kernel):
    """The 'SAME' convolution (no bias) on [1, HEIGHT, WIDTH, C_in] as a matrix [H*W*C_out, H*W*C_in],
    one column per basis vector of the input."""
    n_in = HEIGHT * WIDTH * kernel.shape[2]
    basis = tf.reshape(tf.eye(n_in), [n_in, HEIGHT, WIDTH, kernel.shape[2]])
    columns = tf.nn.conv2d(basis, tf.constant(kernel, tf.float32), 1, 'SAME')
    return tf.reshape(columns, [n_in, -1]).numpy().T


def operator_norm(layer, kernel):
    kernel = np.asarray(kernel)
    if isinstance(layer, SpectralNormDense):
        return np.linalg.norm(kernel, 2)
    return np.linalg.norm(conv_operator(kernel), 2)


def build(kind, scale=1., coeff=0.9, seed=0):
    rng = np.random.default_rng(seed)
    if kind == 'dense':
        layer = SpectralNormDense(UNITS, coeff=coeff, rng=rng)
        layer.build([None, D_IN])
    else:
        layer = SpectralNormConv2D(UNITS, 3 if kind == 'conv3' else 1, coeff=coeff, rng=rng)
        layer.build([None, HEIGHT, WIDTH, C_IN])
    layer.kernel.assign(layer.kernel * scale)
    return layer


@pytest.mark.parametrize('kind', KINDS)
def test_power_iteration_finds_the_operator_norm_and_the_bound_holds(kind):
    layer = build(kind, 10.)
    layer.update_vectors()
    true = operator_norm(layer, layer.kernel.numpy())
    assert true > 5. * layer.coeff  # the bound is active
    assert abs(float(layer.sigma()) - true) < 1e-2 * true
    normalised = layer.normalised_kernel().numpy()
    # the kernel is scaled by exactly coeff / sigma: the true norm lands on coeff (to the estimate's accuracy)
    np.testing.assert_allclose(normalised, layer.kernel.numpy() * layer.coeff / float(layer.sigma()), rtol=1e-6)
    assert operator_norm(layer, normalised) <= layer.coeff + 1e-3
    assert operator_norm(layer, normalised) > layer.coeff * (1. - 1e-2)
    # params(update=True) runs the iteration and returns the normalised kernel and the bias
    kernel, bias = layer.params(update=True)
    assert operator_norm(layer, kernel.numpy()) <= layer.coeff + 1e-3
    np.testing.assert_array_equal(bias.numpy(), layer.bias.numpy())


@pytest.mark.parametrize('kind', KINDS)
def test_kernel_is_unchanged_below_the_bound(kind):
    layer = build(kind, 1e-3)
    layer.update_vectors()
    assert float(layer.sigma()) < layer.coeff
    np.testing.assert_array_equal(layer.normalised_kernel().numpy(), layer.kernel.numpy())
    np.testing.assert_array_equal(layer.params(update=True)[0].numpy(), layer.kernel.numpy())


def test_one_by_one_convolution_is_normalised_as_its_matrix():
    """u, v of a 1x1 convolution live on the channels; its operator norm over the image is the matrix's."""
    layer = build('conv1', 10.)
    assert layer.u.shape == (UNITS,) and layer.v.shape == (C_IN,)
    layer.update_vectors()
    np.testing.assert_allclose(float(layer.sigma()), np.linalg.norm(layer.kernel.numpy()[0, 0], 2), rtol=1e-2)
    conv3 = build('conv3')
    assert conv3.u.shape == (1, HEIGHT, WIDTH, UNITS) and conv3.v.shape == (1, HEIGHT, WIDTH, C_IN)


def test_n_iterations_runs_exactly_that_many():
    layer = build('dense', 10.)
    layer.n_iterations = 1
    u0 = layer.u.numpy().copy()
    layer.update_vectors()
    kernel = layer.kernel.numpy()  # [D_in, units]: v <- normalise(W u), u <- normalise(W^T v)
    v = kernel @ u0
    v /= np.linalg.norm(v)
    u = kernel.T @ v
    np.testing.assert_allclose(layer.v.numpy(), v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.u.numpy(), u / np.linalg.norm(u), rtol=1e-5, atol=1e-6)


def test_reading_without_update_leaves_the_vectors():
    layer = build('conv3', 10.)
    u, v = layer.u.numpy().copy(), layer.v.numpy().copy()
    layer.normalised_kernel()
    layer.params()
    np.testing.assert_array_equal(layer.u.numpy(), u)
    np.testing.assert_array_equal(layer.v.numpy(), v)
    layer.normalised_kernel(update=True)
    assert not np.array_equal(layer.u.numpy(), u)


def test_sigma_is_differentiated_through_the_kernel_only():
    """sigma = u^T W^T v (dense kernel [D_in, units]): d sigma / d W = v u^T, u and v held fixed."""
    layer = build('dense', 10.)
    layer.update_vectors()
    with tf.GradientTape() as tape:
        sigma = layer.sigma()
    grad = tape.gradient(sigma, layer.kernel)
    np.testing.assert_allclose(grad.numpy(), np.outer(layer.v.numpy(), layer.u.numpy()), rtol=1e-5, atol=1e-7)
    assert [w.name for w in layer.trainable_weights] == ['kernel:0', 'bias:0']
    assert not layer.u.trainable and not layer.v.trainable


@pytest.mark.parametrize('kind', KINDS)
def test_apply_transpose_is_the_vector_jacobian_product(kind):
    layer = build(kind, 10.)
    layer.update_vectors()
    params = layer.params()
    shape = [2, D_IN] if kind == 'dense' else [2, HEIGHT, WIDTH, C_IN]
    x = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)
    u = tf.constant(np.random.default_rng(2).normal(size=[*shape[:-1], UNITS]), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(layer.apply(x, params) * u)
    np.testing.assert_allclose(layer.apply_transpose(u, params).numpy(), tape.gradient(out, x).numpy(), atol=1e-5)
    # and apply is the layer's linear map plus the bias
    if kind == 'dense':
        expected = x.numpy() @ params[0].numpy() + params[1].numpy()
    else:
        expected = tf.nn.conv2d(x, params[0], 1, 'SAME').numpy() + params[1].numpy()
    np.testing.assert_allclose(layer.apply(x, params).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kind', ['swish', 'lipswish', 'elu', 'softplus'])
def test_activation_derivative_and_lipschitz_bound(kind):
    activation = Activation(kind)
    betas = [None] if activation.beta is None else [0.5, -3., 0., 4.]  # lipswish's learned beta
    x = tf.constant(np.linspace(-10., 10., 4001), tf.float32)
    for beta in betas:
        if beta is not None:
            activation.beta.assign(beta)
        params = activation.params()
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = activation.apply(x, params)
        derivative = activation.derivative(x, params).numpy()
        np.testing.assert_allclose(derivative, tape.gradient(y, x).numpy(), atol=1e-5)
        assert np.max(np.abs(derivative)) <= 1.
        # the secant slopes too (1-Lipschitz in value, not only in the sampled derivative)
        secants = np.diff(y.numpy()[::10].astype(np.float64)) / np.diff(x.numpy()[::10].astype(np.float64))
        assert np.max(np.abs(secants)) <= 1. + 1e-3  # float32 rounding of y over steps of 0.05
    if activation.kind == 'lipswish':  # x sigmoid(softplus(beta) x) / 1.1; swish is its alias
        assert kind in ('swish', 'lipswish') and activation.n_params == 1
        b = np.log1p(np.exp(4.))
        np.testing.assert_allclose(y.numpy(), x.numpy() / (1. + np.exp(-b * x.numpy())) / 1.1, rtol=1e-5, atol=1e-6)
    elif kind == 'elu':
        np.testing.assert_allclose(y.numpy(), np.where(x.numpy() > 0, x.numpy(), np.expm1(x.numpy())), atol=1e-6)
    else:
        np.testing.assert_allclose(y.numpy(), np.logaddexp(0., x.numpy()), rtol=1e-5, atol=1e-6)


def test_lipswish_beta_is_trainable_and_initially_one_half():
    activation = Activation('swish')
    assert activation.trainable_weights == [activation.beta] and float(activation.beta) == 0.5
    assert Activation('elu').trainable_weights == [] and Activation('elu').params() == []


@pytest.mark.parametrize('make', [lambda: Activation('relu'), lambda: Activation('Swish'),
                                  lambda: SpectralNormDense(0), lambda: SpectralNormConv2D(-1),
                                  lambda: SpectralNormDense(3, coeff=0.), lambda: SpectralNormDense(3, coeff=-1.),
                                  lambda: SpectralNormConv2D(3, coeff=0.),
                                  lambda: SpectralNormConv2D(3, 2), lambda: SpectralNormConv2D(3, 4),
                                  lambda: SpectralNormConv2D(3, 0),
                                  lambda: SpectralNormDense(3, n_iterations=0),
                                  lambda: SpectralNormDense(3, n_iterations=None, tol=0.)])
def test_bad_parameters_are_errors(make):
    with pytest.raises(ValueError):
        make()
