"""Block Neural Autoregressive Flow (BNAF; De Cao, Titov, Aziz, UAI 2019) on vectors [N, d].

One BNAF network maps data x [N, d] to y [N, d] through L masked linear layers
with tanh between them:

    h_0 = x,   h_l = tanh(W_l h_{l-1} + b_l) (l < L),   f(x) = W_L h_{L-1} + b_L

W_l maps d * a_{l-1} units to d * a_l units (a_0 = a_L = 1, a_l = `hidden` per
dimension otherwise), grouped in d blocks per side.  Block (i, j) (the rows of
dimension i, the columns of dimension j) is exp(V_ij) when i = j, V_ij when
j < i, and 0 when j > i, and every row is weight-normalised:

    W[r, :] = exp(s_r) * B[r, :] / ||B[r, :]||

so W is block lower triangular with positive diagonal blocks: f_i depends on
x_1..x_i only and increases strictly in x_i.  The Jacobian df/dx is lower
triangular; its diagonal is the product of the diagonal blocks and the tanh
derivatives along the chain, accumulated in log space:

    G_l [N, d, a_l, 1] = log d h_l(i) / d x_i,
    G_l = logsumexp_k (log W_l(i)[:, k] + G_{l-1}[k])  (+ log tanh'(pre-activation) for l < L)
    log tanh'(u) = -2 (u - log 2 + softplus(-2 u))

with log W_l(i) = s + V_ii - log ||row|| on the diagonal blocks, so
log|det df/dx| = sum_i G_L[i].  The residuals make every y_i grow at least
linearly in x_i, so the map is onto R^d (without one f is bounded in x_i):
`residual='normal'`: y = f(x) + x, log dy_i/dx_i = softplus(G_i);
`residual='gated'`: y = sigma(c) f(x) + (1 - sigma(c)) x with a learned c,
log dy_i/dx_i = softplus(G_i + c) - softplus(c).

`BNAFBijector` has forward = this network (the package's contract: data ->
latent for density estimation, with the exact log-det; the sampling direction
of a flow trained by reverse KL) and inverse by a monotone root find per dimension (it
defines no inverse log-det: TFP takes minus the forward one at the input it
cached or found, so gradients never go through the root find), in
the autoregressive order 1..d: each x_i is bracketed (the bracket doubled
until it holds y_i) and bisected, vectorised over the batch, to
|x_i - x_i*| <= 1e-6 (1 + |x_i|) at most.  `BNAFFlow` stacks networks with a
reversal of the dimensions between them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.choices import BNAF_RESIDUALS

tfb = tfp.bijectors
RESIDUALS = tuple(BNAF_RESIDUALS.values())
BISECTION_STEPS = 60


class MaskedWeight(tf_keras.layers.Layer):
    """A block lower-triangular, weight-normalised linear map d * a_in -> d * a_out (see the module docstring).

    Weights: `v` [d * a_out, d * a_in] (the blocks V, Glorot-uniform where allowed, 0 above the diagonal),
    `log_scale` [d * a_out, 1] (s, log of U(1e-3, 1)) and `bias` [d * a_out].

    Args:
      dims: d, the number of dimensions (blocks per side).
      in_per_dim: a_in, the input units per dimension.
      out_per_dim: a_out, the output units per dimension.
      rng: the numpy Generator of the initial weights.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int, in_per_dim: int, out_per_dim: int, rng: np.random.Generator, name='masked_weight',
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.dims, self.a_in, self.a_out = int(dims), int(in_per_dim), int(out_per_dim)
        n_in, n_out = self.dims * self.a_in, self.dims * self.a_out
        row_dim = np.repeat(np.arange(self.dims), self.a_out)[:, None]
        col_dim = np.repeat(np.arange(self.dims), self.a_in)[None, :]
        self.diagonal_mask = tf.constant((row_dim == col_dim).astype(np.float32))
        self.lower_mask = tf.constant((col_dim < row_dim).astype(np.float32))
        # Glorot-uniform blocks for the allowed entries, as the public code initialises them
        initial = np.zeros([n_out, n_in], np.float32)
        for i in range(self.dims):
            fan_in, fan_out = (i + 1) * self.a_in, self.a_out
            bound = math.sqrt(6. / (fan_in + fan_out))
            initial[i * self.a_out:(i + 1) * self.a_out, :(i + 1) * self.a_in] = rng.uniform(-bound, bound,
                                                                                           [self.a_out, fan_in])
        self.v = self.add_weight(name='v', shape=[n_out, n_in], initializer=tf_keras.initializers.Constant(initial))
        self.log_scale = self.add_weight(name='log_scale', shape=[n_out, 1], initializer=tf_keras.initializers.Constant(
            np.log(rng.uniform(1e-3, 1., [n_out, 1])).astype(np.float32)))
        bound = 1. / math.sqrt(n_out)
        self.bias = self.add_weight(name='bias', shape=[n_out], initializer=tf_keras.initializers.Constant(
            rng.uniform(-bound, bound, [n_out]).astype(np.float32)))

    def weights_and_log_diagonal(self):
        """(W [n_out, n_in], log of the diagonal blocks [d, a_out, a_in])."""
        blocks = tf.exp(self.v) * self.diagonal_mask + self.v * self.lower_mask
        squared_norm = tf.reduce_sum(tf.square(blocks), axis=1, keepdims=True)
        weight = tf.exp(self.log_scale) * blocks / tf.sqrt(squared_norm)
        log_weight = self.log_scale + self.v - 0.5 * tf.math.log(squared_norm)
        log_diagonal = tf.stack([log_weight[i * self.a_out:(i + 1) * self.a_out, i * self.a_in:(i + 1) * self.a_in]
                                 for i in range(self.dims)])
        return weight, log_diagonal


