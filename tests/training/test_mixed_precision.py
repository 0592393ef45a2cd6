"""Mixed precision (--compute_dtype): the coupling networks in bfloat16 / float16, the flow in float32."""
import os

import numpy as np
import pytest
import tensorflow as tf

from emerging.cli import train as train_cli
from emerging.data.images import Data
from emerging.models.config import GlowConfig
from emerging.models.glow import Glow
from emerging.training.config import TrainConfig
from emerging.training.distributed import Distributed
from emerging.training.loop import Trainer
from emerging.training.optim import DynamicLossScale
from tests.helpers import DIGITS, TINY

SHAPE = (8, 8, 3)
MODEL = dict(image_shape=SHAPE, n_levels=2, depth=2, width=16, flow_permutation=3, flow_coupling=1, learnprior=True)


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=[n, *SHAPE]).astype(np.uint8)


def make_trainer(tmp_path, compute_dtype, flow_permutation=3):
    """A trainer of a model of one flow step per level (the fewest that still has every kind of layer)."""
    model = Glow(GlowConfig(image_shape=SHAPE, n_levels=2, depth=1, width=8, flow_permutation=flow_permutation,
                             flow_coupling=1, learnprior=True, compute_dtype=compute_dtype))
    init = (images(32), np.zeros([32], np.int32))
    data = Data(train=tf.data.Dataset.from_tensors(init).repeat(), test=tf.data.Dataset.from_tensors(init).repeat(),
                init_batch=init, image_shape=SHAPE, n_y=1)
    config = TrainConfig(n_train=64, n_test=40, n_batch_train=16, image_size=SHAPE[0], anchor_size=SHAPE[0])
    trainer = Trainer(model, config, data, Distributed(use_horovod=False), str(tmp_path), progress=False)
    trainer.initialize()
    return trainer


def test_loss_scale_grows_after_finite_steps_and_halves_on_overflow():
    scale = DynamicLossScale(initial_scale=8., growth_interval=3)
    for expected in (8., 8., 16., 16., 16., 32.):
        scale.update(tf.constant(True))
        assert float(scale.scale.numpy()) == expected
    scale.update(tf.constant(False))
    assert float(scale.scale.numpy()) == 16. and int(scale.finite_steps.numpy()) == 0
    for _ in range(10):
        scale.update(tf.constant(False))
    assert float(scale.scale.numpy()) == 1.  # never below 1
    assert bool(DynamicLossScale.all_finite([tf.ones([2]), tf.zeros([3, 1])]).numpy())
    assert not bool(DynamicLossScale.all_finite([tf.ones([2]), tf.constant([[np.inf]])]).numpy())
    with pytest.raises(ValueError, match='initial_scale'):
        DynamicLossScale(initial_scale=0.5)


@pytest.fixture(scope='module')
def float32_reference():
    """The float32 model every compute dtype is compared with, built once: (its images, its variables' values,
    its bits per dim of the images).  Its weights are moved away from the identity init, so that the coupling
    networks matter."""
    reference = Glow(GlowConfig(**MODEL))
    tf.random.set_seed(0)  # the init batch's dequantisation noise: the round-trip error depends on the weights
    x = tf.constant(images(32))
    reference.initialize(x)
    rng = np.random.default_rng(1)
    for w in reference.variables:
        if w.dtype.is_floating:
            w.assign(w.numpy() + rng.normal(0., 0.02, w.shape).astype(w.dtype.as_numpy_dtype))
    values = [w.numpy() for w in reference.variables]
    return x, values, reference.losses_per_example(x, noise=False)['bits_x'].numpy()


@pytest.mark.parametrize('compute_dtype', ['bfloat16', 'float16'])
def test_model_round_trips_and_stays_close_to_float32(float32_reference, compute_dtype):
    """With the float32 reference's weights, the networks' convolutions run in the compute dtype, the model still
    inverts and its bits per dim are close to, but not, the reference's."""
    x, values, bits_ref = float32_reference
    model = Glow(GlowConfig(**MODEL, compute_dtype=compute_dtype))
    model.initialize(x)
    for value, w in zip(values, model.variables):
        w.assign(value)
    assert all(w.dtype == tf.float32 for w in model.trainable_variables)
    # the coupling networks' convolutions (2 per step, 4 steps) run in compute_dtype, the rest in float32
    graph = tf.function(model.losses_per_example).get_concrete_function(tf.TensorSpec([4, *SHAPE], tf.uint8)).graph
    convolutions = [op.outputs[0].dtype for op in graph.get_operations() if op.type == 'Conv2D']
    assert convolutions.count(tf.as_dtype(compute_dtype)) == 8
    assert set(convolutions) == {tf.float32, tf.as_dtype(compute_dtype)}
    x_float = model.preprocess(x, noise=False)
    z, log_det = model.bijector().inverse_and_log_det(x_float)
    back, log_det_back = model.bijector().forward_and_log_det(z)
    # up to ~1e-3 (bfloat16) / ~3e-4 (float16) against ~1e-6 in float32 (maxima over 20 inits):
    # a z1 rebuilt to float32 rounding can round to the neighbouring low-precision value inside the network
    np.testing.assert_allclose(back.numpy(), x_float.numpy(), atol=1e-3)
    np.testing.assert_allclose(log_det_back.numpy(), -log_det.numpy(), rtol=1e-4, atol=1e-2)
    recon = model.decode(model.encode(x)).numpy().astype(int)  # far below one of the 256 bins
    assert np.abs(recon - x.numpy()).max() <= 1 and np.mean(recon == x.numpy()) > 0.99
    bits = model.losses_per_example(x, noise=False)['bits_x'].numpy()
    assert not np.array_equal(bits, bits_ref)
    np.testing.assert_allclose(bits, bits_ref, atol=0.02)


