"""Periodic (circular, "Fourier") convolution (Hoogeboom et al. 2019, section 3.2).

Data -> latent on [N, H, W, C], with a 3x3 kernel W[a, b, c_in, c_out]:

    z[i, j] = sum_{a, b} x[(i + a - 1) mod H, (j + b - 1) mod W] W[a, b] + bias

i.e. circular padding by one pixel and a VALID convolution.  In the Fourier
domain the convolution is, at each frequency (u, v), a C x C matrix product:

    Z^(u, v) = X^(u, v) K(u, v),  K(u, v) = sum_{a, b} W[a, b] exp(2 pi i (u (a - 1) / H + v (b - 1) / W))

(the phase factor absorbs both the kernel flip and the one-pixel shift of
the padded convolution, for any H and W, also smaller than the kernel), so

    log|det dz/dx| = sum_{u, v} log|det K(u, v)|,

summed over the real-FFT half plane with the conjugate-symmetric columns
counted twice (v = 0, and v = W / 2 for even W, once); log|det K| is taken as
half the log|det| of the real 2C x 2C form [[Re K, -Im K], [Im K, Re K]], by QR
in float64, so the log-det (all that training needs) compiles under XLA.  The
inverse divides in the Fourier domain, X^ = Z^ K^-1 per frequency, then
irfft2d: K^-1 in complex128 (its error would otherwise grow with K's condition
number), the transforms and the product in complex64.  That is within float32
rounding of an all-complex128 solve (measured relative error ~2e-7 with
cond(K) ~ 1600) at 0.6-0.85x its time; most of what is left is the batched
C x C matrix inverse.
"""
import numpy as np
import tensorflow as tf

from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc
from emerging.flows.conv1x1 import random_orthogonal


def _circular_pad(x):
    x = tf.concat([x[:, -1:], x, x[:, :1]], axis=1)
    return tf.concat([x[:, :, -1:], x, x[:, :, :1]], axis=2)


class PeriodicConvBijector(FlowBijector):
    """inverse (data -> latent): circular 3x3 convolution plus bias; forward: Fourier-domain solve.

    The log-det, sum over frequencies of log|det K(u, v)| (module docstring), does not depend on the input (a
    float32 scalar); it needs every K(u, v) invertible.

    Args:
      kernel: W [3, 3, C, C].
      bias: b [C].
      name: the bijector's name.
    """

    def __init__(self, kernel, bias, name='fourier'):
        parameters = dict(locals())
        if kernel.shape.rank != 4 or tuple(kernel.shape[:2]) != (3, 3) or kernel.shape[2] != kernel.shape[3]:
            raise ValueError(f'{name}: kernel must be [3, 3, C, C], got {kernel.shape}')
        self._kernel, self._bias = kernel, bias
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _frequency_parts(self, height, width):
        """Re K(u, v) and Im K(u, v) for u < H, v <= W // 2: float64 [H, W // 2 + 1, C, C] each."""
        offsets = np.arange(3) - 1
        angle = 2. * np.pi * (np.arange(height)[:, None, None, None] * offsets[None, None, :, None] / height
                              + np.arange(width // 2 + 1)[None, :, None, None] * offsets[None, None, None, :] / width)
        kernel = tf.cast(self._kernel, tf.float64)
        return (tf.einsum('uvab,abij->uvij', tf.constant(np.cos(angle)), kernel),
                tf.einsum('uvab,abij->uvij', tf.constant(np.sin(angle)), kernel))

    def _frequency_matrices(self, height, width):
        """K(u, v) for u < H, v <= W // 2: complex128 [H, W // 2 + 1, C, C]."""
        return tf.complex(*self._frequency_parts(height, width))

    def _log_abs_det(self, height, width):
        # log|det K| = 1/2 log|det [[A, -B], [B, A]]| for K = A + iB, and that real log|det|
        # from a QR in float64: unlike a complex slogdet this compiles under XLA (--jit_compile).
        real, imag = self._frequency_parts(height, width)
        stacked = tf.concat([tf.concat([real, -imag], axis=-1), tf.concat([imag, real], axis=-1)], axis=-2)
        upper = tf.linalg.qr(stacked)[1]
        log_abs = 0.5 * tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(upper))), axis=-1)
        n_cols = width // 2 + 1
        weights = np.full([n_cols], 2.)
        weights[0] = 1.
        if width % 2 == 0:
            weights[-1] = 1.
        return tf.cast(tf.reduce_sum(log_abs * weights), tf.float32)

    def _inverse(self, y):
        return tf.nn.conv2d(_circular_pad(y), self._kernel, strides=1, padding='VALID') + self._bias

    def _forward(self, x):
        height, width = x.shape[1], x.shape[2]
        spectrum = tf.signal.rfft2d(tf.transpose(tf.cast(x - self._bias, tf.float32), [0, 3, 1, 2]))
        inverse = tf.cast(tf.linalg.inv(self._frequency_matrices(height, width)), tf.complex64)
        solved = tf.einsum('ncuv,uvcd->nduv', spectrum, inverse)
        out = tf.signal.irfft2d(solved, fft_length=[height, width])
        return tf.cast(tf.transpose(out, [0, 2, 3, 1]), x.dtype)

    def _inverse_log_det_jacobian(self, y):
        return self._log_abs_det(y.shape[1], y.shape[2])

    def _forward_log_det_jacobian(self, x):
        return -self._log_abs_det(x.shape[1], x.shape[2])


class PeriodicConv(FlowLayer):
    """Keras layer owning `fourier/W` ([3, 3, C, C]) and `fourier/b` ([C]).

    W starts as a random orthogonal matrix at the centre tap plus N(0, 0.02) noise, b at zero.

    Args:
      rng: the numpy Generator of the initial weights (a fresh one when None).
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    count_kind = 'periodic'

    def __init__(self, rng=None, name='fourier', **kwargs):
        super().__init__(name=name, **kwargs)
        self._rng = rng if rng is not None else np.random.default_rng()

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape)[-1]
        value = self._rng.normal(0., 0.02, [3, 3, channels, channels])
        value[1, 1] += random_orthogonal(self._rng, channels)
        self.w = self.add_weight(name='W', shape=value.shape, initializer=tf.constant_initializer(value))
        self.b = self.add_weight(name='b', shape=[channels], initializer='zeros')
        self.built = True

    def make_bijector(self):
        return PeriodicConvBijector(self.w, self.b, name=self.name)
