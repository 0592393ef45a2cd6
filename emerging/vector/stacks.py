"""BNAF, TFP's MAF and RealNVP as comparable flows on vectors [N, d] (the density benchmarks' models).

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
networks, and the public BNAF code's layout of residuals: every network but the
last has one, the last has none.  That last network is bounded (tanh layers
under a linear one), so the density BNAF maps R^d onto a bounded set of
latents: its density integrates to the base's mass of that set (below 1, as in
the public code), and `density_samples` samples its normalised density by
rejecting the base draws outside the set.  A residual on the last network
would make the map onto R^d but gives training a way out that the public
layout does not have: the last network shrinks to a constant and the gated
residual leaves the best single Gaussian (at the authors' toy settings,
learning rate 0.1, the test NLL of 8gaussians ends at 4.25 nats, the best
Gaussian's, against 2.84).  MAF and RealNVP stack `n_blocks` blocks with the coordinates
reversed between them; each block's network has `n_hidden` tanh layers of
`baseline_units` units (MAF: `AutoregressiveNetwork`; RealNVP: a tf_keras MLP
from the first d // 2 coordinates to the others' shift and log-scale, the
log-scale through tanh).  `n_blocks` is chosen so that the parameter count is
about BNAF's.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.choices import VECTOR_FLOWS, described
from emerging.vector.bnaf import BNAFFlow

tfb, tfd = tfp.bijectors, tfp.distributions


@dataclasses.dataclass
class VectorFlow:
    """A flow on vectors as `build_flow` returns it: two TFP bijectors over a standard normal base on R^d.

    Both bijectors follow TFP's direction (forward = base sample -> point, event ndims 1); see the module
    docstring for what each one is per kind.

    Args:
      kind: 'bnaf', 'maf' or 'realnvp'.
      dims: d.
      variables: the trainable variables of both bijectors (the same weights).
      density: the bijector for maximum likelihood (`log_prob` runs its inverse, data -> base).
      sampler: the bijector for the reverse KL (sampling and its log-det in one forward pass).
      parameter_count: the trainable entries (BNAF: those that can be non-zero).
    """
    kind: str
    dims: int
    variables: list
    density: tfb.Bijector
    sampler: tfb.Bijector
    parameter_count: int

    def base(self):
        """N(0, I) on R^d."""
        return tfd.MultivariateNormalDiag(tf.zeros(self.dims))

    def density_distribution(self):
        """The model density: `density` over the base."""
        return tfd.TransformedDistribution(self.base(), self.density)

    def sampler_distribution(self):
        """The sampler's distribution: `sampler` over the base."""
        return tfd.TransformedDistribution(self.base(), self.sampler)

    def density_samples(self, n: int, seed=None, tolerance: float = 1e-3):
        """Samples of the normalised model density: n base draws through `density`, keeping those whose point
        maps back to its draw (BNAF's root find cannot reach a draw outside the bounded image of its last network;
        MAF and RealNVP keep all).

        Args:
          n: the base draws.
          seed: the draws' seed, or None.
          tolerance: the largest |inverse(point) - draw| of a kept point (per coordinate, relative to 1 + |draw|).

        Returns:
          (the kept points [m, d], the fraction m / n kept).
        """
        base = self.base().sample(n, seed=seed)
        points = self.density.forward(base)
        # a new tensor: TFP's bijector cache would hand back `base` for `points` itself
        error = tf.abs(self.density.inverse(tf.identity(points)) - base) / (1. + tf.abs(base))
        kept = tf.reduce_all(error <= tolerance, axis=1) & tf.reduce_all(tf.math.is_finite(points), axis=1)
        return tf.boolean_mask(points, kept), tf.reduce_mean(tf.cast(kept, tf.float32))


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
    """BNAF of `n_flows` networks, each but the last with the `residual` (the last has none, as the public code
    builds it: see the module docstring), or a MAF / RealNVP stack of `baseline_units` (default `hidden_dim`) wide
    blocks with about BNAF's parameter count.

    Args:
      kind: 'bnaf', 'maf' or 'realnvp' (`emerging.choices.VECTOR_FLOWS`).
      dims: d, the dimension of the vectors (at least 2 for 'realnvp').
      hidden_dim: BNAF's hidden units per dimension.
      n_hidden: the tanh layers of every network (BNAF: n_hidden + 1 masked layers).
      n_flows: BNAF's number of networks.
      residual: the residual of every BNAF network but the last: None, 'normal' or 'gated' (see `BNAFNetwork`).
      baseline_units: the width of the MAF / RealNVP networks' layers; None: `hidden_dim`.
      seed: seeds TensorFlow's global generator and BNAF's initial weights.

    Returns:
      A `VectorFlow`.  For MAF and RealNVP the number of blocks is BNAF's parameter count over one block's,
      rounded, at least 1.
    """
    if kind not in VECTOR_FLOWS:
        raise ValueError(f'unknown flow {kind!r}; allowed: {described(VECTOR_FLOWS)}')
    if min(dims, hidden_dim, n_hidden, n_flows) < 1:
        raise ValueError(f'dims, hidden_dim, n_hidden and n_flows must be positive, got {dims}, {hidden_dim}, '
                         f'{n_hidden}, {n_flows}')
    if kind == 'realnvp' and dims < 2:
        raise ValueError(f'realnvp needs at least 2 dimensions, got {dims}')
    tf.random.set_seed(seed)
    bnaf = BNAFFlow(dims, n_flows=n_flows, hidden=hidden_dim, n_layers=n_hidden + 1,
                    residuals=[residual] * (n_flows - 1) + [None], seed=seed)
    if kind == 'bnaf':
        return VectorFlow(kind, dims, bnaf.trainable_variables, tfb.Invert(bnaf.bijector), bnaf.bijector,
                          bnaf.parameter_count())
    units = baseline_units or hidden_dim
    make = _maf_blocks if kind == 'maf' else _realnvp_blocks
    one = _count(make(dims, 1, units, n_hidden)[1])
    bijector, variables = make(dims, max(1, round(bnaf.parameter_count() / one)), units, n_hidden)
    sampler = tfb.Invert(bijector) if kind == 'maf' else bijector
    return VectorFlow(kind, dims, variables, bijector, sampler, _count(variables))


