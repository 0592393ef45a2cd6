"""The logit transform (Real NVP's preprocessing; the first layer of a Residual Flow).

Data -> latent, elementwise on x in [0, 1) (a dequantised image):

    s = alpha + (1 - 2 alpha) x,      z = log(s) - log(1 - s)
    log|det dz/dx| = sum_{H,W,C} log(1 - 2 alpha) - log(s) - log(1 - s)

Latent -> data: x = (sigmoid(z) - alpha) / (1 - 2 alpha).  Inputs [N, H, W, C],
log-dets [N].  `alpha` keeps s away from 0 and 1 (the public Residual Flows code
uses 1e-6 for MNIST and 0.05 for the other data sets).
"""
import math

import tensorflow as tf

from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc, sum_event


class LogitBijector(FlowBijector):
    """forward = latent -> data (sigmoid), inverse = data -> latent (logit).

    The maps and their log-dets (per example [N]) are in the module docstring.

    Args:
      alpha: in (0, 0.5): the inverse takes the logit of alpha + (1 - 2 alpha) x.
      name: the bijector's name.
    """

    def __init__(self, alpha=0.05, name='logit'):
        parameters = dict(locals())
        if not 0. < alpha < 0.5:
            raise ValueError(f'{name}: alpha must be in (0, 0.5) (x = 0 must map to a finite z), got {alpha}')
        self._alpha = float(alpha)
        super().__init__(parameters=parameters, name=name)

    def _s(self, y):
        return self._alpha + (1. - 2. * self._alpha) * y

    def _inverse(self, y):
        s = self._s(y)
        return tf.math.log(s) - tf.math.log1p(-s)

    def _forward(self, x):
        return (tf.sigmoid(x) - self._alpha) / (1. - 2. * self._alpha)

    def _inverse_log_det_jacobian(self, y):
        s = self._s(y)
        return sum_event(math.log(1. - 2. * self._alpha) - tf.math.log(s) - tf.math.log1p(-s))

    def _forward_log_det_jacobian(self, x):
        # log sigmoid'(x) = -softplus(-x) - softplus(x)
        return sum_event(-tf.nn.softplus(-x) - tf.nn.softplus(x) - math.log(1. - 2. * self._alpha))


class LogitTransform(FlowLayer):
    """Keras layer (no weights) for `LogitBijector`.

    Args:
      alpha: in (0, 0.5), see `LogitBijector` (the Residual Flow model passes its `logit_alpha`).
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, alpha=0.05, name='logit', **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0. < alpha < 0.5:
            raise ValueError(f'{name}: alpha must be in (0, 0.5) (x = 0 must map to a finite z), got {alpha}')
        self.alpha = float(alpha)

    def build(self, input_shape):
        check_nhwc(self.name, input_shape)
        self.built = True

    def make_bijector(self):
        return LogitBijector(self.alpha, name=self.name)
