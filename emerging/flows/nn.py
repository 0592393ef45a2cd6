"""Building blocks of the coupling network and of the learned priors (not flows).

* `Conv2dActnorm`: the original's `conv2d`: edge-bias padding, weights
  N(0, 0.05), no bias, an ActNorm after the convolution (data-initialised
  like the flow's actnorms).
* `Conv2dZeros`: the original's `conv2d_zeros`: edge-bias padding, W = b =
  logs = 0 at init, output (conv + b) * exp(3 logs).
* `LinearZeros`: the original's `linear_zeros`: (x W + b) * exp(3 logs).

Edge-bias padding (kernel k > 1): zero-pad by k // 2 and append one channel
that is 1 on the padded border and 0 inside, then convolve VALID, so the
network can tell the image border from zero-valued pixels.  A 1x1 kernel
gets no padding and no extra channel (as in the original).
"""
import numpy as np
import tensorflow as tf
import tf_keras

from emerging.flows.actnorm import LOGSCALE_FACTOR, ActNorm


def edge_bias_pad(x, kernel_size):
    """[N, H, W, C] -> [N, H + 2p, W + 2p, C + 1] with p = kernel_size // 2."""
    pad = kernel_size // 2
    height, width = x.shape[1], x.shape[2]
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    border = np.pad(np.zeros([1, height, width, 1], np.float32),
                    [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=1.)
    border = tf.tile(tf.constant(border, x.dtype), [tf.shape(x)[0], 1, 1, 1])
    return tf.concat([x, border], axis=-1)


def _edge_conv(x, kernel):
    kernel_size = kernel.shape[0]
    if kernel_size > 1:
        x = edge_bias_pad(x, kernel_size)
    return tf.nn.conv2d(x, kernel, strides=1, padding='VALID')


def _input_channels(channels, kernel_size):
    return channels + (1 if kernel_size > 1 else 0)


class Conv2dActnorm(tf_keras.layers.Layer):
    """`l_1` / `l_2` of the coupling network: W [k, k, C_in (+1), width], then actnorm."""

    def __init__(self, width, kernel_size, rng=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.width, self.kernel_size = int(width), int(kernel_size)
        self._rng = rng if rng is not None else np.random.default_rng()
        self.actnorm = ActNorm(name='actnorm')

    def build(self, input_shape):
        c_in = _input_channels(int(input_shape[-1]), self.kernel_size)
        shape = [self.kernel_size, self.kernel_size, c_in, self.width]
        self.w = self.add_weight(name='W', shape=shape,
                                 initializer=tf.constant_initializer(self._rng.normal(0., 0.05, shape)))
        self.actnorm.build(list(input_shape[:-1]) + [self.width])
        self.built = True

    def call(self, x):
        return self.actnorm.normalize(_edge_conv(x, self.w))


class Conv2dZeros(tf_keras.layers.Layer):
    """Zero-initialised edge-bias convolution: W [k, k, C_in (+1), n_out], b [1, 1, 1, n_out], logs [1, n_out]."""

    def __init__(self, n_out, kernel_size=3, logscale_factor=LOGSCALE_FACTOR, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_out, self.kernel_size = int(n_out), int(kernel_size)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        c_in = _input_channels(int(input_shape[-1]), self.kernel_size)
        self.w = self.add_weight(name='W', shape=[self.kernel_size, self.kernel_size, c_in, self.n_out],
                                 initializer='zeros')
        self.b = self.add_weight(name='b', shape=[1, 1, 1, self.n_out], initializer='zeros')
        self.logs = self.add_weight(name='logs', shape=[1, self.n_out], initializer='zeros')
        self.built = True

    def call(self, x):
        return (_edge_conv(x, self.w) + self.b) * tf.exp(self.logs * self.logscale_factor)


class LinearZeros(tf_keras.layers.Layer):
    """Zero-initialised linear layer: W [n_in, n_out], b [1, n_out], logs [1, n_out]."""

    def __init__(self, n_out, logscale_factor=LOGSCALE_FACTOR, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_out = int(n_out)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        self.w = self.add_weight(name='W', shape=[int(input_shape[-1]), self.n_out], initializer='zeros')
        self.b = self.add_weight(name='b', shape=[1, self.n_out], initializer='zeros')
        self.logs = self.add_weight(name='logs', shape=[1, self.n_out], initializer='zeros')
        self.built = True

    def call(self, x):
        return (tf.matmul(x, self.w) + self.b) * tf.exp(self.logs * self.logscale_factor)
