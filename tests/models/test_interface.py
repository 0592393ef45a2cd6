"""The image-flow model interface (emerging/models/base.py): every registered model, tiny, passes the same
checks; the trainer, the command line, the export and load_run rely on nothing else."""
import numpy as np
import pytest
import tensorflow as tf

from emerging.choices import COMPUTE_DTYPES
from emerging.models.base import ImageFlowBijector, ImageFlowModel
from emerging.models.config import GlowConfig, ResFlowConfig
from emerging.models.registry import MODELS, build_model, config_class, model_class

SHAPE = (8, 8, 3)
CONFIGS = {
    'glow': GlowConfig(image_shape=SHAPE, n_levels=2, depth=1, width=8, flow_permutation=3, flow_coupling=1,
                       learnprior=True, n_y=10),
    'glow, class-conditional': GlowConfig(image_shape=SHAPE, n_levels=2, depth=1, width=8, flow_coupling=1,
                                          ycond=True, n_y=3, weight_y=0.5),
    'resflow': ResFlowConfig(image_shape=SHAPE, n_blocks=(1, 1), idim=8, fc_idim=8, fc_nblocks=1),
}
N = 4


@pytest.fixture(scope='module', params=list(CONFIGS))
def model(request):
    model = build_model(CONFIGS[request.param])
    x, y = batch(model)
    model.initialize(x, y)
    return model


def batch(model):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, [N, *SHAPE]), tf.uint8)
    y = tf.constant(rng.integers(0, model.n_classes, [N]), tf.int32)
    return x, y


def test_every_kind_is_registered_with_its_configuration():
    assert set(MODELS) == {config.kind for config in CONFIGS.values()}
    for config in CONFIGS.values():
        assert config_class(config.kind) is type(config)
        assert issubclass(model_class(config.kind), ImageFlowModel)
        assert type(config).from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='unknown model kind'):
        config_class('realnvp')


def test_what_the_model_is(model):
    assert isinstance(model, ImageFlowModel) and model.kind == model.config.kind
    assert model.conditional == model.config.conditional and model.n_classes == model.config.n_classes >= 1
    assert model.compute_dtype in COMPUTE_DTYPES
    assert bool(model.initialized.numpy())
    counts = model.parameter_counts()
    # masked layers count only the entries their masks keep
    assert 0 < counts['total'] <= sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert sum(v for k, v in counts.items() if k != 'total') == counts['total']


def test_the_four_statistics_per_example(model):
    x, y = batch(model)
    for noise, training in ((True, False), (False, False), (True, True)):
        losses = model.losses_per_example(x, y, noise=noise, training=training)
        assert set(losses) == {'loss', 'bits_x', 'bits_y', 'pred_loss'}
        assert all(v.shape == [N] and np.all(np.isfinite(v.numpy())) for v in losses.values())
    assert np.all(model.losses_per_example(x, y)['bits_x'].numpy() > 0)


def test_encode_decode_and_the_latent_layout(model):
    x, y = batch(model)
    z = model.encode(x, y, noise=False)
    assert z.shape == [N, *SHAPE] and z.dtype == tf.float32
    np.testing.assert_array_equal(model.decode(z, y).numpy(), x.numpy())
    parts = model.latent_parts(z)
    assert [tuple(p.shape[1:]) for p in parts] == list(model.latent_shapes)
    assert sum(np.prod(shape) for shape in model.latent_shapes) == model.config.n_dims
    np.testing.assert_array_equal(model.merge_latent_parts(parts).numpy(), z.numpy())
    flat = model.flatten_latents(z)
    assert flat.shape == [N, model.config.n_dims]
    np.testing.assert_array_equal(model.unflatten_latents(flat).numpy(), z.numpy())


def test_sample(model):
    _, y = batch(model)
    samples = model.sample(y, temperature=tf.constant([0., .5, .7, 1.]), seed=1)
    assert samples.shape == [N, *SHAPE] and samples.dtype == tf.uint8
    assert model.sample(batch=2, y=y[:2]).shape == [2, *SHAPE]


def test_bijector_and_distribution(model):
    x, y = batch(model)
    labels = y if model.conditional else None
    bijector = model.bijector(labels)
    assert isinstance(bijector, ImageFlowBijector)
    data = model.preprocess(x)
    z, log_det = bijector.inverse_and_log_det(data)
    assert z.shape == [N, *SHAPE] and log_det.shape == [N]
    back = bijector.forward_and_log_det(z)[0]
    np.testing.assert_allclose(back.numpy(), data.numpy(), atol=1e-4)
    p = model.distribution(labels)
    assert p.event_shape == SHAPE and p.batch_shape == ([N] if model.conditional else [])
    log_prob = p.log_prob(data)
    assert log_prob.shape == [N] and np.all(np.isfinite(log_prob.numpy()))


def test_class_conditional_models_need_their_labels():
    model = build_model(CONFIGS['glow, class-conditional'])
    x, _ = batch(model)
    with pytest.raises(ValueError, match='class-conditional'):
        model.losses_per_example(x)
    assert not build_model(CONFIGS['resflow']).conditional