STEP_IMAGES = images(16, seed=2)


def changed_by_three_steps(trainer):
    """Which trainable weights three train steps change (all finite, as the statistics)."""
    x, y = tf.constant(STEP_IMAGES), tf.zeros([16], tf.int32)
    before = [w.numpy() for w in trainer.model.trainable_variables]
    for _ in range(3):  # the zero-initialised last layers first, then everything
        assert np.all(np.isfinite(trainer.train_step(x, y, tf.constant(1e-3)).numpy()))
    after = [w.numpy() for w in trainer.model.trainable_variables]
    assert all(np.all(np.isfinite(w)) for w in after)
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


@pytest.fixture(scope='module')
def changed_in_float32(tmp_path_factory):
    """What three float32 train steps change, computed once for every compute dtype (no loss scale there)."""
    trainer = make_trainer(tmp_path_factory.mktemp('float32'), 'float32')
    assert trainer.loss_scale is None
    return changed_by_three_steps(trainer)


@pytest.mark.slow
@pytest.mark.parametrize('compute_dtype', ['bfloat16', 'float16'])
def test_train_steps_update_the_float32_weights_as_float32_does(tmp_path, changed_in_float32, compute_dtype):
    trainer = make_trainer(tmp_path, compute_dtype)
    assert (trainer.loss_scale is not None) == (compute_dtype == 'float16')
    changed = changed_by_three_steps(trainer)
    assert changed == changed_in_float32 and sum(changed_in_float32) > 0.9 * len(changed)


@pytest.mark.slow
def test_float16_overflow_skips_the_step_and_halves_the_scale(tmp_path):
    trainer = make_trainer(tmp_path, 'float16')
    x, y = tf.constant(images(16, seed=3)), tf.zeros([16], tf.int32)
    trainer.loss_scale.scale.assign(2. ** 40)  # float16 gradients overflow
    state = [v.numpy() for v in trainer.model.trainable_variables + list(trainer.optimizer.variables)]
    stats = trainer.train_step(x, y, tf.constant(1e-3)).numpy()
    assert np.all(np.isfinite(stats))  # the loss itself is fine
    assert float(trainer.loss_scale.scale.numpy()) == 2. ** 39
    for v, old in zip(trainer.model.trainable_variables + list(trainer.optimizer.variables), state):
        np.testing.assert_array_equal(v.numpy(), old, err_msg=v.name)
    trainer.loss_scale.scale.assign(2. ** 10)
    trainer.train_step(x, y, tf.constant(1e-3))
    assert float(trainer.loss_scale.scale.numpy()) == 2. ** 10 and int(trainer.loss_scale.finite_steps.numpy()) == 1
    assert not np.array_equal(trainer.model.trainable_variables[0].numpy(), state[0])


@pytest.mark.slow
def test_train_py_float16_saves_and_resumes_the_loss_scale(tmp_path):
    """train.py --compute_dtype float16 (in-process) checkpoints its loss scale, samples, resumes and exports."""
    args = [*DIGITS, *TINY, '--depth', '1', '--width', '8', '--flow_coupling', '1', '--compute_dtype', 'float16',
            '--epochs_full_sample', '1', '--logdir', str(tmp_path)]
    code, _ = train_cli.run([*args, '--epochs', '2'])
    assert code == 0
    checkpoint = tf.train.latest_checkpoint(os.path.join(tmp_path, 'checkpoints'))
    names = [name for name, _ in tf.train.list_variables(checkpoint)]
    assert any(name.startswith('loss_scale/scale') for name in names), names
    scale = tf.train.load_checkpoint(checkpoint).get_tensor('loss_scale/scale/.ATTRIBUTES/VARIABLE_VALUE')
    assert 1. <= scale <= 2. ** 15
    assert os.path.exists(os.path.join(tmp_path, 'epoch_1_sample_7.png'))
    export_dir = str(tmp_path / 'savedmodel')
    code, _ = train_cli.run([*args, '--epochs', '3', '--resume', '--export_dir', export_dir])
    assert code == 0
    with open(os.path.join(tmp_path, 'train.txt')) as f:
        lines = f.read().splitlines()
    assert '"compute_dtype": "float16"' in lines[0] and len(lines) == 3
    loaded = tf.saved_model.load(export_dir)
    x = tf.constant(images(4))
    bits = loaded.bits_per_dim(x)['bits_x'].numpy()
    assert np.all(np.isfinite(bits)) and np.all(bits > 0)
    assert loaded.sample(tf.ones([3]))['x'].shape == (3, *SHAPE)
