"""Activation normalisation (Glow, section 3.1), centre then scale.

Data -> latent, per channel c of an [N, H, W, C] input:

    z = (x + b) * exp(f * logs),     log|det dz/dx| = H * W * sum_c f * logs_c

with `b` and `logs` of shape [1, 1, 1, C] and the logscale factor f = 3 (the
variable holds logs / 3, as in the original).  Data-dependent initialisation
(`initialize(x)`, from a batch of the layer's inputs):

    b = -mean_{N,H,W}(x),   logs = log(1 / (sqrt(mean_{N,H,W}((x + b)^2)) + 1e-6)) / f

so the initial output has zero mean and unit variance per channel.
"""
import tensorflow as tf

from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc, spatial_size

LOGSCALE_FACTOR = 3.


class ActNormBijector(FlowBijector):
    """Per-channel shift and scale.  inverse (data -> latent): (y + bias) * exp(f * logs)."""

    def __init__(self, bias, logs, logscale_factor=LOGSCALE_FACTOR, validate_args=False, name='actnorm'):
        parameters = dict(locals())
        if logscale_factor <= 0:
            raise ValueError(f'logscale_factor must be positive, got {logscale_factor}')
        self._bias = bias
        self._logs = logs
        self._logscale_factor = float(logscale_factor)
        super().__init__(parameters=parameters, name=name, validate_args=validate_args,
                         is_constant_jacobian=True)

    def _log_scale(self):
        return self._logs * self._logscale_factor

    def _inverse(self, y):
        return (y + self._bias) * tf.exp(self._log_scale())

    def _forward(self, x):
        return x * tf.exp(-self._log_scale()) - self._bias

    def _inverse_log_det_jacobian(self, y):
        return spatial_size(y) * tf.reduce_sum(self._log_scale())

    def _forward_log_det_jacobian(self, x):
        return -spatial_size(x) * tf.reduce_sum(self._log_scale())


class ActNorm(FlowLayer):
    """Keras layer owning `actnorm_center/b` and `actnorm_scale/logs` ([1, 1, 1, C])."""

    def __init__(self, logscale_factor=LOGSCALE_FACTOR, name='actnorm', **kwargs):
        super().__init__(name=name, **kwargs)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        shape = check_nhwc(self.name, input_shape)
        channels = shape[-1]
        self.bias = self.add_weight(name='actnorm_center/b', shape=[1, 1, 1, channels],
                                    initializer='zeros', trainable=True)
        self.logs = self.add_weight(name='actnorm_scale/logs', shape=[1, 1, 1, channels],
                                    initializer='zeros', trainable=True)
        self.built = True

    def make_bijector(self):
        return ActNormBijector(self.bias, self.logs, self.logscale_factor, name=self.name)

    def initialize(self, x, **condition):
        """Data-dependent initialisation from x [N, H, W, C]: zero mean, unit
        variance per channel of the output, which is returned."""
        mean = tf.reduce_mean(x, axis=[0, 1, 2], keepdims=True)
        self.bias.assign(-mean)
        std = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axis=[0, 1, 2], keepdims=True))
        self.logs.assign(tf.math.log(1. / (std + 1e-6)) / self.logscale_factor)
        return super().initialize(x)
