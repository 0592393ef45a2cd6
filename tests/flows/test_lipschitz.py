import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.lipschitz import Activation, SpectralNormConv2D, SpectralNormDense


def conv_operator(layer, kernel, shape):
    """The convolution (no bias) as a matrix [H*W*C_out, H*W*C_in], column by column."""
    n_in = int(np.prod(shape))
    basis = tf.reshape(tf.eye(n_in), [n_in, *shape])
    columns = tf.nn.conv2d(basis, kernel, 1, 'SAME')
    return tf.reshape(columns, [n_in, -1]).numpy().T


def build(kind, scale):
    rng = np.random.default_rng(0)
    if kind == 'dense':
        layer = SpectralNormDense(6, coeff=0.9, rng=rng)
        layer.build([None, 5])
    else:
        layer = SpectralNormConv2D(6, 3 if kind == 'conv3' else 1, coeff=0.9, rng=rng)
        layer.build([None, 4, 4, 3])
    layer.kernel.assign(layer.kernel * scale)
    return layer


def operator_norm(layer, kernel):
    kernel = np.asarray(kernel)
    if isinstance(layer, SpectralNormDense):
        return np.linalg.norm(kernel, 2)
    return np.linalg.norm(conv_operator(layer, kernel, [4, 4, 3]), 2)


@pytest.mark.parametrize('kind', ['conv3', 'conv1', 'dense'])
def test_power_iteration_finds_the_operator_norm_and_the_bound_holds(kind):
    layer = build(kind, 10.)
    layer.update_vectors()
    true = operator_norm(layer, layer.kernel.numpy())
    assert abs(float(layer.sigma()) - true) < 1e-2 * true
    assert operator_norm(layer, layer.normalised_kernel().numpy()) <= layer.coeff + 1e-3
    # below the bound the kernel is used as it is
    small = build(kind, 1e-3)
    small.update_vectors()
    np.testing.assert_array_equal(small.normalised_kernel().numpy(), small.kernel.numpy())


def test_n_iterations_runs_exactly_that_many():
    one = build('dense', 10.)
    one.n_iterations = 1
    u0 = one.u.numpy().copy()
    one.update_vectors()
    kernel = one.kernel.numpy()
    v = kernel @ u0
    v /= np.linalg.norm(v)
    u = kernel.T @ v
    np.testing.assert_allclose(one.u.numpy(), u / np.linalg.norm(u), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kind', ['conv3', 'conv1', 'dense'])
def test_apply_transpose_is_the_vector_jacobian_product(kind):
    layer = build(kind, 1.)
    params = layer.params()
    shape = [2, 5] if kind == 'dense' else [2, 4, 4, 3]
    x = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)
    u = tf.constant(np.random.default_rng(2).normal(size=[*shape[:-1], 6]), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(layer.apply(x, params) * u)
    np.testing.assert_allclose(layer.apply_transpose(u, params).numpy(), tape.gradient(out, x).numpy(), atol=1e-5)


@pytest.mark.parametrize('kind', ['swish', 'elu', 'softplus'])
def test_activation_derivative_and_lipschitz_bound(kind):
    activation = Activation(kind)
    params = activation.params()
    x = tf.constant(np.linspace(-10., 10., 2001), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activation.apply(x, params)
    np.testing.assert_allclose(activation.derivative(x, params).numpy(), tape.gradient(y, x).numpy(), atol=1e-5)
    assert np.max(np.abs(activation.derivative(x, params).numpy())) <= 1.
    if kind == 'swish':  # LipSwish: beta = softplus(0.5) initially
        beta = np.log1p(np.exp(0.5))
        np.testing.assert_allclose(y.numpy(), x.numpy() / (1. + np.exp(-beta * x.numpy())) / 1.1, rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize('make', [lambda: Activation('relu'), lambda: SpectralNormDense(0),
                                  lambda: SpectralNormDense(3, coeff=0.), lambda: SpectralNormConv2D(3, 2),
                                  lambda: SpectralNormDense(3, n_iterations=None, tol=0.)])
def test_bad_parameters_are_errors(make):
    with pytest.raises(ValueError):
        make()
