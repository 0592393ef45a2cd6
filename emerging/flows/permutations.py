"""Fixed channel permutations (flow_permutation 0 and 1).

Data -> latent on [N, H, W, C]:

* reverse:  z[..., c] = x[..., C - 1 - c]
* shuffle:  z[..., c] = x[..., indices[c]], a random permutation drawn once
  when the layer is built and stored with the model (`shuffle/indices`,
  `shuffle/indices_inverse`) so that a restored model permutes identically.

Both are volume preserving: log|det| = 0.
"""
import numpy as np
import tensorflow as tf

from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc


class ChannelPermuteBijector(FlowBijector):
    """inverse (data -> latent): gather channels by `indices`; forward: by `indices_inverse`.

    Volume preserving: both log-dets are a scalar 0.

    Args:
      indices: int32 [C], a permutation of range(C): z[..., c] = x[..., indices[c]].
      indices_inverse: int32 [C], its inverse permutation (argsort of `indices`).
      name: the bijector's name.
    """

    def __init__(self, indices, indices_inverse, name='channel_permute'):
        parameters = dict(locals())
        self._indices = indices
        self._indices_inverse = indices_inverse
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _inverse(self, y):
        return tf.gather(y, self._indices, axis=-1)

    def _forward(self, x):
        return tf.gather(x, self._indices_inverse, axis=-1)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], dtype=y.dtype)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], dtype=x.dtype)


class ReverseBijector(FlowBijector):
    """Channel reversal; its own inverse.  Volume preserving: both log-dets are a scalar 0.

    Args:
      name: the bijector's name.
    """

    def __init__(self, name='reverse'):
        parameters = dict(locals())
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _inverse(self, y):
        return tf.reverse(y, axis=[-1])

    def _forward(self, x):
        return tf.reverse(x, axis=[-1])

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], dtype=y.dtype)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], dtype=x.dtype)


class Reverse(FlowLayer):
    """Keras layer (no weights) for `ReverseBijector`: z[..., c] = x[..., C - 1 - c] on [N, H, W, C].

    Args:
      name: the layer's name.
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, name='reverse', **kwargs):
        super().__init__(name=name, **kwargs)

    def build(self, input_shape):
        check_nhwc(self.name, input_shape)
        self.built = True

    def make_bijector(self):
        return ReverseBijector(name=self.name)


class Shuffle(FlowLayer):
    """Random channel shuffle drawn from `rng` (numpy Generator) at build time.

    The permutation and its inverse are stored as the non-trainable int32 weights `shuffle/indices` and
    `shuffle/indices_inverse` [C], so a restored model permutes identically.

    Args:
      rng: the numpy Generator the permutation is drawn from (a fresh one when None).
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, rng=None, name='shuffle', **kwargs):
        super().__init__(name=name, **kwargs)
        self._rng = rng if rng is not None else np.random.default_rng()

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape)[-1]
        perm = self._rng.permutation(channels).astype(np.int32)
        self.indices = self.add_weight(name='indices', shape=[channels], dtype=tf.int32,
                                       initializer=tf.constant_initializer(perm), trainable=False)
        self.indices_inverse = self.add_weight(
            name='indices_inverse', shape=[channels], dtype=tf.int32,
            initializer=tf.constant_initializer(np.argsort(perm).astype(np.int32)), trainable=False)
        self.built = True

    def make_bijector(self):
        return ChannelPermuteBijector(self.indices, self.indices_inverse, name=self.name)
