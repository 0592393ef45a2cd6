"""The Residual Flow model: one composition whose log-density is the change of variables."""
import math

import numpy as np
import pytest
import tensorflow as tf

from emerging.config import ResFlowConfig
from emerging.resflow import ResFlow, n_scales


@pytest.fixture(autouse=True)
def seeded():
    tf.random.set_seed(0)


def tiny(**overrides):
    config = dict(image_shape=(8, 8, 1), n_blocks=(1, 1), idim=8, fc_idim=8, fc_nblocks=1, seed=3)
    config.update(overrides)
    model = ResFlow(ResFlowConfig(**config))
    images = np.random.default_rng(4).integers(0, 256, [32, *model.config.image_shape]).astype(np.uint8)
    model.initialize(tf.constant(images))
    return model, images


@pytest.mark.slow  # hundreds of estimates
@pytest.mark.parametrize('overrides', [dict(), dict(factor_out=True), dict(fc_end=False, activation='elu'),
                                       dict(image_shape=(16, 16, 1), squeeze_first=True, factor_out=True)])
def test_log_density_is_the_change_of_variables(overrides):
    model, images = tiny(**overrides)
    x = model.preprocess(tf.constant(images[:2]))
    n_dims = model.config.n_dims
    bijector = model.bijector()
    flat = tf.reshape(x, [2, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        z = bijector.inverse_and_log_det(tf.reshape(flat, x.shape), map_only=True)[0]
        z = tf.reshape(z, [2, -1])
    jacobian = tape.batch_jacobian(z, flat).numpy().astype(np.float64)
    assert jacobian.shape == (2, n_dims, n_dims)
    exact = np.linalg.slogdet(jacobian)[1]
    estimate = tf.function(lambda: bijector.inverse_and_log_det(x)[1])
    draws = np.array([estimate().numpy() for _ in range(100)])
    mean, stderr = draws.mean(0), draws.std(0) / 10.
    assert np.all(np.abs(mean - exact) < 3.5 * stderr + 1e-3), (mean, exact, stderr)
    # TFP's log_prob is that change of variables
    log_normal = -0.5 * np.sum(z.numpy() ** 2 + math.log(2 * math.pi), axis=1)
    log_prob = tf.function(lambda: model.distribution().log_prob(x))
    lp_draws = np.array([log_prob().numpy() for _ in range(100)])
    assert np.all(np.abs(lp_draws.mean(0) - (log_normal + exact)) < 3.5 * lp_draws.std(0) / 10. + 1e-3)


@pytest.mark.parametrize('overrides', [dict(), dict(factor_out=True, fc_end=False),
                                       dict(image_shape=(16, 16, 3), squeeze_first=True)])
def test_encode_decode_and_sampling(overrides):
    model, images = tiny(**overrides)
    z = model.encode(tf.constant(images[:4]), noise=False)
    assert z.shape == (4, *model.config.image_shape)
    np.testing.assert_array_equal(model.decode(z).numpy(), images[:4])
    np.testing.assert_array_equal(model.unflatten_latents(model.flatten_latents(z)).numpy(), z.numpy())
    distribution = model.distribution()
    samples = distribution.sample([2, 3])
    assert samples.shape == (2, 3, *model.config.image_shape)
    assert distribution.log_prob(samples).shape == (2, 3)
    assert model.sample(batch=5, temperature=0.7).shape == (5, *model.config.image_shape)


def test_losses_and_parameter_counts():
    model, images = tiny()
    for training in (False, True):
        losses = model.losses_per_example(tf.constant(images[:4]), training=training)
        assert set(losses) == {'loss', 'bits_x', 'bits_y', 'pred_loss'}
        assert np.all(np.isfinite(losses['bits_x'].numpy())) and losses['bits_x'].shape == (4,)
    counts = model.parameter_counts()
    assert counts['total'] == counts['residual'] + counts['rest'] == sum(
        int(np.prod(w.shape)) for w in model.trainable_weights)


def test_structure_follows_the_public_code():
    model, _ = tiny(image_shape=(28, 28, 1), n_blocks=(2, 2, 2, 2), fc_nblocks=4)
    assert n_scales(model.config) == 3  # 28 -> 14 -> 7; a fourth scale would be 3 pixels wide
    names = [block.name for block in model.blocks]
    assert names == [f'scale{i}_block{b}' for i in range(3) for b in range(2)] + [f'fc_block{b}' for b in range(4)]
    # the first block of the first scale has no leading activation; every other one has
    assert model.blocks[0].activations[0] is None
    assert all(block.activations[0] is not None for block in model.blocks[1:])


@pytest.mark.parametrize('overrides', [dict(image_shape=(6, 6, 1), squeeze_first=True), dict(image_shape=(2, 2, 1)),
                                       dict(coeff=1.), dict(activation='relu'), dict(compute_dtype='bfloat16')])
def test_bad_configurations_are_errors(overrides):
    with pytest.raises(ValueError):
        tiny(**overrides)
