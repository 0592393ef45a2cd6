"""Reference implementations used by the tests and the benchmarks (slow, obvious, float64)."""
import numpy as np


def sequential_masked_conv_solve(y, kernel, later_first):
    """Solve y = conv_SAME(x, kernel) for x by plain back-substitution, one
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
