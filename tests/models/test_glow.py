import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.actnorm import ActNorm
from emerging.flows.base import channel_halves
from emerging.flows.squeeze import squeeze2d
from emerging.models.config import GlowConfig
from emerging.models.glow import Glow
from tests.flows.flow_checks import Eager, assert_bijective_and_finite

# the autoregressive inverse (5) is sequential: slow, run with the full suite
PERMUTATIONS = [0, 1, 2, 3, 4, pytest.param(5, marks=pytest.mark.slow)]


def tiny(**overrides):
    kwargs = dict(image_shape=(8, 8, 3), n_levels=2, depth=2, width=8, flow_coupling=1, learnprior=True)
    kwargs.update(overrides)
    return Glow(GlowConfig(**kwargs))


def uniform_images(n, shape=(8, 8, 3), seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, size=[n, *shape]), tf.uint8)


@pytest.mark.parametrize('perm', PERMUTATIONS)
def test_round_trip_and_fresh_bits_per_dim(perm):
    model = tiny(flow_permutation=perm)
    x = uniform_images(32)
    model.initialize(x)
    assert bool(model.initialized.numpy())
    bits = model.losses_per_example(x)['bits_x'].numpy()
    assert bits.shape == (32,)
    assert np.all(np.isfinite(bits)) and 8. < bits.mean() < 9.
    x_float = model.preprocess(x)
    z, log_det = model.bijector().inverse_and_log_det(x_float)
    back, log_det_back = model.bijector().forward_and_log_det(z)
    np.testing.assert_allclose(back.numpy(), x_float.numpy(), atol=1e-4)
    np.testing.assert_allclose(log_det_back.numpy(), -log_det.numpy(), rtol=1e-4, atol=1e-3)
    recon = model.decode(model.encode(x)).numpy().astype(int)
    assert np.abs(recon - x.numpy()).max() <= 1 and np.mean(recon == x.numpy()) > 0.99
    np.testing.assert_array_equal(model.decode(model.encode(x, noise=False)).numpy(), x.numpy())  # bin centres


def test_initialize_is_one_pass_over_the_layers_in_order():
    model = tiny(depth=3)
    x_float = model.preprocess(uniform_images(64))
    model.flow.initialize(x_float)
    actnorms = [m for m in model.submodules if isinstance(m, ActNorm)]
    assert len(actnorms) == 2 * 3 * 3  # one per step + two inside each coupling network
    assert all(np.any(a.bias.numpy() != 0) for a in actnorms)
    # every flow actnorm was initialised from the output of all the layers before
    # it: on the same batch, its output has zero mean and unit variance per channel
    h = squeeze2d(x_float)
    for level in model.levels:
        for step in level:
            out = step.actnorm.forward(h, 0.)[0].numpy()
            np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0., atol=1e-4)
            np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1., atol=1e-3)
            h = step.forward(h, 0.)[0]
        h = squeeze2d(channel_halves(h)[0])  # the split prior keeps the first half as it is


