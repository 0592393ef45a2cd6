"""Reading a run back (emerging.load_run, config.json) and fine-tuning from another run's weights."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import emerging
from emerging.data.tfrecords import write_shards
from emerging.errors import InputError
from emerging.models.config import GlowConfig
from emerging.models.glow import Glow
from emerging.runs.folder import best_checkpoint, pretrained_run, read_config
from tests.helpers import TINY

BATCH = tf.constant(np.random.default_rng(7).integers(0, 256, [16, 8, 8, 3]), tf.uint8)
LABELS = tf.zeros([16], tf.int32)


def loss(model):
    return model.losses_per_example(BATCH, LABELS, noise=False)['loss'].numpy()


@pytest.fixture(scope='module')
def runs(trained_digits_run):
    """The trained run loaded with each of its weights, once for every test that only reads them."""
    return {weights: emerging.load_run(trained_digits_run, weights) for weights in ('best', 'latest', 'polyak')}


@pytest.mark.slow
def test_config_json_describes_the_run(trained_digits_run):
    with open(os.path.join(trained_digits_run, 'config.json')) as f:
        config = json.load(f)
    assert config['emerging_version'] == emerging.__version__
    assert config['model']['flow_permutation'] == 3 and config['model']['image_shape'] == [8, 8, 3]
    assert config['data']['problem'] == 'digits' and config['train']['n_train'] == 64
    with open(os.path.join(trained_digits_run, 'train.txt')) as f:
        assert json.loads(f.readline()) == config['hparams']


@pytest.mark.slow
def test_weights_best_latest_polyak(trained_digits_run, runs):
    assert runs['best'].checkpoint.endswith(os.path.join('best', 'ckpt-2'))
    assert runs['latest'].checkpoint.endswith('ckpt-3') == runs['polyak'].checkpoint.endswith('ckpt-3') is True
    losses = {weights: loss(run.model) for weights, run in runs.items()}
    assert all(np.all(np.isfinite(value)) for value in losses.values())
    # three different sets of weights: epoch 2, epoch 3, the average up to epoch 3
    assert not np.allclose(losses['best'], losses['latest']) and not np.allclose(losses['latest'], losses['polyak'])
    # the Polyak average is the optimiser's debiased average of the weights
    model = Glow(runs['latest'].model_config)
    optimizer = emerging.Optimizer(model.trainable_variables, beta2=runs['latest'].hparams['beta2'])
    tf.train.Checkpoint(model=model, optimizer=optimizer).read(runs['latest'].checkpoint).expect_partial()
    for average, variable in zip(optimizer.polyak_values(), runs['polyak'].model.trainable_variables):
        np.testing.assert_allclose(variable.numpy(), average.numpy(), rtol=1e-6)
    # an explicit checkpoint replaces the run's own
    explicit = emerging.load_run(trained_digits_run, 'latest', checkpoint=runs['best'].checkpoint)
    np.testing.assert_array_equal(loss(explicit.model), losses['best'])


@pytest.mark.slow
def test_a_run_without_config_json_is_read_from_train_txt(trained_digits_run, runs, tmp_path):
    copy = str(tmp_path / 'run')
    shutil.copytree(trained_digits_run, copy)
    os.remove(os.path.join(copy, 'config.json'))
    model_config, hparams = read_config(copy)
    assert model_config == read_config(trained_digits_run)[0]
    np.testing.assert_array_equal(loss(emerging.load_run(copy).model), loss(runs['best'].model))


def test_a_missing_run_is_named(tmp_path):
    """No folder, a folder without config.json or train.txt, an unknown pretrained name: each an error naming it."""
    with pytest.raises(InputError, match='is not a folder'):
        emerging.load_run(str(tmp_path / 'nothing'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(InputError, match='neither config.json nor train.txt'):
        emerging.load_run(str(empty))
    with pytest.raises(ValueError, match="unknown pretrained model 'imagenet'"):
        pretrained_run('imagenet')


@pytest.mark.slow
def test_what_is_not_there_is_named(trained_digits_run, runs, tmp_path):
    no_checkpoints = str(tmp_path / 'no_checkpoints')
    shutil.copytree(trained_digits_run, no_checkpoints, ignore=shutil.ignore_patterns('checkpoints', 'best'))
    with pytest.raises(InputError, match='has no best checkpoint'):
        emerging.load_run(no_checkpoints)
    with pytest.raises(InputError, match='holds no checkpoint'):
        emerging.load_run(no_checkpoints, 'latest')
    with pytest.raises(ValueError, match="unknown weights 'last'"):
        emerging.load_run(trained_digits_run, 'last')
    weights_only = tf.train.Checkpoint(model=runs['best'].model).write(
        str(tmp_path / 'weights_only'))
    with pytest.raises(ValueError, match='no optimiser state, so no Polyak averages'):
        emerging.load_run(trained_digits_run, 'polyak', checkpoint=weights_only)
    other = Glow(GlowConfig(image_shape=(8, 8, 3), n_levels=2, depth=1, width=16, flow_permutation=3,
                             flow_coupling=1, learnprior=True, n_y=10))
    other.initialized.assign(True)
    mismatched = tf.train.Checkpoint(model=other).write(str(tmp_path / 'mismatched'))
    with pytest.raises(InputError, match='does not fit the glow model'):
        emerging.load_run(trained_digits_run, checkpoint=mismatched)
    with pytest.raises(InputError, match='no checkpoint at'):
        emerging.load_run(trained_digits_run, checkpoint=str(tmp_path / 'missing.ckpt'))


@pytest.mark.slow
def test_fine_tuning_starts_from_the_other_runs_weights(trained_digits_run, runs, tmp_path):
    """train.py --restore_path OTHER/model_best_loss.ckpt (the run's best, by the original's name) on other data,
    fresh logdir: no re-initialisation, fresh counters; the first loss is the other run's on the same batch, not a
    fresh model's."""
    from emerging.cli import train as train_module
    data_dir = str(tmp_path / 'data')
    rng = np.random.default_rng(3)
    for split, n in (('train', 64), ('validation', 50)):
        write_shards(rng.integers(0, 256, [n, 8, 8, 3]), np.zeros(n), data_dir, split)
    other_data = ['--problem', 'celeba', '--data_dir', data_dir, '--image_size', '8', '--anchor_size', '8',
                  '--n_batch_train', '16', '--n_batch_init', '16', '--n_train', '32', '--n_test', '50']
    architecture = [*TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior']
    source = runs['best']
    best = os.path.join(trained_digits_run, 'model_best_loss.ckpt')
    code, tuned = train_module.run([*other_data, *architecture, '--epochs', '1', '--restore_path', best,
                                    '--logdir', str(tmp_path / 'tuned')])
    assert code == 0
    np.testing.assert_allclose(loss(tuned.model), loss(source.model), rtol=1e-6)
    assert int(tuned.epoch.numpy()) == 0 and int(tuned.state.n_processed.numpy()) == 0
    assert np.isinf(tuned.state.test_loss_best.numpy())
    code, fresh = train_module.run([*other_data, *architecture, '--epochs', '1', '--logdir', str(tmp_path / 'fresh')])
    assert code == 0 and np.abs(loss(fresh.model) - loss(source.model)).max() > 0.1
    # and it trains on from there, writing its own logs
    code, _ = train_module.run([*other_data, *architecture, '--epochs', '3', '--epochs_full_valid', '2',
                                '--restore_path', best, '--logdir', str(tmp_path / 'tuned2')])
    assert code == 0
    with open(tmp_path / 'tuned2' / 'train.txt') as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    assert [line['epoch'] for line in lines[1:]] == [1, 2]
    assert best_checkpoint(str(tmp_path / 'tuned2')) is not None  # fresh best loss
