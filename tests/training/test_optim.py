import numpy as np
import pytest
import tensorflow as tf

from emerging.training.optim import Optimizer


def reference(kind, w, grads, lr, beta1, beta2, wd):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        alpha = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        m = beta1 * m + (1 - beta1) * g
        if kind == 'adamax':
            v = np.maximum(beta2 * v, np.abs(g))
            w = wd * w - alpha * m / (v + 1e-8)
        else:
            v = beta2 * v + (1 - beta2) * g * g
            w = wd * w - alpha * m / (np.sqrt(v) + 1e-8)
    return w


@pytest.mark.parametrize('compiled', [False, True])
@pytest.mark.parametrize('kind', ['adamax', 'adam', 'adam2'])
def test_updates_match_the_original_formulas(kind, compiled):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=[3, 2])
    grads = [rng.normal(size=[3, 2]) for _ in range(4)]
    var = tf.Variable(w0, dtype=tf.float64)
    opt = Optimizer([var], kind, beta1=0.9, beta2=0.99, weight_decay=0.999)

    def apply(g, lr):  # as the train step runs it: inside tf.function, lr a float32 tensor
        opt.apply([g], lr, [tf.square(g)] if kind == 'adam2' else None)

    apply = tf.function(apply) if compiled else apply
    for g in grads:
        apply(tf.constant(g), tf.constant(0.01))
    expected = reference('adamax' if kind == 'adamax' else 'adam', w0, grads, 0.01, 0.9, 0.99, 0.999)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-6)  # the step size is float32


def test_polyak_average_is_zero_debiased_and_swappable():
    var = tf.Variable([1.], dtype=tf.float64)
    opt = Optimizer([var], 'adamax', beta1=0.9, beta2=0.5)
    history = []
    for g in (1., -2., 0.5):
        opt.apply([tf.constant([g], tf.float64)], 0.1)
        history.append(var.numpy()[0])
    weights = np.array([0.5 ** 2, 0.5, 1.]) * 0.5
    expected = (weights * np.array(history)).sum() / (1 - 0.5 ** 3)
    np.testing.assert_allclose(opt.polyak_values()[0].numpy(), [expected], rtol=1e-12)
    current = var.numpy().copy()
    opt.swap_polyak()
    np.testing.assert_allclose(var.numpy(), [expected])
    opt.swap_polyak()
    np.testing.assert_allclose(var.numpy(), current)


def test_bad_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        Optimizer([tf.Variable(1.)], 'sgd')


def test_many_weights_of_mixed_shapes_and_dtypes_each_follow_the_formulas():
    """Every weight (fused kernels for float32 and float64, decay on top) gets its own update."""
    rng = np.random.default_rng(1)
    shapes = [([3, 2], tf.float32), ([4], tf.float64), ([1, 1, 2, 5], tf.float32), ([], tf.float32)]
    initial = [rng.normal(size=shape) for shape, _ in shapes]
    variables = [tf.Variable(w, dtype=dtype) for w, (_, dtype) in zip(initial, shapes)]
    grads = [[rng.normal(size=shape) for shape, _ in shapes] for _ in range(3)]
    opt = Optimizer(variables, 'adamax', beta1=0.9, beta2=0.95, weight_decay=0.99)
    for step in grads:
        opt.apply([tf.constant(g, v.dtype) for g, v in zip(step, variables)], 0.01)
    for i, variable in enumerate(variables):
        expected = reference('adamax', initial[i], [step[i] for step in grads], 0.01, 0.9, 0.95, 0.99)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=2e-5, atol=1e-6)
        assert opt.polyak_values()[i].shape == variable.shape
