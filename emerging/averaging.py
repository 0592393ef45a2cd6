"""Polyak averaging: a zero-debiased exponential moving average of weights.

With decay d, after n updates of the weights w:

    biased <- d biased + (1 - d) w          (every update; biased starts at 0)
    average = biased / (1 - d^n)            (the weights themselves while n = 0)

The image-flow optimiser keeps one (the original's Polyak average, which
`--polyak_eval` and `load_run(weights='polyak')` use), and the tabular
benchmarks validate and test with one (the public BNAF code's).  The update
is TensorFlow's fused `ResourceApplyGradientDescent` (biased -= (1 - d)
(biased - w)) per weight, so it adds no model-sized temporaries to a step.
"""
from typing import Sequence

import numpy as np
import tensorflow as tf

# a step count at which d^n underflows to 0 in float32 for every decay d that float32 tells from 1
UNDEBIASED_STEPS = 1e12

class PolyakAverage(tf.Module):
    """The average of `variables`, saved with a checkpoint and swappable in for evaluation.

    Args:
      variables: the weights to average (tf.Variables).
      decay: d in [0, 1).
      name: the module's name.

    Checkpointed state: `polyak_biased` (one slot per weight, in the order of
    `variables`) and `polyak_step` (n).
    """

    def __init__(self, variables: Sequence[tf.Variable], decay: float, name: str = 'polyak'):
        super().__init__(name=name)
        if not 0. <= decay < 1.:
            raise ValueError(f'the Polyak decay must be in [0, 1), got {decay}')
        self.polyak_decay = float(decay)
        self.variables_ = list(variables)
        self.polyak_biased = [tf.Variable(tf.zeros_like(v), trainable=False, name=f'ema_biased_{i}')
                              for i, v in enumerate(self.variables_)]
        self.polyak_step = tf.Variable(0., trainable=False, name='ema_step')
        self._unswapped = None  # the weights while the averages are swapped in

    def update(self):
        """One update of every average from the current weights."""
        self.polyak_step.assign_add(1.)
        for i in range(len(self.variables_)):
            self.update_average(i)

    def update_average(self, i: int):
        """biased_i -= (1 - d) (biased_i - w_i), in place (the step counter is the caller's).

        Args:
          i: the weight's index in `variables`.

        Returns:
          The update op.
        """
        biased, weight = self.polyak_biased[i], self.variables_[i]
        rate = tf.constant(1. - self.polyak_decay, biased.dtype)
        return tf.raw_ops.ResourceApplyGradientDescent(var=biased.handle, alpha=rate, delta=biased - weight)

    def polyak_values(self) -> list:
        """The average of every weight, in the order of `variables` (the weights before any update)."""
        step = self.polyak_step
        debias = 1. - tf.pow(self.polyak_decay, step)
        return [tf.where(step > 0., tf.math.divide_no_nan(biased, tf.cast(debias, biased.dtype)), weight)
                for biased, weight in zip(self.polyak_biased, self.variables_)]

    def assign_averages(self, values: Sequence):
        """Make `values` the averages, to be swapped in as they are (another implementation's averages that it
        does not debias, the public BNAF code's): the step count is set where 1 - d^n is exactly 1.

        Args:
          values: one array per weight, in the order of `variables`.
        """
        for biased, value in zip(self.polyak_biased, values):
            biased.assign(value)
        self.polyak_step.assign(UNDEBIASED_STEPS)

    def swap_polyak(self):
        """Put the averages in place of the weights; the next call puts the weights back."""
        if self._unswapped is None:
            self._unswapped = [np.array(w.numpy()) for w in self.variables_]
            for w, value in zip(self.variables_, self.polyak_values()):
                w.assign(value)
        else:
            for w, value in zip(self.variables_, self._unswapped):
                w.assign(value)
            self._unswapped = None
