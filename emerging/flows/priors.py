"""Diagonal Gaussian priors as standardising bijectors.

A latent z with prior N(mean, exp(logsd)^2) enters the model as the
standard-normal eps of

    eps = (z - mean) / exp(logsd),   log|det d eps / d z| = -sum logsd,

so that log N(z; mean, exp(logsd)) = log N(eps; 0, 1) - sum logsd: the model
is a bijection onto independent standard normals (as `tfb.Glow`), and
sampling with temperature t draws eps ~ N(0, t^2) and maps it to z = mean + exp(logsd) eps.
`standardize` / `unstandardize` are that map and its inverse; the split
priors (split.py) and the top prior use them.

* `TopPrior` (`prior`): on the top latent [N, H, W, C]: h = 0 of shape
  [N, H, W, 2C]; with `learnprior` h = conv_zeros(h) (`prior/p`: the input is
  zeros but the edge-bias channel lets the learned prior vary near the
  border); with `ycond` h += linear_zeros(onehot(labels)) (`prior/y_emb`)
  broadcast over H, W; mean = h[..., :C], logsd = h[..., C:].  It is the only
  layer that reads the `labels` conditioning input (int32 [N]).
"""
import tensorflow as tf

from emerging.flows.base import FlowLayer, JointFlowBijector, check_nhwc, sum_event
from emerging.flows.nets.conv import Conv2dZeros, LinearZeros


def standardize(z, mean, logsd):
    """(eps, log|det d eps / d z|) for z ~ N(mean, exp(logsd)^2); per example.

    Args:
      z: the latent [N, H, W, C].
      mean: the prior's mean, broadcasting against z.
      logsd: the prior's log standard deviation, broadcasting against z.

    Returns:
      (eps, log_det): eps = (z - mean) / exp(logsd) of z's shape, and log_det = -sum_{H, W, C} logsd [N].
    """
    return (z - mean) * tf.exp(-logsd), -sum_event(logsd + tf.zeros_like(z))


def unstandardize(eps, mean, logsd):
    """The inverse of `standardize`: (z, log|det dz / d eps|).

    Args:
      eps: the standardised latent [N, H, W, C].
      mean: the prior's mean, broadcasting against eps.
      logsd: the prior's log standard deviation, broadcasting against eps.

    Returns:
      (z, log_det): z = mean + exp(logsd) eps of eps's shape, and log_det = sum_{H, W, C} logsd [N].
    """
    return mean + tf.exp(logsd) * eps, sum_event(logsd + tf.zeros_like(eps))


class TopPriorBijector(JointFlowBijector):
    """inverse (data -> latent): z -> eps by the top prior's mean and log-std.

    The joint methods take the conditioning keyword `labels` (int32 [N], class-conditional priors only) and
    pass it to `prior_fn`; log-dets are per example [N].

    Args:
      prior_fn: (batch_size, labels) -> (mean, logsd), each [batch_size, H, W, C] (`TopPrior.mean_and_logsd`).
      name: the bijector's name.
    """

    def __init__(self, prior_fn, name='prior'):
        parameters = dict(locals())
        self._prior_fn = prior_fn
        super().__init__(parameters=parameters, name=name)

    def inverse_and_log_det(self, y, labels=None, **condition):
        return standardize(y, *self._prior_fn(tf.shape(y)[0], labels))

    def forward_and_log_det(self, x, labels=None, **condition):
        return unstandardize(x, *self._prior_fn(tf.shape(x)[0], labels))


class TopPrior(FlowLayer):
    """Keras layer owning `prior/p` (with `learnprior`) and `prior/y_emb` (with `ycond`).

    Without either the prior is N(0, 1) and the layer has no weights; see the module docstring for how mean
    and logsd are computed.

    Args:
      learnprior: learn the mean and log-std (`prior/p`: a zero-initialised conv of a zero input, so one
        value per channel that may vary near the border).
      ycond: class-conditional: add a learned embedding of the one-hot labels (`prior/y_emb`); the labels
        must then be passed.
      n_y: the number of classes (the one-hot size) with `ycond`.
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    def __init__(self, learnprior=False, ycond=False, n_y=1, name='prior', **kwargs):
        super().__init__(name=name, **kwargs)
        self.learnprior, self.ycond, self.n_y = bool(learnprior), bool(ycond), int(n_y)
        self.p = self.y_emb = None

    def build(self, input_shape):
        _, height, width, channels = check_nhwc(self.name, input_shape)
        self.top_shape = (height, width, channels)
        if self.learnprior:
            self.p = Conv2dZeros(2 * channels, 3, name='p')
            self.p.build([None, height, width, 2 * channels])
        if self.ycond:
            self.y_emb = LinearZeros(2 * channels, name='y_emb')
            self.y_emb.build([None, self.n_y])
        self.built = True

    def mean_and_logsd(self, batch_size, labels=None):
        """Mean and log-std of the top latent, each [batch, H, W, C]."""
        height, width, channels = self.top_shape
        if self.p is not None:
            h = self.p.of_zeros(batch_size, height, width)
        else:
            h = tf.zeros([batch_size, height, width, 2 * channels])
        if self.y_emb is not None:
            if labels is None:
                raise ValueError('this model is class-conditional (ycond): pass the class labels y')
            onehot = tf.one_hot(tf.cast(labels, tf.int32), self.n_y)
            h += tf.reshape(self.y_emb(onehot), [-1, 1, 1, 2 * channels])
        return tf.split(h, 2, axis=-1)

    def make_bijector(self):
        return TopPriorBijector(self.mean_and_logsd, name=self.name)
