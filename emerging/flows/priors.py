"""Gaussian priors: the diagonal Gaussian of the original, the top prior and the class head.

* `gaussian_log_prob(x, mean, logsd)`: sum over H, W, C of log N(x; mean, exp(logsd)^2).
* `TopPrior`: h = 0 of shape [N, H, W, 2C]; with `learnprior` h = conv_zeros(h)
  (`prior/p`: the input is zeros but the edge-bias channel lets the learned
  prior vary near the border); with `ycond` h += linear_zeros(onehot(y))
  (`prior/y_emb`) broadcast over H, W; mean = h[..., :C], logsd = h[..., C:].
* `Classifier`: logits = linear_zeros(mean_{H, W}(z_top)) (`classifier`).
"""
import numpy as np
import tensorflow as tf
import tf_keras

from emerging.flows.nn import Conv2dZeros, LinearZeros

LOG_2PI = float(np.log(2. * np.pi))


def gaussian_log_prob(x, mean, logsd):
    return tf.reduce_sum(-0.5 * (LOG_2PI + 2. * logsd + tf.square(x - mean) * tf.exp(-2. * logsd)),
                         axis=[1, 2, 3])


class TopPrior(tf_keras.layers.Layer):
    """Mean and log-std of the top latent [N, H, W, C], optionally learned and class-conditional."""

    def __init__(self, top_shape, learnprior=False, ycond=False, n_y=1, name='prior', **kwargs):
        super().__init__(name=name, **kwargs)
        self.top_shape = tuple(int(d) for d in top_shape)
        self.learnprior, self.ycond, self.n_y = bool(learnprior), bool(ycond), int(n_y)
        channels = self.top_shape[-1]
        self.p = Conv2dZeros(2 * channels, 3, name='p') if learnprior else None
        self.y_emb = LinearZeros(2 * channels, name='y_emb') if ycond else None

    def build(self, input_shape=None):
        height, width, channels = self.top_shape
        if self.p is not None:
            self.p.build([None, height, width, 2 * channels])
        if self.y_emb is not None:
            self.y_emb.build([None, self.n_y])
        self.built = True

    def call(self, y_onehot):
        height, width, channels = self.top_shape
        batch_size = tf.shape(y_onehot)[0]
        if self.p is not None:
            h = self.p.of_zeros(batch_size, height, width)
        else:
            h = tf.zeros([batch_size, height, width, 2 * channels])
        if self.y_emb is not None:
            h += tf.reshape(self.y_emb(y_onehot), [-1, 1, 1, 2 * channels])
        return tf.split(h, 2, axis=-1)


class Classifier(tf_keras.layers.Layer):
    """Class logits from the spatial mean of the top latent."""

    def __init__(self, n_channels, n_y, name='classifier', **kwargs):
        super().__init__(name=name, **kwargs)
        self.n_channels = int(n_channels)
        self.linear = LinearZeros(n_y, name='linear')

    def build(self, input_shape=None):
        self.linear.build([None, self.n_channels])
        self.built = True

    def call(self, z):
        return self.linear(tf.reduce_mean(z, axis=[1, 2]))