class BNAFBijector(tfb.Bijector):
    """One BNAF network as a TFP bijector on [..., d]: forward = the network (exact log-det), inverse = root find.

    Event ndims 1, any batch shape (flattened around the network); no inverse log-det of its own (TFP takes
    minus the forward one).

    Args:
      network: the `BNAFNetwork`.
      name: the bijector's name.
    """

    def __init__(self, network: 'BNAFNetwork', name='bnaf'):
        parameters = dict(locals())
        self._network = network
        super().__init__(forward_min_event_ndims=1, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _flat(self, t, fn):
        d = self._network.dims
        out = fn(tf.reshape(t, [-1, d]))
        batch = tf.shape(t)[:-1]
        return tuple(tf.reshape(o, tf.concat([batch, tf.shape(o)[1:]], axis=0)) for o in out)

    def _forward(self, x):
        return self._flat(x, lambda t: (self._network.forward_and_log_det(t)[0],))[0]

    def _forward_log_det_jacobian(self, x):
        return self._flat(x, lambda t: (self._network.forward_and_log_det(t)[1],))[0]

    def _inverse(self, y):
        return self._flat(y, lambda t: (self._network.invert(t),))[0]


class BNAFNetwork(tf_keras.layers.Layer):
    """One BNAF network on R^`dims` with `n_layers` masked layers (`hidden` units per dimension between them).

    x [N, d] -> y [N, d] with tanh between the layers and the chosen residual (module docstring); `.bijector`
    is a `BNAFBijector` over it.

    Args:
      dims: d >= 1.
      hidden: a, the units per dimension of the hidden layers (>= 1).
      n_layers: L >= 2, the masked layers (L - 1 tanh layers between them).
      residual: None (y = f(x)), 'normal' (y = f(x) + x) or 'gated' (y = sigma(c) f(x) + (1 - sigma(c)) x with
        a learned gate c, the weight `gate`).
      rng: the numpy Generator of the initial weights (a fresh one when None).
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int, hidden: int = 50, n_layers: int = 2, residual: str | None = 'gated',
                 rng: np.random.Generator | None = None, name='bnaf_network', **kwargs):
        super().__init__(name=name, **kwargs)
        if dims < 1 or hidden < 1 or n_layers < 2:
            raise ValueError(f'{name}: needs dims >= 1, hidden >= 1 and n_layers >= 2, got {dims}, {hidden}, '
                             f'{n_layers}')
        if residual not in RESIDUALS:
            raise ValueError(f'{name}: residual must be one of {RESIDUALS}, got {residual!r}')
        rng = rng if rng is not None else np.random.default_rng()
        self.dims, self.residual = int(dims), residual
        widths = [1] + [int(hidden)] * (n_layers - 1) + [1]
        self.layers_ = [MaskedWeight(dims, a_in, a_out, rng, name=f'masked{i}')
                        for i, (a_in, a_out) in enumerate(zip(widths[:-1], widths[1:]))]
        self.gate = None
        if residual == 'gated':
            self.gate = self.add_weight(name='gate', shape=[], initializer=tf_keras.initializers.Constant(
                float(rng.normal())))
        self.built = True

    @property
    def bijector(self) -> BNAFBijector:
        return BNAFBijector(self, name=self.name)

    def forward_and_log_det(self, x):
        """x [N, d] -> (f(x) [N, d], log|det df/dx| [N])."""
        h, log_grad = x, None  # log_grad [N, d, a_l, 1]
        for index, layer in enumerate(self.layers_):
            weight, log_diagonal = layer.weights_and_log_diagonal()
            pre = tf.matmul(h, weight, transpose_b=True) + layer.bias
            if log_grad is None:
                log_grad = tf.broadcast_to(log_diagonal[None], [tf.shape(x)[0], *log_diagonal.shape])
            else:
                # [N, d, a_out, a_in] + [N, d, 1, a_in] -> logsumexp over a_in
                log_grad = tf.reduce_logsumexp(log_diagonal[None] + tf.transpose(log_grad, [0, 1, 3, 2]), axis=-1,
                                               keepdims=True)
            if index < len(self.layers_) - 1:
                log_tanh = -2. * (pre - math.log(2.) + tf.nn.softplus(-2. * pre))
                log_grad = log_grad + tf.reshape(log_tanh, tf.shape(log_grad))
                h = tf.tanh(pre)
            else:
                h = pre
        log_diag = tf.reshape(log_grad, [-1, self.dims])
        if self.residual is None:
            return h, tf.reduce_sum(log_diag, axis=1)
        if self.residual == 'normal':
            return h + x, tf.reduce_sum(tf.nn.softplus(log_diag), axis=1)
        mix = tf.sigmoid(self.gate)
        y = mix * h + (1. - mix) * x
        return y, tf.reduce_sum(tf.nn.softplus(log_diag + self.gate) - tf.nn.softplus(self.gate), axis=1)

    # compiled: eagerly, every bisection step would be a Python loop of small ops
    @tf.function(reduce_retracing=True, autograph=False)
    def invert(self, y):
        """y [N, d] -> x with f(x) = y, dimension by dimension (bracket, then bisection); one loop over the
        dimensions, so that the graph holds one root find whatever d is."""
        def solve(i, x):
            one_hot = tf.one_hot(i, self.dims, dtype=y.dtype)
            target = tf.gather(y, i, axis=1)

            def output(t):
                return tf.gather(self.forward_and_log_det(x * (1. - one_hot) + t[:, None] * one_hot)[0], i, axis=1)

            def widen(low, high):
                too_high = output(low) > target
                too_low = output(high) < target
                return tf.where(too_high, 2. * low - high, low), tf.where(too_low, 2. * high - low, high)

            def unbracketed(low, high):
                return tf.reduce_any(tf.logical_or(output(low) > target, output(high) < target))

            scale = 1. + tf.abs(target)
            low, high = tf.while_loop(unbracketed, widen, (-scale, scale), maximum_iterations=64)

            def bisect(k, low, high):
                middle = 0.5 * (low + high)
                below = output(middle) < target
                return k + 1, tf.where(below, middle, low), tf.where(below, high, middle)

            _, low, high = tf.while_loop(lambda k, *_: k < BISECTION_STEPS, bisect, (tf.constant(0), low, high))
            return i + 1, x * (1. - one_hot) + (0.5 * (low + high))[:, None] * one_hot

        return tf.while_loop(lambda i, _: i < self.dims, solve, (tf.constant(0), tf.zeros_like(y)))[1]


class BNAFFlow(tf_keras.layers.Layer):
    """`n_flows` BNAF networks with the dimensions reversed between them; `.bijector` the whole stack
    (forward: data -> latent, exact log-det; inverse: root finds).

    Args:
      dims: d, the dimension of the vectors.
      n_flows: the number of networks (>= 1).
      hidden: the units per dimension of every network's hidden layers.
      n_layers: the masked layers of every network (>= 2).
      residuals: one residual per network (None, 'normal' or 'gated', see `BNAFNetwork`); None: all 'gated'.
      seed: the seed of the numpy Generator of the initial weights.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int, n_flows: int = 1, hidden: int = 50, n_layers: int = 2,
                 residuals: Sequence[str | None] | None = None, seed: int = 0, name='bnaf', **kwargs):
        super().__init__(name=name, **kwargs)
        if n_flows < 1:
            raise ValueError(f'{name}: n_flows must be positive, got {n_flows}')
        residuals = list(residuals) if residuals is not None else ['gated'] * n_flows
        if len(residuals) != n_flows:
            raise ValueError(f'{name}: one residual per network, got {len(residuals)} for {n_flows}')
        rng = np.random.default_rng(seed)
        self.dims = int(dims)
        self.networks = [BNAFNetwork(dims, hidden, n_layers, residual, rng, name=f'network{k}')
                         for k, residual in enumerate(residuals)]
        self.built = True

    @property
    def bijector(self) -> tfb.Bijector:
        parts = []
        for k, network in enumerate(self.networks):
            if k:
                parts.append(tfb.Permute(list(reversed(range(self.dims)))))
            parts.append(network.bijector)
        return tfb.Chain(list(reversed(parts)), name=self.name)

    def parameter_count(self) -> int:
        """Trainable entries that can be non-zero (the masked upper blocks do not count)."""
        count = 0
        for network in self.networks:
            for layer in network.layers_:
                allowed = int(tf.reduce_sum(layer.diagonal_mask + layer.lower_mask))
                count += allowed + int(np.prod(layer.log_scale.shape)) + int(np.prod(layer.bias.shape))
            count += int(network.gate is not None)
        return count
