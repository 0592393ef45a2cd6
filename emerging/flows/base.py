"""The flow-layer contract shared by every module in `emerging.flows`.

Two directions, two conventions, one set of weights:

* The Keras layer (`FlowLayer`) works in the *density* direction of the
  original code: ``forward(x, log_det) -> (z, log_det + log|det dz/dx|)`` maps
  data to latent, ``reverse(z, log_det) -> (x, log_det - log|det dz/dx|)`` maps
  back.  ``log_det`` is a per-example float32 vector of shape [N] (or anything
  that broadcasts to it).  Inputs are NHWC tensors [N, H, W, C].
* The bijector (`FlowBijector`, event ndims 3: H x W x C) follows TFP and
  `tfb.Glow`: bijector *forward* = latent -> data (sampling), *inverse* =
  data -> latent.  So ``layer.forward`` is ``bijector.inverse`` plus its
  inverse log-det Jacobian, computed in one pass.

Every bijector here also has the joint methods ``inverse_and_log_det(y)``
and ``forward_and_log_det(x)``: the map and its log-det in one pass, which
is how the containers (`FlowChain`, and the model's multi-scale pieces) call
their members.  Keyword arguments of the joint methods are conditioning
inputs (the model passes ``labels``, one-hot class labels, which only the
class-conditional top prior reads); every other bijector ignores them.

Data-dependent initialisation is an explicit pass: ``layer.initialize(x)``
initialises the layer's weights from a batch of its inputs (only layers with
an actnorm do anything) and returns the layer's output, so a container
initialises its members in order, each from the output of the one before.

The bijector reads the layer's variables each time it is called (nothing is
precomputed in its constructor), so it always reflects the current weights and
is safe to build once and reuse inside `tf.function`.  TFP caches results per
input tensor object: calling the TFP methods twice eagerly on the *same*
tensor object across a weight update returns the first result; the joint
methods never cache.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras
from tensorflow_probability.python.internal import cache_util

tfb = tfp.bijectors

EVENT_NDIMS = 3


def pixelwise_matmul(x, matrix, bias=None, relu=False):
    """[N, H, W, C] @ [C, C'] (+ bias [C']) (then ReLU) -> [N, H, W, C'] at every
    pixel: a 1x1 convolution as one 2-D matrix product, faster than a 1x1 Conv2D
    and its gradients on CPU (and the bias add and ReLU fuse into the product)."""
    flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), matrix)
    if bias is not None:
        flat = tf.nn.bias_add(flat, bias)
    if relu:
        flat = tf.nn.relu(flat)
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [matrix.shape[-1]]], axis=0))


def spatial_size(x):
    """H * W of an NHWC tensor as float32 (static when known)."""
    h, w = x.shape[-3], x.shape[-2]
    if h is not None and w is not None:
        return tf.constant(float(h * w))
    shape = tf.shape(x)
    return tf.cast(shape[-3] * shape[-2], tf.float32)


def sum_event(x):
    """Sum over the three event axes (H, W, C): one value per example."""
    return tf.reduce_sum(x, axis=[-3, -2, -1])


def channel_halves(x):
    """[..., C] -> ([..., :C/2], [..., C/2:])."""
    return tf.split(x, 2, axis=-1)


class FlowBijector(tfb.Bijector):
    """Base of this project's bijectors: event ndims 3 (H x W x C), TFP's direction.

    forward = latent -> data, inverse = data -> latent, on [N, H, W, C]; log-dets are per example [N], or a
    scalar when they do not depend on the input.  Subclasses implement TFP's private `_forward`, `_inverse`
    and log-det Jacobians; the joint methods combine them.

    Args:
      parameters: the subclass constructor's arguments (`dict(locals())`), kept as TFP's `parameters`.
      name: the bijector's name.
      is_constant_jacobian: whether the log-det does not depend on the input (weights only).
    """

    def __init__(self, *, parameters, name, is_constant_jacobian=False):
        super().__init__(
            forward_min_event_ndims=EVENT_NDIMS,
            is_constant_jacobian=is_constant_jacobian,
            parameters=parameters,
            name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        # Weights are whole-event parameters: these bijectors have no batch shape.
        return dict()

    def __hash__(self):
        # TFP keys its cache by hash(bijector), which walks the whole parameter tree, sub-bijectors included, on
        # every call: seconds per log_prob for a whole model.  The parameters are fixed once constructed (weights
        # are hashed by identity), so the walk is done once.
        if getattr(self, '_parameter_hash', None) is None:
            self._parameter_hash = super().__hash__()
        return self._parameter_hash

    def inverse_and_log_det(self, y: tf.Tensor, **condition) -> tuple[tf.Tensor, tf.Tensor]:
        """data -> latent and log|det d latent / d data| (per example or scalar)."""
        return self._inverse(y), self._inverse_log_det_jacobian(y)

    def forward_and_log_det(self, x: tf.Tensor, **condition) -> tuple[tf.Tensor, tf.Tensor]:
        """latent -> data and log|det d data / d latent|."""
        return self._forward(x), self._forward_log_det_jacobian(x)


class JointFlowBijector(FlowBijector):
    """For bijectors whose map and log-det share the work (a network evaluation):
    subclasses implement only the joint methods.  TFP's `inverse` stores the
    log-det it computed on the way (as `tfb.FFJORD` does), so a
    `TransformedDistribution.log_prob` runs the map once, not once for the
    value and again for the log-det."""

    _cache = cache_util.BijectorCacheWithGreedyAttrs(forward_name='_augmented_forward',
                                                     inverse_name='_augmented_inverse')

    def inverse_and_log_det(self, y, **condition):
        raise NotImplementedError

    def forward_and_log_det(self, x, **condition):
        raise NotImplementedError

    def _augmented_inverse(self, y, **condition):
        x, log_det = self.inverse_and_log_det(y, **condition)
        return x, {'ildj': log_det, 'fldj': -log_det}

    def _augmented_forward(self, x, **condition):
        y, log_det = self.forward_and_log_det(x, **condition)
        return y, {'fldj': log_det, 'ildj': -log_det}

    def _inverse(self, y, **condition):
        return self.inverse_and_log_det(y, **condition)[0]

    def _forward(self, x, **condition):
        return self.forward_and_log_det(x, **condition)[0]

    def _inverse_log_det_jacobian(self, y, **condition):
        cached = self._cache.inverse_attributes(y, **condition)
        if 'ildj' not in cached:
            cached.update(self._augmented_inverse(y, **condition)[1])
        return cached['ildj']

    def _forward_log_det_jacobian(self, x, **condition):
        cached = self._cache.forward_attributes(x, **condition)
        if 'fldj' not in cached:
            cached.update(self._augmented_forward(x, **condition)[1])
        return cached['fldj']


class FlowChain(JointFlowBijector):
    """Composition of flow bijectors, listed in data -> latent order (the
    reverse of `tfb.Chain`'s list, which is in forward order).

    inverse (data -> latent) applies `bijectors` first to last, forward applies their forwards last to first;
    the log-det is the sum of theirs.  Conditioning keywords reach every member.

    Args:
      bijectors: the `FlowBijector`s, in data -> latent order.
      recompute_gradients: run the data -> latent pass under `tf.recompute_grad`, so its activations are
        recomputed in the backward pass instead of being kept (gradient checkpointing).
      name: the bijector's name.
    """

    def __init__(self, bijectors: Sequence[FlowBijector], recompute_gradients: bool = False, name: str = 'flow_chain'):
        parameters = dict(locals())
        self._flow_bijectors = list(bijectors)
        self._recompute_gradients = bool(recompute_gradients)
        super().__init__(parameters=parameters, name=name)

    @property
    def bijectors(self):
        return self._flow_bijectors

    def _inverse_pass(self, y, **condition):
        log_det = 0.
        for bijector in self._flow_bijectors:
            y, step_log_det = bijector.inverse_and_log_det(y, **condition)
            log_det += step_log_det
        return y, log_det

    def inverse_and_log_det(self, y, **condition):
        if self._recompute_gradients:
            return tf.recompute_grad(lambda t: self._inverse_pass(t, **condition))(y)
        return self._inverse_pass(y, **condition)

    def forward_and_log_det(self, x, **condition):
        log_det = 0.
        for bijector in reversed(self._flow_bijectors):
            x, step_log_det = bijector.forward_and_log_det(x, **condition)
            log_det += step_log_det
        return x, log_det


class FlowLayer(tf_keras.layers.Layer):
    """A Keras layer that owns a flow's weights and exposes it as `.bijector`.

    ``forward(x, log_det)`` is the bijector's inverse (data -> latent), ``reverse(z, log_det)`` its forward,
    each adding its log-det [N] to `log_det`; inputs [N, H, W, C].  Subclasses create their weights in
    `build(input_shape)` and return a `FlowBijector` over them from `make_bijector()`.  The model builds every
    layer from static shapes when it is constructed, so weights exist (and can be restored) before any data
    is seen.

    Args:
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    #: which parameter-count bucket the layer's weights belong to: '1x1', 'emerging', 'periodic' or 'rest'
    count_kind = 'rest'

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        # Kept outside Keras' attribute tracking: the bijector only references
        # weights the layer already tracks.
        object.__setattr__(self, '_cached_bijector', None)

    def make_bijector(self) -> FlowBijector:
        raise NotImplementedError

    @property
    def bijector(self) -> FlowBijector:
        if not self.built:
            raise ValueError(f'{self.name}: build the layer (layer.build(shape)) before asking for its bijector')
        if self._cached_bijector is None:
            object.__setattr__(self, '_cached_bijector', self.make_bijector())
        return self._cached_bijector

    def initialize(self, x: tf.Tensor, **condition) -> tf.Tensor:
        """Data-dependent initialisation from a batch `x` of this layer's inputs
        (nothing to do unless overridden); returns the layer's output."""
        return self.bijector.inverse_and_log_det(x, **condition)[0]

    def forward(self, x: tf.Tensor, log_det, **condition) -> tuple[tf.Tensor, tf.Tensor]:
        z, step_log_det = self.bijector.inverse_and_log_det(x, **condition)
        return z, log_det + step_log_det

    def reverse(self, z: tf.Tensor, log_det, **condition) -> tuple[tf.Tensor, tf.Tensor]:
        x, step_log_det = self.bijector.forward_and_log_det(z, **condition)
        return x, log_det + step_log_det

    def call(self, inputs):
        return self.forward(inputs, tf.zeros(tf.shape(inputs)[:1]))

    def parameter_count(self) -> int:
        """Trainable parameters; masked layers count only their live entries."""
        return sum(int(w.shape.num_elements()) for w in self.trainable_weights)


class FlowSequence(FlowLayer):
    """Flow layers applied in order (data -> latent), all on inputs of one shape;
    its bijector is the `FlowChain` of theirs.

    Args:
      flow_layers: the `FlowLayer`s, in data -> latent order.
      recompute_gradients: gradient checkpointing of the chain's data -> latent pass (see `FlowChain`).
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, flow_layers: Sequence[FlowLayer], recompute_gradients: bool = False, name: str = 'sequence',
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.flow_layers = list(flow_layers)
        self.recompute_gradients = bool(recompute_gradients)

    def build(self, input_shape):
        for layer in self.flow_layers:
            layer.build(input_shape)
        self.built = True

    def make_bijector(self):
        return FlowChain([layer.bijector for layer in self.flow_layers],
                         recompute_gradients=self.recompute_gradients, name=self.name)

    def initialize(self, x, **condition):
        for layer in self.flow_layers:
            x = layer.initialize(x, **condition)
        return x


def check_nhwc(name, shape, even_channels=False):
    """Validate a static NHWC input shape at build time with a clear message."""
    shape = tf.TensorShape(shape)
    if shape.rank != 4:
        raise ValueError(f'{name}: expected an NHWC input of rank 4, got shape {shape}')
    if any(d is None for d in shape[1:]):
        raise ValueError(f'{name}: height, width and channels must be known when building, got {shape}')
    if even_channels and shape[-1] % 2:
        raise ValueError(f'{name}: needs an even number of channels to split in halves, got {shape[-1]}')
    return shape
