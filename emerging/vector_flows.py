"""Flows on vectors [N, d] for the 2-D and tabular density benchmarks: BNAF against TFP's MAF and RealNVP.

`build_flow(kind, dims, ...)` returns a `VectorFlow`: its trainable variables
and two TFP bijectors in TFP's direction (forward = base sample -> point), over
a standard normal base on R^d:

* `density`: used for maximum likelihood on data (`log_prob` runs the data ->
  base direction): for BNAF the inverse of the network (so log_prob is the
  network's exact pass and sampling is the root find), for MAF TFP's
  `MaskedAutoregressiveFlow`, for RealNVP TFP's `RealNVP`;
* `sampler`: used for the reverse KL on an energy (sampling and its log-det in
  one pass): the BNAF network itself, the inverse of the MAF (an IAF), the
  RealNVP.

BNAF is `n_flows` networks of `n_hidden` tanh layers with `hidden_dim` units
per dimension (d * hidden_dim in all), a reversal of the coordinates between
networks.  MAF and RealNVP stack `n_blocks` blocks with the coordinates
reversed between them; each block's network has `n_hidden` tanh layers of
`baseline_units` units (MAF: `AutoregressiveNetwork`; RealNVP: a tf_keras MLP
from the first d // 2 coordinates to the others' shift and log-scale, the
log-scale through tanh).  `n_blocks` is chosen so that the parameter count is
about BNAF's.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.config import VECTOR_FLOWS
from emerging.flows.bnaf import BNAFFlow

tfb, tfd = tfp.bijectors, tfp.distributions


@dataclasses.dataclass
class VectorFlow:
    kind: str
    dims: int
    variables: list
    density: tfb.Bijector
    sampler: tfb.Bijector
    parameter_count: int

    def base(self):
        return tfd.MultivariateNormalDiag(tf.zeros(self.dims))

    def density_distribution(self):
        return tfd.TransformedDistribution(self.base(), self.density)

    def sampler_distribution(self):
        return tfd.TransformedDistribution(self.base(), self.sampler)


def _reversal(dims):
    return tfb.Permute(list(reversed(range(dims))))


def _mlp(inputs, units, n_hidden, outputs, name):
    layers = [tf_keras.layers.Dense(units, activation='tanh') for _ in range(n_hidden)]
    layers.append(tf_keras.layers.Dense(outputs, kernel_initializer='zeros'))
    model = tf_keras.Sequential(layers, name=name)
    model.build([None, inputs])
    return model


def _realnvp_blocks(dims, n_blocks, units, n_hidden):
    bijectors, variables = [], []
    masked = dims // 2
    for k in range(n_blocks):
        net = _mlp(masked, units, n_hidden, 2 * (dims - masked), f'realnvp{k}')

        def shift_and_log_scale(x0, output_units, net=net):
            out = net(x0)
            return out[..., :output_units], tf.tanh(out[..., output_units:])

        if k:
            bijectors.append(_reversal(dims))
        bijectors.append(tfb.RealNVP(num_masked=masked, shift_and_log_scale_fn=shift_and_log_scale))
        variables += net.trainable_variables
    return tfb.Chain(list(reversed(bijectors))), variables


def _maf_blocks(dims, n_blocks, units, n_hidden):
    bijectors, variables = [], []
    for k in range(n_blocks):
        net = tfb.AutoregressiveNetwork(params=2, hidden_units=[units] * n_hidden, activation='tanh',
                                        event_shape=[dims])
        net.build([None, dims])
        if k:
            bijectors.append(_reversal(dims))
        bijectors.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=net))
        variables += net.trainable_variables
    return tfb.Chain(list(reversed(bijectors))), variables


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def build_flow(kind: str, dims: int = 2, hidden_dim: int = 50, n_hidden: int = 2, n_flows: int = 1,
               residual: str | None = 'gated', baseline_units: int | None = None, seed: int = 0) -> VectorFlow:
    """BNAF of `n_flows` networks, each with the `residual` (the public code leaves it off the last network; here
    every network keeps it so that the flow maps onto R^d and can be sampled by its inverse), or a MAF / RealNVP
    stack of `baseline_units` (default `hidden_dim`) wide blocks with about BNAF's parameter count."""
    if kind not in VECTOR_FLOWS:
        raise ValueError(f'unknown flow {kind!r}; allowed: {", ".join(VECTOR_FLOWS)}')
    if min(dims, hidden_dim, n_hidden, n_flows) < 1:
        raise ValueError(f'dims, hidden_dim, n_hidden and n_flows must be positive, got {dims}, {hidden_dim}, '
                         f'{n_hidden}, {n_flows}')
    if kind == 'realnvp' and dims < 2:
        raise ValueError(f'realnvp needs at least 2 dimensions, got {dims}')
    tf.random.set_seed(seed)
    bnaf = BNAFFlow(dims, n_flows=n_flows, hidden=hidden_dim, n_layers=n_hidden + 1, residuals=[residual] * n_flows,
                    seed=seed)
    if kind == 'bnaf':
        return VectorFlow(kind, dims, bnaf.trainable_variables, tfb.Invert(bnaf.bijector), bnaf.bijector,
                          bnaf.parameter_count())
    units = baseline_units or hidden_dim
    make = _maf_blocks if kind == 'maf' else _realnvp_blocks
    one = _count(make(dims, 1, units, n_hidden)[1])
    bijector, variables = make(dims, max(1, round(bnaf.parameter_count() / one)), units, n_hidden)
    sampler = tfb.Invert(bijector) if kind == 'maf' else bijector
    return VectorFlow(kind, dims, variables, bijector, sampler, _count(variables))


