import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.vector.bnaf import BNAFFlow, BNAFNetwork

tfd = tfp.distributions


def points(n, d, seed=0, scale=1.5):
    return tf.constant(np.random.default_rng(seed).normal(0., scale, [n, d]), tf.float32)


@pytest.mark.parametrize('d', [2, 3, 5])
@pytest.mark.parametrize('residual', [None, 'normal', 'gated'])
def test_log_det_is_the_log_of_the_triangular_jacobian(d, residual):
    network = BNAFNetwork(d, hidden=4, n_layers=3, residual=residual, rng=np.random.default_rng(d))
    x = points(6, d)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, log_det = network.forward_and_log_det(x)
    jacobian = tape.batch_jacobian(y, x).numpy().astype(np.float64)
    assert np.all(np.triu(jacobian, 1) == 0.)  # y_i depends on x_1..x_i only
    assert np.all(np.diagonal(jacobian, axis1=1, axis2=2) > 0.)  # and increases in x_i
    np.testing.assert_allclose(log_det.numpy(), np.linalg.slogdet(jacobian)[1], atol=1e-5)


@pytest.mark.parametrize('d', [2, 5])
@pytest.mark.parametrize('residual', ['normal', 'gated'])
def test_inverse_recovers_the_input(d, residual):
    flow = BNAFFlow(d, n_flows=2, hidden=8, n_layers=3, residuals=[residual] * 2, seed=1)
    bijector = flow.bijector
    x = points(16, d, scale=3.)
    y = bijector.forward(x).numpy()
    np.testing.assert_allclose(bijector.inverse(tf.constant(y)).numpy(), x.numpy(), atol=1e-4)
    # with residuals the map is onto R^d: any point has a preimage
    z = points(16, d, seed=2, scale=4.)
    np.testing.assert_allclose(bijector.forward(bijector.inverse(z)).numpy(), z.numpy(), atol=1e-4)


def test_stack_log_det_and_distribution_shapes():
    flow = BNAFFlow(3, n_flows=2, hidden=6)
    bijector = flow.bijector
    x = points(5, 3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = bijector.forward(x)
    jacobian = tape.batch_jacobian(y, x).numpy().astype(np.float64)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=1).numpy(),
                               np.linalg.slogdet(jacobian)[1], atol=1e-5)
    density = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(3)), tfp.bijectors.Invert(bijector))
    assert density.event_shape == [3]
    assert density.log_prob(points(4, 3)).shape == [4]
    assert density.log_prob(tf.reshape(points(6, 3), [2, 3, 3])).shape == [2, 3]
    assert density.sample([2, 4]).shape == [2, 4, 3]


def test_short_training_lowers_the_negative_log_likelihood():
    rng = np.random.default_rng(3)
    centres = np.array([[2., 0.], [-2., 0.], [0., 2.], [0., -2.]], np.float32)
    data = centres[rng.integers(0, 4, 2000)] + rng.normal(0., 0.3, [2000, 2]).astype(np.float32)
    flow = BNAFFlow(2, n_flows=1, hidden=16, seed=0)
    base = tfd.MultivariateNormalDiag(tf.zeros(2))
    variables = flow.trainable_variables
    optimizer = tf_keras.optimizers.Adam(1e-2)

    def nll(x):
        z, log_det = flow.networks[0].forward_and_log_det(x)
        return -tf.reduce_mean(base.log_prob(z) + log_det)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = nll(x)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    before = float(nll(tf.constant(data)))
    for k in range(300):
        step(tf.constant(data[rng.integers(0, 2000, 128)]))
    after = float(nll(tf.constant(data)))
    assert np.isfinite(after) and after < before - 0.25, (before, after)


def test_parameter_count_counts_the_live_entries():
    flow = BNAFFlow(2, n_flows=1, hidden=3, n_layers=2)
    # layer 1: 2 -> 6 (blocks 3x1 diagonal + 3x1 lower = 9 entries), layer 2: 6 -> 2 (1x3 + 1x6 = 9);
    # log scales 6 + 2, biases 6 + 2, the gate 1
    assert flow.parameter_count() == 9 + 9 + 8 + 8 + 1


@pytest.mark.parametrize('kwargs', [dict(dims=0), dict(dims=2, n_layers=1), dict(dims=2, residual='affine')])
def test_bad_parameters_are_errors(kwargs):
    with pytest.raises(ValueError):
        BNAFNetwork(**kwargs)


def test_distribution_gradients_are_the_networks():
    """TFP's log_prob of the density BNAF (the inverse of the network) differentiates the network's exact pass,
    not the root find: the same gradients as the network's own log-density."""
    flow = BNAFFlow(2, n_flows=1, hidden=8, n_layers=3, seed=2)
    network = flow.networks[0]
    density = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), tfp.bijectors.Invert(flow.bijector))
    x = points(32, 2)

    @tf.function
    def gradients():
        with tf.GradientTape(persistent=True) as tape:
            through_tfp = -tf.reduce_mean(density.log_prob(x))
            z, log_det = network.forward_and_log_det(x)
            direct = -tf.reduce_mean(tfd.MultivariateNormalDiag(tf.zeros(2)).log_prob(z) + log_det)
        return tape.gradient(through_tfp, flow.trainable_variables), tape.gradient(direct, flow.trainable_variables)

    for a, b in zip(*gradients()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
