"""The 2-D models of the public Residual Flows code's train_toy.py: its stacks and their non-residual layers.

Every layer maps data -> latent in closed form (its bijector's *forward*), with its log-det per example [N]; the
base is N(0, I) on R^D.  The residual block is `emerging.vector.residual.VectorResidualBlock`.

`VectorActNorm`: y = (x + b) * exp(s) per dimension, log-det sum(s), initialised from its first input batch
(b = -mean, s = -log(max(var, 0.2)) / 2, unbiased variance; the public ActNorm1d).
`VectorMovingBatchNorm`: y = x - m + b (log-det 0), m a running mean updated in training after its use,
m <- m - 0.1 (m - batch mean) (the public MovingBatchNorm1d with bn_lag 0, whose shift is the running mean in
training too).
`VectorCouplingBlock`: y_a = x_a, y_b = x_b * sigmoid(s(x_a) + 2) + t(x_a) (the public CouplingBlock; x_a the
first D/2 coordinates, the last with `swap`), (s, t) from an MLP (train_toy.py passes it none: see the class).

`VectorFlowStack` chains them; `build_toy_flow` builds train_toy.py's `--arch iresnet` / `realnvp` stacks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from emerging.vector.residual import (
    VectorActivation,
    VectorLayerBijector,
    VectorResidualBlock,
    power_iterations,
    torch_uniform,
)

tfb, tfd = tfp.bijectors, tfp.distributions

ACTNORM_MIN_VARIANCE = 0.2
BATCHNORM_DECAY = 0.1
COUPLING_SCALE_SHIFT = 2.


class VectorActNorm(tf_keras.layers.Layer):
    """y = (x + b) * exp(s) on [N, D], log-det sum(s) [N]; b, s [D] initialised from the first batch by
    `initialize` (b = -mean, s = -log(max(var, 0.2)) / 2, unbiased variance: the public ActNorm1d).

    Args:
      dims: D.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int = 2, name: str = 'actnorm', **kwargs):
        super().__init__(name=name, **kwargs)
        self.dims = int(dims)
        self.bias = self.add_weight(name='bias', shape=[self.dims], initializer='zeros')
        self.log_scale = self.add_weight(name='log_scale', shape=[self.dims], initializer='zeros')
        self.initialized = self.add_weight(name='initialized', shape=[], initializer='zeros', trainable=False)
        self.built = True

    @property
    def bijector(self) -> VectorLayerBijector:
        return VectorLayerBijector(self, name=self.name)

    def initialize(self, x):
        """Set b, s from the batch x [N, D] unless done already (a restored checkpoint); returns y [N, D]."""
        if float(self.initialized.numpy()) == 0.:
            x = np.asarray(x, np.float64)
            variance = np.maximum(x.var(axis=0, ddof=1), ACTNORM_MIN_VARIANCE)
            self.bias.assign(-x.mean(axis=0))
            self.log_scale.assign(-0.5 * np.log(variance))
            self.initialized.assign(1.)
        return self.forward_and_log_det(tf.constant(x, tf.float32))[0]

    def call(self, x):
        """y [N, D]."""
        return self.forward_and_log_det(x)[0]

    def forward_and_log_det(self, x, training=False, rng=None):
        """(y [N, D], sum(s) [N]); `training`, `rng` unused."""
        return (x + self.bias) * tf.exp(self.log_scale), tf.fill(tf.shape(x)[:1], tf.reduce_sum(self.log_scale))

    def invert(self, y):
        """x = y exp(-s) - b [N, D]."""
        return y * tf.exp(-self.log_scale) - self.bias


