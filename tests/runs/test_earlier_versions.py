"""Run folders written by version 0.2.0 (tests/runs/v0_2_0, made by its make.sh with that version) load with
every kind of weights and give the latents (and, for Glow, the bits_x) that version's load_run gave."""
import os

import numpy as np
import pytest
import tensorflow as tf

import emerging
from emerging.models.config import GlowConfig, ResFlowConfig

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'v0_2_0')
EXPECTED = np.load(os.path.join(FOLDER, 'expected.npz'))


@pytest.mark.parametrize('weights', ['best', 'latest', 'polyak'])
@pytest.mark.parametrize('run, config_class', [('glow', GlowConfig), ('resflow', ResFlowConfig)])
def test_a_run_of_version_0_2_loads_and_scores_the_same(run, config_class, weights):
    loaded = emerging.load_run(os.path.join(FOLDER, run), weights)
    assert isinstance(loaded.model_config, config_class) and loaded.model.kind == run
    x, y = tf.constant(EXPECTED['x']), tf.constant(EXPECTED['y'])
    z = loaded.model.encode(x, y, noise=False).numpy()
    np.testing.assert_allclose(z, EXPECTED[f'{run}_{weights}_z'], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.model.decode(tf.constant(z), y).numpy(), EXPECTED['x'])
    if run == 'glow':
        bits_x = loaded.model.losses_per_example(x, y, noise=False)['bits_x'].numpy()
        np.testing.assert_allclose(bits_x, EXPECTED[f'{run}_{weights}_bits_x'], rtol=1e-6)
