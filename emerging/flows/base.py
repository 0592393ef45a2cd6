"""The flow-layer contract shared by every module in `emerging.flows`.

Two directions, two conventions, one set of weights:

* The Keras layer (`FlowLayer`) works in the *density* direction of the
  original code: ``forward(x, log_det) -> (z, log_det + log|det dz/dx|)`` maps
  data to latent, ``reverse(z, log_det) -> (x, log_det - log|det dz/dx|)`` maps
  back.  ``log_det`` is a per-example float32 vector of shape [N] (or anything
  that broadcasts to it).
* The bijector (`FlowBijector`, event ndims 3: H x W x C) follows TFP and
  `tfb.Glow`: bijector *forward* = latent -> data (sampling), *inverse* =
  data -> latent.  So ``layer.forward`` is ``bijector.inverse`` plus its
  inverse log-det Jacobian, computed in one pass.

The bijector reads the layer's variables each time it is called (nothing is
precomputed in its constructor), so it always reflects the current weights and
is safe to build once and reuse inside `tf.function`.
"""
import contextlib

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

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


class FlowBijector(tfb.Bijector):
    """Base of this project's bijectors: event ndims 3, TFP's direction.

    Subclasses implement `_forward`, `_inverse` and the log-det Jacobians;
    those whose inverse and log-det share work (coupling, autoregressive)
    override `inverse_and_log_det` / `forward_and_log_det` to do it once.
    """

    def __init__(self, *, parameters, name, validate_args=False, is_constant_jacobian=False):
        super().__init__(
            forward_min_event_ndims=EVENT_NDIMS,
            is_constant_jacobian=is_constant_jacobian,
            validate_args=validate_args,
            parameters=parameters,
            name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        # Weights are whole-event parameters: these bijectors have no batch shape.
        return dict()

    def inverse_and_log_det(self, y):
        """data -> latent and log|det d latent / d data| (per example or scalar)."""
        return self._inverse(y), self._inverse_log_det_jacobian(y)

    def forward_and_log_det(self, x):
        """latent -> data and log|det d data / d latent|."""
        return self._forward(x), self._forward_log_det_jacobian(x)


class JointFlowBijector(FlowBijector):
    """For bijectors whose map and log-det share the work (a network evaluation):
    subclasses implement only `inverse_and_log_det` and `forward_and_log_det`."""

    def inverse_and_log_det(self, y):
        raise NotImplementedError

    def forward_and_log_det(self, x):
        raise NotImplementedError

    def _inverse(self, y):
        return self.inverse_and_log_det(y)[0]

    def _inverse_log_det_jacobian(self, y):
        return self.inverse_and_log_det(y)[1]

    def _forward(self, x):
        return self.forward_and_log_det(x)[0]

    def _forward_log_det_jacobian(self, x):
        return self.forward_and_log_det(x)[1]


class FlowChainBijector(JointFlowBijector):
    """Composition of flow bijectors; `bijectors` are listed in data -> latent order."""

    def __init__(self, bijectors, validate_args=False, name='flow_chain'):
        parameters = dict(locals())
        self._flow_bijectors = list(bijectors)
        super().__init__(parameters=parameters, name=name, validate_args=validate_args)

    @property
    def bijectors(self):
        return self._flow_bijectors

    def inverse_and_log_det(self, y):
        log_det = 0.
        for bijector in self._flow_bijectors:
            y, step_log_det = bijector.inverse_and_log_det(y)
            log_det += step_log_det
        return y, log_det

    def forward_and_log_det(self, x):
        log_det = 0.
        for bijector in reversed(self._flow_bijectors):
            x, step_log_det = bijector.forward_and_log_det(x)
            log_det += step_log_det
        return x, log_det


class FlowLayer(tf_keras.layers.Layer):
    """A Keras layer that owns a flow's weights and exposes it as `.bijector`.

    Subclasses create their weights in `build(input_shape)` and return a
    `FlowBijector` over them from `make_bijector()`.  The model builds every
    layer from static shapes when it is constructed, so weights exist (and can
    be restored) before any data is seen.
    """

    #: which parameter-count bucket the layer's weights belong to (SPEC section 5)
    count_kind = 'rest'

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        # Kept outside Keras' attribute tracking: the bijector only references
        # weights the layer already tracks.
        object.__setattr__(self, '_cached_bijector', None)

    def make_bijector(self):
        raise NotImplementedError

    @property
    def bijector(self):
        if not self.built:
            raise ValueError(f'{self.name}: build the layer (layer.build(shape)) before asking for its bijector')
        if self._cached_bijector is None:
            object.__setattr__(self, '_cached_bijector', self.make_bijector())
        return self._cached_bijector

    def forward(self, x, log_det):
        z, step_log_det = self.bijector.inverse_and_log_det(x)
        return z, log_det + step_log_det

    def reverse(self, z, log_det):
        x, step_log_det = self.bijector.forward_and_log_det(z)
        return x, log_det + step_log_det

    def call(self, inputs):
        return self.forward(inputs, tf.zeros(tf.shape(inputs)[:1]))

    def parameter_count(self):
        """Trainable parameters; masked layers count only their live entries."""
        return sum(int(w.shape.num_elements()) for w in self.trainable_weights)


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


@contextlib.contextmanager
def data_dependent_init(layer):
    """Within this context every ActNorm inside `layer` initialises itself
    from the statistics of the next batch it sees (the original's `init=True`
    pass).  Run the model's forward once, eagerly, inside it."""
    targets = [m for m in layer.submodules if hasattr(m, 'init_from_next_batch')]
    if hasattr(layer, 'init_from_next_batch'):
        targets.append(layer)
    for target in targets:
        target.init_from_next_batch = True
    try:
        yield
    finally:
        for target in targets:
            target.init_from_next_batch = False
