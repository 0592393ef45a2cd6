"""Glow-family model: L levels of K flow steps with multi-scale splits, one composition.

The density direction (data -> latent) of the composition, built once from
the layers' bijectors:

    x [H, W, C] -> squeeze -> level 0 -> unsqueeze -> z [H, W, C]
    level i < L-1:  K steps, SplitPrior (the second half of the channels leaves as eps_i),
                    FirstHalf(squeeze -> level i+1 -> unsqueeze)
    level L-1:      K steps, TopPrior (the rest leaves as eps_top)

Every piece standardises what leaves the flow, so the whole map is a bijection
from the scaled image x in [-0.5, 0.5) onto independent standard normals z of
the image's shape, and

    objective = -log(n_bins) * H*W*C + log|det dz/dx| + sum log N(z; 0, 1)
    bits_x = -objective / (log(2) * H*W*C)

equals the original's objective term for term (each prior contributes
log N(z_i; mean, exp(logsd)) = log N(eps_i; 0, 1) - sum logsd).  Training,
encode / decode, sampling, export and `distribution(y)` all run this one
composition (`bijector(y)`, TFP's direction: forward = latent -> data).

Preprocessing (uint8 -> x): if n_bits_x < 8, x = floor(x / 2^(8 - n_bits_x));
x = x / n_bins - 0.5, plus uniform dequantisation noise in [0, 1 / n_bins).
Postprocessing: clip(floor((x + 0.5) * n_bins) * 256 / n_bins, 0, 255) as uint8.
Sampling with temperature t draws z ~ N(0, t^2).

The latent z keeps the image's shape; `latent_parts(z)` reads the levels'
eps out of it (eps_i is the second half of the channels after i + 1
squeezes of the first halves) and `flatten_latents` gives the original's flat
layout: every split's eps, then the top eps.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from emerging.flows.base import FlowSequence, channel_halves
from emerging.flows.priors import TopPrior, unstandardize
from emerging.flows.split import FirstHalf, SplitPrior
from emerging.flows.squeeze import Squeezed, squeeze2d, unsqueeze2d
from emerging.models.base import ImageFlowModel
from emerging.models.config import GlowConfig
from emerging.models.glow_step import Classifier, FlowStep


class Glow(ImageFlowModel):
    """The Glow-family model of `GlowConfig`: the one composition above, with the original's objective.

    Args:
      config: a `GlowConfig`.
      name: the Keras model's name ('model', the original's variable prefix).
    """

    def __init__(self, config: GlowConfig, name: str = 'model', **kwargs):
        super().__init__(config, name=name, **kwargs)
        rng = np.random.default_rng(config.seed)
        n_levels = config.n_levels
        self.levels = [[FlowStep(config.width, config.flow_permutation, config.flow_coupling,
                                 config.decomposition, rng=rng, compute_dtype=config.compute_dtype,
                                 gradient_checkpointing=config.gradient_checkpointing, name=f'level{i}_step{k}')
                        for k in range(config.depth)] for i in range(n_levels)]
        self.splits = [SplitPrior(config.learnprior, name=f'pool{i}') for i in range(n_levels - 1)]
        self.prior = TopPrior(config.learnprior, config.ycond, config.n_y, name='prior')
        level = FlowSequence([*self.levels[-1], self.prior], name=f'level{n_levels - 1}')
        for i in reversed(range(n_levels - 1)):
            level = FlowSequence([*self.levels[i], self.splits[i], FirstHalf(Squeezed(level, name=f'squeeze{i + 1}'))],
                                 name=f'level{i}')
        self.flow = Squeezed(level, name='squeeze0')
        self.classifier = None
        self.finish_build()
        if config.ycond and config.weight_y > 0:
            self.classifier = Classifier(self.prior.top_shape[-1], config.n_y, name='classifier')
            self.classifier.build()

    @property
    def compute_dtype(self) -> str:
        return self.config.compute_dtype

    # ---- pre- and post-processing -------------------------------------------------
    def preprocess(self, x: tf.Tensor, noise: bool = True, rng: tf.random.Generator | None = None) -> tf.Tensor:
        """uint8 -> float in [-0.5, 0.5) with n_bits_x bits, plus uniform dequantisation noise (from `rng` when
        given)."""
        x = tf.cast(x, tf.float32)
        if self.config.n_bits_x < 8:
            x = tf.floor(x / 2 ** (8 - self.config.n_bits_x))
        x = x / self.config.n_bins - .5
        if noise:
            x += (tf.random.uniform if rng is None else rng.uniform)(tf.shape(x), 0., 1. / self.config.n_bins)
        return x

    def postprocess(self, x: tf.Tensor) -> tf.Tensor:
        """float in [-0.5, 0.5) -> uint8: the bin's value at 8 bits."""
        n_bins = self.config.n_bins
        return tf.cast(tf.clip_by_value(tf.floor((x + .5) * n_bins) * (256. / n_bins), 0., 255.), tf.uint8)

    # ---- the original's objective -------------------------------------------------
    def label_losses(self, bits_x, z, y):
        """The original's loss = bits_x + weight_y bits_y, with the classifier's bits_y and error when it has one."""
        if self.classifier is None:
            return super().label_losses(bits_x, z, y)
        mean, logsd = self.prior.mean_and_logsd(tf.shape(z)[0], y)
        logits = self.classifier(unstandardize(self.latent_parts(z)[-1], mean, logsd)[0])
        labels = tf.cast(y, tf.int32)
        bits_y = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits) / math.log(2.)
        pred_loss = 1. - tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels), tf.float32)
        return {'loss': bits_x + self.config.weight_y * bits_y, 'bits_x': bits_x,
                'bits_y': bits_y, 'pred_loss': pred_loss}

    # ---- the latent's layout --------------------------------------------------------
    def latent_parts(self, z: tf.Tensor) -> list:
        """z [N, H, W, C] -> [eps_0, ..., eps_{L-2}, eps_top], each [N, h_i, w_i, c_i]."""
        parts = []
        z = squeeze2d(z)
        for _ in range(self.config.n_levels - 1):
            z, eps = channel_halves(z)
            parts.append(eps)
            z = squeeze2d(z)
        return parts + [z]

    def merge_latent_parts(self, parts: Sequence[tf.Tensor]) -> tf.Tensor:
        """The inverse of `latent_parts`."""
        z = parts[-1]
        for eps in reversed(parts[:-1]):
            z = tf.concat([unsqueeze2d(z), eps], axis=-1)
        return unsqueeze2d(z)

    # ---- parameter counts -----------------------------------------------------------
    def parameter_counts(self) -> dict:
        """{'1x1', 'emerging', 'periodic': the permutation layers' parameters, 'rest', 'total'}."""
        counts = {'1x1': 0, 'emerging': 0, 'periodic': 0, 'rest': 0}
        flow_weights = 0
        for steps in self.levels:
            for step in steps:
                for kind, n in step.parameter_counts().items():
                    counts[kind] += n
                flow_weights += sum(int(w.shape.num_elements()) for w in step.trainable_weights)
        others = sum(int(w.shape.num_elements()) for w in self.trainable_weights)
        counts['rest'] += others - flow_weights
        counts['total'] = sum(counts.values())
        return counts
