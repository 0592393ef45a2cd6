"""The train step's gradient accumulation, clipping and L2 decay (emerging.training.steps)."""
import types

import numpy as np
import tensorflow as tf
import tf_keras

from emerging.training.config import TrainConfig
from emerging.training.distributed import Distributed
from emerging.training.optim import Optimizer
from emerging.training.steps import build_steps

IMAGE_SHAPE = (2, 2, 1)


class QuadraticModel(tf_keras.Model):
    """loss_n = sum((x_n / 255 - w)^2): deterministic, so two ways of stepping can be compared exactly."""

    def __init__(self):
        super().__init__()
        self.config = types.SimpleNamespace(image_shape=IMAGE_SHAPE)
        self.w = tf.Variable(np.linspace(-1., 1., 4).reshape(IMAGE_SHAPE).astype(np.float32))

    def losses_per_example(self, x, y=None, noise=True, training=False, rng=None):
        loss = tf.reduce_sum(tf.square(tf.cast(x, tf.float32) / 255. - self.w), axis=[1, 2, 3])
        zeros = tf.zeros_like(loss)
        return {'loss': loss, 'bits_x': loss, 'bits_y': zeros, 'pred_loss': zeros}


def step_once(x, **train_options):
    model = QuadraticModel()
    config = TrainConfig(n_batch_train=len(x), image_size=2, anchor_size=2, test_batch=1, n_test=1,
                         optimizer='adam', **train_options)
    optimizer = Optimizer(model.trainable_variables, 'adam', beta2=0.99)
    train_step, _, _ = build_steps(model, optimizer, Distributed(use_horovod=False), config)
    stats = train_step(tf.constant(x), tf.zeros([len(x)], tf.int32), tf.constant(0.1))
    return stats.numpy(), model.w.numpy(), optimizer


def batch(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, [n, *IMAGE_SHAPE]).astype(np.uint8)


def test_accumulation_equals_the_whole_batch():
    x = batch()
    stats, weights, _ = step_once(x)
    for n in (2, 4):
        stats_n, weights_n, _ = step_once(x, grad_accumulation=n)
        np.testing.assert_allclose(stats_n, stats, rtol=1e-6)
        np.testing.assert_allclose(weights_n, weights, rtol=1e-6, atol=1e-7)


def test_clipping_and_l2_change_the_gradient_as_stated():
    x = batch()
    model = QuadraticModel()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.losses_per_example(tf.constant(x))['loss'])
    grad = tape.gradient(loss, model.w)
    norm = float(tf.norm(grad))
    assert norm > 0.1
    # Adam's first step moves every weight by lr * sign(g) (m / sqrt(v) = g / |g|), so compare the moments
    _, _, plain = step_once(x)
    _, _, clipped = step_once(x, max_grad_norm=0.1)
    np.testing.assert_allclose(clipped.m1[0].numpy(), plain.m1[0].numpy() * 0.1 / norm, rtol=1e-5)
    _, _, decayed = step_once(x, l2_decay=0.5)
    expected = 0.1 * (grad.numpy() + 0.5 * QuadraticModel().w.numpy())  # (1 - beta1) g
    np.testing.assert_allclose(decayed.m1[0].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_accumulation_must_divide_the_batch():
    import pytest
    with pytest.raises(ValueError, match='grad_accumulation'):
        TrainConfig(n_batch_train=6, image_size=2, anchor_size=2, test_batch=1, n_test=1, grad_accumulation=4)
