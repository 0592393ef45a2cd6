"""2-D flows for the toy benchmarks: BNAF against TFP's MAF and RealNVP, trained and plotted.

`build_flow(kind, ...)` returns a `ToyFlow`: its trainable variables and two
TFP bijectors in TFP's direction (forward = base sample -> point):

* `density`: used for maximum likelihood on data (`log_prob` runs the data ->
  base direction): for BNAF the inverse of the network (so log_prob is the
  network's exact pass and sampling is the root find), for MAF TFP's
  `MaskedAutoregressiveFlow`, for RealNVP TFP's `RealNVP`;
* `sampler`: used for the reverse KL on an energy (sampling and its log-det in
  one pass): the BNAF network itself, the inverse of the MAF (an IAF), the
  RealNVP.

MAF and RealNVP stack `n_blocks` blocks with the two coordinates swapped
between them; each block's network has `n_hidden` hidden layers of
`hidden_dim` units (MAF: `AutoregressiveNetwork`; RealNVP: a tf_keras MLP from
the first coordinate to the second's shift and log-scale).  `n_blocks` is
chosen so that the parameter count is about BNAF's with the same widths.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.flows.bnaf import BNAFFlow

tfb, tfd = tfp.bijectors, tfp.distributions
FLOWS = ('bnaf', 'maf', 'realnvp')
SWAP = [1, 0]


@dataclasses.dataclass
class ToyFlow:
    kind: str
    variables: list
    density: tfb.Bijector
    sampler: tfb.Bijector
    parameter_count: int

    def base(self):
        return tfd.MultivariateNormalDiag(tf.zeros(2))

    def density_distribution(self):
        return tfd.TransformedDistribution(self.base(), self.density)

    def sampler_distribution(self):
        return tfd.TransformedDistribution(self.base(), self.sampler)


def _mlp(hidden_dim, n_hidden, outputs, name):
    layers = [tf_keras.layers.Dense(hidden_dim, activation='tanh') for _ in range(n_hidden)]
    layers.append(tf_keras.layers.Dense(outputs, kernel_initializer='zeros'))
    model = tf_keras.Sequential(layers, name=name)
    model.build([None, 1])
    return model


def _realnvp_blocks(n_blocks, hidden_dim, n_hidden):
    bijectors, variables = [], []
    for k in range(n_blocks):
        net = _mlp(hidden_dim, n_hidden, 2, f'realnvp{k}')

        def shift_and_log_scale(x0, output_units, net=net):
            out = net(x0)
            return out[..., :output_units], tf.tanh(out[..., output_units:])

        if k:
            bijectors.append(tfb.Permute(SWAP))
        bijectors.append(tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=shift_and_log_scale))
        variables += net.trainable_variables
    return tfb.Chain(list(reversed(bijectors))), variables


def _maf_blocks(n_blocks, hidden_dim, n_hidden):
    bijectors, variables = [], []
    for k in range(n_blocks):
        net = tfb.AutoregressiveNetwork(params=2, hidden_units=[hidden_dim] * n_hidden, activation='tanh',
                                        event_shape=[2])
        net.build([None, 2])
        if k:
            bijectors.append(tfb.Permute(SWAP))
        bijectors.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=net))
        variables += net.trainable_variables
    return tfb.Chain(list(reversed(bijectors))), variables


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def build_flow(kind: str, hidden_dim: int = 50, n_hidden: int = 1, seed: int = 0) -> ToyFlow:
    if kind not in FLOWS:
        raise ValueError(f'unknown flow {kind!r}; allowed: {", ".join(FLOWS)}')
    if hidden_dim < 1 or n_hidden < 1:
        raise ValueError(f'hidden_dim and n_hidden must be positive, got {hidden_dim}, {n_hidden}')
    tf.random.set_seed(seed)
    bnaf = BNAFFlow(2, n_flows=1, hidden=hidden_dim, n_layers=n_hidden + 1, seed=seed)
    if kind == 'bnaf':
        return ToyFlow(kind, bnaf.trainable_variables, tfb.Invert(bnaf.bijector), bnaf.bijector,
                       bnaf.parameter_count())
    target = bnaf.parameter_count()
    make = _maf_blocks if kind == 'maf' else _realnvp_blocks
    one = _count(make(1, hidden_dim, n_hidden)[1])
    bijector, variables = make(max(1, round(target / one)), hidden_dim, n_hidden)
    sampler = tfb.Invert(bijector) if kind == 'maf' else bijector
    return ToyFlow(kind, variables, bijector, sampler, _count(variables))


class Plateau:
    """The learning rate times `decay` after `patience` steps without a new best loss (by more than 1e-3),
    never below `minimum` (PyTorch's ReduceLROnPlateau in absolute mode, as the BNAF code uses)."""

    def __init__(self, lr, decay, patience, minimum=5e-4):
        self.lr, self.decay, self.patience, self.minimum = lr, decay, patience, minimum
        self.best, self.waited = math.inf, 0

    def step(self, loss):
        if loss < self.best - 1e-3:
            self.best, self.waited = loss, 0
        else:
            self.waited += 1
            if self.waited > self.patience:
                self.lr, self.waited = max(self.minimum, self.lr * self.decay), 0
        return self.lr