def public_bnaf(state: dict, residual: str | None) -> tuple[VectorFlow, list]:
    """The BNAF a state dict of the public BNAF code holds (its `model.state_dict()`, arrays by name).

    The public scripts build `Sequential(BNAF, Permutation('flip'), BNAF, ...)`: network k is module 2k, its
    masked layers are its modules 0, 2, 4, ... (`_weight` [d a_out, d a_in], `_diag_weight` [d a_out, 1],
    `bias`, and the masks `mask_d`, `mask_o`), with `gate` [1] when its residual is gated; every network but
    the last has the residual (the last has none).  These are exactly this package's `MaskedWeight` weights
    `v`, `log_scale`, `bias` and `BNAFNetwork`'s `gate`, in the same layout.

    Args:
      state: {name: array}.
      residual: the residual of every network but the last (the public code's --residual; toy2d.py: 'gated').

    Returns:
      (the `VectorFlow` with those weights, its variables in the order of the checkpoint's parameters, which is
      the order of `model.parameters()` and of the public optimiser's state).

    Raises:
      ValueError: naming what in the state dict does not fit.
    """
    networks = sorted({int(name.split('.')[0]) for name in state if name.split('.')[0].isdigit()})
    if not networks or networks != list(range(0, 2 * len(networks), 2)):
        raise ValueError(f'not a state dict of the public BNAF code: networks at {networks}, expected 0, 2, 4, ...')
    first = state.get('0.0._weight')
    if first is None or np.ndim(first) != 2:
        raise ValueError('not a state dict of the public BNAF code: no 0.0._weight matrix')
    dims = first.shape[1]
    hidden = first.shape[0] // dims
    layers = sorted({int(name.split('.')[1]) for name in state
                     if name.startswith('0.') and name.split('.')[1].isdigit()})
    residuals = [residual] * (len(networks) - 1) + [None]
    bnaf = BNAFFlow(dims, n_flows=len(networks), hidden=hidden, n_layers=len(layers), residuals=residuals)
    order = []
    for network, k in zip(bnaf.networks, networks):
        has_gate = f'{k}.gate' in state
        if has_gate != (network.gate is not None):
            raise ValueError(f'network {k} of the checkpoint {"has" if has_gate else "has no"} gate, but a residual '
                             f'{network.residual!r} is expected there (--residual, and none on the last network)')
        if has_gate:
            network.gate.assign(np.reshape(state[f'{k}.gate'], []))
            order.append(network.gate)
        for layer, index in zip(network.layers_, range(0, 2 * len(layers), 2)):
            prefix = f'{k}.{index}.'
            for name, variable in (('_weight', layer.v), ('_diag_weight', layer.log_scale), ('bias', layer.bias)):
                value = state.get(prefix + name)
                if value is None or tuple(np.shape(value)) != tuple(variable.shape):
                    raise ValueError(f'{prefix + name}: {"missing" if value is None else np.shape(value)}, expected '
                                     f'{tuple(variable.shape)} (d = {dims}, {hidden} units per dimension)')
                variable.assign(value)
                order.append(variable)
            if prefix + 'mask_d' in state and not np.array_equal(state[prefix + 'mask_d'], layer.diagonal_mask):
                raise ValueError(f'{prefix}mask_d is not the block-diagonal mask of d = {dims}')
    expected = {f'{k}.{name}' for k, network in zip(networks, bnaf.networks) for name in
                (['gate'] if network.gate is not None else []) + [f'{i}.{w}' for i in range(0, 2 * len(layers), 2)
                                                                  for w in ('_weight', '_diag_weight', 'bias',
                                                                            'mask_d', 'mask_o')]}
    unexpected = sorted(set(state) - expected)
    if unexpected:
        raise ValueError(f'the state dict holds what no BNAF of this layout has: {", ".join(unexpected[:5])}')
    flow = VectorFlow('bnaf', dims, bnaf.trainable_variables, tfb.Invert(bnaf.bijector), bnaf.bijector,
                      bnaf.parameter_count())
    return flow, order


def public_polyak_averages(flow: VectorFlow, order: list, optimizer_state: dict) -> list:
    """The Polyak averages of a public BNAF checkpoint's optimiser, in the order of `flow.variables`.

    The public Adam keeps `exp_avg_param` (the average, not debiased) per parameter index of `model.parameters()`.

    Args:
      flow: the flow `public_bnaf` built.
      order: its variables in the checkpoint's parameter order (`public_bnaf`'s second value).
      optimizer_state: the checkpoint's `optimizer` entry (`optimizer.state_dict()`).

    Returns:
      One array per variable of `flow.variables`, shaped as it.

    Raises:
      ValueError: when the optimiser state has no average for a parameter.
    """
    state = optimizer_state.get('state', {}) if isinstance(optimizer_state, dict) else {}
    averages = {}
    for index, variable in enumerate(order):
        entry = state.get(index, {})
        if 'exp_avg_param' not in entry:
            raise ValueError(f'the optimiser state has no Polyak average (exp_avg_param) for parameter {index}: not '
                             f'saved by the public density_estimation.py, whose Adam keeps one')
        averages[variable.ref()] = np.reshape(entry['exp_avg_param'], variable.shape)
    return [averages[variable.ref()] for variable in flow.variables]
