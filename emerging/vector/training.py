"""Training pieces of the density benchmarks: one clipped train step and the plateau schedule.

`clipped_train_step` is the step both benchmarks run (toy and tabular: the
learning rate assigned, gradients clipped to a global norm); `Plateau` is
PyTorch's ReduceLROnPlateau as the public BNAF code uses it.  The tabular
benchmark's Polyak average is `emerging.averaging.PolyakAverage`, the one the
image flows' optimiser keeps.
"""
from __future__ import annotations

import math

import tensorflow as tf


def clipped_train_step(loss_fn, variables, optimizer, clip_norm, after_update=None):
    """A compiled step `(x, lr) -> loss`: the learning rate assigned, the gradients of `loss_fn(x)` clipped to global
    norm `clip_norm` and applied by `optimizer`, then `after_update()` (e.g. a Polyak update) if given.

    Args:
      loss_fn: x -> the scalar loss to minimise.
      variables: the variables to train.
      optimizer: a tf_keras optimizer whose `learning_rate` is a variable (assigned at every step).
      clip_norm: the global gradient norm to clip to.
      after_update: a function of no arguments run after each update, or None.

    Returns:
      step(x, lr), a `tf.function` (retraced as little as possible) that runs one update and returns the loss
      before it.
    """

    @tf.function(reduce_retracing=True, autograph=False)
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
    code's early stopping).  `step(loss)` returns the learning rate to use next.

    Args:
      lr: the initial learning rate.
      decay: the factor of a reduction, in (0, 1).
      patience: the steps without a new best tolerated before a reduction.
      minimum: the learning rate's floor.
      cooldown: the steps after a reduction that do not count towards `patience`.
      threshold: how far below the best a loss must be to be a new best.
    """

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
