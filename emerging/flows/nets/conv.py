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

How it is computed (same numbers, less work; the weights keep the original's
shapes and names):

* the edge-bias convolution is a SAME convolution of x with the kernel's
  first C_in input channels plus the border channel's response, a
  [1, H, W, n_out] map from convolving the constant border with the last
  input channel: no padded copy and no channel concatenation of the
  activations (a 129-channel input also falls off oneDNN's fast channel
  blocking);
* the per-channel scale exp(3 logs) of the actnorm / zeros layers is applied
  to the kernel ([k, k, C_in, n_out]) and the bias, not to the [N, H, W, n_out]
  output: (conv(x, W) + b) * s = conv(x, W * s) + b * s, so no elementwise
  pass over the activations (or their gradients) is left but one add (and
  the ReLU, which TensorFlow fuses into the 1x1 matrix product);
* a 1x1 kernel is a matrix product over the N * H * W pixels, faster than
  oneDNN's 1x1 convolution and its weight gradient on CPU.

The layers compute in their input's dtype: a bfloat16 / float16 input gets
its (float32, scaled) kernel and bias cast to that dtype (mixed precision,
see coupling.py); the data-dependent actnorm init runs in float32.  Keras's
input autocasting (to the float32 policy) is therefore off for them.
"""
import numpy as np
import tensorflow as tf
import tf_keras

from emerging.flows.actnorm import LOGSCALE_FACTOR, ActNorm
from emerging.flows.base import pixelwise_matmul


def border_patches(height, width, kernel_size):
    """[H * W, k * k]: the k x k window around every pixel of the border channel
    (1 on the k // 2 wide zero padding, 0 inside), so that the border channel's
    response to its kernel taps [k * k, n_out] is one small matrix product (its
    gradient too), not a convolution."""
    border = np.pad(np.zeros([height, width], np.float32), kernel_size // 2, constant_values=1.)
    windows = np.lib.stride_tricks.sliding_window_view(border, (kernel_size, kernel_size))
    return windows.reshape(height * width, kernel_size * kernel_size)


def edge_conv(x, kernel, bias=None, relu=False):
    """The original's edge-bias convolution (zero-pad by k // 2, append the border
    channel, convolve VALID) [+ bias [n_out]] [then ReLU].

    [N, H, W, C] with kernel [k, k, C (+1 if k > 1), n_out] -> [N, H, W, n_out].
    """
    kernel_size, n_out = kernel.shape[0], kernel.shape[-1]
    channels = x.shape[-1]
    if kernel_size == 1:
        return pixelwise_matmul(x, tf.reshape(kernel, [channels, n_out]), bias, relu)
    image_kernel, border_kernel = tf.split(kernel, [channels, 1], axis=2)
    out = (tf.nn.conv2d(x, image_kernel, strides=1, padding='SAME')
           + border_response(border_kernel, x.shape[1], x.shape[2], bias))
    return tf.nn.relu(out) if relu else out


def border_response(border_kernel, height, width, bias=None):
    """[1, H, W, n_out]: the border channel convolved with its taps [k, k, 1, n_out] (+ bias)."""
    kernel_size, n_out = border_kernel.shape[0], border_kernel.shape[-1]
    patches = tf.constant(border_patches(height, width, kernel_size), border_kernel.dtype)
    response = tf.matmul(patches, tf.reshape(border_kernel, [kernel_size * kernel_size, n_out]))
    if bias is not None:
        response = response + bias
    return tf.reshape(response, [1, height, width, n_out])


def _input_channels(channels, kernel_size):
    return channels + (1 if kernel_size > 1 else 0)


class Conv2dActnorm(tf_keras.layers.Layer):
    """`l_1` / `l_2` of the coupling network: W [k, k, C_in (+1), width], then actnorm (then ReLU with `relu`)."""

    def __init__(self, width, kernel_size, rng=None, relu=False, name=None, **kwargs):
        super().__init__(name=name, autocast=False, **kwargs)
        self.width, self.kernel_size, self.relu = int(width), int(kernel_size), bool(relu)
        self._rng = rng if rng is not None else np.random.default_rng()
        self.actnorm = ActNorm(name='actnorm')

    def build(self, input_shape):
        c_in = _input_channels(int(input_shape[-1]), self.kernel_size)
        shape = [self.kernel_size, self.kernel_size, c_in, self.width]
        self.w = self.add_weight(name='W', shape=shape,
                                 initializer=tf.constant_initializer(self._rng.normal(0., 0.05, shape)))
        self.actnorm.build(list(input_shape[:-1]) + [self.width])
        self.built = True

    def initialize(self, x):
        """Data-dependent init of the actnorm from the convolution of a batch x
        (in float32); returns the layer's output on x."""
        self.actnorm.initialize(edge_conv(tf.cast(x, self.w.dtype), self.w))
        return self(x)

    def call(self, x):
        actnorm = self.actnorm
        # (conv(x, W) + b) * s as conv(x, W * s) + b * s
        scale = tf.exp(tf.reshape(actnorm.logs, [-1]) * actnorm.logscale_factor)
        kernel, bias = self.w * scale, tf.reshape(actnorm.bias, [-1]) * scale
        return edge_conv(x, tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype), relu=self.relu)


