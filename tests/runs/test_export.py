"""The SavedModel export (emerging/runs/export.py) of tiny models: its signatures, with labels only for a
class-conditional model, agree with the model, and it loads without this project and without warnings."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from emerging.models.config import GlowConfig, ResFlowConfig
from emerging.models.registry import build_model
from emerging.runs.export import export_savedmodel
from tests.helpers import env

SHAPE = (8, 8, 3)
N = 3
UNCONDITIONAL = GlowConfig(image_shape=SHAPE, n_levels=2, depth=1, width=8, flow_permutation=3, flow_coupling=1,
                           learnprior=True, n_y=10, gradient_checkpointing=True)
CONDITIONAL = GlowConfig(image_shape=SHAPE, n_levels=2, depth=1, width=8, flow_coupling=1, ycond=True, n_y=3,
                         weight_y=0.5)
# importing TensorFlow prints this line itself (its C++ logging starts), with or without a SavedModel
TENSORFLOW_IMPORT_WARNING = 'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR'

IN_A_FRESH_PROCESS = r'''
import json, sys
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
assert 'emerging' not in sys.modules
x = tf.constant(np.load(sys.argv[2]))
x_float = tf.constant(np.load(sys.argv[3]))
signatures = loaded.signatures
with tf.GradientTape() as tape:
    tape.watch(x_float)
    log_prob = signatures['log_prob'](x_float=x_float)['log_prob']
gradient = tape.gradient(log_prob, x_float)
z = signatures['encode'](x=x)['z']
print(json.dumps({
    'inputs': {name: sorted(f.structured_input_signature[1]) for name, f in signatures.items()},
    'serving_default': signatures['serving_default'](x=x)['bits_x'].numpy().tolist(),
    'bits_per_dim': signatures['bits_per_dim'](x=x)['bits_x'].numpy().tolist(),
    'attribute_bits': loaded.bits_per_dim(x)['bits_x'].numpy().tolist(),
    'log_prob': log_prob.numpy().tolist(),
    'gradient_is_finite': bool(np.all(np.isfinite(gradient.numpy()))),
    'recon': signatures['decode'](z=z)['x'].numpy().tolist(),
    'sample_shape': signatures['sample'](temperature=tf.constant([0., 0.5, 1., 0.7]))['x'].shape.as_list()}))
'''


def images(seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, [N, *SHAPE]), tf.uint8)


def built(config):
    model = build_model(config)
    model.initialize(images(1), tf.constant([0, 1, 2]) if config.conditional else None)
    return model


@pytest.fixture(scope='module')
def unconditional(tmp_path_factory):
    model = built(UNCONDITIONAL)
    return model, export_savedmodel(model, str(tmp_path_factory.mktemp('unconditional')))


@pytest.fixture(scope='module')
def conditional(tmp_path_factory):
    model = built(CONDITIONAL)
    return model, export_savedmodel(model, str(tmp_path_factory.mktemp('conditional')))


@pytest.mark.slow
def test_an_unconditional_model_in_a_fresh_process(unconditional, tmp_path):
    model, export_dir = unconditional
    x = images()
    x_float = model.preprocess(x)
    np.save(tmp_path / 'x.npy', x.numpy())
    np.save(tmp_path / 'x_float.npy', x_float.numpy())
    clean_env = {k: v for k, v in env().items() if k != 'PYTHONPATH'}
    out = subprocess.run([sys.executable, '-c', IN_A_FRESH_PROCESS, export_dir, str(tmp_path / 'x.npy'),
                          str(tmp_path / 'x_float.npy')], cwd=str(tmp_path), env=clean_env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['inputs'] == {'serving_default': ['x'], 'bits_per_dim': ['x'], 'log_prob': ['x_float'],
                                'encode': ['x'], 'decode': ['z'], 'sample': ['temperature']}
    expected = model.losses_per_example(x, noise=False)['bits_x'].numpy()
    np.testing.assert_allclose(result['bits_per_dim'], expected, rtol=1e-5)
    assert result['serving_default'] == result['bits_per_dim']
    np.testing.assert_allclose(result['attribute_bits'], expected, rtol=1e-5)
    np.testing.assert_allclose(result['log_prob'], model.distribution().log_prob(x_float).numpy(), rtol=1e-5)
    assert result['gradient_is_finite']
    assert np.abs(np.array(result['recon']) - x.numpy().astype(int)).max() <= 1
    assert result['sample_shape'] == [4, *SHAPE]
    # loading adds no warning: gradient checkpointing's custom gradients, which warned once per step and
    # signature, are not exported
    warnings = [line for line in out.stderr.splitlines() if 'warning' in line.lower()]
    assert set(warnings) <= {TENSORFLOW_IMPORT_WARNING}, out.stderr


@pytest.mark.slow
def test_a_class_conditional_model_needs_its_labels(conditional):
    model, export_dir = conditional
    loaded = tf.saved_model.load(export_dir)
    assert {name: sorted(f.structured_input_signature[1]) for name, f in loaded.signatures.items()} == {
        'serving_default': ['x', 'y'], 'bits_per_dim': ['x', 'y'], 'log_prob': ['x_float', 'y'],
        'encode': ['x', 'y'], 'decode': ['y', 'z'], 'sample': ['temperature', 'y']}
    x, y = images(), tf.constant([2, 0, 1])
    with pytest.raises(TypeError):
        loaded.signatures['bits_per_dim'](x=x)
    expected = model.losses_per_example(x, y, noise=False)
    for name in ('serving_default', 'bits_per_dim'):
        losses = loaded.signatures[name](x=x, y=y)
        np.testing.assert_allclose(losses['bits_x'].numpy(), expected['bits_x'].numpy(), rtol=1e-5)
        np.testing.assert_allclose(losses['loss'].numpy(), expected['loss'].numpy(), rtol=1e-5)
    z = loaded.signatures['encode'](x=x, y=y)['z']
    assert np.abs(loaded.signatures['decode'](z=z, y=y)['x'].numpy().astype(int) - x.numpy()).max() <= 1
    assert loaded.sample(tf.ones([N]), y)['x'].shape == (N, *SHAPE)


@pytest.mark.slow
def test_a_residual_flow_takes_no_labels(tmp_path):
    model = built(ResFlowConfig(image_shape=SHAPE, n_blocks=(1, 1), idim=8, fc_idim=8, fc_nblocks=1))
    loaded = tf.saved_model.load(export_savedmodel(model, str(tmp_path / 'resflow')))
    x = images()
    assert sorted(loaded.signatures['serving_default'].structured_input_signature[1]) == ['x']
    # the evaluation log-det is a Hutchinson estimate: the two draws differ a little
    np.testing.assert_allclose(loaded.signatures['serving_default'](x=x)['bits_x'].numpy(),
                               model.losses_per_example(x, noise=False)['bits_x'].numpy(), atol=0.05)
    z = loaded.signatures['encode'](x=x)['z']
    assert np.abs(loaded.signatures['decode'](z=z)['x'].numpy().astype(int) - x.numpy()).max() <= 1
    assert loaded.signatures['sample'](temperature=tf.ones([2]))['x'].shape == (2, *SHAPE)
