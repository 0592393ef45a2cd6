"""The original's optimisers (Glow's optim.py) and Polyak averaging, as one trackable module.

With beta2 = 1 - 1 / (train_its * polyak_epochs), step t from 1,
alpha_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), for every weight w with gradient g:

* adamax: m = beta1 m + (1 - beta1) g;  u = max(beta2 u, |g|);      w = wd * w - alpha_t * m / (u + 1e-8)
* adam:   m as above;  v = beta2 v + (1 - beta2) g^2;                w = wd * w - alpha_t * m / (sqrt(v) + 1e-8)
* adam2:  like adam, but g^2 is averaged over processes (not the square of the averaged g)

Polyak: the optimiser is an `emerging.averaging.PolyakAverage` of every
trainable weight with decay d (beta2 unless `polyak_decay` is given), updated
after each step, saved with the checkpoint and swappable in for evaluation
and sampling.

How it runs: adamax and adam update each weight and its moments in place with
TensorFlow's fused kernels (`ResourceApplyAdaMax`, `ResourceApplyAdam`, the
formulas above exactly, with lr * sqrt(1 - beta2^t) resp. the beta powers
passed in), and the Polyak sum in place with `ResourceApplyGradientDescent`
(biased -= (1 - beta2) (biased - w)): two kernels per weight, no whole-model
temporaries, so the optimiser adds almost nothing to a train step's peak
memory (a flat-vector update was tried: as fast, but it held five model-sized
temporaries, more than the activations of a gradient-checkpointed step).
adam2 and weight decay add a few plain ops per weight.
"""
from typing import Sequence

import tensorflow as tf

from emerging.averaging import PolyakAverage
from emerging.choices import OPTIMIZERS, described

EPSILON = 1e-8


