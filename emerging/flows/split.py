"""Multi-scale split (Glow / RealNVP), levels 0 .. L-2.

Data -> latent on [N, H, W, C]: z1 = x[..., :C/2] continues (and is squeezed
by the model), z2 = x[..., C/2:] leaves the flow with a diagonal Gaussian
prior whose mean and log-std come from conv_zeros(z1) (`pool{i}/conv`, 2 *
C/2 outputs, mean = h[..., 0::2], logsd = h[..., 1::2]) with `learnprior`,
else N(0, 1).  As a bijection the split standardises z2:

    eps = (z2 - mean(z1)) / exp(logsd(z1)),   log|det| = -sum logsd

so that log N(z2; mean, exp(logsd)) = log N(eps; 0, 1) - sum logsd, and the
whole model is a bijector onto independent standard normals (as `tfb.Glow`).
`eps` is what `encode` returns; decoding with the same eps reconstructs exactly.
"""
import tensorflow as tf

from emerging.flows.base import FlowLayer, JointFlowBijector, check_nhwc, sum_event
from emerging.flows.nn import Conv2dZeros, even_then_odd


class SplitPriorBijector(JointFlowBijector):
    """inverse (data -> latent): [z1, z2] -> [z1, eps]; forward: [z1, eps] -> [z1, z2]."""

    def __init__(self, prior_fn, validate_args=False, name='split'):
        parameters = dict(locals())
        self._prior_fn = prior_fn
        super().__init__(parameters=parameters, name=name, validate_args=validate_args)

    def _halves(self, x):
        return tf.split(x, 2, axis=-1)

    def inverse_and_log_det(self, y):
        z1, z2 = self._halves(y)
        mean, logsd = self._prior_fn(z1)
        return tf.concat([z1, (z2 - mean) * tf.exp(-logsd)], axis=-1), -sum_event(logsd)

    def forward_and_log_det(self, x):
        z1, eps = self._halves(x)
        mean, logsd = self._prior_fn(z1)
        return tf.concat([z1, mean + tf.exp(logsd) * eps], axis=-1), sum_event(logsd)


class Split(FlowLayer):
    """Keras layer owning the split prior `pool{i}/conv` (only with `learnprior`)."""

    def __init__(self, learnprior=False, name='split', **kwargs):
        super().__init__(name=name, **kwargs)
        self.learnprior = bool(learnprior)
        self.conv = None

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape, even_channels=True)[-1]
        if self.learnprior:
            self.conv = Conv2dZeros(channels, 3, output_order=even_then_odd(channels), name='conv')
            self.conv.build(list(input_shape[:-1]) + [channels // 2])
        self.built = True

    def prior(self, z1):
        if self.conv is None:
            return tf.zeros_like(z1), tf.zeros_like(z1)
        # the conv emits the original's h[..., 0::2] (mean) then h[..., 1::2] (logsd)
        return tf.split(self.conv(z1), 2, axis=-1)

    def make_bijector(self):
        return SplitPriorBijector(self.prior, name=self.name)

    def split(self, z, log_det):
        """(z, log_det) -> (z1, log_det - sum logsd, eps): the original's split2d
        before squeezing; the prior's log N(eps; 0, 1) is added by the model."""
        latent, step_log_det = self.bijector.inverse_and_log_det(z)
        z1, eps = tf.split(latent, 2, axis=-1)
        return z1, log_det + step_log_det, eps

    def merge(self, z1, eps):
        """Inverse of `split`: (z = [z1, mean(z1) + exp(logsd(z1)) * eps], sum logsd)."""
        return self.bijector.forward_and_log_det(tf.concat([z1, eps], axis=-1))
