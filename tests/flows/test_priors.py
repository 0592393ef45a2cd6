import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.priors import TopPrior, standardize, unstandardize
from tests.flows.flow_checks import check_flow_layer, perturb


def test_standardize_is_inverted_by_unstandardize():
    rng = np.random.default_rng(0)
    z, mean, logsd = (tf.constant(rng.normal(size=[3, 2, 2, 4]), tf.float32) for _ in range(3))
    eps, log_det = standardize(z, mean, logsd)
    np.testing.assert_allclose(eps.numpy(), (z - mean).numpy() / np.exp(logsd.numpy()), rtol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), -logsd.numpy().sum(axis=(1, 2, 3)), rtol=1e-5)
    back, log_det_back = unstandardize(eps, mean, logsd)
    np.testing.assert_allclose(back.numpy(), z.numpy(), atol=1e-5)
    np.testing.assert_allclose(log_det_back.numpy(), -log_det.numpy(), rtol=1e-6)


def test_learned_top_prior_contract():
    rng = np.random.default_rng(1)
    layer = TopPrior(learnprior=True)
    layer.build([None, 3, 3, 4])
    perturb(layer, rng, 0.2)
    check_flow_layer(layer, [2, 3, 3, 4], rng)


def test_class_conditional_top_prior_reads_the_labels():
    rng = np.random.default_rng(2)
    layer = TopPrior(learnprior=True, ycond=True, n_y=3)
    layer.build([None, 2, 2, 4])
    perturb(layer, rng, 0.2)
    z = tf.constant(rng.normal(size=[3, 2, 2, 4]), tf.float32)
    labels = tf.constant([0, 2, 2])
    eps, log_det = layer.forward(z, 0., labels=labels)
    h = layer.p.of_zeros(3, 2, 2) + tf.reshape(layer.y_emb(tf.one_hot(labels, 3)), [3, 1, 1, 8])
    mean, logsd = h[..., :4].numpy(), h[..., 4:].numpy()
    np.testing.assert_allclose(eps.numpy(), (z.numpy() - mean) / np.exp(logsd), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_det.numpy(), -logsd.sum(axis=(1, 2, 3)), rtol=1e-5)
    back, _ = layer.reverse(eps, 0., labels=labels)
    np.testing.assert_allclose(back.numpy(), z.numpy(), atol=1e-5)
    assert not np.allclose(eps[1].numpy(), layer.forward(z, 0., labels=tf.constant([0, 0, 0]))[0][1].numpy())
    with pytest.raises(ValueError, match='class-conditional'):
        layer.forward(z, 0.)
