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
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.config import ModelConfig
from emerging.flows.base import FlowSequence, JointFlowBijector, channel_halves
from emerging.flows.priors import Classifier, TopPrior, unstandardize
from emerging.flows.split import FirstHalf, SplitPrior
from emerging.flows.squeeze import Squeezed, squeeze2d, unsqueeze2d
from emerging.flows.step import FlowStep

tfb, tfd = tfp.bijectors, tfp.distributions
LOG_2PI = float(np.log(2. * np.pi))


def standard_normal_log_prob(z):
    """sum over the event axes (H, W, C) of log N(z; 0, 1)."""
    return tf.reduce_sum(-0.5 * (LOG_2PI + tf.square(z)), axis=[-3, -2, -1])


class GlowBijector(JointFlowBijector):
    """The model's composition as one TFP bijector on [..., H, W, C], any batch shape.

    forward = latent -> image, inverse = image -> latent.  The flow layers
    work on [N, H, W, C], so the batch axes are flattened around them; the
    class labels (class-conditional models only) broadcast against them.
    Other conditioning keywords of the joint methods (`training`) are passed
    to the layers.
    """

    def __init__(self, flow: JointFlowBijector, image_shape: Sequence[int], labels: Optional[tf.Tensor] = None,
                 validate_args: bool = False, name: str = 'glow'):
        parameters = dict(locals())
        self._flow, self._image_shape = flow, list(image_shape)
        self._labels = None if labels is None else tf.cast(labels, tf.int32)
        super().__init__(parameters=parameters, name=name, validate_args=validate_args)

    def _run(self, direction, t, condition):
        batch_shape = tf.shape(t)[:-3]
        condition = dict(condition)
        if self._labels is not None:
            batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(self._labels))
            t = tf.broadcast_to(t, tf.concat([batch_shape, self._image_shape], axis=0))
            condition['labels'] = tf.reshape(tf.broadcast_to(self._labels, batch_shape), [-1])
        out, log_det = direction(tf.reshape(t, [-1, *self._image_shape]), **condition)
        return (tf.reshape(out, tf.concat([batch_shape, self._image_shape], axis=0)),
                tf.reshape(log_det, batch_shape))

    def inverse_and_log_det(self, y, **condition):
        return self._run(self._flow.inverse_and_log_det, y, condition)

    def forward_and_log_det(self, x, **condition):
        return self._run(self._flow.forward_and_log_det, x, condition)


