"""Invertible residual block (i-ResNet, Behrmann et al. 2019; Residual Flows, Chen et al. 2019).

Data -> latent:  z = x + g(x),  Lip(g) < 1, so the map is invertible and

    log|det dz/dx| = log det(I + J) = sum_{k>=1} (-1)^(k+1) tr(J^k) / k,   J = dg/dx

g (`kernels` "3-1-3", `hidden` channels): [act] -> conv 3x3 -> act -> conv 1x1
-> act -> conv 3x3, every convolution spectrally normalised to `coeff`
(the leading activation is left out with `preact=False` and in the model's
first block); with `fc=True` the same pattern of dense layers on the
flattened [H*W*C] vector.  Inputs [N, H, W, C], log-dets [N].

The log-det is an unbiased power-series estimate, its gradient the Neumann
series (or backpropagation through the series, or computed in the forward
pass): see `emerging.flows.residual_log_det`, which states the estimators.
The block holds their settings (`n_power_series`, `n_dist`, `n_samples`,
`n_exact_terms`, `neumann_grad`, `grad_in_forward`).

Inverse (latent -> data): the fixed point x = z - g(x), iterated from
x = z - g(z) until every |x - x_prev| <= atol + rtol |z| (1e-5 both), at
most 1000 iterations (the public code stops at (x - x_prev)^2 < tol, i.e.
steps of up to ~3e-3; this tighter stop makes inverse(forward(x)) = x to
~1e-5 Lip(g) / (1 - Lip(g))).  Its log-det is minus the evaluation estimate at x.

`brute_force_log_det(x)` is log|det(I + J)| from the full Jacobian (small
inputs, tests).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from emerging.choices import LIPSCHITZ_ACTIVATIONS, ROULETTE_DISTRIBUTIONS, described
from emerging.flows.base import FlowLayer, JointFlowBijector
from emerging.flows.nets.lipschitz import Activation, SpectralNormConv2D, SpectralNormDense
from emerging.flows.residual_log_det import gradient_in_forward, log_det_estimate, series_terms

INVERSE_TOL, INVERSE_MAX_ITERATIONS = 1e-5, 1000


def fixed_point_inverse(g, z):
    """x with x + g(x) = z, by x <- z - g(x) from x = z - g(z) until every |x - x_prev| <= atol + rtol |z|
    (`INVERSE_TOL` both) or `INVERSE_MAX_ITERATIONS` iterations; in-graph (a `tf.while_loop`).

    Args:
      g: the residual function, a contraction (Lip(g) < 1), of a tensor shaped as z.
      z: the latent.

    Returns:
      x, shaped as z.
    """
    tol = INVERSE_TOL + tf.abs(z) * INVERSE_TOL

    def body(i, x, x_prev):
        return i + 1, z - g(x), x

    def not_converged(i, x, x_prev):
        return tf.logical_and(i < INVERSE_MAX_ITERATIONS, tf.reduce_any(tf.abs(x - x_prev) > tol))

    _, x, _ = tf.while_loop(not_converged, body, (tf.constant(0), z - g(z), z))
    return x


class ResidualBlockBijector(JointFlowBijector):
    """TFP direction: forward = latent -> data (fixed point), inverse = data -> latent (x + g(x)).
    Condition `training=True` selects the training estimator and updates the spectral norms;
    `map_only=True` (encoding, decoding, sampling) skips the log-det estimate and returns 0 for it.

    Log-dets are per example [N] estimates (see the module docstring); the forward's is minus the evaluation
    estimate at the data point it found.

    Args:
      block: the `ResidualBlock` whose g, estimators and fixed-point inverse it runs.
      name: the bijector's name.
    """

    def __init__(self, block: 'ResidualBlock', name='residual'):
        parameters = dict(locals())
        self._block = block
        super().__init__(parameters=parameters, name=name)

    def inverse_and_log_det(self, y, training=False, map_only=False, rng=None, **condition):
        if map_only:
            return y + self._block.g(y), tf.zeros(tf.shape(y)[:1])
        return self._block.forward_and_log_det(y, training=bool(training), rng=rng)

    def forward_and_log_det(self, x, training=False, map_only=False, **condition):
        y = self._block.invert(x)
        if map_only:
            return y, tf.zeros(tf.shape(x)[:1])
        return y, -self._block.forward_and_log_det(y, training=False)[1]


class ResidualBlock(FlowLayer):
    """z = x + g(x) on [N, H, W, C], g a spectrally normalised network (see the module docstring).

    Args:
      hidden: g's hidden channels (units with `fc`).
      kernels: g's kernel sizes joined by '-' (e.g. '3-1-3'); one layer each.
      activation: one of `emerging.choices.LIPSCHITZ_ACTIVATIONS`.
      fc: dense layers on the flattened input instead of convolutions.
      preact: an activation before g's first layer.
      coeff: every layer's Lipschitz bound, in (0, 1).
      n_lipschitz_iters, sn_tol: the power iteration's fixed count, or its tolerance.
      n_power_series, n_dist, n_samples, n_exact_terms, neumann_grad, grad_in_forward: the log-det estimator
        and its gradient (emerging.flows.residual_log_det).
      rng: the numpy Generator of the initial weights.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, hidden: int = 512, kernels: str = '3-1-3', activation: str = 'swish', fc: bool = False,
                 preact: bool = True, coeff: float = 0.98, n_lipschitz_iters: int | None = None,
                 sn_tol: float = 1e-3, n_power_series: int | None = None, n_dist: str = 'poisson',
                 n_samples: int = 1, n_exact_terms: int = 2, neumann_grad: bool = True,
                 grad_in_forward: bool = False, rng: np.random.Generator | None = None, name: str = 'resblock',
                 **kwargs):
        super().__init__(name=name, **kwargs)
        try:
            self.kernel_sizes = [int(k) for k in kernels.split('-')]
        except ValueError:
            raise ValueError(f'{name}: kernels must be sizes joined by "-" (e.g. 3-1-3), got {kernels!r}') from None
        if len(self.kernel_sizes) < 2:
            raise ValueError(f'{name}: kernels needs at least two layers, got {kernels!r}')
        if activation not in LIPSCHITZ_ACTIVATIONS:
            raise ValueError(f'{name}: unknown activation {activation!r}; allowed: {described(LIPSCHITZ_ACTIVATIONS)}')
        if n_dist not in ROULETTE_DISTRIBUTIONS:
            raise ValueError(f'{name}: unknown n_dist {n_dist!r}; allowed: {described(ROULETTE_DISTRIBUTIONS)}')
        if not 0. < coeff < 1.:
            raise ValueError(f'{name}: coeff must be in (0, 1) for an invertible block, got {coeff}')
        if hidden < 1 or n_samples < 1 or n_exact_terms < 0:
            raise ValueError(f'{name}: hidden and n_samples must be positive and n_exact_terms >= 0')
        if n_power_series is not None and n_power_series < 1:
            raise ValueError(f'{name}: n_power_series must be positive or None, got {n_power_series}')
        self.hidden, self.activation, self.fc, self.preact = int(hidden), activation, bool(fc), bool(preact)
        self.coeff, self.n_lipschitz_iters, self.sn_tol = coeff, n_lipschitz_iters, sn_tol
        self.n_power_series, self.n_dist, self.n_samples = n_power_series, n_dist, int(n_samples)
        self.n_exact_terms, self.neumann_grad = int(n_exact_terms), bool(neumann_grad)
        self.grad_in_forward = bool(grad_in_forward)
        self._rng = rng if rng is not None else np.random.default_rng()

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        if shape.rank != 4 or any(d is None for d in shape[1:]):
            raise ValueError(f'{self.name}: expected an NHWC input shape with known H, W, C, got {shape}')
        self.event_shape = shape[1:].as_list()
        n_layers = len(self.kernel_sizes)
        sn = dict(coeff=self.coeff, n_iterations=self.n_lipschitz_iters, tol=self.sn_tol, rng=self._rng)
        channels = self.event_shape[-1]
        if self.fc:
            dims = int(np.prod(self.event_shape))
            widths = [self.hidden] * (n_layers - 1) + [dims]
            self.linears = [SpectralNormDense(w, name=f'dense{i}', **sn) for i, w in enumerate(widths)]
            in_shapes = [[None, dims]] + [[None, self.hidden]] * (n_layers - 1)
        else:
            widths = [self.hidden] * (n_layers - 1) + [channels]
            self.linears = [SpectralNormConv2D(w, k, name=f'conv{i}', **sn)
                            for i, (w, k) in enumerate(zip(widths, self.kernel_sizes))]
            h, w = self.event_shape[:2]
            in_shapes = [[None, h, w, channels]] + [[None, h, w, self.hidden]] * (n_layers - 1)
        # activations[i] comes before linears[i]; None where there is none
        self.activations = [Activation(self.activation, name=f'act{i}') if i > 0 or self.preact else None
                            for i in range(n_layers)]
        for layer, in_shape in zip(self.linears, in_shapes):
            layer.build(in_shape)
        self.built = True

    def make_bijector(self):
        return ResidualBlockBijector(self, name=self.name)

    # ---- g, its vector-Jacobian product and the estimators ------------------------------------------
    def params(self, update: bool = False) -> list:
        """Every tensor g reads: per layer [activation params..., kernel, bias]."""
        tensors = []
        for act, linear in zip(self.activations, self.linears):
            tensors += (act.params() if act is not None else []) + linear.params(update)
        return tensors

    def _unpack(self, params):
        out, i = [], 0
        for act in self.activations:
            n_act = 0 if act is None else act.n_params
            out.append((params[i:i + n_act], params[i + n_act:i + n_act + 2]))
            i += n_act + 2
        return out

    def g_and_vjp(self, x, params):
        """g(x) [N, H, W, C] and a function u -> u^T J at x (same shapes)."""
        h = tf.reshape(x, [-1, int(np.prod(self.event_shape))]) if self.fc else x
        derivatives, unpacked = [], self._unpack(params)
        for act, linear, (act_params, lin_params) in zip(self.activations, self.linears, unpacked):
            if act is not None:
                derivatives.append(act.derivative(h, act_params))
                h = act.apply(h, act_params)
            else:
                derivatives.append(None)
            h = linear.apply(h, lin_params)
        g = tf.reshape(h, tf.shape(x)) if self.fc else h

        def vjp(u):
            t = tf.reshape(u, [-1, int(np.prod(self.event_shape))]) if self.fc else u
            for linear, derivative, (_, lin_params) in reversed(list(zip(self.linears, derivatives, unpacked))):
                t = linear.apply_transpose(t, lin_params)
                if derivative is not None:
                    t = t * derivative
            return tf.reshape(t, tf.shape(u)) if self.fc else t

        return g, vjp

    def g(self, x, params=None):
        """g(x) [N, H, W, C] (with `params`, the tensors of `params()`, in place of the weights)."""
        return self.g_and_vjp(x, self.params() if params is None else params)[0]

    # ---- the log-det ------------------------------------------------------------------------------
    def _estimate(self, x, params, training, rng=None):
        """(g(x), the log-det estimate) with this block's estimator settings."""
        def terms():
            return series_terms(training, self.n_power_series, self.n_exact_terms, self.n_samples, self.n_dist,
                                rng)

        return log_det_estimate(self.g_and_vjp, x, params, terms, training, self.neumann_grad, rng)

    def forward_and_log_det(self, x, training=False, rng=None):
        """Data -> latent: (x + g(x), log-det estimate [N]); `training` selects the training estimator and
        runs the power iterations first; `rng` (a `tf.random.Generator`) draws the probe and the number of
        terms, TensorFlow's stateful random ops when None."""
        params = self.params(update=training)
        if training and self.grad_in_forward:
            return gradient_in_forward(lambda t, p: self._estimate(t, p, True, rng), self.g, x, params)
        g, log_det = self._estimate(x, params, training, rng)
        return x + g, log_det

    def invert(self, z):
        """Latent -> data by the fixed-point iteration x = z - g(x)."""
        params = self.params()
        return fixed_point_inverse(lambda x: self.g(x, params), z)

    def brute_force_log_det(self, x):
        """log|det(I + dg/dx)| per example from the full Jacobian (x [N, H, W, C], small)."""
        jacobian = self.jacobian_g(x)
        return tf.linalg.slogdet(tf.eye(jacobian.shape[1]) + jacobian)[1]

    def jacobian_g(self, x):
        """dg/dx [N, D, D] (small inputs, tests)."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            g = tf.reshape(self.g(x), [tf.shape(x)[0], -1])
        return tf.reshape(tape.batch_jacobian(g, x), [tf.shape(x)[0], g.shape[1], g.shape[1]])

    # ---- lipschitz bookkeeping ---------------------------------------------------------------------
    def update_spectral_norms(self, max_iterations=None):
        """Run every layer's power iteration (until `sn_tol`, or `max_iterations`)."""
        for linear in self.linears:
            linear.update_vectors(max_iterations)

    def initialize(self, x, **condition):
        """Converge the spectral norms (no data-dependent weights here); returns x + g(x)."""
        self.update_spectral_norms()
        return x + self.g(x)
