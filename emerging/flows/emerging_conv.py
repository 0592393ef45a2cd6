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
i+j+2.  The system is first multiplied on the right by A^-1, A being the
triangular centre tap (A^-1 from one triangular solve over channels), so that
its centre is the identity and its neighbour taps are R A^-1, B A^-1, D A^-1.
The pixels are gathered once into anti-diagonal order (one [L_d, N * C] piece
per diagonal) and the anti-diagonals are solved from the last to the first:
every pixel of one anti-diagonal at once, the neighbours' terms (static 0/1 row
shifts of the two previously solved diagonals times the neighbour taps)
subtracted.  That is back-substitution in a valid order (exact, like the
original's per-pixel Cython loop) with H + W - 1 sequential steps instead of
H * W * C.  The W2 system is the same with earlier
neighbours, solved from the first diagonal on, so its solution feeds the W1
system piece by piece, without reordering; one gather at the end puts the
pixels back in place.  The solve runs in the input's dtype (float32); the
original instead solved in float64 on the host after rescaling the kernel,
which a triangular solve does not need.

`sequential_emerging_inverse` is the original's algorithm in NumPy, float64,
one pixel and one channel at a time: the reference the tests and
scripts/bench_inverse.py compare the in-graph solve with (slow).
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


def diagonal_order(height, width):
    """The H*W pixels (row-major indices) listed anti-diagonal by anti-diagonal,
    d = i + j from 0 to H + W - 2, by row i within a diagonal, and the row
    range (first, last) of every diagonal."""
    bounds = [(max(0, d - width + 1), min(height - 1, d)) for d in range(height + width - 1)]
    rows = np.concatenate([np.arange(first, last + 1) for first, last in bounds])
    cols = np.concatenate([d - np.arange(first, last + 1) for d, (first, last) in enumerate(bounds)])
    return (rows * width + cols).astype(np.int32), bounds


def _row_shift(bounds, d, source, offset, dtype):
    """0/1 matrix [L_d, L_source] taking the rows of diagonal `source` to the
    rows of diagonal d whose pixel (i, .) neighbours the source pixel (i + offset, .);
    rows without such a neighbour (outside the image) are zero."""
    first, last = bounds[d]
    source_first, source_last = bounds[source]
    matrix = np.zeros([last - first + 1, source_last - source_first + 1], dtype.as_numpy_dtype)
    for i in range(max(first, source_first - offset), min(last, source_last - offset) + 1):
        matrix[i - first, i + offset - source_first] = 1.
    return tf.constant(matrix)


def solve_diagonals(y, bounds, side, vertical, corner, later_first):
    """Back-substitution over the anti-diagonals for the unit triangular system

        later_first:  y[i, j] = x[i, j] + x[i, j+1] S + x[i+1, j] V + x[i+1, j+1] K
        otherwise:    y[i, j] = x[i, j] + x[i, j-1] S + x[i-1, j] V + x[i-1, j-1] K

    (row vectors over channels, zero outside the image; the caller has divided
    the centre tap out).  y is a list with one [L_d, N * C] tensor per
    anti-diagonal d (`diagonal_order`, rows of the diagonal in increasing i;
    `bounds` are the diagonals' row ranges); the returned x has one
    [L_d * N, C] tensor per diagonal.  Diagonal d depends only on the previous
    diagonal in solving order (side and vertical neighbours) and the one before
    (corner), so each step solves all its pixels at once:

        x_d = y_d - P_0 (x_prev S) - P_1 (x_prev V) - P_2 (x_prev2 K)

    with P_k static 0/1 row-shift matrices on [rows, N * C] views (cheaper than
    zero-padding and slicing).  The channel products of a diagonal are taken
    as soon as it is solved, so a step's critical path is one product, one
    shift and the subtraction."""
    channels = side.shape[-1]
    step = 1 if later_first else -1  # towards the diagonal solved before; also the row offset
    order = reversed(range(len(bounds))) if later_first else range(len(bounds))
    x, products = [None] * len(bounds), [None] * len(bounds)
    # Unrolled: H + W - 1 static steps (a while_loop costs more per step on CPU).
    for d in order:
        previous, before = d + step, d + 2 * step
        terms = []
        if 0 <= previous < len(bounds):
            terms += [_row_shift(bounds, d, previous, 0, y[d].dtype) @ products[previous][0],
                      _row_shift(bounds, d, previous, step, y[d].dtype) @ products[previous][1]]
        if 0 <= before < len(bounds):
            terms.append(_row_shift(bounds, d, before, step, y[d].dtype) @ products[before][2])
        # 2-D matmuls on [L * N, C]: [L, N, C] @ [C, C] would be a (much slower) batched matmul
        x[d] = tf.reshape(y[d] - tf.add_n(terms) if terms else y[d], [-1, channels])
        products[d] = [tf.reshape(x[d] @ weight, [y[d].shape[0], -1]) for weight in (side, vertical, corner)]
    return x


class EmergingConvBijector(FlowBijector):
    """inverse (data -> latent): two masked convolutions and a bias; forward: exact solve.

    The maths, the masks and the anti-diagonal solve are in the module docstring; the log-det does not
    depend on the input (a scalar).

    Args:
      w1: W1 [3, 3, C, C] (the mask M1 is applied here); its centre tap's diagonal must be non-zero.
      w2: W2 [3, 3, C, C] (masked by M2); its centre tap's diagonal must be non-zero.
      bias: b [C].
      name: the bijector's name.
    """

    def __init__(self, w1, w2, bias, name='emerging'):
        parameters = dict(locals())
        channels = int(w1.shape[-1])
        if tuple(w1.shape) != (KERNEL_SIZE, KERNEL_SIZE, channels, channels) or w2.shape != w1.shape:
            raise ValueError(f'{name}: W1 and W2 must both be [3, 3, C, C], got {w1.shape} and {w2.shape}')
        self._w1, self._w2, self._bias = w1, w2, bias
        # numpy, not tensors: the bijector is cached and may be first built inside a tf.function
        self._mask1 = square_ar_mask(channels)
        self._mask2 = self._mask1[::-1, ::-1, ::-1, ::-1].copy()
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

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
        batch, height, width, channels = tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
        order, bounds = diagonal_order(height, width)
        sizes = [last - first + 1 for first, last in bounds]
        # Each system times its centre tap's inverse (one triangular solve over
        # channels) is unit triangular: no product with A^-1 in the sequential steps.
        eye = tf.eye(channels, dtype=x.dtype)
        centre2_inverse = tf.linalg.triangular_solve(k2[1, 1], eye, lower=True)
        centre1_inverse = tf.linalg.triangular_solve(k1[1, 1], eye, lower=False)
        # [N, H, W, C] -> [H*W, N * C] in diagonal order by one gather over the flat
        # pixels (cheaper here than a transpose followed by a gather), one piece per diagonal
        examples = tf.range(batch)
        h = tf.gather(tf.reshape(x - self._bias, [-1, channels]) @ centre2_inverse,
                      order[:, None] + height * width * examples)
        # W2 system (pixels depend on earlier ones), then the W1 system (on later ones)
        h = solve_diagonals(tf.split(tf.reshape(h, [height * width, -1]), sizes), bounds,
                            k2[1, 0] @ centre2_inverse, k2[0, 1] @ centre2_inverse, k2[0, 0] @ centre2_inverse,
                            later_first=False)
        h = solve_diagonals([tf.reshape(piece @ centre1_inverse, [size, -1]) for piece, size in zip(h, sizes)],
                            bounds, k1[1, 2] @ centre1_inverse, k1[2, 1] @ centre1_inverse,
                            k1[2, 2] @ centre1_inverse, later_first=True)
        # back to [N, H, W, C]: pixel p of example n is row position[p] * N + n of the solution
        # (a gather: tf.dynamic_stitch of the pieces takes XLA minutes to compile)
        position = np.argsort(order).astype(np.int32)
        h = tf.gather(tf.concat(h, axis=0), position * batch + examples[:, None])
        return tf.reshape(h, [batch, height, width, channels])

    def _inverse_log_det_jacobian(self, y):
        return spatial_size(y) * self._log_abs_det()

    def _forward_log_det_jacobian(self, x):
        return -spatial_size(x) * self._log_abs_det()


class EmergingConv(FlowLayer):
    """Keras layer owning `emerging/W1`, `emerging/W2` ([3, 3, C, C]) and `emerging/b` ([C]).

    W1 and W2 start as the identity at the centre tap plus N(0, 0.02) noise, b at zero.

    Args:
      rng: the numpy Generator of the initial weights (a fresh one when None).
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

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


def sequential_masked_conv_solve(y, kernel, later_first):
    """Reference: solve y = conv_SAME(x, kernel) for x by plain back-substitution, one
    pixel and one channel at a time (what the original's Cython loop did).

    `kernel` [3, 3, C, C] must be triangular in (row, column, channel) order:
    with `later_first` each pixel depends on later pixels and the centre tap
    is upper triangular (emerging W1); otherwise on earlier pixels with a lower
    triangular centre (emerging W2).  Vectorised over the batch only."""
    y = np.asarray(y, np.float64)
    kernel = np.asarray(kernel, np.float64)
    n, height, width, channels = y.shape
    pixels = [(i, j) for i in range(height) for j in range(width)]
    channel_order = list(range(channels))
    if later_first:
        pixels.reverse()
    else:
        channel_order.reverse()
    padded = np.zeros([n, height + 2, width + 2, channels])
    for i, j in pixels:
        for co in channel_order:
            # one output channel of one pixel: sum over the 3x3 taps and all input channels
            weights = kernel[:, :, :, co].copy()
            weights[1, 1, co] = 0.
            acc = np.einsum('nabc,abc->n', padded[:, i:i + 3, j:j + 3], weights)
            padded[:, i + 1, j + 1, co] = (y[:, i, j, co] - acc) / kernel[1, 1, co, co]
    return padded[:, 1:-1, 1:-1]


def sequential_emerging_inverse(z, k1, k2, bias):
    """Inverse of z = conv(conv(x, k1), k2) + bias with the masked kernels of the emerging convolution."""
    h = sequential_masked_conv_solve(np.asarray(z, np.float64) - bias, k2, later_first=False)
    return sequential_masked_conv_solve(h, k1, later_first=True)