class Glow(tf_keras.Model):
    def __init__(self, config: ModelConfig, name: str = 'model', **kwargs):
        super().__init__(name=name, **kwargs)
        config.validate()
        self.config = config
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
        self.flow.build([None, *config.image_shape])
        self.classifier = None
        if config.ycond and config.weight_y > 0:
            self.classifier = Classifier(self.prior.top_shape[-1], config.n_y, name='classifier')
            self.classifier.build()
        self.initialized = tf.Variable(False, trainable=False, name='initialized')
        self.latent_shapes = tuple(tuple(part.shape[1:])
                                   for part in self.latent_parts(tf.zeros([1, *config.image_shape])))
        self.built = True

    # ---- the composition ------------------------------------------------------------
    def _labels(self, y):
        """The labels the composition is conditioned on: y for a class-conditional model, else none."""
        if not self.config.ycond:
            return None
        if y is None:
            raise ValueError('this model is class-conditional (ycond): pass the class labels y')
        return y

    def bijector(self, y: Optional[tf.Tensor] = None) -> GlowBijector:
        """The model as a TFP bijector (forward: latent [..., H, W, C] -> image x in [-0.5, 0.5)).
        `y`: class labels, read by class-conditional models (ycond) only."""
        return GlowBijector(self.flow.bijector, self.config.image_shape, self._labels(y))

    def distribution(self, y: Optional[tf.Tensor] = None) -> tfd.TransformedDistribution:
        """p(x) of the dequantised, scaled image x in [-0.5, 0.5) as a `tfd.TransformedDistribution`:
        event shape [H, W, C]; batch shape that of `y` for a class-conditional model, else []."""
        labels = self._labels(y)
        batch_shape = [] if labels is None else tf.shape(labels)
        base = tfd.Sample(tfd.Normal(tf.zeros(batch_shape), 1.), sample_shape=self.config.image_shape)
        return tfd.TransformedDistribution(base, self.bijector(y))

    def initialize(self, x: tf.Tensor, y: Optional[tf.Tensor] = None) -> None:
        """Data-dependent init of every actnorm, layer by layer in the data -> latent
        order, from one batch of uint8 images (run it once, eagerly, before training)."""
        labels = self._labels(y)
        self.flow.initialize(self.preprocess(x), **({} if labels is None else {'labels': labels}))
        self.initialized.assign(True)

    # ---- pre- and post-processing -------------------------------------------------
    def preprocess(self, x: tf.Tensor, noise: bool = True, seed: Optional[int] = None) -> tf.Tensor:
        """uint8 -> float in [-0.5, 0.5) with n_bits_x bits, plus uniform dequantisation noise."""
        x = tf.cast(x, tf.float32)
        if self.config.n_bits_x < 8:
            x = tf.floor(x / 2 ** (8 - self.config.n_bits_x))
        x = x / self.config.n_bins - .5
        if noise:
            x += tf.random.uniform(tf.shape(x), 0., 1. / self.config.n_bins, seed=seed)
        return x

    def postprocess(self, x: tf.Tensor) -> tf.Tensor:
        n_bins = self.config.n_bins
        return tf.cast(tf.clip_by_value(tf.floor((x + .5) * n_bins) * (256. / n_bins), 0., 255.), tf.uint8)

    # ---- the original's objective -------------------------------------------------
    def losses_per_example(self, x: tf.Tensor, y: Optional[tf.Tensor] = None, noise: bool = True,
                           training: bool = False) -> dict:
        """uint8 images [N, H, W, C] -> dict of per-example loss, bits_x, bits_y, pred_loss.
        `training` (the train step's call) changes nothing here: every log-det of this model is exact."""
        n_dims = self.config.n_dims
        z, log_det = self.bijector(y).inverse_and_log_det(self.preprocess(x, noise=noise))
        objective = -math.log(self.config.n_bins) * n_dims + log_det + standard_normal_log_prob(z)
        bits_x = -objective / (math.log(2.) * n_dims)
        if self.classifier is not None:
            mean, logsd = self.prior.mean_and_logsd(tf.shape(z)[0], y)
            logits = self.classifier(unstandardize(self.latent_parts(z)[-1], mean, logsd)[0])
            labels = tf.cast(y, tf.int32)
            bits_y = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits) / math.log(2.)
            pred_loss = 1. - tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels), tf.float32)
        else:
            bits_y = tf.zeros_like(bits_x)
            pred_loss = tf.ones_like(bits_x)
        return {'loss': bits_x + self.config.weight_y * bits_y, 'bits_x': bits_x,
                'bits_y': bits_y, 'pred_loss': pred_loss}

    def call(self, inputs):
        x, y = inputs
        return self.losses_per_example(x, y)['loss']

    # ---- encode / decode / sample -----------------------------------------------
    def encode(self, x: tf.Tensor, y: Optional[tf.Tensor] = None, noise: bool = True) -> tf.Tensor:
        """uint8 images -> latents z [N, H, W, C]: with dequantisation noise, as the original,
        or (noise=False) deterministically, from the centre of each sub-pixel's bin."""
        x_float = self.preprocess(x, noise=noise)
        if not noise:
            x_float += 0.5 / self.config.n_bins
        return self.bijector(y).inverse_and_log_det(x_float)[0]

    def decode(self, z: tf.Tensor, y: Optional[tf.Tensor] = None) -> tf.Tensor:
        """latents z [N, H, W, C] -> uint8 images."""
        return self.postprocess(self.bijector(y).forward_and_log_det(z)[0])

    def sample(self, y: Optional[tf.Tensor] = None, temperature=1., batch: Optional[int] = None,
               seed: Optional[int] = None) -> tf.Tensor:
        """uint8 samples, z ~ N(0, temperature^2); `temperature` a scalar or one per example."""
        if batch is None:
            batch = tf.shape(y)[0]
        temperature = tf.reshape(tf.broadcast_to(tf.cast(temperature, tf.float32), [batch]), [-1, 1, 1, 1])
        return self.decode(tf.random.normal([batch, *self.config.image_shape], seed=seed) * temperature, y)

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

    def flatten_latents(self, z: tf.Tensor) -> tf.Tensor:
        """z [N, H, W, C] -> [N, H*W*C] in the original's order: every split's eps, then the top eps."""
        return tf.concat([tf.reshape(e, [tf.shape(e)[0], -1]) for e in self.latent_parts(z)], axis=1)

    def unflatten_latents(self, flat: tf.Tensor) -> tf.Tensor:
        """The inverse of `flatten_latents`."""
        pieces = tf.split(flat, [math.prod(shape) for shape in self.latent_shapes], axis=-1)
        return self.merge_latent_parts([tf.reshape(p, [-1, *shape]) for p, shape in zip(pieces, self.latent_shapes)])

    # ---- parameter counts -----------------------------------------------------------
    def parameter_counts(self) -> dict:
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
