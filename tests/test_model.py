import numpy as np
import pytest
import tensorflow as tf

from emerging.config import ModelConfig
from emerging.flows.actnorm import ActNorm
from emerging.model import Glow


def tiny(**overrides):
    kwargs = dict(image_shape=(8, 8, 3), n_levels=2, depth=2, width=8, flow_coupling=1, learnprior=True)
    kwargs.update(overrides)
    return Glow(ModelConfig(**kwargs))


def uniform_images(n, shape=(8, 8, 3), seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, size=[n, *shape]), tf.uint8)


@pytest.mark.parametrize('perm', [0, 1, 2, 3, 4, 5])
def test_round_trip_and_fresh_bits_per_dim(perm):
    model = tiny(flow_permutation=perm)
    x = uniform_images(32)
    model.initialize(x)
    assert bool(model.initialized.numpy())
    bits = model.losses_per_example(x)['bits_x'].numpy()
    assert bits.shape == (32,)
    assert np.all(np.isfinite(bits)) and 8. < bits.mean() < 9.
    x_float = model.preprocess(x)
    _, eps, _ = model.encode_float(x_float)
    back, _ = model.decode_float(eps)
    np.testing.assert_allclose(back.numpy(), x_float.numpy(), atol=1e-4)
    recon = model.decode(model.encode(x)).numpy().astype(int)
    assert np.abs(recon - x.numpy()).max() <= 1 and np.mean(recon == x.numpy()) > 0.99


def test_every_actnorm_is_data_initialised():
    model = tiny()
    model.initialize(uniform_images(16))
    actnorms = [m for m in model.submodules if isinstance(m, ActNorm)]
    # one per step + two inside each coupling network
    assert len(actnorms) == 2 * 2 * 3
    assert all(np.any(a.bias.numpy() != 0) for a in actnorms)


def test_full_model_log_det_matches_jacobian():
    model = tiny(image_shape=(4, 4, 1), flow_permutation=3, ycond=True, n_y=3)
    rng = np.random.default_rng(0)
    for w in model.trainable_weights:
        w.assign_add(rng.normal(0., 0.05, w.shape))
    x = tf.constant(rng.uniform(-.5, .5, size=[2, 4, 4, 1]), tf.float32)
    y = tf.constant([0, 2])
    flat = tf.reshape(x, [2, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        _, eps, log_det = model.encode_float(tf.reshape(flat, [2, 4, 4, 1]), y)
        latent = model.flatten_latents(eps)
    jacobian = tape.batch_jacobian(latent, flat).numpy().astype(np.float64)
    np.testing.assert_allclose(log_det.numpy(), np.linalg.slogdet(jacobian)[1], rtol=1e-3, atol=1e-3)


def test_tfp_distribution_matches_objective():
    model = tiny(flow_permutation=3, ycond=True, n_y=10)
    x, y = uniform_images(4), tf.constant([1, 2, 3, 4])
    model.initialize(x, y)
    x_float = model.preprocess(x, noise=False)
    log_prob = model.distribution(y).log_prob(x_float).numpy()
    bits = model.losses_per_example(x, y, noise=False)['bits_x'].numpy()
    n_dims = 8 * 8 * 3
    np.testing.assert_allclose(-(log_prob - n_dims * np.log(256)) / (np.log(2) * n_dims), bits, rtol=1e-5)
    sample = model.distribution(y).sample()
    assert sample.shape == (4, 8, 8, 3)


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
                loss = tf.reduce_mean(model.losses_per_example(images, training=True, noise=False)['loss'])
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
