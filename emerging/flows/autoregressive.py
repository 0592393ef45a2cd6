"""Autoregressive (MAF-style) convolutional flow (flow_permutation 5).

Data -> latent on [N, H, W, C]; a masked three-layer network r = g(x):

    3x3 conv C -> depth (strict mask), ReLU, 1x1 conv depth -> depth,
    ReLU, 3x3 conv depth -> 2C (last layer zero-initialised)
    mu = r[..., 0::2],  scale = sigmoid(r[..., 1::2] + 2)
    z = x * scale + mu,          log|det dz/dx| = sum_{H, W, C} log(scale)

Spatial masks: the kernel rows above the centre and the centre row left of
the centre are zero; the centre tap is a channel-autoregressive matrix (strict
in the first layer, non-strict after), built exactly like the original's
`get_linear_ar_mask` (hidden depth and channels must divide one another).  So
mu and scale at pixel (i, j), channel c depend only on x at later raster
positions and on channels < c at (i, j).  The "upper" variant (maf2) flips H,
W and C before and after, reversing the order.

Exact inverse (latent -> data): the network reaches two rows down and two
columns either way, so pixels with the same key 3 i + j never depend on each
other, and every dependency has a larger key (or the same pixel and a lower
channel).  Keys are solved from the largest down, channels from the first
up, x = (z - mu) / scale updating only that key and channel each pass:
(3 (H - 1) + W) * C network evaluations, each exact given what is solved.
"""
import numpy as np
import tensorflow as tf

from emerging.flows.base import FlowLayer, JointFlowBijector, check_nhwc, sum_event

HIDDEN_DEPTH = 96


def linear_ar_mask(n_in, n_out, zero_diagonal=False):
    """The original's channel mask [n_in, n_out] (units grouped when sizes differ)."""
    if n_in % n_out and n_out % n_in:
        raise ValueError(f'autoregressive layer: channel counts {n_in} and {n_out} must divide one another '
                         f'(hidden depth {HIDDEN_DEPTH})')
    mask = np.ones([n_in, n_out], np.float32)
    if n_out >= n_in:
        k = n_out // n_in
        for i in range(n_in):
            mask[i + 1:, i * k:(i + 1) * k] = 0
            if zero_diagonal:
                mask[i:i + 1, i * k:(i + 1) * k] = 0
    else:
        k = n_in // n_out
        for i in range(n_out):
            mask[(i + 1) * k:, i:i + 1] = 0
            if zero_diagonal:
                mask[i * k:(i + 1) * k, i:i + 1] = 0
    return mask


def conv_ar_mask(kernel_size, n_in, n_out, zero_diagonal=False):
    """[k, k, n_in, n_out]: rows above the centre and the centre row left of it are dead."""
    centre = (kernel_size - 1) // 2
    mask = np.ones([kernel_size, kernel_size, n_in, n_out], np.float32)
    mask[:centre] = 0
    mask[centre, :centre] = 0
    mask[centre, centre] = linear_ar_mask(n_in, n_out, zero_diagonal)
    return mask


def network_masks(channels, depth=HIDDEN_DEPTH):
    return [conv_ar_mask(3, channels, depth, zero_diagonal=True),
            conv_ar_mask(1, depth, depth),
            conv_ar_mask(3, depth, 2 * channels)]


