"""Residual Flow image model (Chen et al., NeurIPS 2019): one composition of residual blocks.

The density direction (data -> latent), built once from the layers' bijectors:

    x in [0, 1)^(H, W, C) -> logit transform -> [squeeze] -> scale 0 -> [unsqueeze] -> z
    scale i < S-1:  [actnorm, if i = 0 and first_resblock]
                    n_blocks[i] x (residual block, [actnorm]),
                    Squeezed(FirstHalf(scale i+1))   with factor_out (the second half leaves as it is),
                    Squeezed(scale i+1)              without
    scale S-1:      n_blocks[S-1] x (residual block, [actnorm]),
                    with fc_end: fc_nblocks x (fully connected residual block of width fc_idim, [actnorm per element])

S = min(len(n_blocks), the number of halvings of H that stay >= 4); the model's
first block (scale 0, when S > 1) has no leading activation with
`first_resblock`.  z keeps the image's shape and is standard normal under the
model, so

    bits_x = -(log N(z; 0, I) + log|det dz/dx| - H*W*C log(n_bins)) / (H*W*C log 2)

with x = (pixel // 2^(8 - n_bits_x) + u) / n_bins, u ~ U[0, 1).  The log-det
is an unbiased estimate (see `emerging.flows.residual`): the training
estimator when the train step passes training=True, otherwise the evaluation
one (20 exact terms).  Differences from the public code: the squeeze's
channel order is Glow's (it only decides which channels factor out), and
actnorm's initial statistics come from the init batch before training.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.config import ResFlowConfig
from emerging.flows.actnorm import ActNorm
from emerging.flows.base import FlowSequence
from emerging.flows.logit import LogitTransform
from emerging.flows.residual import ResidualBlock
from emerging.flows.split import FirstHalf
from emerging.flows.squeeze import Squeezed
from emerging.model import GlowBijector, standard_normal_log_prob

tfd = tfp.distributions
ACTNORM_MIN_STD = math.sqrt(0.2)  # the public code floors the initial variance at 0.2


def n_scales(config: ResFlowConfig) -> int:
    """min(len(n_blocks), the halvings of the (squeezed) height and width that stay >= 4)."""
    h, w, _ = config.image_shape
    if config.squeeze_first:
        h, w = h // 2, w // 2
    n = 0
    while h >= 4 and w >= 4:
        n, h, w = n + 1, h // 2, w // 2
    return min(len(config.n_blocks), n)


def check_shape(config: ResFlowConfig) -> None:
    h, w, c = config.image_shape
    levels = n_scales(config)
    factor = 2 ** ((levels - 1) + int(config.squeeze_first))
    if levels < 1 or h % factor or w % factor:
        raise ValueError(f'image_shape {config.image_shape}: needs height and width >= 4 (8 with squeeze_first) '
                         f'and divisible by {factor} for {levels} scales')


class ResFlow(tf_keras.Model):
    """The Residual Flow with `Glow`'s interface (losses, encode / decode, sample, distribution)."""

    def __init__(self, config: ResFlowConfig, name: str = 'model', **kwargs):
        super().__init__(name=name, **kwargs)
        config.validate()
        check_shape(config)
        self.config = config
        rng = np.random.default_rng(config.seed)
        block_args = dict(hidden=config.idim, kernels=config.kernels, activation=config.activation,
                          coeff=config.coeff, n_lipschitz_iters=config.n_lipschitz_iters, sn_tol=config.sn_tol,
                          n_power_series=config.n_power_series, n_dist=config.n_dist,
                          n_samples=config.n_samples, n_exact_terms=config.n_exact_terms,
                          neumann_grad=config.neumann_grad, grad_in_forward=config.mem_eff, rng=rng)
        count = n_scales(config)
        self.blocks = []

        def block(name, **overrides):
            layer = ResidualBlock(name=name, **dict(block_args, **overrides))
            self.blocks.append(layer)
            return layer

        def scale_layers(i):
            last, layers = i == count - 1, []
            if i == 0 and config.first_resblock and config.actnorm:
                layers.append(ActNorm(1., min_std=ACTNORM_MIN_STD, name='scale0_actnorm'))
            for b in range(config.n_blocks[i]):
                first = config.first_resblock and i == 0 and b == 0 and not last
                layers.append(block(f'scale{i}_block{b}', preact=config.preact and not first))
                if config.actnorm:
                    layers.append(ActNorm(1., min_std=ACTNORM_MIN_STD, name=f'scale{i}_block{b}_actnorm'))
            if last and config.fc_end:
                for b in range(config.fc_nblocks):
                    layers.append(block(f'fc_block{b}', hidden=config.fc_idim, fc=True, preact=config.preact))
                    if config.actnorm:
                        layers.append(ActNorm(1., per_element=True, min_std=ACTNORM_MIN_STD,
                                              name=f'fc_block{b}_actnorm'))
            return layers

        scales = [scale_layers(i) for i in range(count)]  # self.blocks in data -> latent order
        level = FlowSequence(scales[-1], name=f'scale{count - 1}')
        for i in reversed(range(count - 1)):
            inner = FirstHalf(level, name=f'factor_out{i + 1}') if config.factor_out else level
            level = FlowSequence([*scales[i], Squeezed(inner, name=f'squeeze{i + 1}')], name=f'scale{i}')
        if config.squeeze_first:
            level = Squeezed(level, name='squeeze_first')
        self.flow = FlowSequence([LogitTransform(config.logit_alpha), level], name='resflow')
        self.flow.build([None, *config.image_shape])
        self.initialized = tf.Variable(False, trainable=False, name='initialized')
        self.latent_shapes = (tuple(config.image_shape),)
        self.built = True

    # ---- the composition -------------------------------------------------------------------
    def bijector(self, y=None) -> GlowBijector:
        """The model as a TFP bijector (forward: latent [..., H, W, C] -> image x in [0, 1))."""
        return GlowBijector(self.flow.bijector, self.config.image_shape, name='resflow')

    def distribution(self, y=None):
        """p(x) of the dequantised image x in [0, 1) as a `tfd.TransformedDistribution` (event [H, W, C])."""
        base = tfd.Sample(tfd.Normal(0., 1.), sample_shape=self.config.image_shape)
        return tfd.TransformedDistribution(base, self.bijector())

    def initialize(self, x, y=None) -> None:
        """Converge every spectral norm and initialise every actnorm from a batch of uint8 images."""
        self.flow.initialize(self.preprocess(x))
        self.initialized.assign(True)

    def update_spectral_norms(self, max_iterations: Optional[int] = None) -> None:
        """Power iterations of every spectrally normalised layer (until sn_tol, or max_iterations)."""
        for layer in self.blocks:
            layer.update_spectral_norms(max_iterations)

    # ---- pre- and post-processing ----------------------------------------------------------
    def preprocess(self, x, noise: bool = True, seed: Optional[int] = None):
        """uint8 -> float in [0, 1) with n_bits_x bits, plus uniform dequantisation noise."""
        x = tf.cast(x, tf.float32)
        if self.config.n_bits_x < 8:
            x = tf.floor(x / 2 ** (8 - self.config.n_bits_x))
        if noise:
            x += tf.random.uniform(tf.shape(x), 0., 1., seed=seed)
        return x / self.config.n_bins

    def postprocess(self, x):
        n_bins = self.config.n_bins
        return tf.cast(tf.clip_by_value(tf.floor(x * n_bins) * (256. / n_bins), 0., 255.), tf.uint8)

    def losses_per_example(self, x, y=None, noise: bool = True, training: bool = False) -> dict:
        """uint8 images [N, H, W, C] -> dict of per-example loss, bits_x, bits_y (0), pred_loss (1);
        `training` selects the training estimator of the log-det and updates the spectral norms."""
        n_dims = self.config.n_dims
        z, log_det = self.bijector().inverse_and_log_det(self.preprocess(x, noise=noise), training=training)
        objective = -math.log(self.config.n_bins) * n_dims + log_det + standard_normal_log_prob(z)
        bits_x = -objective / (math.log(2.) * n_dims)
        return {'loss': bits_x, 'bits_x': bits_x, 'bits_y': tf.zeros_like(bits_x),
                'pred_loss': tf.ones_like(bits_x)}

    def call(self, inputs):
        x, y = inputs
        return self.losses_per_example(x, y)['loss']

    # ---- encode / decode / sample ----------------------------------------------------------
    def encode(self, x, y=None, noise: bool = True):
        """uint8 images -> latents z [N, H, W, C] (noise=False: from the centre of each bin)."""
        x_float = self.preprocess(x, noise=noise)
        if not noise:
            x_float += 0.5 / self.config.n_bins
        return self.bijector().inverse_and_log_det(x_float, map_only=True)[0]

    def decode(self, z, y=None):
        """latents z [N, H, W, C] -> uint8 images."""
        return self.postprocess(self.bijector().forward_and_log_det(z, map_only=True)[0])

    def sample(self, y=None, temperature=1., batch: Optional[int] = None, seed: Optional[int] = None):
        """uint8 samples, z ~ N(0, temperature^2)."""
        if batch is None:
            batch = tf.shape(y)[0]
        temperature = tf.reshape(tf.broadcast_to(tf.cast(temperature, tf.float32), [batch]), [-1, 1, 1, 1])
        return self.decode(tf.random.normal([batch, *self.config.image_shape], seed=seed) * temperature)

    def flatten_latents(self, z):
        return tf.reshape(z, [tf.shape(z)[0], -1])

    def unflatten_latents(self, flat):
        return tf.reshape(flat, [-1, *self.config.image_shape])

    def parameter_counts(self) -> dict:
        residual = sum(int(w.shape.num_elements()) for b in self.blocks for w in b.trainable_weights)
        total = sum(int(w.shape.num_elements()) for w in self.trainable_weights)
        return {'residual': residual, 'rest': total - residual, 'total': total}
