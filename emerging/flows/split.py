"""The multi-scale split (Glow / RealNVP) as two bijectors, levels 0 .. L-2.

On [N, H, W, C] with z1 = x[..., :C/2] and z2 = x[..., C/2:]:

* `SplitPrior` (`pool{i}`): z2 leaves the flow with a diagonal Gaussian prior
  whose mean and log-std come from conv_zeros(z1) (`pool{i}/conv`, 2 * C/2
  outputs, mean = h[..., 0::2], logsd = h[..., 1::2]) with `learnprior`,
  else N(0, 1).  As a bijection it standardises z2 (priors.py):

      data -> latent:  [z1, z2] -> [z1, eps],  eps = (z2 - mean(z1)) / exp(logsd(z1)),  log|det| = -sum logsd

* `FirstHalf(inner)`: the flow layer `inner` (squeeze and the next levels)
  transforms z1; the second half is left as it is:

      data -> latent:  [z1, eps] -> [inner(z1), eps],  log|det| = inner's

  like `tfb.Blockwise` over the channel halves.

So a level is `steps..., SplitPrior, FirstHalf(Squeezed(next level))`: the
latent keeps the input's shape, eps of this level in the second half of the
channels.  Decoding with the same eps reconstructs exactly.
"""
import tensorflow as tf

from emerging.flows.base import FlowLayer, JointFlowBijector, channel_halves, check_nhwc
from emerging.flows.nets.conv import Conv2dZeros, even_then_odd
from emerging.flows.priors import standardize, unstandardize


class SplitPriorBijector(JointFlowBijector):
    """inverse (data -> latent): [z1, z2] -> [z1, eps]; forward: [z1, eps] -> [z1, z2].

    eps = (z2 - mean(z1)) / exp(logsd(z1)) (`standardize`); log-dets per example [N].

    Args:
      prior_fn: z1 [N, H, W, C/2] -> (mean, logsd), each [N, H, W, C/2] (`SplitPrior.mean_and_logsd`).
      name: the bijector's name.
    """

    def __init__(self, prior_fn, name='split'):
        parameters = dict(locals())
        self._prior_fn = prior_fn
        super().__init__(parameters=parameters, name=name)

    def inverse_and_log_det(self, y, **condition):
        z1, z2 = channel_halves(y)
        eps, log_det = standardize(z2, *self._prior_fn(z1))
        return tf.concat([z1, eps], axis=-1), log_det

    def forward_and_log_det(self, x, **condition):
        z1, eps = channel_halves(x)
        z2, log_det = unstandardize(eps, *self._prior_fn(z1))
        return tf.concat([z1, z2], axis=-1), log_det


class SplitPrior(FlowLayer):
    """Keras layer owning the split prior `pool{i}/conv` (only with `learnprior`).

    Built on [N, H, W, C] with C even; without `learnprior` the prior of z2 is N(0, 1) and the layer has no
    weights.

    Args:
      learnprior: the mean and log-std of z2 come from a zero-initialised conv of z1 (`conv`).
      name: the layer's name (`pool{i}` in the model, the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

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

    def mean_and_logsd(self, z1):
        if self.conv is None:
            return tf.zeros_like(z1), tf.zeros_like(z1)
        # the conv emits the original's h[..., 0::2] (mean) then h[..., 1::2] (logsd)
        return tf.split(self.conv(z1), 2, axis=-1)

    def make_bijector(self):
        return SplitPriorBijector(self.mean_and_logsd, name=self.name)


class FirstHalfBijector(JointFlowBijector):
    """`inner` on the first half of the channels, the identity on the second.

    The log-det is inner's; conditioning keywords are passed to it.

    Args:
      inner: the `FlowBijector` on [N, H, W, C/2] (the first half of the channels).
      name: the bijector's name.
    """

    def __init__(self, inner, name='first_half'):
        parameters = dict(locals())
        self._inner = inner
        super().__init__(parameters=parameters, name=name)

    def inverse_and_log_det(self, y, **condition):
        first, second = channel_halves(y)
        first, log_det = self._inner.inverse_and_log_det(first, **condition)
        return tf.concat([first, second], axis=-1), log_det

    def forward_and_log_det(self, x, **condition):
        first, second = channel_halves(x)
        first, log_det = self._inner.forward_and_log_det(first, **condition)
        return tf.concat([first, second], axis=-1), log_det


class FirstHalf(FlowLayer):
    """Keras layer running the flow layer `inner` on the first half of the channels.

    Built on [N, H, W, C] with C even; it builds `inner` on [N, H, W, C/2].

    Args:
      inner: the `FlowLayer` for the first half (in the model, the squeezed next levels).
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, inner, name='first_half', **kwargs):
        super().__init__(name=name, **kwargs)
        self.inner = inner

    def build(self, input_shape):
        shape = check_nhwc(self.name, input_shape, even_channels=True)
        self.inner.build(shape[:-1].concatenate([shape[-1] // 2]))
        self.built = True

    def make_bijector(self):
        return FirstHalfBijector(self.inner.bijector, name=self.name)

    def initialize(self, x, **condition):
        first, second = channel_halves(x)
        return tf.concat([self.inner.initialize(first, **condition), second], axis=-1)
