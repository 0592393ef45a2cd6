"""Emerging convolution (Hoogeboom et al. 2019, section 3.1), kernel 3, dilation 1.

Two masked ("autoregressive") 3x3 convolutions in sequence, then a bias.
Data -> latent on [N, H, W, C]:

    z = conv_SAME(conv_SAME(x, W1 * M1), W2 * M2) + b

M1 keeps only the bottom-right 2x2 quadrant of the kernel (centre, right,
below, below-right) and, at the centre tap, the entries [c_in, c_out] with
c_in <= c_out; M2 is M1 flipped along all four axes (top-left quadrant,
c_in >= c_out at the centre).  Each convolution is therefore triangular in
(row, column, channel) order and

    log|det dz/dx| = H * W * (sum_c log|W1[1, 1, c, c]| + sum_c log|W2[1, 1, c, c]|).

The forward pass is computed as two 2x2 VALID convolutions on one-pixel padded
inputs (the live quadrants only).

Inverse (latent -> data), exact, inside the graph: undo b, solve the W2
system, then the W1 system.  For the W1 system a pixel (i, j) depends only on
(i, j+1), (i+1, j) and (i+1, j+1), i.e. on the anti-diagonals i+j+1 and
i+j+2.  The image is stored "skewed", one row per anti-diagonal
(S[d, i] = x[i, d - i]), and the anti-diagonals are solved from the last to
the first: every pixel of one anti-diagonal at once, the neighbours' terms
subtracted with one matmul against [R; B; D] A^-1, where A is the triangular
centre tap and A^-1 comes from one triangular solve over channels.  That is
back-substitution in a valid order (exact, like the original's per-pixel
Cython loop) with H + W - 1 sequential steps instead of H * W * C.  The W2
system is the same after flipping H and W.  The solve runs in the input's
dtype (float32); the original instead solved in float64 on the host after
rescaling the kernel, which a triangular solve does not need.
"""
import numpy as np
import tensorflow as tf

from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc, spatial_size

KERNEL_SIZE = 3


def square_ar_mask(channels):
    """M1: [3, 3, C, C]; live bottom-right quadrant, centre kept where c_in <= c_out."""
    mask = np.zeros([KERNEL_SIZE, KERNEL_SIZE, channels, channels], np.float32)
    mask[1:, 1:] = 1.
    mask[1, 1] = np.triu(np.ones([channels, channels], np.float32))
    return mask


def _skew_tables(height, width):
    """Gather indices between an image (H*W pixels + one zero pixel) and its
    anti-diagonal ("skewed") layout [H + W - 1, H], and the validity mask."""
    n_diag = height + width - 1
    skew = np.full([n_diag, height], height * width, np.int32)
    valid = np.zeros([n_diag, height], np.float32)
    for d in range(n_diag):
        for i in range(max(0, d - width + 1), min(height, d + 1)):
            skew[d, i] = i * width + (d - i)
            valid[d, i] = 1.
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    unskew = ((rows + cols) * height + rows).reshape(-1).astype(np.int32)
    return skew, valid, unskew


def solve_later_dependent(y, centre, right, below, below_right, centre_lower):
    """Solve, for x, the system

        y[i, j] = x[i, j] A + x[i, j+1] R + x[i+1, j] B + x[i+1, j+1] D

    (row vectors over channels, zero outside the image, A triangular) by
    back-substitution over anti-diagonals, last first.  y: [N, H, W, C].

    In the skewed layout (one row per anti-diagonal d, indexed by the image
    row i, plus one always-zero padding row so that "row i + 1" is a roll),
    x_d = y_d A^-1 - [x_{d+1}, up(x_{d+1}), up(x_{d+2})] [R; B; D] A^-1:
    one matmul per step.  A^-1 comes from a triangular solve; y A^-1 is
    applied to all diagonals at once."""
    height, width, channels = y.shape[1], y.shape[2], y.shape[3]
    skew, valid, unskew = _skew_tables(height, width)
    n_diag = height + width - 1
    rows = height + 1
    batch = tf.shape(y)[0]
    flat = tf.reshape(y, [batch, height * width, channels])
    flat = tf.concat([flat, tf.zeros_like(flat[:, :1])], axis=1)
    # skew with the padding row: [D, rows] indices into the H*W pixels + the zero pixel
    skew = np.concatenate([skew, np.full([n_diag, 1], height * width, np.int32)], axis=1)
    y_skew = tf.transpose(tf.gather(flat, skew, axis=1), [1, 0, 2, 3])  # [D, N, rows, C]
    centre_inverse = tf.linalg.triangular_solve(centre, tf.eye(channels, dtype=y.dtype), lower=centre_lower)
    # [R; B; D] A^-1, applied to [x_{d+1}, up(x_{d+1}), up(x_{d+2})]
    coupling = tf.concat([right, below, below_right], axis=0) @ centre_inverse
    y_solved = tf.unstack(tf.reshape(y_skew, [n_diag, -1, channels]) @ centre_inverse)  # D x [N * rows, C]
    valid = np.concatenate([valid, np.zeros([n_diag, 1], np.float32)], axis=1)
    valid = tf.unstack(tf.reshape(tf.tile(tf.constant(valid[:, np.newaxis, :, np.newaxis], y.dtype),
                                          [1, batch, 1, 1]), [n_diag, -1, 1]))
    # Unrolled: H + W - 1 static steps of five ops each (a while_loop costs more per step on CPU).
    previous = tf.zeros_like(y_solved[0])
    previous_up = previous_up2 = previous
    solved = [None] * n_diag
    for d in reversed(range(n_diag)):
        neighbours = tf.concat([previous, previous_up, previous_up2], axis=1)
        x_d = (y_solved[d] - tf.matmul(neighbours, coupling)) * valid[d]
        # the padding row is zero, so rolling the flat [N * rows, C] rows by one is "row i + 1"
        previous, previous_up2, previous_up = x_d, previous_up, tf.roll(x_d, shift=-1, axis=0)
        solved[d] = x_d
    x_skew = tf.reshape(tf.stack(solved), [n_diag, batch, rows, channels])[:, :, :height]
    x_skew = tf.reshape(tf.transpose(x_skew, [1, 0, 2, 3]), [batch, n_diag * height, channels])
    return tf.reshape(tf.gather(x_skew, unskew, axis=1), [batch, height, width, channels])


