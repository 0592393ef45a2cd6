"""The Residual Flow model: one composition whose log-density is the change of variables.

The composition check replaces every residual block's (random) log-det estimate by its brute-force value:
the model's log-det must then be the log|det| of the Jacobian of the whole data -> latent map, computed
here by autodiff, so every other piece (logit, actnorms incl. the per-element ones, squeezes, factor-out)
and the way the pieces are chained is checked exactly.  The real estimators are checked in distribution
(mean of many estimates within 3 standard errors).
"""
import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.actnorm import ActNorm
from emerging.models.config import ResFlowConfig
from emerging.models.resflow import ResFlow, check_shape, n_scales

N = 2


@pytest.fixture(autouse=True)
def seeded():
    tf.random.set_seed(0)


def tiny(**overrides):
    config = dict(image_shape=(8, 8, 1), n_blocks=(1, 1), idim=8, fc_idim=8, fc_nblocks=1, seed=3)
    config.update(overrides)
    model = ResFlow(ResFlowConfig(**config))
    images = np.random.default_rng(4).integers(0, 256, [16, *model.config.image_shape]).astype(np.uint8)
    model.initialize(tf.constant(images))
    return model, images


def strengthen(model, scale=20.):
    """Scale every kernel of g up so the Lipschitz bound is active and each block's log-det is sizeable."""
    for block in model.blocks:
        for linear in block.linears:
            linear.kernel.assign(linear.kernel * scale)
        block.update_spectral_norms()


def converge(model):
    """Power iterations to 1e-7 (in a graph), so that training calls' extra iterations leave g as it is."""
    linears = [linear for block in model.blocks for linear in block.linears]
    for linear in linears:
        linear.tol = 1e-7
    tf.function(model.update_spectral_norms)()
    for linear in linears:
        linear.tol = model.config.sn_tol


def brute_force_blocks(monkeypatch, model):
    """Every residual block's log-det estimate replaced by log|det(I + dg/dx)| from its full Jacobian."""
    for block in model.blocks:
        monkeypatch.setattr(block, 'forward_and_log_det',
                            lambda x, training=False, rng=None, block=block: (x + block.g(x),
                                                                              block.brute_force_log_det(x)))


def change_of_variables(model, x):
    """(z [N, D], log|det dz/dx| [N]) of the whole data -> latent map, from its full Jacobian (float64)."""
    flat = tf.reshape(x, [N, -1])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        z = model.bijector().inverse_and_log_det(tf.reshape(flat, x.shape), map_only=True)[0]
        z = tf.reshape(z, [N, -1])
    jacobian = tape.batch_jacobian(z, flat).numpy().astype(np.float64)
    assert jacobian.shape == (N, model.config.n_dims, model.config.n_dims)
    return z.numpy().astype(np.float64), np.linalg.slogdet(jacobian)[1]


def log_normal(z):
    return -0.5 * np.sum(z ** 2 + math.log(2 * math.pi), axis=1)