class AutoregressiveBijector(JointFlowBijector):
    """inverse (data -> latent): z = x * scale(x) + mu(x); forward: sequential exact solve.

    The masked network and the solve are in the module docstring; log-dets are per example [N].

    Args:
      kernels: the three kernels [3, 3, C, depth], [1, 1, depth, depth], [3, 3, depth, 2C] (their masks are
        applied here).
      biases: the three biases [depth], [depth], [2C].
      upper: the "upper" variant (maf2): H, W and C flipped before and after, reversing the order.
      name: the bijector's name.
    """

    def __init__(self, kernels, biases, upper=False, name='maf'):
        parameters = dict(locals())
        channels = int(kernels[0].shape[2])
        masks = network_masks(channels, int(kernels[0].shape[3]))
        for kernel, mask in zip(kernels, masks):
            if tuple(kernel.shape) != mask.shape:
                raise ValueError(f'{name}: kernel shapes must be {[m.shape for m in masks]}, '
                                 f'got {[tuple(k.shape) for k in kernels]}')
        self._kernels, self._biases = list(kernels), list(biases)
        self._masks = masks  # numpy: the cached bijector may be first built inside a tf.function
        self._upper = bool(upper)
        super().__init__(parameters=parameters, name=name)

    def _flip(self, x):
        return tf.reverse(x, axis=[1, 2, 3]) if self._upper else x

    def _mu_log_scale(self, x):
        h = x
        for layer, (kernel, mask, bias) in enumerate(zip(self._kernels, self._masks, self._biases)):
            h = tf.nn.conv2d(h, kernel * mask, strides=1, padding='SAME') + bias
            if layer < 2:
                h = tf.nn.relu(h)
        return h[..., 0::2], tf.math.log_sigmoid(h[..., 1::2] + 2.)

    def inverse_and_log_det(self, y, **condition):
        x = self._flip(y)
        mu, log_scale = self._mu_log_scale(x)
        return self._flip(x * tf.exp(log_scale) + mu), sum_event(log_scale)

    def forward_and_log_det(self, x, **condition):
        z = self._flip(x)
        height, width, channels = z.shape[1], z.shape[2], z.shape[3]
        keys = (3 * np.arange(height)[:, None] + np.arange(width)[None, :]).astype(np.int32)
        keys = tf.constant(keys[None, :, :, None])
        channel_ids = tf.range(channels, dtype=tf.int32)
        n_keys = 3 * (height - 1) + width
        max_key = n_keys - 1

        def body(step, solution):
            key = max_key - step // channels
            channel = step % channels
            mu, log_scale = self._mu_log_scale(solution)
            update = tf.logical_and(tf.equal(keys, key), tf.equal(channel_ids, channel))
            return step + 1, tf.where(update, (z - mu) * tf.exp(-log_scale), solution)

        _, solution = tf.while_loop(lambda step, _: step < n_keys * channels, body,
                                    (tf.constant(0), tf.zeros_like(z)))
        _, log_scale = self._mu_log_scale(solution)
        return self._flip(solution), -sum_event(log_scale)


class Autoregressive(FlowLayer):
    """Keras layer owning `maf1` (lower) or `maf2` (upper): `{0, 1, 2}/{W, b}`.

    The first two kernels start N(0, 0.05), the last one and every bias zero, so at first mu = 0 and
    scale = sigmoid(2) everywhere.

    Args:
      upper: the "upper" variant (maf2, the reversed order) instead of the lower one (maf1).
      depth: the network's hidden channels; each of C and 2C must divide depth or be a multiple of it.
      rng: the numpy Generator of the initial weights (a fresh one when None).
      name: the layer's name, by default 'maf2' with `upper`, else 'maf1'.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, upper=False, depth=HIDDEN_DEPTH, rng=None, name=None, **kwargs):
        super().__init__(name=name or ('maf2' if upper else 'maf1'), **kwargs)
        self.upper, self.depth = bool(upper), int(depth)
        self._rng = rng if rng is not None else np.random.default_rng()

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape)[-1]
        masks = network_masks(channels, self.depth)
        self.kernels, self.biases = [], []
        for i, mask in enumerate(masks):
            init = np.zeros(mask.shape) if i == len(masks) - 1 else self._rng.normal(0., 0.05, mask.shape)
            self.kernels.append(self.add_weight(name=f'{i}/W', shape=mask.shape,
                                                initializer=tf.constant_initializer(init)))
            self.biases.append(self.add_weight(name=f'{i}/b', shape=[mask.shape[-1]], initializer='zeros'))
        self.built = True

    def make_bijector(self):
        return AutoregressiveBijector(self.kernels, self.biases, upper=self.upper, name=self.name)

    def parameter_count(self):
        channels = int(self.kernels[0].shape[2])
        return int(sum(m.sum() for m in network_masks(channels, self.depth))) + sum(
            int(b.shape[0]) for b in self.biases)