class EmergingConvBijector(FlowBijector):
    """inverse (data -> latent): two masked convolutions and a bias; forward: exact solve."""

    def __init__(self, w1, w2, bias, validate_args=False, name='emerging'):
        parameters = dict(locals())
        channels = int(w1.shape[-1])
        if tuple(w1.shape) != (KERNEL_SIZE, KERNEL_SIZE, channels, channels) or w2.shape != w1.shape:
            raise ValueError(f'{name}: W1 and W2 must both be [3, 3, C, C], got {w1.shape} and {w2.shape}')
        self._w1, self._w2, self._bias = w1, w2, bias
        # numpy, not tensors: the bijector is cached and may be first built inside a tf.function
        self._mask1 = square_ar_mask(channels)
        self._mask2 = self._mask1[::-1, ::-1, ::-1, ::-1].copy()
        super().__init__(parameters=parameters, name=name, validate_args=validate_args,
                         is_constant_jacobian=True)

    def _kernels(self):
        return self._w1 * self._mask1, self._w2 * self._mask2

    def _log_abs_det(self):
        k1, k2 = self._kernels()
        return (tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(k1[1, 1]))))
                + tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(k2[1, 1])))))

    def _inverse(self, y):
        k1, k2 = self._kernels()
        h = tf.pad(y, [[0, 0], [0, 1], [0, 1], [0, 0]])
        h = tf.nn.conv2d(h, k1[1:, 1:], strides=1, padding='VALID')
        h = tf.pad(h, [[0, 0], [1, 0], [1, 0], [0, 0]])
        h = tf.nn.conv2d(h, k2[:2, :2], strides=1, padding='VALID')
        return h + self._bias

    def _forward(self, x):
        k1, k2 = self._kernels()
        h = x - self._bias
        # W2 system: depends on earlier pixels; flip H and W to make them later ones.
        h = tf.reverse(h, axis=[1, 2])
        h = solve_later_dependent(h, k2[1, 1], k2[1, 0], k2[0, 1], k2[0, 0], centre_lower=True)
        h = tf.reverse(h, axis=[1, 2])
        return solve_later_dependent(h, k1[1, 1], k1[1, 2], k1[2, 1], k1[2, 2], centre_lower=False)

    def _inverse_log_det_jacobian(self, y):
        return spatial_size(y) * self._log_abs_det()

    def _forward_log_det_jacobian(self, x):
        return -spatial_size(x) * self._log_abs_det()


class EmergingConv(FlowLayer):
    """Keras layer owning `emerging/W1`, `emerging/W2` ([3, 3, C, C]) and `emerging/b` ([C])."""

    count_kind = 'emerging'

    def __init__(self, rng=None, name='emerging', **kwargs):
        super().__init__(name=name, **kwargs)
        self._rng = rng if rng is not None else np.random.default_rng()

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape)[-1]

        def init_value():
            value = self._rng.normal(0., 0.02, [KERNEL_SIZE, KERNEL_SIZE, channels, channels])
            value[1, 1] += np.eye(channels)
            return tf.constant_initializer(value)

        self.w1 = self.add_weight(name='W1', shape=[3, 3, channels, channels], initializer=init_value())
        self.w2 = self.add_weight(name='W2', shape=[3, 3, channels, channels], initializer=init_value())
        self.b = self.add_weight(name='b', shape=[channels], initializer='zeros')
        self.built = True

    def make_bijector(self):
        return EmergingConvBijector(self.w1, self.w2, self.b, name=self.name)

    def parameter_count(self):
        channels = int(self.b.shape[0])
        return 2 * int(square_ar_mask(channels).sum()) + channels
