"""Invertible 1x1 convolution (Glow, section 3.2) in three parametrisations.

Data -> latent, per pixel (row vector x of C channels): z = x W, so

    log|det dz/dx| = H * W * log|det W|.

* plain (`decomposition=''`): W (C x C) starts as a random orthogonal matrix;
  log|det W| and W^-1 are computed in float64 and cast back.
* PLU (`'PLU'` or `'LU'`): W = P L (U + diag(sign_s * exp(log_s))) from the LU
  decomposition of a random orthogonal matrix; P and sign_s are fixed, L is
  unit lower triangular, U strictly upper, log_s trainable; composed in
  float64; log|det W| = sum(log_s).
* QR (`'QR'`): W = Q R, Q = H_0 H_1 ... H_{C-1} with Householder reflections
  H_i = I - 2 v_i v_i^T / (v_i^T v_i), R = strictly-upper U + diag(S);
  log|det W| = sum(log|S|); W^-1 = R^-1 Q^T.

Variables keep the original names: `W`; `P, L, sign_S, log_S, U`; `S, U, v_0 .. v_{C-1}`.
"""
import numpy as np
import scipy.linalg
import tensorflow as tf

from emerging.choices import DECOMPOSITIONS, described
from emerging.flows.base import FlowBijector, FlowLayer, check_nhwc, pixelwise_matmul, spatial_size


def random_orthogonal(rng, n):
    """A random orthogonal matrix: Q of the QR decomposition of a Gaussian matrix."""
    return np.linalg.qr(rng.standard_normal((n, n)))[0]


class _Conv1x1Bijector(FlowBijector):
    """Shared maths: subclasses give the float64 matrix, its inverse and log|det|."""

    def _matrix64(self):
        raise NotImplementedError

    def _inverse_matrix64(self):
        return tf.linalg.inv(self._matrix64())

    def _log_abs_det64(self):
        # |det W| = prod |diag R| of W = QR; unlike slogdet, QR also compiles under XLA
        r = tf.linalg.qr(self._matrix64())[1]
        return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))

    def _inverse(self, y):
        return pixelwise_matmul(y, tf.cast(self._matrix64(), y.dtype))

    def _forward(self, x):
        return pixelwise_matmul(x, tf.cast(self._inverse_matrix64(), x.dtype))

    def _inverse_log_det_jacobian(self, y):
        return spatial_size(y) * tf.cast(self._log_abs_det64(), y.dtype)

    def _forward_log_det_jacobian(self, x):
        return -spatial_size(x) * tf.cast(self._log_abs_det64(), x.dtype)


class PlainConv1x1Bijector(_Conv1x1Bijector):
    """The 1x1 convolution with an unconstrained matrix: inverse (data -> latent) z = x W per pixel.

    log|det W| (by QR) and W^-1 are computed in float64; the log-det is H * W * log|det W| for the inverse,
    its negative for the forward (no dependence on the input).

    Args:
      weight: W [C, C], invertible.
      name: the bijector's name.
    """

    def __init__(self, weight, name='invconv'):
        parameters = dict(locals())
        self._weight = weight
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _matrix64(self):
        return tf.cast(self._weight, tf.float64)


class PLUConv1x1Bijector(_Conv1x1Bijector):
    """The 1x1 convolution with W = P L (U + diag(sign_s * exp(log_s))), composed in float64.

    log|det W| = sum(log_s); W^-1 = (U + diag)^-1 L^-1 P^T by triangular solves.  Only the strictly lower
    part of `lower` and the strictly upper part of `upper` are read.

    Args:
      p: P [C, C], a permutation matrix (fixed).
      lower: L [C, C]; the unit diagonal is implied.
      upper: U [C, C]; the diagonal comes from `sign_s` and `log_s`.
      sign_s: the signs (+1 or -1) of the diagonal [C] (fixed).
      log_s: the log-magnitudes of the diagonal [C].
      name: the bijector's name.
    """

    def __init__(self, p, lower, upper, sign_s, log_s, name='invconv'):
        parameters = dict(locals())
        self._p, self._lower, self._upper = p, lower, upper
        self._sign_s, self._log_s = sign_s, log_s
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _factors64(self):
        lower = tf.linalg.band_part(tf.cast(self._lower, tf.float64), -1, 0)
        lower = lower - tf.linalg.diag(tf.linalg.diag_part(lower)) + tf.eye(tf.shape(lower)[0], dtype=tf.float64)
        upper = tf.linalg.band_part(tf.cast(self._upper, tf.float64), 0, -1)
        upper = upper - tf.linalg.diag(tf.linalg.diag_part(upper))
        diag = tf.cast(self._sign_s, tf.float64) * tf.exp(tf.cast(self._log_s, tf.float64))
        return tf.cast(self._p, tf.float64), lower, upper + tf.linalg.diag(diag)

    def _matrix64(self):
        p, lower, upper = self._factors64()
        return p @ (lower @ upper)

    def _inverse_matrix64(self):
        p, lower, upper = self._factors64()
        eye = tf.eye(tf.shape(lower)[0], dtype=tf.float64)
        lower_inv = tf.linalg.triangular_solve(lower, eye, lower=True)
        upper_inv = tf.linalg.triangular_solve(upper, eye, lower=False)
        return upper_inv @ (lower_inv @ tf.transpose(p))  # P is a permutation: P^-1 = P^T

    def _log_abs_det64(self):
        return tf.reduce_sum(tf.cast(self._log_s, tf.float64))