def clipped_train_step(loss_fn, variables, optimizer, clip_norm, after_update=None):
    """A compiled step `(x, lr) -> loss`: the learning rate assigned, the gradients of `loss_fn(x)` clipped to global
    norm `clip_norm` and applied by `optimizer`, then `after_update()` (e.g. a Polyak update) if given."""

    @tf.function(reduce_retracing=True)
    def step(x, lr):
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            loss = loss_fn(x)
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), clip_norm)
        optimizer.apply_gradients(zip(grads, variables))
        if after_update is not None:
            after_update()
        return loss

    return step


class Plateau:
    """PyTorch's ReduceLROnPlateau in absolute mode, as the BNAF code uses it, one `step` per loss: a new best is
    below the best by more than `threshold`; after more than `patience` steps without one the learning rate is
    multiplied by `decay` (never below `minimum`) and `cooldown` steps follow in which none count.  After a step,
    `improved` and `reduced` say what it did and `since_best` counts the steps since the last best (the BNAF
    code's early stopping)."""

    def __init__(self, lr, decay, patience, minimum=5e-4, cooldown=0, threshold=1e-4):
        self.lr, self.decay, self.patience, self.minimum = lr, decay, patience, minimum
        self.cooldown, self.threshold = cooldown, threshold
        self.best, self.bad, self.cooling, self.since_best = math.inf, 0, 0, 0
        self.improved = self.reduced = False

    def step(self, loss):
        self.improved = loss < self.best - self.threshold
        if self.improved:
            self.best, self.bad, self.since_best = loss, 0, 0
        else:
            self.bad, self.since_best = self.bad + 1, self.since_best + 1
        if self.cooling > 0:
            self.cooling, self.bad = self.cooling - 1, 0
        self.reduced = self.bad > self.patience
        if self.reduced:
            self.lr, self.cooling, self.bad = max(self.minimum, self.lr * self.decay), self.cooldown, 0
        return self.lr


class PolyakAverage(tf.Module):
    """An exponential moving average of `variables` with decay `decay`, zero-debiased
    (biased <- decay biased + (1 - decay) w, average = biased / (1 - decay^n); before any update the weights
    themselves); `swap()` puts the averages in place of the weights and the next `swap()` puts them back."""

    def __init__(self, variables, decay):
        super().__init__(name='polyak')
        if not 0. <= decay < 1.:
            raise ValueError(f'the Polyak decay must be in [0, 1), got {decay}')
        self.decay, self.variables_ = float(decay), list(variables)
        self.biased = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables_]
        self.count = tf.Variable(0., trainable=False)
        self._held = None

    def update(self):
        self.count.assign_add(1.)
        for biased, w in zip(self.biased, self.variables_):
            biased.assign(self.decay * biased + (1. - self.decay) * w)

    def swap(self):
        if self._held is None:
            self._held = [w.numpy() for w in self.variables_]
            if float(self.count) > 0.:
                debias = 1. - self.decay ** float(self.count)
                for biased, w in zip(self.biased, self.variables_):
                    w.assign(biased / debias)
        else:
            for held, w in zip(self._held, self.variables_):
                w.assign(held)
            self._held = None