def test_full_model_log_det_matches_jacobian():
    model = tiny(image_shape=(4, 4, 1), flow_permutation=3, ycond=True, n_y=3)
    rng = np.random.default_rng(0)
    for w in model.trainable_weights:
        w.assign_add(rng.normal(0., 0.05, w.shape))
    x = tf.constant(rng.uniform(-.5, .5, size=[2, 4, 4, 1]), tf.float32)
    bijector = model.bijector(tf.constant([0, 2]))
    flat = tf.reshape(x, [2, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        z, log_det = bijector.inverse_and_log_det(tf.reshape(flat, [2, 4, 4, 1]))
        z = tf.reshape(z, [2, -1])
    jacobian = tape.batch_jacobian(z, flat).numpy().astype(np.float64)
    np.testing.assert_allclose(log_det.numpy(), np.linalg.slogdet(jacobian)[1], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('perm', PERMUTATIONS)
def test_distribution_log_prob_is_the_training_objective_and_tfp_checks_pass(perm):
    model = tiny(flow_permutation=perm, ycond=True, n_y=10)
    x, y = uniform_images(4), tf.constant([1, 2, 3, 4])
    model.initialize(x, y)
    x_float = model.preprocess(x, noise=False)
    log_prob = model.distribution(y).log_prob(x_float).numpy()
    bits = model.losses_per_example(x, y, noise=False)['bits_x'].numpy()
    n_dims = 8 * 8 * 3
    np.testing.assert_allclose(-(log_prob - n_dims * np.log(256)) / (np.log(2) * n_dims), bits, rtol=1e-5)
    z = np.random.default_rng(perm).normal(size=[4, 8, 8, 3]).astype(np.float32)
    assert_bijective_and_finite(model.bijector(y), z, model.preprocess(x).numpy(), event_ndims=3,
                                atol=1e-4, rtol=1e-4, sess=Eager)


def test_distribution_follows_tfp_shape_rules():
    model = tiny(flow_permutation=3)
    model.initialize(uniform_images(16))
    distribution = model.distribution()
    assert distribution.event_shape == [8, 8, 3] and distribution.batch_shape == []
    assert distribution.sample().shape == (8, 8, 3)
    assert distribution.sample(3).shape == (3, 8, 8, 3)
    assert distribution.sample([2, 3]).shape == (2, 3, 8, 8, 3)
    x = model.preprocess(uniform_images(6), noise=False)
    flat_log_prob = distribution.log_prob(x).numpy()
    assert flat_log_prob.shape == (6,)
    np.testing.assert_allclose(distribution.log_prob(tf.reshape(x, [2, 3, 8, 8, 3])).numpy(),
                               flat_log_prob.reshape(2, 3), rtol=1e-6)
    assert distribution.log_prob(x[0]).shape == ()
    np.testing.assert_allclose(distribution.log_prob(x[0]).numpy(), flat_log_prob[0], rtol=1e-6)


def test_class_conditional_distribution_batch_shape_is_the_labels():
    model = tiny(flow_permutation=2, ycond=True, n_y=4)
    model.initialize(uniform_images(16), tf.constant(np.arange(16) % 4))
    for v in model.prior.y_emb.trainable_variables:  # labels must matter
        v.assign(np.random.default_rng(0).normal(0., 0.1, v.shape))
    y = tf.constant([[0, 1, 2], [3, 0, 1]])
    distribution = model.distribution(y)
    assert distribution.batch_shape == [2, 3] and distribution.event_shape == [8, 8, 3]
    assert distribution.sample().shape == (2, 3, 8, 8, 3)
    assert distribution.sample(4).shape == (4, 2, 3, 8, 8, 3)
    x = model.preprocess(uniform_images(6), noise=False)
    log_prob = distribution.log_prob(tf.reshape(x, [2, 3, 8, 8, 3])).numpy()
    expected = model.distribution(tf.reshape(y, [6])).log_prob(x).numpy()
    np.testing.assert_allclose(log_prob, expected.reshape(2, 3), rtol=1e-6)
    assert not np.allclose(model.distribution(tf.zeros([6], tf.int32)).log_prob(x).numpy(), expected)
    # one x broadcast against the labels' batch
    assert distribution.log_prob(x[0]).shape == (2, 3)
    with pytest.raises(ValueError, match='class-conditional'):
        model.distribution()


def conv_count(fn, *specs):
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return sum(op.type in ('Conv2D', 'MatMul', 'BatchMatMulV2') for op in graph.get_operations())


@pytest.mark.parametrize('perm', [2, 3])
def test_log_prob_runs_the_encoder_once(perm):
    model = tiny(flow_permutation=perm)
    model.initialize(uniform_images(8))
    spec = tf.TensorSpec([4, 8, 8, 3], tf.float32)
    encoder = conv_count(lambda x: model.bijector().inverse_and_log_det(x), spec)
    assert encoder > 0
    assert conv_count(lambda x: model.distribution().log_prob(x), spec) == encoder


def test_sampling_goes_through_the_composition_with_temperature():
    model = tiny(flow_permutation=3, ycond=True, n_y=4)
    model.initialize(uniform_images(8), tf.zeros([8], tf.int32))
    y = tf.constant([0, 1, 2, 3])
    tf.random.set_seed(1)
    z = tf.random.normal([4, 8, 8, 3]) * 0.5
    tf.random.set_seed(1)
    sample = model.sample(y, temperature=0.5)
    np.testing.assert_array_equal(sample.numpy(), model.postprocess(model.bijector(y).forward(z)).numpy())


def test_latent_layout_is_the_original_flat_order():
    model = tiny(image_shape=(8, 8, 3), n_levels=3)
    z = tf.random.normal([2, 8, 8, 3])
    parts = model.latent_parts(z)
    assert [tuple(p.shape[1:]) for p in parts] == [(4, 4, 6), (2, 2, 12), (1, 1, 48)] == list(model.latent_shapes)
    flat = model.flatten_latents(z)
    np.testing.assert_array_equal(flat.numpy(), np.concatenate([p.numpy().reshape(2, -1) for p in parts], axis=1))
    np.testing.assert_array_equal(model.unflatten_latents(flat).numpy(), z.numpy())
    np.testing.assert_array_equal(model.merge_latent_parts(parts).numpy(), z.numpy())
    # the top eps is what the top prior standardised
    x = model.preprocess(uniform_images(2), noise=False)
    z = model.bijector().inverse(x)
    top = model.latent_parts(z)[-1]
    assert top.shape == (2, 1, 1, 48)


def test_sampling_temperature():
    model = tiny(flow_permutation=3, ycond=True, n_y=4)
    model.initialize(uniform_images(8), tf.zeros([8], tf.int32))
    y = tf.constant([0, 1, 2, 3])
    a = model.sample(y, temperature=0.).numpy()
    b = model.sample(y, temperature=0.).numpy()
    np.testing.assert_array_equal(a, b)
    mixed = model.sample(y, temperature=tf.constant([0., 1., 0., 1.])).numpy()
    np.testing.assert_array_equal(mixed[0], a[0])
    assert mixed.dtype == np.uint8 and mixed.shape == (4, 8, 8, 3)


def test_classifier_loss_when_weight_y():
    model = tiny(ycond=True, n_y=10, weight_y=0.5)
    x, y = uniform_images(4), tf.constant([1, 2, 3, 4])
    losses = model.losses_per_example(x, y)
    np.testing.assert_allclose(losses['bits_y'].numpy(), np.log2(10), rtol=1e-5)  # zero-initialised logits
    np.testing.assert_allclose(losses['loss'].numpy(), losses['bits_x'].numpy() + 0.5 * np.log2(10), rtol=1e-5)
    plain = tiny()
    np.testing.assert_array_equal(plain.losses_per_example(x)['pred_loss'].numpy(), 1.)


@pytest.mark.slow
def test_gradient_checkpointing_gives_same_gradients():
    x = uniform_images(4)
    grads, reference = [], None
    for checkpointing in (False, True):
        model = tiny(flow_permutation=3, gradient_checkpointing=checkpointing, seed=3)
        if reference is None:
            model.initialize(x)
            reference = model.get_weights()
        model.set_weights(reference)

        @tf.function
        def step(images):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model.losses_per_example(images, noise=False)['loss'])
            return tape.gradient(loss, model.trainable_weights)

        grads.append([g.numpy() for g in step(x)])
    for a, b in zip(*grads):
        assert np.all(np.isfinite(b))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_no_retracing_across_calls():
    model = tiny()
    model.initialize(uniform_images(8))
    fn = tf.function(lambda images: model.losses_per_example(images)['loss'],
                     input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.uint8)])
    for seed in range(3):
        fn(uniform_images(4 + seed, seed=seed))
    assert fn.experimental_get_tracing_count() == 1


