"""Additive and affine coupling (Glow, section 3.3) with the original network.

Data -> latent on [N, H, W, C]; z1 = x[..., :C/2], z2 = x[..., C/2:]:

* additive (flow_coupling 0): z2' = z2 + f(z1),  f with C/2 outputs, log|det| = 0;
* affine (flow_coupling 1): h = f(z1) with C outputs, shift = h[..., 0::2],
  scale = sigmoid(h[..., 1::2] + 2), z2' = (z2 + shift) * scale,
  log|det| = sum_{H, W, C/2} log(scale).  The bounded scale is what keeps
  training stable (an unbounded exp scale diverges).

f (`f1` in the original): 3x3 edge-bias conv -> width + actnorm -> ReLU ->
1x1 conv -> width + actnorm -> ReLU -> zero-initialised 3x3 conv (`l_1`,
`l_2`, `l_last`), so h = 0 at the start: an additive coupling starts as the
identity, an affine one as z2' = sigmoid(2) z2 (about 0.88 z2).

Mixed precision (`compute_dtype` bfloat16 or float16): f alone computes in
that dtype (its input, and its weights after the actnorm / zeros scaling,
are cast; the float32 weights stay the trained ones) and its output h is cast
back to float32, so shift, scale, the coupling's arithmetic and the log-det
are float32.  The coupling stays invertible: the inverse evaluates f on the
same z1 and gets the same h.  In a deep model the z1 rebuilt by the inverse
differs from the original by float32 rounding and can round to a neighbouring
bfloat16 / float16 value inside f, so round trips of a whole (small, test)
model are good to ~1e-3 / ~3e-4 at worst (~1e-6 in float32): below one of the
256 pixel bins (1/256), though a value at a bin's edge can come back in the
neighbouring bin.
"""
import numpy as np
import tensorflow as tf
import tf_keras

from emerging.choices import COUPLINGS, described
from emerging.flows.base import FlowLayer, JointFlowBijector, channel_halves, check_nhwc, sum_event
from emerging.flows.nets.conv import Conv2dActnorm, Conv2dZeros, even_then_odd


