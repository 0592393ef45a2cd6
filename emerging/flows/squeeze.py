"""Space-to-depth squeeze (Glow, section 3.2 of RealNVP).

[N, H, W, C] -> [N, H/2, W/2, 4C]: reshape to [N, H/2, 2, W/2, 2, C],
transpose to [0, 1, 3, 5, 2, 4], reshape; channel 4c + 2a + b of the output
holds pixel (2i + a, 2j + b) of channel c.  Volume preserving; unsqueeze is
the exact inverse.

`Squeezed(inner)` is how the multi-scale model uses it: squeeze, run the
flow layer `inner` on the squeezed tensor, unsqueeze its output, so the
layer as a whole keeps the shape of its input:

    data -> latent:  x [N, H, W, C] -> unsqueeze(inner(squeeze(x))) [N, H, W, C]
"""
import tensorflow as tf

from emerging.flows.base import FlowLayer, JointFlowBijector, check_nhwc


def squeeze2d(x, factor=2):
    """Space to depth: each factor x factor block of pixels becomes factor^2 channels (module docstring).

    Args:
      x: [N, H, W, C] with static H, W, C; H and W divisible by `factor`.
      factor: the block's side f.

    Returns:
      [N, H/f, W/f, C f^2]: channel (c f + a) f + b holds pixel (f i + a, f j + b) of channel c.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if height % factor or width % factor:
        raise ValueError(f'squeeze: height and width must be divisible by {factor}, got {height}x{width}')
    x = tf.reshape(x, [-1, height // factor, factor, width // factor, factor, channels])
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4])
    return tf.reshape(x, [-1, height // factor, width // factor, channels * factor * factor])


def unsqueeze2d(x, factor=2):
    """Depth to space, the exact inverse of `squeeze2d`.

    Args:
      x: [N, H, W, C] with static H, W, C; C divisible by factor^2.
      factor: the block's side f.

    Returns:
      [N, H f, W f, C / f^2].
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if channels % (factor * factor):
        raise ValueError(f'unsqueeze: channels must be divisible by {factor * factor}, got {channels}')
    x = tf.reshape(x, [-1, height, width, channels // factor ** 2, factor, factor])
    x = tf.transpose(x, [0, 1, 4, 2, 5, 3])
    return tf.reshape(x, [-1, height * factor, width * factor, channels // factor ** 2])


class SqueezedBijector(JointFlowBijector):
    """`inner` between a squeeze and an unsqueeze; the log-det is inner's.

    Conditioning keywords are passed to `inner`.

    Args:
      inner: the `FlowBijector` on the squeezed tensor [N, H/2, W/2, 4C].
      name: the bijector's name.
    """

    def __init__(self, inner, name='squeezed'):
        parameters = dict(locals())
        self._inner = inner
        super().__init__(parameters=parameters, name=name)

    def inverse_and_log_det(self, y, **condition):
        z, log_det = self._inner.inverse_and_log_det(squeeze2d(y), **condition)
        return unsqueeze2d(z), log_det

    def forward_and_log_det(self, x, **condition):
        z, log_det = self._inner.forward_and_log_det(squeeze2d(x), **condition)
        return unsqueeze2d(z), log_det


class Squeezed(FlowLayer):
    """Keras layer running the flow layer `inner` on the squeezed input.

    Built on [N, H, W, C] with H and W even; it builds `inner` on [N, H/2, W/2, 4C].

    Args:
      inner: the `FlowLayer` on the squeezed tensor (in the model, the next levels).
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, inner, name='squeezed', **kwargs):
        super().__init__(name=name, **kwargs)
        self.inner = inner

    def build(self, input_shape):
        batch, height, width, channels = check_nhwc(self.name, input_shape)
        if height % 2 or width % 2:
            raise ValueError(f'{self.name}: height and width must be even to squeeze, got {height}x{width}')
        self.inner.build([batch, height // 2, width // 2, channels * 4])
        self.built = True

    def make_bijector(self):
        return SqueezedBijector(self.inner.bijector, name=self.name)

    def initialize(self, x, **condition):
        return unsqueeze2d(self.inner.initialize(squeeze2d(x), **condition))
