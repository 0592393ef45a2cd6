"""The vector flows of the density benchmarks: BNAF and TFP's MAF / RealNVP at matched sizes, the plateau
schedule, the Polyak average."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from emerging.config import VECTOR_FLOWS
from emerging.vector_flows import Plateau, PolyakAverage, build_flow, clipped_train_step


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


def test_plateau_reduces_after_patience_then_cools_down():
    schedule = Plateau(1., decay=0.5, patience=2, minimum=0.1, cooldown=1)
    lrs, events = [], []
    for loss in [5., 4., 4., 4., 4., 4., 4., 4., 3., 3., 3., 3., 3., 3., 3., 3., 3.]:
        lrs.append(schedule.step(loss))
        events.append((schedule.improved, schedule.reduced, schedule.since_best))
    # bests at 0, 1, 8; three bad steps (more than patience 2) reduce; one cooldown step does not count
    assert lrs == [1., 1., 1., 1., .5, .5, .5, .5, .5, .5, .5, .25, .25, .25, .25, .125, .125]
    assert events[1] == (True, False, 0) and events[4] == (False, True, 3) and events[8] == (True, False, 0)
    assert events[-1][2] == 8
    for _ in range(20):
        lr = schedule.step(3.)
    assert lr == 0.1  # never below the minimum


def test_polyak_average_is_debiased_and_swaps_back():
    w = tf.Variable([0., 0.])
    average = PolyakAverage([w], decay=0.5)
    average.swap()  # before any update: the weights themselves
    np.testing.assert_array_equal(w.numpy(), [0., 0.])
    average.swap()
    for value in ([2., 4.], [4., 8.]):
        w.assign(value)
        average.update()
    average.swap()
    # biased = 0.5 (0.5 * 0 + 0.5 * 2) + 0.5 * 4 = 2.5, debiased by 1 - 0.25: 10 / 3
    np.testing.assert_allclose(w.numpy(), [10. / 3., 20. / 3.], rtol=1e-6)
    average.swap()
    np.testing.assert_array_equal(w.numpy(), [4., 8.])
    with pytest.raises(ValueError, match='Polyak decay'):
        PolyakAverage([w], decay=1.)


def test_clipped_train_step_applies_the_clipped_gradient_then_the_hook():
    w = tf.Variable([3., 4.])
    calls = tf.Variable(0)
    optimizer = tf_keras.optimizers.SGD(1.)
    step = clipped_train_step(lambda x: tf.reduce_sum(w * x), [w], optimizer, clip_norm=1.,
                              after_update=lambda: calls.assign_add(1))
    loss = step(tf.constant([30., 40.]), tf.constant(0.5))  # gradient [30, 40], norm 50 -> [0.6, 0.8]
    np.testing.assert_allclose(float(loss), 250.)
    np.testing.assert_allclose(w.numpy(), [3. - 0.5 * 0.6, 4. - 0.5 * 0.8], rtol=1e-6)
    assert int(calls) == 1 and float(optimizer.learning_rate) == 0.5
