"""The original's optimisers (Glow's optim.py) and Polyak averaging, as one trackable module.

With beta2 = 1 - 1 / (train_its * polyak_epochs), step t from 1,
alpha_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), for every weight w with gradient g:

* adamax: m = beta1 m + (1 - beta1) g;  u = max(beta2 u, |g|);      w = wd * w - alpha_t * m / (u + 1e-8)
* adam:   m as above;  v = beta2 v + (1 - beta2) g^2;                w = wd * w - alpha_t * m / (sqrt(v) + 1e-8)
* adam2:  like adam, but g^2 is averaged over processes (not the square of the averaged g)

Polyak: an exponential moving average of every trainable weight with decay
beta2, zero-debiased (biased <- beta2 biased + (1 - beta2) w; average = biased / (1 - beta2^n)),
saved with the checkpoint and swappable in for evaluation and sampling.
"""
import numpy as np
import tensorflow as tf

EPSILON = 1e-8


class Optimizer(tf.Module):
    """The state (m, u or v, Polyak) is kept as one flat vector per dtype: a training step
    then runs a few large elementwise ops instead of ~20 small ones per weight, which the
    profile of the train step showed costing ~20% of its op time (hundreds of weights)."""

    def __init__(self, variables, kind='adamax', beta1=0.9, beta2=0.999, weight_decay=1.,
                 square_allreduce=None, name='optimizer'):
        super().__init__(name=name)
        if kind not in ('adam', 'adamax', 'adam2'):
            raise ValueError(f'unknown optimizer {kind!r}; allowed: adam, adamax, adam2')
        if not 0. <= beta1 < 1. or not 0. <= beta2 < 1.:
            raise ValueError(f'beta1 and beta2 must be in [0, 1), got {beta1}, {beta2}')
        self.kind, self.beta1, self.beta2 = kind, float(beta1), float(beta2)
        self.weight_decay = float(weight_decay)
        self.square_allreduce = square_allreduce
        self.variables_ = list(variables)
        groups = {}
        for i, v in enumerate(self.variables_):
            groups.setdefault(v.dtype, []).append(i)
        self._groups = list(groups.values())
        self.step = tf.Variable(1., trainable=False, name='adam_t')
        self.m1, self.m2, self.polyak_biased, self.polyak = [], [], [], []
        for indices in self._groups:
            flat = self._concat_flat([self.variables_[i] for i in indices])
            self.m1.append(tf.Variable(tf.zeros_like(flat), trainable=False, name='m1'))
            self.m2.append(tf.Variable(tf.zeros_like(flat), trainable=False, name='m2'))
            self.polyak_biased.append(tf.Variable(tf.zeros_like(flat), trainable=False, name='ema_biased'))
            self.polyak.append(tf.Variable(flat, trainable=False, name='ema'))
        self.polyak_step = tf.Variable(0., trainable=False, name='ema_step')

    @staticmethod
    def _concat_flat(tensors):
        return tf.concat([tf.reshape(tf.convert_to_tensor(t), [-1]) for t in tensors], axis=0)

    def _unflatten(self, indices, flat):
        """The pieces of a group's flat vector, shaped like the group's weights."""
        variables = [self.variables_[i] for i in indices]
        pieces = tf.split(flat, [int(np.prod(v.shape)) for v in variables])
        return [tf.reshape(piece, v.shape) for piece, v in zip(pieces, variables)]

    def _assign(self, indices, flat):
        for i, value in zip(indices, self._unflatten(indices, flat)):
            self.variables_[i].assign(value)

    def apply(self, grads, lr, squared_grads=None):
        """One update with the process-averaged `grads`; for adam2, `squared_grads`
        are the process averages of g^2 (computed by the caller around its allreduce)."""
        t = self.step
        alpha = lr * tf.sqrt(1. - tf.pow(self.beta2, t)) / (1. - tf.pow(self.beta1, t))
        self.polyak_step.assign_add(1.)
        debias = 1. - tf.pow(self.beta2, self.polyak_step)
        for group, indices in enumerate(self._groups):
            w = self._concat_flat([self.variables_[i] for i in indices])
            g = self._concat_flat([grads[i] for i in indices])
            m1, m2 = self.m1[group], self.m2[group]
            if self.beta1 > 0:
                m1.assign(self.beta1 * m1 + (1. - self.beta1) * g)
                moment = m1
            else:
                moment = g
            if self.kind == 'adamax':
                m2.assign(tf.maximum(self.beta2 * m2, tf.abs(g)))
                delta = moment / (m2 + EPSILON)
            else:
                square = (tf.square(g) if self.kind == 'adam' or squared_grads is None
                          else self._concat_flat([squared_grads[i] for i in indices]))
                m2.assign(self.beta2 * m2 + (1. - self.beta2) * square)
                delta = moment / (tf.sqrt(m2) + EPSILON)
            w = self.weight_decay * w - tf.cast(alpha, w.dtype) * delta
            self._assign(indices, w)
            biased = self.polyak_biased[group]
            biased.assign(self.beta2 * biased + (1. - self.beta2) * w)
            self.polyak[group].assign(biased / tf.cast(debias, w.dtype))
        t.assign_add(1.)

    def polyak_values(self):
        """The Polyak average of every weight, in the order of `variables`."""
        values = [None] * len(self.variables_)
        for group, indices in enumerate(self._groups):
            for i, value in zip(indices, self._unflatten(indices, self.polyak[group])):
                values[i] = value
        return values

    def swap_polyak(self):
        """Exchange the weights and their Polyak averages (call again to swap back)."""
        for group, indices in enumerate(self._groups):
            current = self._concat_flat([self.variables_[i] for i in indices])
            self._assign(indices, self.polyak[group])
            self.polyak[group].assign(current)
