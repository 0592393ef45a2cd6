"""The log-det estimators of an invertible residual block z = x + g(x) (Residual Flows, Chen et al. 2019).

    log|det dz/dx| = log det(I + J) = sum_{k>=1} (-1)^(k+1) tr(J^k) / k,   J = dg/dx

The estimate (one Gaussian probe v per example, Hutchinson):

    sum_{k=1}^{n} (-1)^(k+1) / k * w_k * v^T J^k v

computed from the vector-Jacobian products v^T J^k, k = 1..n.  Russian
roulette makes it unbiased: N_1..N_m (m = `n_samples`) are drawn from
Poisson(2) or Geometric(0.5) (`n_dist`), n = max N_i + n_exact, and
w_k = 1 for k <= n_exact, else mean_i [N_i >= k - n_exact] / P(N >= k - n_exact).
Training uses n_exact = `n_exact_terms` (or, with `n_power_series`, a fixed n
and w = 1: biased); evaluation uses n_exact = 20 (`EVAL_EXACT_TERMS`).

Gradients (training):

* `neumann_grad`: the gradient of log det(I + J) is tr((I + J)^-1 dJ) =
  sum_{k>=0} (-1)^k tr(J^k dJ), estimated with the same probe and weights
  from the products above, which are not differentiated: only one more
  product w^T J (w = sum_k (-1)^k w_k v^T J^k) is, so the power series'
  graph is never kept.  The value is still the log-det estimate above.
* otherwise: backpropagation through all n products.
* `gradient_in_forward` (the public code's `--mem-eff`): the log-det's
  gradients with respect to x and the weights are computed in the forward
  pass and only they are kept; g is recomputed in the backward pass.  The
  loss must weight every example's log-det alike (a batch mean), which is
  how the model uses it.

The functions take g as `g_and_vjp(x, params) -> (g(x), u -> u^T J)` and its
tensors `params` (the block's, see residual.py), so that gradients with
respect to the weights flow through `params`.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

POISSON_LAMBDA, GEOMETRIC_P = 2., 0.5
EVAL_EXACT_TERMS = 20


def roulette_weights(n_terms_drawn, n_exact, n_dist):
    """One Russian-roulette draw's number of terms and weights.

    Args:
      n_terms_drawn: int32 [m] draws of N.
      n_exact: the terms taken with weight 1.
      n_dist: 'poisson' or 'geometric', the distribution N was drawn from.

    Returns:
      (n, w): the number of terms and w_k for k = 1..n [n].
    """
    n = tf.reduce_max(n_terms_drawn) + n_exact
    k = tf.range(1, n + 1)
    beyond = tf.cast(k - n_exact, tf.float32)  # the draw must reach k - n_exact
    reached = tf.reduce_mean(tf.cast(n_terms_drawn[None, :] >= (k - n_exact)[:, None], tf.float32), axis=1)
    if n_dist == 'poisson':
        # P(N >= j) = 1 - sum_{i<j} e^-lam lam^i / i! = the regularised lower incomplete gamma P(j, lam), j >= 1
        p_reach = tf.math.igamma(tf.maximum(beyond, 1.), POISSON_LAMBDA)
    else:
        # numpy's geometric counts trials, N >= 1: P(N >= j) = (1 - p)^(j - 1)
        p_reach = tf.pow(1. - GEOMETRIC_P, tf.maximum(beyond - 1., 0.))
    return n, tf.where(beyond <= 0., tf.ones_like(reached), reached / p_reach)


def draw_terms(n_samples, n_dist, rng=None):
    """int32 [n_samples] draws of N: Poisson(2) (from 0) or Geometric(0.5) (from 1, numpy's convention), from
    the `tf.random.Generator` `rng` when given (a training run's, saved with its position), else TensorFlow's
    stateful random ops."""
    if n_dist == 'poisson':
        if rng is not None:
            return tf.cast(tf.random.stateless_poisson([n_samples], rng.make_seeds(1)[:, 0], POISSON_LAMBDA),
                           tf.int32)
        return tf.cast(tf.random.poisson([n_samples], POISSON_LAMBDA), tf.int32)
    uniform = (tf.random.uniform if rng is None else rng.uniform)([n_samples], minval=1e-7, maxval=1.)
    return tf.cast(tf.floor(tf.math.log(uniform) / np.log(1. - GEOMETRIC_P)), tf.int32) + 1


def series_terms(training, n_power_series, n_exact_terms, n_samples, n_dist, rng=None):
    """(n, w) of one estimate: a fixed truncation (training with n_power_series), else a roulette draw (from
    `rng` when given, see `draw_terms`)."""
    if training and n_power_series is not None:
        return n_power_series, tf.ones([n_power_series])
    n_exact = n_exact_terms if training else EVAL_EXACT_TERMS
    return roulette_weights(draw_terms(n_samples, n_dist, rng), n_exact, n_dist)


def power_series(vjp, v, n, weights, differentiable):
    """The weighted series and the Neumann vector of one probe.

    Args:
      vjp: u -> u^T J.
      v: the probe, shaped as x.
      n: the number of terms (a Python int unrolls the loop when `differentiable`).
      weights: w_k, k = 1..n.
      differentiable: unroll in Python so that autodiff sees every product (backpropagation through the
        series); otherwise a while loop.

    Returns:
      (sum_k (-1)^(k+1)/k w_k v^T J^k v [N], w = sum_{k=0}^{n} (-1)^k w_k v^T J^k, or None when unrolled).
    """
    def dot(a, b):
        return tf.reduce_sum(tf.reshape(a * b, [tf.shape(a)[0], -1]), axis=1)

    if differentiable and isinstance(n, int):
        u, log_det = v, 0.
        for k in range(1, n + 1):
            u = vjp(u)
            log_det += (-1) ** (k + 1) / k * weights[k - 1] * dot(u, v)
        return log_det, None

    def body(k, u, log_det, neumann):
        u = vjp(u)
        sign = tf.where(k % 2 == 1, 1., -1.)
        w_k = tf.gather(weights, k - 1)
        return (k + 1, u, log_det + sign / tf.cast(k, tf.float32) * w_k * dot(u, v),
                neumann - sign * w_k * u)

    zeros = tf.zeros(tf.shape(v)[:1])
    _, _, log_det, neumann = tf.while_loop(lambda k, *_: k <= n, body, (tf.constant(1), v, zeros, v))
    return log_det, neumann


def log_det_estimate(g_and_vjp, x, params, terms, training, neumann_grad, rng=None):
    """g(x) and the chosen estimator of log det(I + J), as functions of x and params.

    Args:
      g_and_vjp: (x, params) -> (g(x), u -> u^T J).
      x: the block's input [N, H, W, C].
      params: the tensors g reads.
      terms: () -> (n, w), called after the probe is drawn (`series_terms` with the block's settings).
      training: the training estimator and gradient; otherwise the evaluation estimate, not differentiated.
      neumann_grad: the Neumann-series gradient (else backpropagation through the series).
      rng: the `tf.random.Generator` of the probe, or None: TensorFlow's stateful random ops.

    Returns:
      (g(x) [N, H, W, C], the log-det estimate [N]).
    """
    g, vjp = g_and_vjp(x, params)
    v = (tf.random.normal if rng is None else rng.normal)(tf.shape(x))
    n, weights = terms()
    if not training:
        return g, tf.stop_gradient(power_series(vjp, v, n, weights, differentiable=False)[0])
    if not neumann_grad:
        return g, power_series(vjp, v, n, weights, differentiable=True)[0]
    value, neumann = power_series(lambda u: vjp(tf.stop_gradient(u)), v, n, weights, differentiable=False)
    value, neumann = tf.stop_gradient(value), tf.stop_gradient(neumann)
    surrogate = tf.reduce_sum(tf.reshape(vjp(neumann) * v, [tf.shape(x)[0], -1]), axis=1)
    return g, value + surrogate - tf.stop_gradient(surrogate)


def gradient_in_forward(estimate, g, x, params):
    """x + g(x) and the log-det estimate, with the estimate's gradients computed in the forward pass.

    Args:
      estimate: (x, params) -> (g(x), log-det estimate), the training estimator (`log_det_estimate`).
      g: (x, params) -> g(x), recomputed in the backward pass.
      x: the block's input [N, H, W, C].
      params: the tensors g reads (their gradients are returned too).

    Returns:
      (z [N, H, W, C], log-det [N]) under a custom gradient.
    """
    @tf.custom_gradient
    def block(x, *params):
        with tf.GradientTape() as tape:
            tape.watch([x, *params])
            g_x, log_det = estimate(x, list(params))
        grads = tape.gradient(log_det, [x, *params], unconnected_gradients=tf.UnconnectedGradients.ZERO)

        def backward(dz, dlog_det):
            with tf.GradientTape() as recompute:
                recompute.watch([x, *params])
                g_again = g(x, list(params))
            dg = recompute.gradient(g_again, [x, *params], output_gradients=dz,
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)
            # every example's log-det has the same weight in the loss (a batch mean): see the module docstring
            scale = tf.reduce_mean(dlog_det)
            dx = dz + dg[0] + grads[0] * tf.reshape(dlog_det, [-1, 1, 1, 1])
            return [dx] + [a + b * scale for a, b in zip(dg[1:], grads[1:])]

        return (x + tf.stop_gradient(g_x), tf.stop_gradient(log_det)), backward

    return block(x, *params)