class CouplingNetwork(tf_keras.layers.Layer):
    """`f1`; with `output_order` its output channels come reordered (see Conv2dZeros).

    [N, H, W, C/2] float32 -> [N, H, W, n_out] float32, computed in `compute_dtype`.

    `l_1` (3x3 conv to `width` channels, actnorm, ReLU), `l_2` (1x1 conv, actnorm, ReLU), `l_last` (zero-initialised
    3x3 conv to `n_out` channels), so its output starts at zero.

    Args:
      width: the hidden channels of `l_1` and `l_2`.
      n_out: the output channels (C/2 for an additive coupling, C for an affine one).
      rng: the numpy Generator of the initial weights of `l_1` and `l_2` (a fresh one when None).
      output_order: a permutation of range(n_out) reordering the output channels (see `Conv2dZeros`), or None.
      compute_dtype: 'float32', 'bfloat16' or 'float16' (a floating dtype), the dtype the network computes in.
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, width, n_out, rng=None, output_order=None, compute_dtype='float32', name='f1', **kwargs):
        super().__init__(name=name, **kwargs)
        rng = rng if rng is not None else np.random.default_rng()
        self.network_dtype = tf.as_dtype(compute_dtype)
        if not self.network_dtype.is_floating:
            raise ValueError(f'compute_dtype must be a floating dtype, got {compute_dtype!r}')
        self.l_1 = Conv2dActnorm(width, 3, rng=rng, relu=True, name='l_1')
        self.l_2 = Conv2dActnorm(width, 1, rng=rng, relu=True, name='l_2')
        self.l_last = Conv2dZeros(n_out, 3, output_order=output_order, name='l_last')

    def build(self, input_shape):
        hidden_shape = list(input_shape[:-1]) + [self.l_1.width]
        self.l_1.build(input_shape)
        self.l_2.build(hidden_shape)
        self.l_last.build(hidden_shape)
        self.built = True

    def call(self, x):
        h = self.l_last(self.l_2(self.l_1(tf.cast(x, self.network_dtype))))
        return tf.cast(h, x.dtype)

    def initialize(self, x):
        """Data-dependent init of the actnorms of `l_1` then `l_2` from a batch x."""
        self.l_2.initialize(self.l_1.initialize(tf.cast(x, self.network_dtype)))


class CouplingBijector(JointFlowBijector):
    """inverse (data -> latent): z2 <- z2 + f(z1) or (z2 + shift) * scale; forward undoes it.

    z1, z2 are the first and second halves of the channels (see the module docstring).  The log-det is a
    scalar 0 for the additive coupling, per example [N] for the affine one.

    Args:
      network: f, a callable [N, H, W, C/2] -> [N, H, W, C/2] (additive) or [N, H, W, C] (affine: all shifts,
        then all scale logits, i.e. the original's h[..., 0::2] then h[..., 1::2]).
      affine: the affine coupling (flow_coupling 1) instead of the additive one.
      name: the bijector's name.
    """

    def __init__(self, network, affine, name='coupling'):
        parameters = dict(locals())
        self._network = network
        self._affine = bool(affine)
        super().__init__(parameters=parameters, name=name)

    def _shift_and_log_scale(self, z1):
        h = self._network(z1)
        if not self._affine:
            return h, None
        # the network emits the original's h[..., 0::2] then h[..., 1::2]
        shift, scale_logit = tf.split(h, 2, axis=-1)
        return shift, tf.math.log_sigmoid(scale_logit + 2.)

    def inverse_and_log_det(self, y, **condition):
        z1, z2 = channel_halves(y)
        shift, log_scale = self._shift_and_log_scale(z1)
        if log_scale is None:
            return tf.concat([z1, z2 + shift], axis=-1), tf.zeros([], y.dtype)
        return tf.concat([z1, (z2 + shift) * tf.exp(log_scale)], axis=-1), sum_event(log_scale)

    def forward_and_log_det(self, x, **condition):
        z1, z2 = channel_halves(x)
        shift, log_scale = self._shift_and_log_scale(z1)
        if log_scale is None:
            return tf.concat([z1, z2 - shift], axis=-1), tf.zeros([], x.dtype)
        return tf.concat([z1, z2 * tf.exp(-log_scale) - shift], axis=-1), -sum_event(log_scale)


class Coupling(FlowLayer):
    """Keras layer owning the coupling network `f1` (`l_1`, `l_2`, `l_last`).

    Built on [N, H, W, C] with C even; `initialize(x)` initialises the network's actnorms from the first half
    of x's channels.

    Args:
      width: the hidden channels of the coupling network.
      flow_coupling: 0 (additive) or 1 (affine) (`emerging.choices.COUPLINGS`).
      rng: the numpy Generator of the network's initial weights (a fresh one when None).
      compute_dtype: the dtype the network computes in: 'float32', 'bfloat16' or 'float16' (see the module
        docstring).
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, width, flow_coupling=0, rng=None, compute_dtype='float32', name='coupling', **kwargs):
        if flow_coupling not in COUPLINGS:
            raise ValueError(f'unknown flow_coupling {flow_coupling!r}; allowed: {described(COUPLINGS)}')
        super().__init__(name=name, **kwargs)
        self.affine = flow_coupling == 1
        self.width = int(width)
        self._rng = rng
        self.network_dtype = compute_dtype
        self.network = None

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape, even_channels=True)[-1]
        n_out = channels if self.affine else channels // 2
        self.network = CouplingNetwork(self.width, n_out, rng=self._rng, name='f1',
                                       output_order=even_then_odd(n_out) if self.affine else None,
                                       compute_dtype=self.network_dtype)
        self.network.build(list(input_shape[:-1]) + [channels // 2])
        self.built = True

    def make_bijector(self):
        return CouplingBijector(self.network, self.affine, name=self.name)

    def initialize(self, x, **condition):
        self.network.initialize(channel_halves(x)[0])
        return super().initialize(x)
