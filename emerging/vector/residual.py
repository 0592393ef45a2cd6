"""Residual blocks on vectors [N, D]: the i-ResNet block of the public Residual Flows code's train_toy.py.

Every layer maps data -> latent in closed form (the package's contract: its bijector's *forward*), with its log-det
per example [N]; the base is N(0, I) on R^D.

`VectorResidualBlock` (i-ResNet block, Behrmann et al. 2019; Chen et al. 2019), z = x + g(x):

    g = L_K . a . L_{K-1} . a ... L_1 . a      widths [D, h_1, ..., h_{K-1}, D]

an activation `a` before every linear layer L_k (train_toy.py's `build_nnet`: [act, linear] per layer), each L_k
spectrally normalised to `coeff` (`emerging.flows.nets.lipschitz.SpectralNormDense`):

    W_sn = W / max(1, sigma / coeff),   sigma = u^T W v

u, v stored and updated by power iteration only when asked (`update_spectral_norms`): the training step runs it
after every update (`n_lipschitz_iters` iterations, train_toy.py's `update_lipschitz`), a validation first runs
200, the constructor 200 on the initial weights (the public InducedNormLinear's).  The forward pass reads u, v as
stored; sigma is differentiated through W.  With 1-Lipschitz activations Lip(g) <= coeff^K < 1, so the block is
invertible.  Layers of width D start with their weights divided by 1000 (train_toy.py's `zero_init=(out_dim ==
2)`: the last layer, and a hidden layer as wide as the data).

    log|det dz/dx| = log det(I + J) = sum_{k>=1} (-1)^(k+1) tr(J^k) / k,   J = dg/dx  [N, D, D]

* evaluation (`training=False`) and `brute_force`: exact, log|det(I + J)| from J's D rows u^T J (D
  vector-Jacobian products; closed form for D = 2, as the public iResBlock does for 2-D inputs in eval mode);
* training, `exact_trace`: the series of exact traces tr(J^k) with the Russian-roulette weights (or the fixed
  truncation `n_power_series`) of `emerging.flows.residual_log_det`;
* training otherwise: that module's estimate with one Gaussian probe per example, n_exact = `n_exact_terms` (2),
  `n_dist` Geometric(0.5) or Poisson(2), `n_samples` draws, gradients by backpropagation through the series
  (train_toy.py builds its blocks with neumann_grad=False).

Inverse: x <- z - g(x) from x = z - g(z) until |x - x_prev| <= 1e-5 (1 + |z|), at most 1000 iterations (as
`emerging.flows.residual`).

The other layers of train_toy.py's stacks and the stacks themselves are in `emerging.vector.toy_stacks`.
Activations: `emerging.choices.VECTOR_ACTIVATIONS` (`VectorActivation`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.choices import LIPSCHITZ_ACTIVATIONS, ROULETTE_DISTRIBUTIONS, VECTOR_ACTIVATIONS, described
from emerging.flows.nets.lipschitz import Activation, SpectralNormDense
from emerging.flows.residual import fixed_point_inverse
from emerging.flows.residual_log_det import log_det_estimate, series_terms

tfb, tfd = tfp.bijectors, tfp.distributions

INITIAL_POWER_ITERATIONS = 200
UNROLLED_POWER_ITERATIONS = 20
SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def torch_uniform(rng, shape, fan_in):
    """PyTorch's default initialisation of linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Args:
      rng: the numpy Generator.
      shape: the weight's shape.
      fan_in: the layer's inputs.

    Returns:
      A constant `tf_keras` initializer holding the draw.
    """
    bound = 1. / math.sqrt(fan_in)
    return tf_keras.initializers.Constant(rng.uniform(-bound, bound, shape).astype(np.float32))


class VectorActivation(tf_keras.layers.Layer):
    """An activation on [N, W] with its vector-Jacobian product (`emerging.choices.VECTOR_ACTIVATIONS`).

    * swish (= lipswish: x sigmoid(beta x) / 1.1, beta = softplus(b), b learned from 0.5), elu, softplus:
      `emerging.flows.nets.lipschitz.Activation`;
    * relu; tanh; selu (slope up to 1.0507 * 1.6733 = 1.76: the only one that is not 1-Lipschitz);
    * lcube: x^3 / 3 on (-1, 1), x - 2/3 above, x + 2/3 below;
    * fullsort: the W values sorted ascending; maxmin: the pairs (h_1, h_2), (h_3, h_4), ...: their W/2 maxima,
      then their W/2 minima (W even).  Both permute their input, so their Jacobian is a permutation.

    Args:
      kind: one of `emerging.choices.VECTOR_ACTIVATIONS`.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, kind: str, name: str = 'activation', **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in VECTOR_ACTIVATIONS:
            raise ValueError(f'unknown activation {kind!r}; allowed: {described(VECTOR_ACTIVATIONS)}')
        self.kind = kind
        self.lipschitz = Activation(kind, name='lipschitz') if kind in LIPSCHITZ_ACTIVATIONS else None
        self.built = True

    @property
    def n_params(self) -> int:
        return 0 if self.lipschitz is None else self.lipschitz.n_params

    def params(self) -> list:
        """The tensors `apply` reads (swish's beta; none for the others)."""
        return [] if self.lipschitz is None else self.lipschitz.params()

    def apply(self, h, params):
        """a(h) [N, W] for h [N, W], with `params` from `params()`."""
        return self.apply_and_vjp(h, params, with_vjp=False)[0]

    def apply_and_vjp(self, h, params, with_vjp=True):
        """(a(h) [N, W], t -> t^T da/dh at h, or None without `with_vjp`)."""
        kind = self.kind
        if self.lipschitz is not None:
            y = self.lipschitz.apply(h, params)
            slope = self.lipschitz.derivative(h, params) if with_vjp else None
        elif kind == 'relu':
            y, slope = tf.nn.relu(h), tf.cast(h > 0., h.dtype)
        elif kind == 'tanh':
            y = tf.tanh(h)
            slope = 1. - tf.square(y)
        elif kind == 'selu':
            y = tf.nn.selu(h)
            slope = SELU_SCALE * tf.where(h > 0., tf.ones_like(h), SELU_ALPHA * tf.exp(tf.minimum(h, 0.)))
        elif kind == 'lcube':
            inside = tf.abs(h) < 1.
            y = tf.where(inside, h ** 3 / 3., h - tf.sign(h) * 2. / 3.)
            slope = tf.where(inside, tf.square(h), tf.ones_like(h))
        elif kind == 'fullsort':
            order = tf.argsort(h, axis=1, stable=True)
            y = tf.gather(h, order, batch_dims=1)
            back = tf.argsort(order, axis=1)
            return y, (lambda t: tf.gather(t, back, batch_dims=1)) if with_vjp else None
        else:  # maxmin
            width = h.shape[-1]
            pairs = tf.reshape(h, [-1, width // 2, 2])
            first, second = pairs[..., 0], pairs[..., 1]
            first_is_max = first >= second
            y = tf.concat([tf.maximum(first, second), tf.minimum(first, second)], axis=1)

            def vjp(t):
                t_max, t_min = t[:, :width // 2], t[:, width // 2:]
                to_first = tf.where(first_is_max, t_max, t_min)
                to_second = tf.where(first_is_max, t_min, t_max)
                return tf.reshape(tf.stack([to_first, to_second], axis=-1), [-1, width])

            return y, vjp if with_vjp else None
        return y, (lambda t: t * slope) if with_vjp else None


def _log_abs_det_identity_plus(jacobian):
    """log|det(I + J)| [N] for J [N, D, D] (closed form for D = 2)."""
    if jacobian.shape[-1] == 2:
        det = (1. + jacobian[:, 0, 0]) * (1. + jacobian[:, 1, 1]) - jacobian[:, 0, 1] * jacobian[:, 1, 0]
        return tf.math.log(tf.abs(det))
    return tf.linalg.slogdet(tf.eye(jacobian.shape[-1]) + jacobian)[1]


def _trace_series(jacobian, n, weights):
    """sum_{k=1}^{n} (-1)^(k+1) / k * w_k tr(J^k) [N] for J [N, D, D] (differentiable)."""
    def body(k, power, total):
        power = tf.matmul(power, jacobian)
        sign = tf.where(k % 2 == 1, 1., -1.)
        term = sign / tf.cast(k, tf.float32) * tf.gather(weights, k - 1) * tf.linalg.trace(power)
        return k + 1, power, total + term

    eye = tf.eye(jacobian.shape[-1], batch_shape=tf.shape(jacobian)[:1])
    _, _, total = tf.while_loop(lambda k, *_: k <= n, body, (tf.constant(1), eye, tf.zeros(tf.shape(jacobian)[:1])))
    return total


class VectorLayerBijector(tfb.Bijector):
    """A layer of this module as a TFP bijector on [..., D]: forward = the layer's data -> latent map with its
    evaluation log-det (exact for the residual blocks), inverse = the layer's inverse (the fixed point for a residual
    block).  Event ndims 1, any batch shape (flattened around the layer); no inverse log-det of its own (TFP takes
    minus the forward one at the point it found).

    Args:
      layer: a layer with `forward_and_log_det(x)` and `invert(z)` on [N, D] (`VectorResidualBlock`,
        `VectorActNorm`, `VectorMovingBatchNorm`, `VectorCouplingBlock`, `VectorFlowStack`).
      name: the bijector's name.
    """

    def __init__(self, layer, name='vector_layer'):
        parameters = dict(locals())
        self._layer = layer
        super().__init__(forward_min_event_ndims=1, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _flat(self, t, fn):
        out = fn(tf.reshape(t, [-1, self._layer.dims]))
        return tf.reshape(out, tf.concat([tf.shape(t)[:-1], tf.shape(out)[1:]], axis=0))

    def _forward(self, x):
        return self._flat(x, lambda t: self._layer.forward_and_log_det(t)[0])

    def _forward_log_det_jacobian(self, x):
        return self._flat(x, lambda t: self._layer.forward_and_log_det(t)[1])

    def _inverse(self, y):
        return self._flat(y, self._layer.invert)


class VectorResidualBlock(tf_keras.layers.Layer):
    """z = x + g(x) on [N, D], g spectrally normalised (see the module docstring); `.bijector` its TFP bijector.

    Args:
      dims: D.
      hidden: g's hidden widths h_1..h_{K-1} (train_toy.py's --dims); K = len(hidden) + 1 linear layers.
      activation: one of `emerging.choices.VECTOR_ACTIVATIONS`, before every linear layer.
      coeff: every linear layer's spectral-norm bound.
      n_lipschitz_iters: the power iterations of `update_spectral_norms()` (train_toy.py's per-step update).
      n_power_series: a fixed number of series terms in training (biased); None: Russian roulette (unbiased).
      n_dist: the roulette's distribution, 'geometric' (p 0.5) or 'poisson' (lambda 2).
      n_samples: the roulette's draws per estimate.
      n_exact_terms: the series terms the roulette always keeps in training.
      exact_trace: training series of exact traces tr(J^k) instead of the probe's v^T J^k v.
      brute_force: exact log-det in training too.
      rng: the numpy Generator of the initial weights and singular vectors.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int = 2, hidden: Sequence[int] = (128, 128, 128, 128), activation: str = 'swish',
                 coeff: float = 0.9, n_lipschitz_iters: int = 5, n_power_series: int | None = None,
                 n_dist: str = 'geometric', n_samples: int = 1, n_exact_terms: int = 2, exact_trace: bool = False,
                 brute_force: bool = False, rng: np.random.Generator | None = None, name: str = 'resblock',
                 **kwargs):
        super().__init__(name=name, **kwargs)
        widths = [int(dims), *[int(h) for h in hidden], int(dims)]
        if min(widths) < 1:
            raise ValueError(f'{name}: dims and hidden widths must be positive, got {dims}, {list(hidden)}')
        if activation == 'maxmin' and any(w % 2 for w in widths[:-1]):
            raise ValueError(f'{name}: maxmin needs even widths before every linear layer, got {widths[:-1]}')
        if n_dist not in ROULETTE_DISTRIBUTIONS:
            raise ValueError(f'{name}: unknown n_dist {n_dist!r}; allowed: {described(ROULETTE_DISTRIBUTIONS)}')
        if not 0. < coeff < 1.:
            raise ValueError(f'{name}: coeff must be in (0, 1) for an invertible block, got {coeff}')
        if n_lipschitz_iters < 1 or n_samples < 1 or n_exact_terms < 0:
            raise ValueError(f'{name}: n_lipschitz_iters and n_samples must be positive and n_exact_terms >= 0')
        if n_power_series is not None and n_power_series < 1:
            raise ValueError(f'{name}: n_power_series must be positive or None, got {n_power_series}')
        rng = rng if rng is not None else np.random.default_rng()
        self.dims, self.widths, self.coeff = int(dims), widths, float(coeff)
        self.n_lipschitz_iters, self.n_power_series, self.n_dist = int(n_lipschitz_iters), n_power_series, n_dist
        self.n_samples, self.n_exact_terms = int(n_samples), int(n_exact_terms)
        self.exact_trace, self.brute_force = bool(exact_trace), bool(brute_force)
        self.activations = [VectorActivation(activation, name=f'act{i}') for i in range(len(widths) - 1)]
        self.linears = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            # tol 0: the layer's own update_vectors, if called, runs exactly n_iterations (this module iterates with
            # `power_iterations`), as the public InducedNormLinear with n_iterations
            linear = SpectralNormDense(w_out, coeff=coeff, n_iterations=n_lipschitz_iters, tol=0., rng=rng,
                                       name=f'linear{i}')
            linear.build([None, w_in])
            if w_out == self.dims:  # the public zero_init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) / 1000
                linear.kernel.assign(linear.kernel / 1000.)
            _power_iterations_numpy(linear, INITIAL_POWER_ITERATIONS)
            self.linears.append(linear)
        self.built = True

    @property
    def bijector(self) -> VectorLayerBijector:
        return VectorLayerBijector(self, name=self.name)

    def params(self) -> list:
        """Every tensor g reads: per layer [activation params..., normalised kernel, bias] (u, v as stored)."""
        tensors = []
        for act, linear in zip(self.activations, self.linears):
            tensors += act.params() + linear.params(update=False)
        return tensors

    def _unpack(self, params):
        out, i = [], 0
        for act in self.activations:
            out.append((params[i:i + act.n_params], params[i + act.n_params:i + act.n_params + 2]))
            i += act.n_params + 2
        return out

    def g_and_vjp(self, x, params):
        """g(x) [N, D] and a function u [N, D] -> u^T J [N, D] at x, with `params` from `params()`."""
        h, vjps, unpacked = x, [], self._unpack(params)
        for act, linear, (act_params, lin_params) in zip(self.activations, self.linears, unpacked):
            h, vjp = act.apply_and_vjp(h, act_params)
            vjps.append(vjp)
            h = linear.apply(h, lin_params)

        def vjp(u):
            t = u
            for linear, act_vjp, (_, lin_params) in reversed(list(zip(self.linears, vjps, unpacked))):
                t = act_vjp(linear.apply_transpose(t, lin_params))
            return t

        return h, vjp

    def g(self, x, params=None):
        """g(x) [N, D] (with `params`, the tensors of `params()`, in place of the weights)."""
        return self.g_and_vjp(x, self.params() if params is None else params)[0]

    def call(self, x):
        """z = x + g(x) [N, D]."""
        return x + self.g(x)

    def g_and_jacobian(self, x, params=None):
        """(g(x) [N, D], J = dg/dx [N, D, D], J[n, i, j] = dg_i / dx_j) from D vector-Jacobian products."""
        g, vjp = self.g_and_vjp(x, self.params() if params is None else params)
        rows = [vjp(tf.broadcast_to(tf.one_hot(i, self.dims), tf.shape(x))) for i in range(self.dims)]
        return g, tf.stack(rows, axis=1)

    def jacobian_g(self, x):
        """dg/dx [N, D, D] at x [N, D]."""
        return self.g_and_jacobian(x)[1]

    def brute_force_log_det(self, x):
        """log|det(I + dg/dx)| [N] at x [N, D], exact."""
        return _log_abs_det_identity_plus(self.jacobian_g(x))

    def forward_and_log_det(self, x, training=False, rng=None):
        """Data -> latent: (x + g(x) [N, D], log|det dz/dx| [N]): exact unless `training` (then the estimator the
        block was built with, see the module docstring); `rng` (a `tf.random.Generator`) draws the probe and the
        number of terms, TensorFlow's stateful random ops when None."""
        params = self.params()
        if not training or self.brute_force:
            g, jacobian = self.g_and_jacobian(x, params)
            return x + g, _log_abs_det_identity_plus(jacobian)

        def terms():
            return series_terms(True, self.n_power_series, self.n_exact_terms, self.n_samples, self.n_dist, rng)

        if self.exact_trace:
            g, jacobian = self.g_and_jacobian(x, params)
            n, weights = terms()
            return x + g, _trace_series(jacobian, n, weights)
        g, log_det = log_det_estimate(self.g_and_vjp, x, params, terms, True, False, rng)
        return x + g, log_det

    def invert(self, z):
        """Latent -> data [N, D] by the fixed-point iteration x = z - g(x)."""
        params = self.params()
        return fixed_point_inverse(lambda x: self.g(x, params), z)

    def update_spectral_norms(self, n_iterations: int | None = None):
        """Power iterations on every layer from the stored u, v: `n_iterations`, or `n_lipschitz_iters` when None."""
        power_iterations(self.linears, self.n_lipschitz_iters if n_iterations is None else n_iterations)


def power_iterations(linears: Sequence[SpectralNormDense], n_iterations: int):
    """`n_iterations` power iterations of every `SpectralNormDense` from its stored u, v, stored back (its own
    order: v <- normalise(W u), u <- normalise(W^T v) on the [D_in, units] kernel W).

    The layers with kernels of one shape iterate together, stacked ([L, D_in, units]): a few batched ops per
    iteration instead of a few per layer, written out up to `UNROLLED_POWER_ITERATIONS` iterations, else one
    tf.while_loop per shape (a graph with the default model's 500 layers traces in seconds, not minutes).

    Args:
      linears: the layers.
      n_iterations: the number of iterations (exactly; no tolerance).
    """
    groups = {}
    for linear in linears:
        groups.setdefault(tuple(linear.kernel.shape), []).append(linear)

    def normalise_rows(t):
        return t * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(t), axis=1, keepdims=True), 1e-24))

    def step(kernels, u):
        v = normalise_rows(tf.einsum('lio,lo->li', kernels, u))
        return v, normalise_rows(tf.einsum('lio,li->lo', kernels, v))

    for group in groups.values():
        kernels = tf.stop_gradient(tf.stack([tf.convert_to_tensor(linear.kernel) for linear in group]))
        u = tf.stack([tf.convert_to_tensor(linear.u) for linear in group])
        v = tf.stack([tf.convert_to_tensor(linear.v) for linear in group])
        if n_iterations <= UNROLLED_POWER_ITERATIONS:
            for _ in range(n_iterations):
                v, u = step(kernels, u)
        else:
            _, v, u = tf.while_loop(lambda i, v, u: i < n_iterations,
                                    lambda i, v, u: (i + 1, *step(kernels, u)), (tf.constant(0), v, u))
        for i, linear in enumerate(group):
            linear.u.assign(u[i])
            linear.v.assign(v[i])


def _power_iterations_numpy(linear, n_iterations):
    """`n_iterations` power iterations of a `SpectralNormDense` in NumPy (its own order: v <- W u, u <- W^T v on
    the [D_in, units] kernel), stored in its u, v: the constructor's, without a TensorFlow loop per layer."""
    kernel = linear.kernel.numpy().astype(np.float64)
    u, v = linear.u.numpy().astype(np.float64), linear.v.numpy().astype(np.float64)
    for _ in range(n_iterations):
        v = kernel @ u
        v /= max(np.linalg.norm(v), 1e-12)
        u = kernel.T @ v
        u /= max(np.linalg.norm(u), 1e-12)
    linear.u.assign(u.astype(np.float32))
    linear.v.assign(v.astype(np.float32))
