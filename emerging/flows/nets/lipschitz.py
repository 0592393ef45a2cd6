"""Lipschitz-constrained pieces of a residual block's network g (Residual Flows, Chen et al. 2019).

Spectral normalisation with a soft bound (Behrmann et al. 2019): a weight W
whose operator norm sigma(W) exceeds `coeff` is used as W * coeff / sigma, so
Lip(layer) <= coeff < 1:

    W_sn = W / max(1, sigma / coeff),      sigma = u^T W v

u and v are the leading singular vectors of the layer's *operator* (for a
k x k convolution: the linear map of the whole [H, W, C_in] input, not the
reshaped kernel), estimated by power iteration

    v <- normalise(W^T u),  u <- normalise(W v)

from the vectors of the previous call (non-trainable variables saved with the
checkpoint), until both move less than atol + rtol * max(vector) in RMS
(`tol`, atol = rtol), or for `n_iterations` when that is set.  The iteration
runs when the weights are read with `update=True` (every training step, and
`converge()` before training); evaluation reads the stored vectors, so a
trained model is a fixed function.  sigma is differentiated through W with
u and v held fixed.

Activations, each with the derivative the residual block's vector-Jacobian
products use (all 1-Lipschitz):

* lipswish: x * sigmoid(beta x) / 1.1, beta = softplus(b), b learned, initial 0.5
  (the public code's `--act swish`; "swish" selects it too);
* elu; softplus.

Shapes: convolutions take [N, H, W, C_in] -> [N, H, W, C_out] ('SAME'
padding, stride 1); dense layers [N, D_in] -> [N, D_out].
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras

from emerging.choices import LIPSCHITZ_ACTIVATIONS, described
from emerging.flows.base import pixelwise_matmul

MAX_POWER_ITERATIONS = 20000


class Activation(tf_keras.layers.Layer):
    """A 1-Lipschitz activation with its derivative (`derivative(x)`, elementwise)."""

    def __init__(self, kind: str, name: str = 'activation', **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in LIPSCHITZ_ACTIVATIONS:
            raise ValueError(f'unknown activation {kind!r}; allowed: {described(LIPSCHITZ_ACTIVATIONS)}')
        self.kind = 'lipswish' if kind == 'swish' else kind
        self.beta = None
        if self.kind == 'lipswish':
            self.beta = self.add_weight(name='beta', shape=[], initializer=tf_keras.initializers.Constant(0.5),
                                        trainable=True)

    @property
    def n_params(self) -> int:
        return 0 if self.beta is None else 1

    def params(self) -> list:
        """The tensors `apply` and `derivative` read (the learned beta of lipswish)."""
        return [] if self.beta is None else [tf.identity(self.beta)]

    def apply(self, x, params):
        if self.kind == 'lipswish':
            return x * tf.sigmoid(x * tf.nn.softplus(params[0])) / 1.1
        if self.kind == 'elu':
            return tf.nn.elu(x)
        return tf.nn.softplus(x)

    def derivative(self, x, params):
        if self.kind == 'lipswish':
            beta = tf.nn.softplus(params[0])
            s = tf.sigmoid(beta * x)
            return (s + beta * x * s * (1. - s)) / 1.1
        if self.kind == 'elu':
            return tf.where(x > 0., tf.ones_like(x), tf.exp(tf.minimum(x, 0.)))
        return tf.sigmoid(x)


def _normalise(t):
    return t / tf.maximum(tf.norm(t), 1e-12)


class SpectralNormLinear(tf_keras.layers.Layer):
    """Base of the spectrally normalised convolution and dense layers.

    Subclasses create `kernel`, `bias`, `u`, `v` in `build` and define the
    operator (`_operator`, `_operator_transpose`, without bias) on the
    shapes of u and v."""

    def __init__(self, units: int, coeff: float = 0.98, n_iterations: int | None = None, tol: float = 1e-3,
                 rng: np.random.Generator | None = None, name: str = 'sn', **kwargs):
        super().__init__(name=name, **kwargs)
        if units < 1:
            raise ValueError(f'{name}: units must be positive, got {units}')
        if not 0. < coeff:
            raise ValueError(f'{name}: coeff must be positive, got {coeff}')
        if n_iterations is not None and n_iterations < 1:
            raise ValueError(f'{name}: n_iterations must be positive or None, got {n_iterations}')
        if n_iterations is None and not tol > 0.:
            raise ValueError(f'{name}: needs n_iterations or a positive tol, got tol {tol}')
        self.units, self.coeff, self.n_iterations, self.tol = int(units), float(coeff), n_iterations, float(tol)
        self._rng = rng if rng is not None else np.random.default_rng()

    def _uniform(self, shape, fan_in):
        # PyTorch's default init (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        bound = 1. / math.sqrt(fan_in)
        return tf_keras.initializers.Constant(self._rng.uniform(-bound, bound, shape).astype(np.float32))

    def _unit_vector(self, shape):
        value = self._rng.standard_normal(shape).astype(np.float32)
        return tf_keras.initializers.Constant(value / np.linalg.norm(value))

    def _power_iteration(self, kernel, u, v, max_iterations, use_tol):
        def body(i, u, v, _):
            v_new = _normalise(self._operator_transpose(u, kernel))
            u_new = _normalise(self._operator(v_new, kernel))
            size_u, size_v = tf.cast(tf.size(u), tf.float32), tf.cast(tf.size(v), tf.float32)
            err_u = tf.norm(u_new - u) / tf.sqrt(size_u)
            err_v = tf.norm(v_new - v) / tf.sqrt(size_v)
            done = tf.logical_and(err_u < self.tol + self.tol * tf.reduce_max(u_new),
                                  err_v < self.tol + self.tol * tf.reduce_max(v_new))
            return i + 1, u_new, v_new, tf.logical_and(done, use_tol)

        _, u, v, _ = tf.while_loop(lambda i, u, v, done: tf.logical_and(i < max_iterations, tf.logical_not(done)),
                                   body, (tf.constant(0), u, v, tf.constant(False)))
        return u, v

    def update_vectors(self, max_iterations: int | None = None):
        """Power iterations from the stored u, v (until `tol`, or `n_iterations` of them)."""
        kernel = tf.stop_gradient(tf.convert_to_tensor(self.kernel))
        if self.n_iterations is not None and max_iterations is None:
            u, v = self._power_iteration(kernel, self.u, self.v, self.n_iterations, False)
        else:
            u, v = self._power_iteration(kernel, self.u, self.v, max_iterations or MAX_POWER_ITERATIONS, True)
        self.u.assign(u)
        self.v.assign(v)

    def sigma(self, kernel=None):
        """u^T W v: the estimate of the operator norm (differentiable in W)."""
        kernel = self.kernel if kernel is None else kernel
        return tf.reduce_sum(self.u * self._operator(self.v, kernel))

    def normalised_kernel(self, update: bool = False) -> tf.Tensor:
        """The kernel scaled to operator norm <= coeff; `update` runs the power iteration first."""
        if update:
            self.update_vectors()
        kernel = tf.convert_to_tensor(self.kernel)
        return kernel / tf.maximum(1., self.sigma(kernel) / self.coeff)

    def params(self, update: bool = False) -> list:
        """[normalised kernel, bias]: the tensors `apply` reads."""
        return [self.normalised_kernel(update), tf.identity(self.bias)]


class SpectralNormConv2D(SpectralNormLinear):
    """k x k convolution [N, H, W, C_in] -> [N, H, W, units], 'SAME' padding, spectrally normalised
    over the operator on [H, W, C_in] (u: [1, H, W, units], v: [1, H, W, C_in]).  A 1 x 1
    convolution is normalised as its [C_in, units] matrix (the same operator norm)."""

    def __init__(self, units, kernel_size: int = 3, name='sn_conv', **kwargs):
        super().__init__(units, name=name, **kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'{name}: kernel_size must be odd and positive (SAME padding), got {kernel_size}')
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        _, height, width, channels = tf.TensorShape(input_shape).as_list()
        k = self.kernel_size
        fan_in = channels * k * k
        self.kernel = self.add_weight(name='kernel', shape=[k, k, channels, self.units],
                                      initializer=self._uniform([k, k, channels, self.units], fan_in))
        self.bias = self.add_weight(name='bias', shape=[self.units], initializer=self._uniform([self.units], fan_in))
        u_shape, v_shape = ([self.units], [channels]) if k == 1 else ([1, height, width, self.units],
                                                                       [1, height, width, channels])
        self.u = self.add_weight(name='u', shape=u_shape, initializer=self._unit_vector(u_shape), trainable=False)
        self.v = self.add_weight(name='v', shape=v_shape, initializer=self._unit_vector(v_shape), trainable=False)
        self.built = True

    def _operator(self, v, kernel):
        if self.kernel_size == 1:
            return tf.linalg.matvec(kernel[0, 0], v, transpose_a=True)
        return tf.nn.conv2d(v, kernel, 1, 'SAME')

    def _operator_transpose(self, u, kernel):
        if self.kernel_size == 1:
            return tf.linalg.matvec(kernel[0, 0], u)
        return tf.nn.conv2d_transpose(u, kernel, tf.shape(self.v), 1, 'SAME')

    def apply(self, x, params):
        kernel, bias = params
        if self.kernel_size == 1:
            return pixelwise_matmul(x, kernel[0, 0], bias)
        return tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, 'SAME'), bias)

    def apply_transpose(self, u, params):
        """The transposed linear map (no bias): the vector-Jacobian product of `apply`."""
        kernel = params[0]
        if self.kernel_size == 1:
            return pixelwise_matmul(u, tf.transpose(kernel[0, 0]))
        shape = tf.concat([tf.shape(u)[:-1], [kernel.shape[2]]], axis=0)
        return tf.nn.conv2d_transpose(u, kernel, shape, 1, 'SAME')


class SpectralNormDense(SpectralNormLinear):
    """Dense layer [N, D_in] -> [N, units], spectrally normalised (u: [units], v: [D_in])."""

    def __init__(self, units, name='sn_dense', **kwargs):
        super().__init__(units, name=name, **kwargs)

    def build(self, input_shape):
        d_in = int(tf.TensorShape(input_shape)[-1])
        self.kernel = self.add_weight(name='kernel', shape=[d_in, self.units],
                                      initializer=self._uniform([d_in, self.units], d_in))
        self.bias = self.add_weight(name='bias', shape=[self.units], initializer=self._uniform([self.units], d_in))
        self.u = self.add_weight(name='u', shape=[self.units], initializer=self._unit_vector([self.units]),
                                 trainable=False)
        self.v = self.add_weight(name='v', shape=[d_in], initializer=self._unit_vector([d_in]), trainable=False)
        self.built = True

    def _operator(self, v, kernel):
        return tf.linalg.matvec(kernel, v, transpose_a=True)

    def _operator_transpose(self, u, kernel):
        return tf.linalg.matvec(kernel, u)

    def apply(self, x, params):
        kernel, bias = params
        return tf.nn.bias_add(tf.matmul(x, kernel), bias)

    def apply_transpose(self, u, params):
        return tf.matmul(u, params[0], transpose_b=True)