def test_parameter_counts_by_kind():
    model = tiny(flow_permutation=3)
    counts = model.parameter_counts()
    # level 0: C=12, level 1: C=24; two steps per level
    assert counts['emerging'] == 2 * (2 * (3 * 144 + 78) + 12) + 2 * (2 * (3 * 576 + 300) + 24)
    assert counts['1x1'] == 2 * 144 + 2 * 576
    assert counts['periodic'] == 0
    dense_total = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert counts['total'] < dense_total  # masked entries are not counted
    plain = tiny(flow_permutation=2)
    assert plain.parameter_counts()['total'] == sum(int(np.prod(w.shape)) for w in plain.trainable_weights)


def test_restored_model_does_not_reinitialise(tmp_path):
    model = tiny()
    model.initialize(uniform_images(8))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / 'ckpt'))
    other = tiny(seed=5)
    tf.train.Checkpoint(model=other).read(path).assert_existing_objects_matched()
    assert bool(other.initialized.numpy())
    x = uniform_images(4, seed=9)
    np.testing.assert_allclose(other.losses_per_example(x, noise=False)['bits_x'].numpy(),
                               model.losses_per_example(x, noise=False)['bits_x'].numpy(), rtol=1e-6)


@pytest.mark.parametrize('overrides, message', [
    (dict(image_shape=(12, 12, 3), n_levels=3), 'not divisible by 2\\^n_levels = 8'),
    (dict(flow_permutation=7), 'unknown flow_permutation 7'),
    (dict(decomposition='SVD'), "unknown decomposition 'SVD'"),
    (dict(flow_coupling=2), 'unknown flow_coupling 2'),
    (dict(image_shape=(8, 8)), 'image_shape must be'),
    (dict(n_bits_x=9), 'n_bits_x must be in 1..8'),
    (dict(compute_dtype='float64'), "unknown compute_dtype 'float64'; allowed: float32, bfloat16, float16"),
])
def test_bad_configuration_is_rejected_when_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)
