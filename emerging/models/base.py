"""The image-flow model interface: what every model implements and what the rest of the library uses.

A model is a `tf_keras.Model` built from an `ImageFlowConfig` (config.py)
as one composition of flow layers, `self.flow` (a `FlowLayer` on [N, H, W, C]
in the data -> latent direction, see `emerging.flows.base`), whose bijector
maps the dequantised image x onto a latent z of the image's shape that is
standard normal under the model:

    log p(x) = log N(z; 0, I) + log|det dz/dx|
    bits_x = -(log p(x) - H*W*C log(n_bins)) / (H*W*C log 2)

with x = preprocess(uint8 image) (the model's scaling plus uniform
dequantisation noise of one bin).  The trainer, the `emerging` command line,
the SavedModel export and `load_run` use only these members:

* `config`, `kind` (the registered name, registry.py), `conditional`,
  `n_classes`, `compute_dtype`, `initialized`, `latent_shapes`;
* `losses_per_example(x, y, noise, training, rng)` -> {'loss', 'bits_x',
  'bits_y', 'pred_loss'} per example (the original's four statistics;
  every random draw from the generator `rng` when given);
* `encode(x, y, noise)` -> z, `decode(z, y)` -> uint8 images,
  `sample(y, temperature, batch, seed)`;
* `latent_parts(z)` / `merge_latent_parts(parts)` (every level's part of z),
  `flatten_latents(z)` / `unflatten_latents(flat)` (the flat layout: the
  parts one after another);
* `bijector(y)` (TFP's direction, forward: latent -> image) and
  `distribution(y)`, TFP objects of any batch shape;
* `initialize(x, y)` (the data-dependent init, once, before training),
  `preprocess` / `postprocess`, `parameter_counts()`.

A subclass builds `self.flow` in its constructor, calls `self.finish_build()`
and implements `preprocess`, `postprocess` and `parameter_counts`; a
multi-scale model also overrides `latent_parts` / `merge_latent_parts`, a
model with a label head `label_losses`.  Labels y are int32 [N]; a model that
is not class-conditional ignores them.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.flows.base import JointFlowBijector

tfb, tfd = tfp.bijectors, tfp.distributions
LOG_2PI = float(np.log(2. * np.pi))


def standard_normal_log_prob(z: tf.Tensor) -> tf.Tensor:
    """sum over the event axes (H, W, C) of log N(z; 0, 1).

    Args:
      z: [..., H, W, C].

    Returns:
      [...], one value per example.
    """
    return tf.reduce_sum(-0.5 * (LOG_2PI + tf.square(z)), axis=[-3, -2, -1])


class ImageFlowBijector(JointFlowBijector):
    """A model's composition as one TFP bijector on [..., H, W, C], any batch shape.

    forward = latent -> image, inverse = image -> latent.  The flow layers
    work on [N, H, W, C], so the batch axes are flattened around them; the
    class labels (class-conditional models only) broadcast against them.
    Other conditioning keywords of the joint methods (`training`,
    `map_only`) are passed to the layers.

    Args:
      flow: the composition's bijector (a model's `flow.bijector`).
      image_shape: (H, W, C).
      labels: int class labels, read by a class-conditional model's prior; None for other models.
      name: the bijector's name.
    """

    def __init__(self, flow: JointFlowBijector, image_shape: Sequence[int], labels: Optional[tf.Tensor] = None,
                 name: str = 'image_flow'):
        parameters = dict(locals())
        self._flow, self._image_shape = flow, list(image_shape)
        self._labels = None if labels is None else tf.cast(labels, tf.int32)
        super().__init__(parameters=parameters, name=name)

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


class ImageFlowModel(tf_keras.Model):
    """The base of every image-flow model (see the module docstring for the interface).

    Args:
      config: the model's `ImageFlowConfig` (validated again here).
      name: the Keras model's name ('model': the checkpoints' and the original's prefix).
    """

    def __init__(self, config, name: str = 'model', **kwargs):
        super().__init__(name=name, **kwargs)
        config.validate()
        self.config = config
        self.initialized = tf.Variable(False, trainable=False, name='initialized')

    def finish_build(self):
        """Build `self.flow` on the configured image shape and record the latent's parts (subclasses call it
        at the end of their constructor, once `self.flow` is composed)."""
        self.flow.build([None, *self.config.image_shape])
        self.latent_shapes = tuple(tuple(part.shape[1:])
                                   for part in self.latent_parts(tf.zeros([1, *self.config.image_shape])))
        self.built = True

    # ---- what the model is -----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The registered name of the model (config.json's "model_kind")."""
        return self.config.kind

    @property
    def conditional(self) -> bool:
        """Whether the model reads class labels."""
        return self.config.conditional

    @property
    def n_classes(self) -> int:
        """The number of classes of its labels (1 when it reads none)."""
        return self.config.n_classes

    @property
    def compute_dtype(self) -> str:
        """The dtype its networks compute in (float16 needs loss scaling): float32 unless overridden."""
        return 'float32'

    def parameter_counts(self) -> dict:
        """{kind of layer: trainable parameters, ..., 'total': all of them}."""
        raise NotImplementedError

    # ---- pre- and post-processing ----------------------------------------------------------------
    def preprocess(self, x: tf.Tensor, noise: bool = True, rng: Optional[tf.random.Generator] = None) -> tf.Tensor:
        """uint8 images -> the model's float data, with uniform dequantisation noise of one bin (noise=True),
        drawn from `rng` when given."""
        raise NotImplementedError

    def postprocess(self, x: tf.Tensor) -> tf.Tensor:
        """The model's float data -> uint8 images."""
        raise NotImplementedError

    # ---- the composition -------------------------------------------------------------------------
    def _labels(self, y):
        """The labels the composition is conditioned on: y for a class-conditional model, else none."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError('this model is class-conditional (ycond): pass the class labels y')
        return y

    def bijector(self, y: Optional[tf.Tensor] = None) -> ImageFlowBijector:
        """The model as a TFP bijector (forward: latent [..., H, W, C] -> data).

        Args:
          y: class labels, read by class-conditional models only.

        Returns:
          An `ImageFlowBijector`.
        """
        return ImageFlowBijector(self.flow.bijector, self.config.image_shape, self._labels(y), name=self.kind)

    def distribution(self, y: Optional[tf.Tensor] = None) -> tfd.TransformedDistribution:
        """p(x) of the dequantised, preprocessed image x.

        Args:
          y: class labels, read by class-conditional models only.

        Returns:
          A `tfd.TransformedDistribution`: event shape [H, W, C]; batch shape that of `y` for a
          class-conditional model, else [].
        """
        labels = self._labels(y)
        batch_shape = [] if labels is None else tf.shape(labels)
        base = tfd.Sample(tfd.Normal(tf.zeros(batch_shape), 1.), sample_shape=self.config.image_shape)
        return tfd.TransformedDistribution(base, self.bijector(y))

    def initialize(self, x: tf.Tensor, y: Optional[tf.Tensor] = None) -> None:
        """Data-dependent init of every layer, in the data -> latent order, from one batch.

        Args:
          x: uint8 images [N, H, W, C] (run it once, eagerly, before training).
          y: their labels (class-conditional models).
        """
        labels = self._labels(y)
        self.flow.initialize(self.preprocess(x), **({} if labels is None else {'labels': labels}))
        self.initialized.assign(True)

    # ---- the objective ---------------------------------------------------------------------------
    def losses_per_example(self, x: tf.Tensor, y: Optional[tf.Tensor] = None, noise: bool = True,
                           training: bool = False, rng: Optional[tf.random.Generator] = None) -> dict:
        """The original's four statistics per example.

        Args:
          x: uint8 images [N, H, W, C].
          y: int32 labels [N] (read by class-conditional models).
          noise: uniform dequantisation noise (False: x at the lower edge of its bin).
          training: the train step's call (a model whose log-det is an estimate uses its training estimator).
          rng: the generator of every random draw (the noise, a log-det estimate's): a training run's, whose
            position is saved, so that a resumed run draws what an uninterrupted one would; None: TensorFlow's
            stateful random ops.

        Returns:
          {'loss', 'bits_x', 'bits_y', 'pred_loss'}, each [N].
        """
        n_dims = self.config.n_dims
        condition = {'training': training, **({'rng': rng} if rng is not None else {})}
        z, log_det = self.bijector(y).inverse_and_log_det(self.preprocess(x, noise=noise, rng=rng), **condition)
        objective = -math.log(self.config.n_bins) * n_dims + log_det + standard_normal_log_prob(z)
        bits_x = -objective / (math.log(2.) * n_dims)
        return self.label_losses(bits_x, z, y)

    def label_losses(self, bits_x: tf.Tensor, z: tf.Tensor, y: Optional[tf.Tensor]) -> dict:
        """The four statistics from bits_x and the latent (no label head: bits_y 0, pred_loss 1, loss bits_x)."""
        return {'loss': bits_x, 'bits_x': bits_x, 'bits_y': tf.zeros_like(bits_x), 'pred_loss': tf.ones_like(bits_x)}

    def call(self, inputs):
        x, y = inputs
        return self.losses_per_example(x, y)['loss']

    # ---- encode / decode / sample ----------------------------------------------------------------
    def encode(self, x: tf.Tensor, y: Optional[tf.Tensor] = None, noise: bool = True) -> tf.Tensor:
        """uint8 images -> latents.

        Args:
          x: uint8 images [N, H, W, C].
          y: labels (class-conditional models).
          noise: with dequantisation noise, as the training; False: deterministically, from the centre of each
            sub-pixel's bin (then decode(encode(x)) == x).

        Returns:
          z, float32 [N, H, W, C].
        """
        x_float = self.preprocess(x, noise=noise)
        if not noise:
            x_float += 0.5 / self.config.n_bins
        return self.bijector(y).inverse_and_log_det(x_float, map_only=True)[0]

    def decode(self, z: tf.Tensor, y: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Latents z [N, H, W, C] (and labels) -> uint8 images [N, H, W, C]."""
        return self.postprocess(self.bijector(y).forward_and_log_det(z, map_only=True)[0])

    def sample(self, y: Optional[tf.Tensor] = None, temperature=1., batch: Optional[int] = None,
               seed: Optional[int] = None) -> tf.Tensor:
        """Samples decoded from z ~ N(0, temperature^2).

        Args:
          y: labels [N] (their number sets the batch when `batch` is None).
          temperature: a scalar or one per example.
          batch: the number of samples.
          seed: the op seed of the latent draw.

        Returns:
          uint8 images [N, H, W, C].
        """
        if batch is None:
            batch = tf.shape(y)[0]
        temperature = tf.reshape(tf.broadcast_to(tf.cast(temperature, tf.float32), [batch]), [-1, 1, 1, 1])
        return self.decode(tf.random.normal([batch, *self.config.image_shape], seed=seed) * temperature, y)

    # ---- the latent's layout ---------------------------------------------------------------------
    def latent_parts(self, z: tf.Tensor) -> list:
        """z [N, H, W, C] -> its parts, each [N, h_i, w_i, c_i] (one part, z itself, unless overridden)."""
        return [z]

    def merge_latent_parts(self, parts: Sequence[tf.Tensor]) -> tf.Tensor:
        """The inverse of `latent_parts`."""
        return parts[-1]

    def flatten_latents(self, z: tf.Tensor) -> tf.Tensor:
        """z [N, H, W, C] -> [N, H*W*C]: the parts of `latent_parts`, each flattened, one after another."""
        return tf.concat([tf.reshape(e, [tf.shape(e)[0], -1]) for e in self.latent_parts(z)], axis=1)

    def unflatten_latents(self, flat: tf.Tensor) -> tf.Tensor:
        """The inverse of `flatten_latents`."""
        pieces = tf.split(flat, [math.prod(shape) for shape in self.latent_shapes], axis=-1)
        return self.merge_latent_parts([tf.reshape(p, [-1, *shape]) for p, shape in zip(pieces, self.latent_shapes)])
