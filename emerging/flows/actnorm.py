"""Activation normalisation (Glow, section 3.1), centre then scale.

Data -> latent, per channel c of an [N, H, W, C] input:

    z = (x + b) * exp(f * logs),     log|det dz/dx| = H * W * sum_c f * logs_c

with `b` and `logs` of shape [1, 1, 1, C] and the logscale factor f = 3 (the
variable holds logs / 3, as in the original).  Data-dependent initialisation
(`initialize(x)`, from a batch of the layer's inputs):

    b = -mean_{N,H,W}(x),   logs = log(1 / (sqrt(mean_{N,H,W}((x + b)^2)) + 1e-6)) / f

so the initial output has zero mean and unit variance per channel.

Two options serve the Residual Flow model (the public code's ActNorm2d and
ActNorm1d): `per_element=True` gives b and logs the shape [1, H, W, C] (one
shift and scale per position and channel, statistics over the batch only,
log-det sum f * logs), and `min_std` replaces the initial scale by
logs = -log(max(std, min_std)) / f (the public code floors the variance at 0.2).
"""
import tensorflow as tf

from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc, spatial_size

LOGSCALE_FACTOR = 3.


class ActNormBijector(FlowBijector):
    """Per-channel shift and scale.  inverse (data -> latent): (y + bias) * exp(f * logs).

    forward (latent -> data): x * exp(-f * logs) - bias.  The log-det does not depend on the input: H * W *
    sum(f * logs) for the inverse (sum(f * logs) with `per_element`), its negative for the forward.

    Args:
      bias: b, [1, 1, 1, C] (or [1, H, W, C] with `per_element`), usually the layer's variable.
      logs: logs, of the shape of `bias`: the log-scale divided by `logscale_factor`.
      logscale_factor: f > 0, the factor of `logs` in the scale.
      per_element: `bias` and `logs` hold one value per position and channel, so the log-det is not
        multiplied by H * W.
      name: the bijector's name.
    """

    def __init__(self, bias, logs, logscale_factor=LOGSCALE_FACTOR, per_element=False, name='actnorm'):
        parameters = dict(locals())
        self._per_element = bool(per_element)
        if logscale_factor <= 0:
            raise ValueError(f'logscale_factor must be positive, got {logscale_factor}')
        self._bias = bias
        self._logs = logs
        self._logscale_factor = float(logscale_factor)
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _log_scale(self):
        return self._logs * self._logscale_factor

    def _inverse(self, y):
        return (y + self._bias) * tf.exp(self._log_scale())

    def _forward(self, x):
        return x * tf.exp(-self._log_scale()) - self._bias

    def _log_det(self, t):
        if self._per_element:
            return tf.reduce_sum(self._log_scale())
        return spatial_size(t) * tf.reduce_sum(self._log_scale())

    def _inverse_log_det_jacobian(self, y):
        return self._log_det(y)

    def _forward_log_det_jacobian(self, x):
        return -self._log_det(x)


class ActNorm(FlowLayer):
    """Keras layer owning `actnorm_center/b` and `actnorm_scale/logs` ([1, 1, 1, C], or [1, H, W, C]
    with `per_element`), both zero (the identity) until `initialize(x)`; see the module docstring.

    Args:
      logscale_factor: f > 0, the factor of the stored log-scale (3 as in Glow; the Residual Flow model uses 1).
      per_element: one shift and scale per position and channel, initialised from statistics over the batch only.
      min_std: when given (> 0), the initial scale is 1 / max(std, min_std) instead of 1 / (std + 1e-6).
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, logscale_factor=LOGSCALE_FACTOR, per_element=False, min_std=None, name='actnorm', **kwargs):
        super().__init__(name=name, **kwargs)
        if logscale_factor <= 0 or (min_std is not None and min_std <= 0):
            raise ValueError(f'{name}: logscale_factor and min_std must be positive, got {logscale_factor}, {min_std}')
        self.logscale_factor = float(logscale_factor)
        self.per_element, self.min_std = bool(per_element), min_std

    def build(self, input_shape):
        shape = check_nhwc(self.name, input_shape)
        param_shape = [1, *shape[1:]] if self.per_element else [1, 1, 1, shape[-1]]
        self.bias = self.add_weight(name='actnorm_center/b', shape=param_shape, initializer='zeros', trainable=True)
        self.logs = self.add_weight(name='actnorm_scale/logs', shape=param_shape, initializer='zeros',
                                    trainable=True)
        self.built = True

    def make_bijector(self):
        return ActNormBijector(self.bias, self.logs, self.logscale_factor, self.per_element, name=self.name)

    def initialize(self, x, **condition):
        """Data-dependent initialisation from x [N, H, W, C]: zero mean, unit
        variance per channel of the output, which is returned."""
        axes = [0] if self.per_element else [0, 1, 2]
        mean = tf.reduce_mean(x, axis=axes, keepdims=True)
        self.bias.assign(-mean)
        std = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axis=axes, keepdims=True))
        if self.min_std is None:
            self.logs.assign(tf.math.log(1. / (std + 1e-6)) / self.logscale_factor)
        else:
            self.logs.assign(-tf.math.log(tf.maximum(std, self.min_std)) / self.logscale_factor)
        return super().initialize(x)