@pytest.mark.parametrize('factor_out, squeeze_first, fc_end', list(itertools.product([False, True], repeat=3)))
@pytest.mark.slow
def test_log_det_is_the_change_of_variables(factor_out, squeeze_first, fc_end, monkeypatch):
    """Two scales in every case (16x16 with squeeze_first, so that factor_out still splits)."""
    model, images = tiny(image_shape=(16, 16, 1) if squeeze_first else (8, 8, 1), factor_out=factor_out,
                         squeeze_first=squeeze_first, fc_end=fc_end, activation='elu')
    assert n_scales(model.config) == 2
    assert [b.name for b in model.blocks] == ['scale0_block0', 'scale1_block0'] + ['fc_block0'] * fc_end
    # what each block sees: [squeeze_first] -> scale 0 -> squeeze -> [first half of the channels] -> scale 1
    scale0 = [8, 8, 4] if squeeze_first else [8, 8, 1]
    scale1 = [4, 4, scale0[-1] * 4 // (2 if factor_out else 1)]
    assert [b.event_shape for b in model.blocks] == [scale0, scale1] + [scale1] * fc_end
    strengthen(model)
    x = model.preprocess(tf.constant(images[:N]), noise=False)  # the corner of each bin, as losses(noise=False)
    z, exact = change_of_variables(model, x)

    # every block contributes a sizeable log-det, so leaving one out (or counting one twice) would show
    contributions = []
    for block in model.blocks:
        original = block.brute_force_log_det
        block_input = []
        monkeypatch.setattr(block, 'brute_force_log_det', lambda t, o=original, c=block_input: c.append(t) or o(t))
        contributions.append((block, block_input, original))
    brute_force_blocks(monkeypatch, model)
    z_model, log_det = model.bijector().inverse_and_log_det(x)
    np.testing.assert_allclose(z_model.numpy().reshape(N, -1), z, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy(), exact, rtol=0., atol=1e-3)
    for block, block_input, original in contributions:
        assert len(block_input) == 1, block.name  # each block's log-det is counted once
        assert np.all(np.abs(original(block_input[0]).numpy()) > 0.01), block.name  # 10x the tolerance

    # TFP's log_prob and the model's loss are that change of variables
    np.testing.assert_allclose(model.distribution().log_prob(x).numpy(), log_normal(z) + exact, rtol=1e-6, atol=2e-3)
    n_dims = model.config.n_dims
    losses = model.losses_per_example(tf.constant(images[:N]), noise=False)
    bits = -(log_normal(z) + exact - n_dims * math.log(256.)) / (n_dims * math.log(2.))
    np.testing.assert_allclose(losses['bits_x'].numpy(), bits, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(losses['loss'].numpy(), bits, rtol=1e-6, atol=1e-5)


@pytest.mark.slow
def test_log_det_estimates_are_unbiased_at_the_model_level():
    """The real estimators: the mean of 100 evaluation and of 100 training estimates of the model's log-det
    within 3 standard errors (+1e-3) of the full Jacobian's."""
    model, images = tiny(factor_out=True)
    strengthen(model)
    converge(model)
    x = model.preprocess(tf.constant(images[:N]))
    _, exact = change_of_variables(model, x)
    bijector = model.bijector()
    for training in (False, True):
        estimate = tf.function(lambda: bijector.inverse_and_log_det(x, training=training)[1])
        draws = np.array([estimate().numpy() for _ in range(100)])
        mean, stderr = draws.mean(0), draws.std(0) / 10.
        assert np.all(np.abs(mean - exact) < 3. * stderr + 1e-3), (training, mean, exact, stderr)


@pytest.mark.parametrize('overrides', [dict(), dict(factor_out=True, fc_end=False),
                                       dict(image_shape=(16, 16, 3), squeeze_first=True),
                                       dict(image_shape=(8, 8, 1), squeeze_first=True, n_bits_x=5)])
@pytest.mark.slow
def test_encode_decode_and_sampling(overrides):
    model, images = tiny(**overrides)
    if model.config.n_bits_x < 8:  # images on the n_bits_x grid (decode returns the bin's lowest value)
        images = images // 2 ** (8 - model.config.n_bits_x) * 2 ** (8 - model.config.n_bits_x)
    strengthen(model)
    z = model.encode(tf.constant(images[:4]), noise=False)
    assert z.shape == (4, *model.config.image_shape)
    np.testing.assert_array_equal(model.decode(z).numpy(), images[:4])
    assert model.decode(z).dtype == tf.uint8
    np.testing.assert_array_equal(model.unflatten_latents(model.flatten_latents(z)).numpy(), z.numpy())
    distribution = model.distribution()
    samples = distribution.sample([2])
    assert samples.shape == (2, *model.config.image_shape)
    assert distribution.log_prob(samples).shape == (2,)
    samples = distribution.sample([2, 3])
    assert samples.shape == (2, 3, *model.config.image_shape)
    log_prob = distribution.log_prob(samples)
    assert log_prob.shape == (2, 3) and np.all(np.isfinite(log_prob.numpy()))
    uint8_samples = model.sample(batch=5, temperature=0.7)
    assert uint8_samples.shape == (5, *model.config.image_shape) and uint8_samples.dtype == tf.uint8


@pytest.mark.parametrize('overrides', [dict(), dict(mem_eff=False), dict(neumann_grad=False, mem_eff=False),
                                       dict(n_power_series=2, factor_out=True)])
@pytest.mark.slow
def test_losses_and_their_gradients_are_finite(overrides):
    model, images = tiny(**overrides)
    for training in (False, True):
        with tf.GradientTape() as tape:
            losses = model.losses_per_example(tf.constant(images[:4]), training=training)
            loss = tf.reduce_mean(losses['loss'])
        assert set(losses) == {'loss', 'bits_x', 'bits_y', 'pred_loss'}
        for key, value in losses.items():
            assert value.shape == (4,) and np.all(np.isfinite(value.numpy())), key
        np.testing.assert_array_equal(losses['bits_y'].numpy(), 0.)
        np.testing.assert_array_equal(losses['pred_loss'].numpy(), 1.)
        np.testing.assert_array_equal(losses['loss'].numpy(), losses['bits_x'].numpy())
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)
    assert model.call((tf.constant(images[:4]), None)).shape == (4,)


def test_parameter_counts():
    model, _ = tiny()
    counts = model.parameter_counts()
    assert set(counts) == {'residual', 'rest', 'total'}
    count = lambda weights: sum(int(np.prod(w.shape)) for w in weights)  # noqa: E731
    assert counts['total'] == count(model.trainable_weights)
    assert counts['residual'] == sum(count(block.trainable_weights) for block in model.blocks) > 0
    actnorms = [layer for layer in model.submodules if isinstance(layer, ActNorm)]
    assert counts['rest'] == count(w for a in actnorms for w in a.trainable_weights) > 0
    assert counts['total'] == counts['residual'] + counts['rest']


@pytest.mark.slow
def test_structure_follows_the_public_code():
    model, _ = tiny(image_shape=(28, 28, 1), n_blocks=(2, 2, 2, 2), fc_nblocks=4)
    assert n_scales(model.config) == 3  # 28 -> 14 -> 7; a fourth scale would be 3 pixels wide
    names = [block.name for block in model.blocks]
    assert names == [f'scale{i}_block{b}' for i in range(3) for b in range(2)] + [f'fc_block{b}' for b in range(4)]
    # the first block of the first scale has no leading activation; every other one has
    assert model.blocks[0].activations[0] is None
    assert all(block.activations[0] is not None for block in model.blocks[1:])
    assert all(block.fc for block in model.blocks[6:]) and not any(block.fc for block in model.blocks[:6])


@pytest.mark.parametrize('image_shape, squeeze_first, n_blocks', [((6, 6, 1), True, (1, 1)), ((2, 2, 1), False, (1,)),
                                                                  ((4, 4, 1), True, (1,)), ((3, 8, 1), False, (1,)),
                                                                  ((9, 9, 1), False, (1, 1))])
def test_image_shape_that_does_not_fit_the_scales_is_an_error(image_shape, squeeze_first, n_blocks):
    config = ResFlowConfig(image_shape=image_shape, squeeze_first=squeeze_first, n_blocks=n_blocks)
    with pytest.raises(ValueError, match='image_shape'):
        check_shape(config)
    with pytest.raises(ValueError, match='image_shape'):
        ResFlow(config)


@pytest.mark.parametrize('image_shape, squeeze_first, n_blocks, scales', [((8, 8, 1), True, (1, 1), 1),
                                                                          ((8, 8, 1), False, (1, 1, 1), 2),
                                                                          ((12, 12, 3), False, (1, 1, 1), 2),
                                                                          ((16, 16, 1), True, (1, 1, 1), 2),
                                                                          ((6, 6, 1), False, (1, 1), 1)])
def test_image_shapes_that_fit(image_shape, squeeze_first, n_blocks, scales):
    config = ResFlowConfig(image_shape=image_shape, squeeze_first=squeeze_first, n_blocks=n_blocks, idim=4,
                           fc_idim=4, fc_nblocks=1)
    check_shape(config)
    assert n_scales(config) == scales
    model = ResFlow(config)
    assert len([b for b in model.blocks if not b.fc]) == scales


@pytest.mark.parametrize('overrides', [dict(coeff=1.), dict(coeff=0.), dict(activation='relu'), dict(n_dist='uniform'),
                                       dict(n_blocks=()), dict(n_blocks=(1, 0)),
                                       dict(logit_alpha=0.), dict(logit_alpha=0.5), dict(image_shape=(8, 8)),
                                       dict(n_bits_x=9)])
def test_bad_configurations_are_errors(overrides):
    with pytest.raises(ValueError):
        ResFlowConfig(**dict(dict(image_shape=(8, 8, 1), n_blocks=(1, 1)), **overrides))


def test_config_json_of_version_0_2_reads_back():
    """config.json written by version 0.2.0 gave a Residual Flow the fields ycond, n_y and compute_dtype, which
    it never read: they load when they hold the only values they could have had, and are errors otherwise."""
    fields = dict(ResFlowConfig(image_shape=(8, 8, 1), n_blocks=(1, 1)).to_dict(), ycond=False, n_y=10,
                  compute_dtype='float32')
    assert ResFlowConfig.from_dict(fields) == ResFlowConfig(image_shape=(8, 8, 1), n_blocks=(1, 1))
    with pytest.raises(ValueError, match='compute_dtype'):
        ResFlowConfig.from_dict(dict(fields, compute_dtype='bfloat16'))
    with pytest.raises(ValueError, match='ycond'):
        ResFlowConfig.from_dict(dict(fields, ycond=True))
    with pytest.raises(ValueError, match='unknown field'):
        ResFlowConfig.from_dict(dict(fields, depth=3))
