"""Glow-family model: L levels of K flow steps with multi-scale splits.

Data flow (density direction, SPEC section 3):

    x uint8 [N, H, W, C] -> preprocess (n_bits_x, uniform dequantisation noise)
    -> squeeze -> for level i: K steps; if i < L-1: split (z2 -> eps_i) and squeeze
    -> top prior (z -> eps_top)

The whole encoder is a bijection from x in [-0.5, 0.5) onto independent
standard normals (all split eps, then the top eps), so

    objective = -log(n_bins) * H*W*C + log|det d eps / d x| + sum log N(eps; 0, 1)
    bits_x = -objective / (log(2) * H*W*C)

which equals the original's objective term for term (the split and top priors
contribute log N(z; mean, exp(logsd)) = log N(eps; 0, 1) - sum logsd).
`model.bijector(y)` exposes it as a TFP bijector (forward: flat latent [D]
-> image), so `model.distribution(y)` is a `tfd.TransformedDistribution`.
"""
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.config import ModelConfig
from emerging.flows.base import data_dependent_init
from emerging.flows.priors import Classifier, TopPrior
from emerging.flows.split import Split
from emerging.flows.squeeze import squeeze2d, unsqueeze2d
from emerging.flows.step import FlowStep

tfb, tfd = tfp.bijectors, tfp.distributions
LOG_2PI = float(np.log(2. * np.pi))


def standard_normal_log_prob(eps):
    return tf.reduce_sum(-0.5 * (LOG_2PI + tf.square(eps)), axis=list(range(1, eps.shape.rank)))


