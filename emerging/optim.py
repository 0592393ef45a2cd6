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
import tensorflow as tf

EPSILON = 1e-8


class Optimizer(tf.Module):
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
        self.step = tf.Variable(1., trainable=False, name='adam_t')
        self.m1 = [tf.Variable(tf.zeros_like(v), trainable=False, name='m1') for v in self.variables_]
        self.m2 = [tf.Variable(tf.zeros_like(v), trainable=False, name='m2') for v in self.variables_]
        self.polyak_biased = [tf.Variable(tf.zeros_like(v), trainable=False, name='ema_biased')
                              for v in self.variables_]
        self.polyak = [tf.Variable(v, trainable=False, name='ema') for v in self.variables_]
        self.polyak_step = tf.Variable(0., trainable=False, name='ema_step')

    def apply(self, grads, lr, squared_grads=None):
        """One update with the process-averaged `grads`; for adam2, `squared_grads`
        are the process averages of g^2 (computed by the caller around its allreduce)."""
        t = self.step
        alpha = lr * tf.sqrt(1. - tf.pow(self.beta2, t)) / (1. - tf.pow(self.beta1, t))
        if squared_grads is None:
            squared_grads = [None] * len(grads)
        for w, g, g2, m1, m2 in zip(self.variables_, grads, squared_grads, self.m1, self.m2):
            g = tf.convert_to_tensor(g)
            step_size = tf.cast(alpha, w.dtype)
            if self.beta1 > 0:
                m1.assign(self.beta1 * m1 + (1. - self.beta1) * g)
                moment = m1
            else:
                moment = g
            if self.kind == 'adamax':
                m2.assign(tf.maximum(self.beta2 * m2, tf.abs(g)))
                delta = moment / (m2 + EPSILON)
            else:
                square = tf.square(g) if self.kind == 'adam' or g2 is None else g2
                m2.assign(self.beta2 * m2 + (1. - self.beta2) * square)
                delta = moment / (tf.sqrt(m2) + EPSILON)
            w.assign(self.weight_decay * w - step_size * delta)
        t.assign_add(1.)
        self._update_polyak()

    def _update_polyak(self):
        self.polyak_step.assign_add(1.)
        debias = 1. - tf.pow(self.beta2, self.polyak_step)
        for w, biased, average in zip(self.variables_, self.polyak_biased, self.polyak):
            biased.assign(self.beta2 * biased + (1. - self.beta2) * w)
            average.assign(biased / tf.cast(debias, w.dtype))

    def swap_polyak(self):
        """Exchange the weights and their Polyak averages (call again to swap back)."""
        for w, average in zip(self.variables_, self.polyak):
            current = tf.identity(w)
            w.assign(average)
            average.assign(current)