class Conv2dZeros(tf_keras.layers.Layer):
    """Zero-initialised edge-bias convolution: W [k, k, C_in (+1), n_out], b [1, 1, 1, n_out], logs [1, n_out].

    `output_order` (a permutation of range(n_out)) reorders the output
    channels, e.g. even channels first then odd, so that the callers taking
    h[..., 0::2] and h[..., 1::2] split contiguous halves instead (a strided
    channel slice and its gradient cost more than the whole layer's add).
    The weights keep the original's channel order.
    """

    def __init__(self, n_out, kernel_size=3, logscale_factor=LOGSCALE_FACTOR, output_order=None, name=None,
                 **kwargs):
        super().__init__(name=name, autocast=False, **kwargs)
        self.n_out, self.kernel_size = int(n_out), int(kernel_size)
        self.logscale_factor = float(logscale_factor)
        if output_order is not None and sorted(output_order) != list(range(self.n_out)):
            raise ValueError(f'output_order must be a permutation of range({self.n_out}), got {output_order}')
        # a permutation matrix: reordering the weights by a matrix product keeps
        # their gradient a matrix product too (a gather's is a scatter plus transposes)
        self.output_order = None if output_order is None else np.eye(self.n_out, dtype=np.float32)[:, output_order]

    def build(self, input_shape):
        c_in = _input_channels(int(input_shape[-1]), self.kernel_size)
        self.w = self.add_weight(name='W', shape=[self.kernel_size, self.kernel_size, c_in, self.n_out],
                                 initializer='zeros')
        self.b = self.add_weight(name='b', shape=[1, 1, 1, self.n_out], initializer='zeros')
        self.logs = self.add_weight(name='logs', shape=[1, self.n_out], initializer='zeros')
        self.built = True

    def _scaled_weights(self):
        scale = tf.exp(tf.reshape(self.logs, [-1]) * self.logscale_factor)
        kernel, bias = self.w * scale, tf.reshape(self.b, [-1]) * scale
        if self.output_order is not None:
            order = tf.constant(self.output_order, kernel.dtype)
            kernel = tf.reshape(tf.matmul(tf.reshape(kernel, [-1, self.n_out]), order), kernel.shape)
            bias = tf.linalg.matvec(order, bias, transpose_a=True)
        return kernel, bias

    def call(self, x):
        kernel, bias = self._scaled_weights()
        return edge_conv(x, tf.cast(kernel, x.dtype), bias=tf.cast(bias, x.dtype))

    def of_zeros(self, batch_size, height, width):
        """The output for an all-zero [batch, H, W, C_in] input (the top prior's):
        only the border channel and the bias contribute, so no convolution runs."""
        kernel, bias = self._scaled_weights()
        if self.kernel_size == 1:
            response = tf.reshape(bias, [1, 1, 1, self.n_out])
        else:
            response = border_response(kernel[:, :, -1:, :], height, width, bias)
        return tf.broadcast_to(response, [batch_size, height, width, self.n_out])


def even_then_odd(n):
    """The output order that puts channels 0, 2, 4, ... before 1, 3, 5, ..."""
    return list(range(0, n, 2)) + list(range(1, n, 2))


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