class Optimizer(PolyakAverage):
    """The original's adamax / adam / adam2 with the Polyak average of the weights.

    Args:
      variables: the trainable weights, in a fixed order (the checkpoint's).
      kind: 'adamax', 'adam' or 'adam2'.
      beta1, beta2: the moments' decays, in [0, 1).
      weight_decay: the multiplicative decay per step (1: off).
      polyak_decay: the Polyak average's decay (default beta2).
      name: the module's name.

    Per-weight state, in the order of `variables`: `m1` (first moment), `m2`
    (u or v), and the average's `polyak_biased`.
    """

    def __init__(self, variables: Sequence[tf.Variable], kind: str = 'adamax', beta1: float = 0.9,
                 beta2: float = 0.999, weight_decay: float = 1., polyak_decay: float | None = None,
                 name: str = 'optimizer'):
        if kind not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {kind!r}; allowed: {described(OPTIMIZERS)}')
        polyak_decay = beta2 if polyak_decay is None else polyak_decay
        if not 0. <= beta1 < 1. or not 0. <= beta2 < 1. or not 0. <= polyak_decay < 1.:
            raise ValueError(f'beta1, beta2 and polyak_decay must be in [0, 1), got {beta1}, {beta2}, {polyak_decay}')
        super().__init__(variables, polyak_decay, name=name)
        self.kind, self.beta1, self.beta2 = kind, float(beta1), float(beta2)
        self.weight_decay = float(weight_decay)
        self.step = tf.Variable(1., trainable=False, name='adam_t')

        def slots(name):
            return [tf.Variable(tf.zeros_like(v), trainable=False, name=f'{name}_{i}')
                    for i, v in enumerate(self.variables_)]

        self.m1, self.m2 = slots('m1'), slots('m2')

    def apply(self, grads, lr, squared_grads=None):
        """One update with the process-averaged `grads`; for adam2, `squared_grads`
        are the process averages of g^2 (computed by the caller around its allreduce)."""
        t = self.step
        beta1_power, beta2_power = tf.pow(self.beta1, t), tf.pow(self.beta2, t)
        lr = tf.convert_to_tensor(lr, tf.float32)
        # the adamax kernel divides by (1 - beta1^t) itself; adam2's plain ops take the whole alpha_t
        lr_adamax = lr * tf.sqrt(1. - beta2_power)
        alpha = lr_adamax / (1. - beta1_power)
        per_dtype = {}  # the step's scalars, cast once per weight dtype

        def scalars(dtype):
            if dtype not in per_dtype:
                values = dict(beta1_power=beta1_power, beta2_power=beta2_power, lr=lr, lr_adamax=lr_adamax,
                              alpha=alpha, beta1=self.beta1, beta2=self.beta2, epsilon=EPSILON)
                per_dtype[dtype] = {k: tf.cast(v, dtype) for k, v in values.items()}
            return per_dtype[dtype]

        self.polyak_step.assign_add(1.)
        for i, (w, g) in enumerate(zip(self.variables_, grads)):
            if self.weight_decay != 1.:
                w.assign(w * self.weight_decay)
            m1, m2 = self.m1[i], self.m2[i]
            c = scalars(w.dtype)
            if self.kind == 'adamax':
                update = tf.raw_ops.ResourceApplyAdaMax(
                    var=w.handle, m=m1.handle, v=m2.handle, beta1_power=c['beta1_power'], lr=c['lr_adamax'],
                    beta1=c['beta1'], beta2=c['beta2'], epsilon=c['epsilon'], grad=g)
            elif self.kind == 'adam' or squared_grads is None:
                update = tf.raw_ops.ResourceApplyAdam(
                    var=w.handle, m=m1.handle, v=m2.handle, beta1_power=c['beta1_power'],
                    beta2_power=c['beta2_power'], lr=c['lr'], beta1=c['beta1'], beta2=c['beta2'],
                    epsilon=c['epsilon'], grad=g)
            else:
                m1.assign(self.beta1 * m1 + (1. - self.beta1) * g)
                m2.assign(self.beta2 * m2 + (1. - self.beta2) * squared_grads[i])
                update = w.assign_sub(c['alpha'] * m1 / (tf.sqrt(m2) + EPSILON))
            with tf.control_dependencies([update]):
                self.update_average(i)
        t.assign_add(1.)


class DynamicLossScale(tf.Module):
    """Dynamic loss scaling for float16 networks (as tf.keras's LossScaleOptimizer).

    The loss is multiplied by `scale` before differentiation, so that small
    gradients survive the float16 parts of the backward pass, and the
    gradients are divided by it afterwards.  A step whose (process-averaged)
    gradients are not all finite is skipped and halves the scale; after
    `growth_interval` finite steps in a row it doubles.  Both counters are
    saved with the checkpoint.  The scale never falls below 1.

    Args:
      initial_scale: the first scale, >= 1.
      growth_interval: the number of finite steps in a row after which the scale doubles, >= 1.
      name: the module's name.
    """

    def __init__(self, initial_scale: float = 2. ** 15, growth_interval: int = 2000, name: str = 'loss_scale'):
        super().__init__(name=name)
        if initial_scale < 1. or growth_interval < 1:
            raise ValueError(f'initial_scale must be >= 1 and growth_interval >= 1, got {initial_scale}, '
                             f'{growth_interval}')
        self.growth_interval = int(growth_interval)
        self.scale = tf.Variable(float(initial_scale), trainable=False, name='scale')
        self.finite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name='finite_steps')

    @staticmethod
    def all_finite(grads):
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

    def update(self, finite):
        """After a step: grow or shrink the scale given whether its gradients were finite."""
        grow = tf.logical_and(finite, self.finite_steps + 1 >= self.growth_interval)
        new_scale = tf.where(finite, tf.where(grow, self.scale * 2., self.scale), tf.maximum(self.scale / 2., 1.))
        self.scale.assign(new_scale)
        self.finite_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), self.finite_steps + 1,
                                          tf.zeros([], tf.int64)))