class VectorMovingBatchNorm(tf_keras.layers.Layer):
    """y = x - m + b on [N, D], log-det 0; m [D] a running mean of the training batches (not trained), b [D]
    learned from 0.  In training m is used first, then m <- m - 0.1 (m - mean of the batch) (the public
    MovingBatchNorm1d with its defaults, bn_lag 0).

    Args:
      dims: D.
      decay: the running mean's update rate.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int = 2, decay: float = BATCHNORM_DECAY, name: str = 'batchnorm', **kwargs):
        super().__init__(name=name, **kwargs)
        self.dims, self.decay = int(dims), float(decay)
        self.bias = self.add_weight(name='bias', shape=[self.dims], initializer='zeros')
        self.running_mean = self.add_weight(name='running_mean', shape=[self.dims], initializer='zeros',
                                            trainable=False)
        self.built = True

    @property
    def bijector(self) -> VectorLayerBijector:
        return VectorLayerBijector(self, name=self.name)

    def call(self, x):
        """y [N, D] (no update)."""
        return self.forward_and_log_det(x)[0]

    def forward_and_log_det(self, x, training=False, rng=None):
        """(y [N, D], 0 [N]); `training` updates the running mean after using it."""
        used = tf.identity(self.running_mean)
        y = x - used + self.bias
        if training:
            self.running_mean.assign_sub(self.decay * (used - tf.reduce_mean(x, axis=0)))
        return y, tf.zeros(tf.shape(x)[:1])

    def invert(self, y):
        """x = y - b + m [N, D]."""
        return y - self.bias + self.running_mean


class VectorCouplingBlock(tf_keras.layers.Layer):
    """y_a = x_a, y_b = x_b * sigmoid(s + 2) + t with (s, t) = f(x_a), on [N, D] (D even); log-det
    sum log sigmoid(s + 2) [N] (the public CouplingBlock).  x_a is the first D/2 coordinates, x_b the others
    (`swap`: the other way round); y keeps every coordinate in place.

    f is an MLP D/2 -> h_1 -> ... -> h_m -> D (s the first D/2 outputs), `activation` between its layers, PyTorch's
    default initialisation.  train_toy.py's `--arch realnvp` builds CouplingBlock(2, swap=...) without the network
    the class requires (it cannot run); this MLP of the --dims widths and --act is this port's choice.

    Args:
      dims: D.
      hidden: f's hidden widths.
      activation: one of `emerging.choices.VECTOR_ACTIVATIONS`.
      swap: condition on the last D/2 coordinates and transform the first.
      rng: the numpy Generator of the initial weights.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, dims: int = 2, hidden: Sequence[int] = (128, 128, 128, 128), activation: str = 'swish',
                 swap: bool = False, rng: np.random.Generator | None = None, name: str = 'coupling', **kwargs):
        super().__init__(name=name, **kwargs)
        if dims < 2 or dims % 2:
            raise ValueError(f'{name}: a coupling block needs an even dims >= 2, got {dims}')
        half = int(dims) // 2
        widths = [half, *[int(h) for h in hidden], int(dims)]
        if min(widths) < 1:
            raise ValueError(f'{name}: hidden widths must be positive, got {list(hidden)}')
        if activation == 'maxmin' and any(w % 2 for w in widths[1:-1]):
            raise ValueError(f'{name}: maxmin needs even hidden widths, got {widths[1:-1]}')
        rng = rng if rng is not None else np.random.default_rng()
        self.dims, self.half, self.swap = int(dims), half, bool(swap)
        self.dense = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            layer = tf_keras.layers.Dense(w_out, kernel_initializer=torch_uniform(rng, [w_in, w_out], w_in),
                                          bias_initializer=torch_uniform(rng, [w_out], w_in), name=f'dense{i}')
            layer.build([None, w_in])
            self.dense.append(layer)
        self.activations = [VectorActivation(activation, name=f'act{i}') for i in range(len(widths) - 2)]
        self.built = True

    @property
    def bijector(self) -> VectorLayerBijector:
        return VectorLayerBijector(self, name=self.name)

    def _split(self, x):
        first, second = x[:, :self.half], x[:, self.half:]
        return (second, first) if self.swap else (first, second)

    def _join(self, a, b):
        return tf.concat([b, a] if self.swap else [a, b], axis=1)

    def _scale_and_shift(self, x_a):
        h = x_a
        for i, layer in enumerate(self.dense):
            if i:
                act = self.activations[i - 1]
                h = act.apply(h, act.params())
            h = layer(h)
        return h[:, :self.half] + COUPLING_SCALE_SHIFT, h[:, self.half:]

    def call(self, x):
        """y [N, D]."""
        return self.forward_and_log_det(x)[0]

    def forward_and_log_det(self, x, training=False, rng=None):
        """(y [N, D], log-det [N]); `training`, `rng` unused."""
        x_a, x_b = self._split(x)
        pre_scale, shift = self._scale_and_shift(x_a)
        y_b = x_b * tf.sigmoid(pre_scale) + shift
        return self._join(x_a, y_b), tf.reduce_sum(-tf.nn.softplus(-pre_scale), axis=1)

    def invert(self, y):
        """x [N, D]: x_b = (y_b - t) / sigmoid(s + 2)."""
        y_a, y_b = self._split(y)
        pre_scale, shift = self._scale_and_shift(y_a)
        return self._join(y_a, (y_b - shift) / tf.sigmoid(pre_scale))


