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

from emerging.flows.actnorm import ActNorm
from emerging.flows.base import FlowSequence
from emerging.flows.logit import LogitTransform
from emerging.flows.residual import ResidualBlock
from emerging.flows.split import FirstHalf
from emerging.flows.squeeze import Squeezed
from emerging.models.base import ImageFlowModel
from emerging.models.config import ResFlowConfig

ACTNORM_MIN_STD = math.sqrt(0.2)  # the public code floors the initial variance at 0.2


def n_scales(config: ResFlowConfig) -> int:
    """The number of scales: min(len(n_blocks), the halvings of the (squeezed) height and width that stay >= 4).

    Args:
      config: a `ResFlowConfig`.

    Returns:
      S >= 0.
    """
    h, w, _ = config.image_shape
    if config.squeeze_first:
        h, w = h // 2, w // 2
    n = 0
    while h >= 4 and w >= 4:
        n, h, w = n + 1, h // 2, w // 2
    return min(len(config.n_blocks), n)


def check_shape(config: ResFlowConfig) -> None:
    """Raise ValueError unless the image shape gives at least one scale that every squeeze divides."""
    h, w, c = config.image_shape
    levels = n_scales(config)
    factor = 2 ** ((levels - 1) + int(config.squeeze_first))
    if levels < 1 or h % factor or w % factor:
        raise ValueError(f'image_shape {config.image_shape}: needs height and width >= 4 (8 with squeeze_first) '
                         f'and divisible by {factor} for {levels} scales')


class ResFlow(ImageFlowModel):
    """The Residual Flow of `ResFlowConfig`, under the image-flow model interface (models/base.py).

    Args:
      config: a `ResFlowConfig`.
      name: the Keras model's name.
    """

    def __init__(self, config: ResFlowConfig, name: str = 'model', **kwargs):
        super().__init__(config, name=name, **kwargs)
        check_shape(config)
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
        self.finish_build()

    def update_spectral_norms(self, max_iterations: Optional[int] = None) -> None:
        """Power iterations of every spectrally normalised layer (until sn_tol, or max_iterations)."""
        for layer in self.blocks:
            layer.update_spectral_norms(max_iterations)

    # ---- pre- and post-processing ----------------------------------------------------------
    def preprocess(self, x, noise: bool = True, rng: Optional[tf.random.Generator] = None):
        """uint8 -> float in [0, 1) with n_bits_x bits, plus uniform dequantisation noise (from `rng` when
        given)."""
        x = tf.cast(x, tf.float32)
        if self.config.n_bits_x < 8:
            x = tf.floor(x / 2 ** (8 - self.config.n_bits_x))
        if noise:
            x += (tf.random.uniform if rng is None else rng.uniform)(tf.shape(x), 0., 1.)
        return x / self.config.n_bins

    def postprocess(self, x):
        """float in [0, 1) -> uint8: the bin's value at 8 bits."""
        n_bins = self.config.n_bins
        return tf.cast(tf.clip_by_value(tf.floor(x * n_bins) * (256. / n_bins), 0., 255.), tf.uint8)

    def parameter_counts(self) -> dict:
        """{'residual': the residual blocks' parameters, 'rest', 'total'}."""
        residual = sum(int(w.shape.num_elements()) for b in self.blocks for w in b.trainable_weights)
        total = sum(int(w.shape.num_elements()) for w in self.trainable_weights)
        return {'residual': residual, 'rest': total - residual, 'total': total}
