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


def test_density_samples_invert_to_their_base_points():
    flow = build_flow('bnaf', 3, hidden_dim=6, n_hidden=2, n_flows=2)
    base = tf.constant(np.random.default_rng(2).normal(size=[9, 3]), tf.float32)
    points = flow.density.forward(base)  # the root find
    np.testing.assert_allclose(flow.density.inverse(points).numpy(), base.numpy(), atol=1e-4)


def test_bad_flows_are_errors():
    with pytest.raises(ValueError, match='unknown flow'):
        build_flow('glow')
    with pytest.raises(ValueError, match='realnvp needs at least 2 dimensions'):
        build_flow('realnvp', dims=1)
    with pytest.raises(ValueError, match='must be positive'):
        build_flow('maf', n_flows=0)
