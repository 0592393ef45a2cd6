"""Run folders written by earlier versions (tests/runs/v0_2_0 and v0_3_0, each made by its make.sh with that
version, both on TensorFlow 2.18) load with every kind of weights and give the latents (and, for Glow, the
bits_x) that version's load_run gave; a run of 0.3.0 resumes where it stopped."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import emerging
from emerging.cli.train import main as train_main
from emerging.models.config import GlowConfig, ResFlowConfig
from tests.helpers import DIGITS, read_log, run_main

HERE = os.path.dirname(os.path.abspath(__file__))
VERSIONS = ('v0_2_0', 'v0_3_0')
EXPECTED = {version: np.load(os.path.join(HERE, version, 'expected.npz')) for version in VERSIONS}


@pytest.mark.parametrize('weights', ['best', 'latest', 'polyak'])
@pytest.mark.parametrize('run, config_class', [('glow', GlowConfig), ('resflow', ResFlowConfig)])
@pytest.mark.parametrize('version', VERSIONS)
def test_a_run_of_an_earlier_version_loads_and_scores_the_same(version, run, config_class, weights):
    expected = EXPECTED[version]
    loaded = emerging.load_run(os.path.join(HERE, version, run), weights)
    assert isinstance(loaded.model_config, config_class) and loaded.model.kind == run
    x, y = tf.constant(expected['x']), tf.constant(expected['y'])
    z = loaded.model.encode(x, y, noise=False).numpy()
    np.testing.assert_allclose(z, expected[f'{run}_{weights}_z'], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.model.decode(tf.constant(z), y).numpy(), expected['x'])
    if run == 'glow':
        bits_x = loaded.model.losses_per_example(x, y, noise=False)['bits_x'].numpy()
        np.testing.assert_allclose(bits_x, expected[f'{run}_{weights}_bits_x'], rtol=1e-6)


def epochs_logged(logdir):
    return [line['epoch'] for line in read_log(os.path.join(logdir, 'train.txt'))[1]]


def test_a_glow_run_of_0_3_resumes_where_it_stopped(tmp_path):
    """--resume of the 0.3.0 Glow run (stopped after epoch 3 of --epochs 4, its make.sh's flags) with --epochs 5:
    epoch 4 is trained from its committed checkpoint and input position and logged once after the three before."""
    logdir = str(tmp_path / 'glow')
    shutil.copytree(os.path.join(HERE, 'v0_3_0', 'glow'), logdir)
    assert epochs_logged(logdir) == [1, 2, 3]
    run_main(train_main, [*DIGITS, '--n_levels', '2', '--depth', '1', '--width', '4', '--gradient_checkpointing',
                          '0', '--flow_permutation', '3', '--flow_coupling', '1', '--epochs', '5',
                          '--epochs_full_valid', '2', '--epochs_full_sample', '100', '--no_progress', '--seed', '0',
                          '--logdir', logdir, '--resume'])
    assert epochs_logged(logdir) == [1, 2, 3, 4]
