"""The vector flows of the density benchmarks: BNAF and TFP's MAF / RealNVP at matched sizes."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.choices import VECTOR_FLOWS
from emerging.vector import build_flow


@pytest.mark.parametrize('dims', [2, 6])
@pytest.mark.parametrize('kind', VECTOR_FLOWS)
def test_flows_have_the_shapes_finite_gradients_and_about_bnafs_size(kind, dims):
    bnaf_size = build_flow('bnaf', dims, hidden_dim=8, n_hidden=2, n_flows=2).parameter_count
    flow = build_flow(kind, dims, hidden_dim=8, n_hidden=2, n_flows=2, baseline_units=8 * dims)
    assert abs(flow.parameter_count - bnaf_size) / bnaf_size < 0.35, (flow.parameter_count, bnaf_size)
    assert flow.parameter_count == sum(int(np.prod(v.shape)) for v in flow.variables) or kind == 'bnaf'
    x = tf.constant(np.random.default_rng(0).normal(size=[7, dims]), tf.float32)
    with tf.GradientTape() as tape:
        log_prob = flow.density_distribution().log_prob(x)
        loss = -tf.reduce_mean(log_prob)
    grads = tape.gradient(loss, flow.variables)
    assert log_prob.shape == [7] and np.all(np.isfinite(log_prob.numpy()))
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    sampler = flow.sampler_distribution()
    with tf.GradientTape() as tape:
        points = sampler.sample(5, seed=1)
        reverse_kl_terms = sampler.log_prob(points)
        total = tf.reduce_sum(reverse_kl_terms + 0.5 * tf.reduce_sum(points ** 2, axis=1))  # a Gaussian energy
    assert points.shape == [5, dims] and reverse_kl_terms.shape == [5]
    assert all(g is not None for g in tape.gradient(total, flow.variables))


@pytest.mark.slow
def test_density_samples_invert_to_their_base_points():
    flow = build_flow('bnaf', 3, hidden_dim=6, n_hidden=2, n_flows=2)
    points, kept = flow.density_samples(400, seed=2)  # at initialisation the image holds a few percent of the base
    assert points.shape[0] == round(400 * float(kept)) > 0
    base = flow.density.inverse(tf.identity(points))  # a new tensor: not TFP's cached pair
    # kept points reach |x| ~ 500, where float32 holds ~6 digits: a relative tolerance as well as the absolute one
    np.testing.assert_allclose(flow.density.forward(tf.identity(base)).numpy(), points.numpy(), rtol=2e-5,
                               atol=1e-3)


@pytest.mark.slow
def test_the_last_bnaf_network_has_no_residual_so_far_latents_are_rejected():
    """The public layout: the last network is bounded, so the density BNAF reaches only a bounded set of latents."""
    flow = build_flow('bnaf', 2, hidden_dim=4, n_hidden=2, n_flows=2, residual='gated')
    networks = [b for b in flow.sampler.bijectors if hasattr(b, '_network')]
    assert [n._network.residual for n in networks] == [None, 'gated']  # a Chain lists the last applied first
    bound = sum(float(tf.reduce_sum(tf.abs(layer.weights_and_log_diagonal()[0]))) + float(tf.reduce_sum(tf.abs(
        layer.bias))) for layer in networks[0]._network.layers_[-1:])
    far = tf.constant([[bound + 1., 0.]], tf.float32)  # beyond what the last network can output
    far_point = flow.density.forward(far)
    assert not np.allclose(flow.density.inverse(tf.identity(far_point)).numpy(), far.numpy(), atol=1e-2)
    for kind in ('maf', 'realnvp'):
        assert float(build_flow(kind, 2, hidden_dim=4, n_hidden=1).density_samples(50, seed=0)[1]) == 1.


def test_bad_flows_are_errors():
    with pytest.raises(ValueError, match='unknown flow'):
        build_flow('glow')
    with pytest.raises(ValueError, match='realnvp needs at least 2 dimensions'):
        build_flow('realnvp', dims=1)
    with pytest.raises(ValueError, match='must be positive'):
        build_flow('maf', n_flows=0)