class QRConv1x1Bijector(_Conv1x1Bijector):
    """The 1x1 convolution with W = Q R, Q a product of Householder reflections, composed in float64.

    Q = H_0 H_1 ... H_{C-1} with H_i = I - 2 v_i v_i^T / (v_i^T v_i), R = strictly-upper U + diag(S);
    log|det W| = sum(log|S|), W^-1 = R^-1 Q^T.

    Args:
      householder_vectors: the C vectors v_i, each [C] and non-zero.
      s: S, the diagonal of R [C], non-zero.
      upper: U [C, C]; only its strictly upper part is read.
      name: the bijector's name.
    """

    def __init__(self, householder_vectors, s, upper, name='invconv'):
        parameters = dict(locals())
        self._vectors = list(householder_vectors)
        self._s, self._upper = s, upper
        super().__init__(parameters=parameters, name=name, is_constant_jacobian=True)

    def _q64(self):
        n = len(self._vectors)
        q = tf.eye(n, dtype=tf.float64)
        for v in self._vectors:
            v = tf.cast(v, tf.float64)[:, tf.newaxis]
            q = q @ (tf.eye(n, dtype=tf.float64) - 2. * (v @ tf.transpose(v)) / tf.reduce_sum(v * v))
        return q

    def _r64(self):
        upper = tf.linalg.band_part(tf.cast(self._upper, tf.float64), 0, -1)
        upper = upper - tf.linalg.diag(tf.linalg.diag_part(upper))
        return upper + tf.linalg.diag(tf.cast(self._s, tf.float64))

    def _matrix64(self):
        return self._q64() @ self._r64()

    def _inverse_matrix64(self):
        r = self._r64()
        r_inv = tf.linalg.triangular_solve(r, tf.eye(tf.shape(r)[0], dtype=tf.float64), lower=False)
        return r_inv @ tf.transpose(self._q64())

    def _log_abs_det64(self):
        return tf.reduce_sum(tf.math.log(tf.abs(tf.cast(self._s, tf.float64))))


class InvertibleConv1x1(FlowLayer):
    """Keras layer for the 1x1 convolution; `decomposition` in '', 'PLU', 'LU', 'QR'.

    Every parametrisation starts at a random orthogonal W (QR: at Q of random Householder vectors and R = I);
    the variables are named as in the module docstring.

    Args:
      decomposition: '' (plain W), 'PLU' or its alias 'LU', or 'QR' (`emerging.choices.DECOMPOSITIONS`).
      rng: the numpy Generator of the initial weights (a fresh one when None).
      name: the layer's name (the scope of its weights).
      **kwargs: passed on to `tf_keras.layers.Layer`.
    """

    count_kind = '1x1'

    def __init__(self, decomposition='', rng=None, name='invconv', **kwargs):
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(f'unknown decomposition {decomposition!r}; allowed: {described(DECOMPOSITIONS)}')
        super().__init__(name=name, **kwargs)
        self.decomposition = decomposition
        self._rng = rng if rng is not None else np.random.default_rng()

    def _weight(self, name, value, trainable=True, dtype=tf.float32):
        value = np.asarray(value)
        return self.add_weight(name=name, shape=value.shape, dtype=dtype, trainable=trainable,
                               initializer=tf.constant_initializer(value))

    def build(self, input_shape):
        channels = check_nhwc(self.name, input_shape)[-1]
        if self.decomposition == '':
            self.w = self._weight('W', random_orthogonal(self._rng, channels))
        elif self.decomposition in ('PLU', 'LU'):
            p, lower, upper = scipy.linalg.lu(random_orthogonal(self._rng, channels))
            s = np.diag(upper)
            self.p = self._weight('P', p, trainable=False)
            self.lower = self._weight('L', lower)
            self.sign_s = self._weight('sign_S', np.sign(s), trainable=False)
            self.log_s = self._weight('log_S', np.log(np.abs(s)))
            self.upper = self._weight('U', np.triu(upper, k=1))
        else:
            self.s = self._weight('S', np.ones(channels))
            self.upper = self._weight('U', np.zeros((channels, channels)))
            self.householder = [self._weight(f'v_{i}', self._rng.standard_normal(channels))
                                for i in range(channels)]
        self.built = True

    def make_bijector(self):
        if self.decomposition == '':
            return PlainConv1x1Bijector(self.w, name=self.name)
        if self.decomposition in ('PLU', 'LU'):
            return PLUConv1x1Bijector(self.p, self.lower, self.upper, self.sign_s, self.log_s, name=self.name)
        return QRConv1x1Bijector(self.householder, self.s, self.upper, name=self.name)

    def parameter_count(self):
        channels = self.bijector._matrix64().shape[0]
        if self.decomposition in ('PLU', 'LU'):
            return channels * (channels - 1) + channels  # strict L, strict U, log_s
        if self.decomposition == 'QR':
            return channels * channels + channels * (channels - 1) // 2 + channels  # v_i, strict U, S
        return channels * channels
