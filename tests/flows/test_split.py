import numpy as np
import tensorflow as tf

from emerging.flows.coupling import Coupling
from emerging.flows.nets.conv import Conv2dZeros
from emerging.flows.split import FirstHalf, SplitPrior
from tests.flows.flow_checks import check_flow_layer, perturb


def test_learned_split_prior_contract():
    rng = np.random.default_rng(0)
    layer = SplitPrior(learnprior=True)
    layer.build([None, 4, 4, 6])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, 4, 4, 6], rng)


def test_split_prior_standardises_the_second_half_by_the_original_channels():
    """eps = (z2 - h[..., 0::2]) / exp(h[..., 1::2]) with h = conv_zeros(z1) in the original channel order."""
    rng = np.random.default_rng(1)
    layer = SplitPrior(learnprior=True)
    layer.build([None, 3, 3, 4])
    perturb(layer, rng, 0.2)
    reference = Conv2dZeros(4, 3)
    reference.build([None, 3, 3, 2])
    for source, target in zip(layer.conv.weights, reference.weights):
        target.assign(source)
    x = tf.constant(rng.normal(size=[2, 3, 3, 4]), tf.float32)
    z, log_det = layer.forward(x, 0.)
    h = reference(x[..., :2]).numpy()
    mean, logsd = h[..., 0::2], h[..., 1::2]
    np.testing.assert_array_equal(z[..., :2].numpy(), x[..., :2].numpy())
    np.testing.assert_allclose(z[..., 2:].numpy(), (x[..., 2:].numpy() - mean) / np.exp(logsd), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_det.numpy(), -logsd.sum(axis=(1, 2, 3)), rtol=1e-5)


def test_fixed_split_prior_is_the_identity():
    layer = SplitPrior(learnprior=False)
    layer.build([None, 3, 3, 4])
    assert not layer.trainable_weights
    x = tf.random.normal([2, 3, 3, 4])
    z, log_det = layer.forward(x, tf.zeros([2]))
    np.testing.assert_array_equal(z.numpy(), x.numpy())
    np.testing.assert_array_equal(log_det.numpy(), 0.)


def test_first_half_contract_leaves_the_second_half():
    rng = np.random.default_rng(2)
    layer = FirstHalf(Coupling(8, 1, rng=rng))
    layer.build([None, 4, 4, 8])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, 4, 4, 8], rng)
    x = tf.random.normal([2, 4, 4, 8])
    z, log_det = layer.forward(x, 0.)
    np.testing.assert_array_equal(z[..., 4:].numpy(), x[..., 4:].numpy())
    inner_z, inner_log_det = layer.inner.forward(x[..., :4], 0.)
    np.testing.assert_array_equal(z[..., :4].numpy(), inner_z.numpy())
    np.testing.assert_array_equal(log_det.numpy(), inner_log_det.numpy())