class Glow(tf_keras.Model):
    def __init__(self, config: ModelConfig, name='model', **kwargs):
        super().__init__(name=name, **kwargs)
        config.validate()
        self.config = config
        rng = np.random.default_rng(config.seed)
        height, width, channels = config.image_shape
        shape = (height // 2, width // 2, channels * 4)
        self.levels, self.splits, self.latent_shapes = [], [], []
        for i in range(config.n_levels):
            steps = []
            for k in range(config.depth):
                step = FlowStep(config.width, config.flow_permutation, config.flow_coupling,
                                config.decomposition, rng=rng, compute_dtype=config.compute_dtype,
                                name=f'level{i}_step{k}')
                step.build([None, *shape])
                steps.append(step)
            self.levels.append(steps)
            if i < config.n_levels - 1:
                split = Split(config.learnprior, name=f'pool{i}')
                split.build([None, *shape])
                self.splits.append(split)
                self.latent_shapes.append((shape[0], shape[1], shape[2] // 2))
                shape = (shape[0] // 2, shape[1] // 2, shape[2] * 2)
        self.top_shape = shape
        self.latent_shapes.append(shape)
        self.prior = TopPrior(shape, config.learnprior, config.ycond, config.n_y, name='prior')
        self.prior.build()
        self.classifier = None
        if config.ycond and config.weight_y > 0:
            self.classifier = Classifier(shape[-1], config.n_y, name='classifier')
            self.classifier.build()
        self.initialized = tf.Variable(False, trainable=False, name='initialized')
        self.built = True

    # ---- pre- and post-processing -------------------------------------------------
    def preprocess(self, x, noise=True, seed=None):
        """uint8 -> float in [-0.5, 0.5) with n_bits_x bits, plus uniform dequantisation noise."""
        x = tf.cast(x, tf.float32)
        if self.config.n_bits_x < 8:
            x = tf.floor(x / 2 ** (8 - self.config.n_bits_x))
        x = x / self.config.n_bins - .5
        if noise:
            x += tf.random.uniform(tf.shape(x), 0., 1. / self.config.n_bins, seed=seed)
        return x

    def postprocess(self, x):
        n_bins = self.config.n_bins
        return tf.cast(tf.clip_by_value(tf.floor((x + .5) * n_bins) * (256. / n_bins), 0., 255.), tf.uint8)

    def _onehot(self, y, batch):
        if y is None:
            if self.config.ycond:
                raise ValueError('this model is class-conditional (ycond): pass labels y')
            y = tf.zeros([batch], tf.int32)
        return tf.one_hot(tf.cast(y, tf.int32), self.config.n_y)

    # ---- the bijection --------------------------------------------------------------
    def _run_step(self, step, z, log_det, training):
        if training and self.config.gradient_checkpointing:
            return tf.recompute_grad(step.forward)(z, log_det)
        return step.forward(z, log_det)

    def encode_float(self, x, y=None, training=False):
        """x in [-0.5, 0.5) -> (top z, list of eps (splits, then top), log|det d eps / d x|)."""
        log_det = tf.zeros(tf.shape(x)[:1])
        z = squeeze2d(x)
        eps = []
        for i, steps in enumerate(self.levels):
            for step in steps:
                z, log_det = self._run_step(step, z, log_det, training)
            if i < len(self.splits):
                z, log_det, level_eps = self.splits[i].split(z, log_det)
                eps.append(level_eps)
                z = squeeze2d(z)
        mean, logsd = self.prior(self._onehot(y, tf.shape(x)[0]))
        eps.append((z - mean) * tf.exp(-logsd))
        log_det -= tf.reduce_sum(logsd + tf.zeros_like(z), axis=[1, 2, 3])
        return z, eps, log_det

    def decode_float(self, eps, y=None):
        """list of eps (splits, then top) -> (x in [-0.5, 0.5), log|det d x / d eps|)."""
        batch = tf.shape(eps[-1])[0]
        mean, logsd = self.prior(self._onehot(y, batch))
        z = mean + tf.exp(logsd) * eps[-1]
        log_det = tf.reduce_sum(logsd + tf.zeros_like(z), axis=[1, 2, 3])
        for i in reversed(range(len(self.levels))):
            if i < len(self.splits):
                z, split_log_det = self.splits[i].merge(unsqueeze2d(z), eps[i])
                log_det += split_log_det
            for step in reversed(self.levels[i]):
                z, log_det = step.reverse(z, log_det)
        return unsqueeze2d(z), log_det

    # ---- the original's objective -------------------------------------------------
    def losses_per_example(self, x, y=None, training=False, noise=True):
        """uint8 images -> dict of per-example loss, bits_x, bits_y, pred_loss (SPEC section 3)."""
        n_dims = self.config.n_dims
        x_float = self.preprocess(x, noise=noise)
        z, eps, log_det = self.encode_float(x_float, y, training=training)
        objective = -math.log(self.config.n_bins) * n_dims + log_det
        objective += tf.add_n([standard_normal_log_prob(e) for e in eps])
        bits_x = -objective / (math.log(2.) * n_dims)
        if self.classifier is not None:
            logits = self.classifier(z)
            labels = tf.cast(y, tf.int32)
            bits_y = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits) / math.log(2.)
            pred_loss = 1. - tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels), tf.float32)
        else:
            bits_y = tf.zeros_like(bits_x)
            pred_loss = tf.ones_like(bits_x)
        return {'loss': bits_x + self.config.weight_y * bits_y, 'bits_x': bits_x,
                'bits_y': bits_y, 'pred_loss': pred_loss}

    def call(self, inputs, training=False):
        x, y = inputs
        return self.losses_per_example(x, y, training=training)['loss']

    # ---- encode / decode / sample -----------------------------------------------
    def encode(self, x, y=None):
        """uint8 images -> list of eps (with dequantisation noise, as the original)."""
        return self.encode_float(self.preprocess(x, noise=True), y)[1]

    def decode(self, eps, y=None):
        return self.postprocess(self.decode_float(eps, y)[0])

    def sample_eps(self, batch, temperature=1., seed=None):
        """Standard-normal eps scaled by a temperature per example ([N] or scalar)."""
        temperature = tf.reshape(tf.broadcast_to(tf.cast(temperature, tf.float32), [batch]), [-1, 1, 1, 1])
        return [tf.random.normal([batch, *shape], seed=seed) * temperature for shape in self.latent_shapes]

    def sample(self, y=None, temperature=1., batch=None, seed=None):
        """uint8 samples; every Gaussian draw is mean + exp(logsd) * temperature * eps."""
        if batch is None:
            batch = tf.shape(y)[0]
        return self.decode(self.sample_eps(batch, temperature, seed), y)

    def flatten_latents(self, eps):
        return tf.concat([tf.reshape(e, [tf.shape(e)[0], -1]) for e in eps], axis=1)

    def unflatten_latents(self, flat):
        eps, offset = [], 0
        for shape in self.latent_shapes:
            size = math.prod(shape)
            eps.append(tf.reshape(flat[:, offset:offset + size], [-1, *shape]))
            offset += size
        return eps

    # ---- initialisation, TFP, parameter counts ------------------------------------
    def initialize(self, x, y=None):
        """Data-dependent init of every actnorm from one batch (eagerly, once)."""
        with data_dependent_init(self):
            self.losses_per_example(x, y)
        self.initialized.assign(True)

    def bijector(self, y=None):
        return GlowBijector(self, y)

    def distribution(self, y=None):
        """p(x) of the dequantised, scaled image x in [-0.5, 0.5) as a TFP distribution."""
        # one batch member per label when conditioned on y; otherwise draw with sample(n)
        loc = tf.zeros([]) if y is None else tf.zeros(tf.shape(y))
        base = tfd.Sample(tfd.Normal(loc, 1.), sample_shape=[self.config.n_dims])
        return tfd.TransformedDistribution(base, self.bijector(y))

    def parameter_counts(self):
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


class GlowBijector(tfb.Bijector):
    """The model as one TFP bijector: forward = flat latent [D] -> image [H, W, C]."""

    def __init__(self, model, y=None, validate_args=False, name='glow'):
        parameters = dict(locals())
        self._model, self._y = model, y
        super().__init__(forward_min_event_ndims=1, inverse_min_event_ndims=3,
                         validate_args=validate_args, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _forward(self, x):
        return self._model.decode_float(self._model.unflatten_latents(x), self._y)[0]

    def _forward_log_det_jacobian(self, x):
        return self._model.decode_float(self._model.unflatten_latents(x), self._y)[1]

    def _inverse(self, y):
        return self._model.flatten_latents(self._model.encode_float(y, self._y)[1])

    def _inverse_log_det_jacobian(self, y):
        return self._model.encode_float(y, self._y)[2]

    def _forward_event_shape(self, input_shape):
        return input_shape[:-1].concatenate(self._model.config.image_shape)

    def _forward_event_shape_tensor(self, input_shape):
        return tf.concat([input_shape[:-1], self._model.config.image_shape], axis=0)

    def _inverse_event_shape(self, output_shape):
        return output_shape[:-3].concatenate([self._model.config.n_dims])

    def _inverse_event_shape_tensor(self, output_shape):
        return tf.concat([output_shape[:-3], [self._model.config.n_dims]], axis=0)