class VectorFlowStack(tf_keras.layers.Layer):
    """Flow layers on [N, D] applied data -> latent in list order; log-dets summed [N].  `.bijector` is their
    `tfb.Chain` (forward data -> latent), `density_distribution()` the model density over N(0, I).

    Args:
      layers: the layers (`VectorResidualBlock`, `VectorActNorm`, `VectorMovingBatchNorm`, `VectorCouplingBlock`),
        all on the same D.
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, layers: Sequence[tf_keras.layers.Layer], name: str = 'flow', **kwargs):
        super().__init__(name=name, **kwargs)
        if not layers:
            raise ValueError(f'{name}: needs at least one layer')
        dims = {layer.dims for layer in layers}
        if len(dims) != 1:
            raise ValueError(f'{name}: the layers work on different dimensions {sorted(dims)}')
        self.dims = dims.pop()
        self.flow_layers = list(layers)
        self.built = True

    @property
    def bijector(self) -> tfb.Bijector:
        return tfb.Chain([layer.bijector for layer in reversed(self.flow_layers)], name=self.name)

    def density_distribution(self) -> tfd.Distribution:
        """The model density: N(0, I) on R^D through the inverse of the stack (log_prob runs data -> latent)."""
        return tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(self.dims)), tfb.Invert(self.bijector))

    @property
    def parameter_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))

    def call(self, x):
        """z [N, D]."""
        for layer in self.flow_layers:
            x = layer(x)
        return x

    def forward_and_log_det(self, x, training=False, rng=None):
        """(z [N, D], the summed log|det dz/dx| [N]); `training` and `rng` are passed to every layer."""
        total = tf.zeros(tf.shape(x)[:1])
        for layer in self.flow_layers:
            x, log_det = layer.forward_and_log_det(x, training=training, rng=rng)
            total += log_det
        return x, total

    def invert(self, z):
        """x [N, D] from z [N, D], the layers' inverses in reverse order."""
        for layer in reversed(self.flow_layers):
            z = layer.invert(z)
        return z

    def initialize(self, x):
        """Initialise the actnorms in order, each from the output of the layers before it (a batch x [N, D]);
        returns z [N, D]."""
        h = tf.cast(tf.convert_to_tensor(x), tf.float32)
        for layer in self.flow_layers:
            h = layer.initialize(h) if isinstance(layer, VectorActNorm) else layer(h)
        return h

    def update_spectral_norms(self, n_iterations: int | None = None):
        """Every residual block's power iterations (`VectorResidualBlock.update_spectral_norms`), the layers of all
        blocks stacked (`power_iterations`)."""
        by_count = {}
        for layer in self.flow_layers:
            if isinstance(layer, VectorResidualBlock):
                count = layer.n_lipschitz_iters if n_iterations is None else int(n_iterations)
                by_count.setdefault(count, []).extend(layer.linears)
        for count, linears in by_count.items():
            power_iterations(linears, count)


def build_toy_flow(arch: str = 'iresnet', dims: int = 2, hidden: Sequence[int] = (128, 128, 128, 128),
                   n_blocks: int = 100, activation: str = 'swish', coeff: float = 0.9, n_lipschitz_iters: int = 5,
                   n_power_series: int | None = None, n_dist: str = 'geometric', n_samples: int = 1,
                   exact_trace: bool = False, brute_force: bool = False, actnorm: bool = False,
                   batchnorm: bool = False, seed: int = 0) -> VectorFlowStack:
    """The stack train_toy.py builds.

    iresnet: [actnorm], then `n_blocks` x (residual block, [actnorm], [batch norm]);
    realnvp: `n_blocks` x (coupling, coupling with swap, [actnorm], [batch norm]).

    Args:
      arch: 'iresnet' or 'realnvp'.
      dims: D.
      hidden: the hidden widths of every block's network (--dims).
      n_blocks: --nblocks.
      activation: one of `emerging.choices.VECTOR_ACTIVATIONS`.
      coeff, n_lipschitz_iters, n_power_series, n_dist, n_samples, exact_trace, brute_force: the residual blocks'
        (see `VectorResidualBlock`).
      actnorm: the `VectorActNorm` layers.
      batchnorm: the `VectorMovingBatchNorm` layers.
      seed: the seed of the numpy Generator of every initial weight.

    Returns:
      A `VectorFlowStack` (actnorms not initialised yet: `initialize` with the first batch).
    """
    if arch not in ('iresnet', 'realnvp'):
        raise ValueError(f'unknown arch {arch!r}; allowed: iresnet, realnvp')
    if n_blocks < 1:
        raise ValueError(f'n_blocks must be positive, got {n_blocks}')
    rng = np.random.default_rng(seed)
    layers = []
    if arch == 'iresnet' and actnorm:
        layers.append(VectorActNorm(dims, name='actnorm'))
    for k in range(n_blocks):
        if arch == 'iresnet':
            layers.append(VectorResidualBlock(dims, hidden, activation, coeff, n_lipschitz_iters, n_power_series,
                                              n_dist, n_samples, exact_trace=exact_trace, brute_force=brute_force,
                                              rng=rng, name=f'resblock{k}'))
        else:
            layers += [VectorCouplingBlock(dims, hidden, activation, swap=swap, rng=rng, name=f'coupling{k}_{swap:d}')
                       for swap in (False, True)]
        if actnorm:
            layers.append(VectorActNorm(dims, name=f'actnorm{k}'))
        if batchnorm:
            layers.append(VectorMovingBatchNorm(dims, name=f'batchnorm{k}'))
    return VectorFlowStack(layers, name=arch)
