import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.emerging_conv import EmergingConv, EmergingConvBijector, sequential_emerging_inverse, square_ar_mask
from tests.flows.flow_checks import check_flow_layer


def make_layer(rng, shape, off_centre_scale):
    layer = EmergingConv(rng=rng)
    layer.build([None, *shape])
    for w in (layer.w1, layer.w2):
        w.assign_add(rng.normal(0., off_centre_scale, w.shape))
    layer.b.assign(rng.normal(0., 0.1, layer.b.shape))
    return layer


def test_masks():
    m1 = square_ar_mask(3)
    assert m1[0].sum() == 0 and m1[:, 0].sum() == 0
    np.testing.assert_array_equal(m1[1, 1], np.triu(np.ones([3, 3])))
    assert m1[2, 2].sum() == 9 and m1[1, 2].sum() == 9
    m2 = m1[::-1, ::-1, ::-1, ::-1]
    np.testing.assert_array_equal(m2[1, 1], np.tril(np.ones([3, 3])))


@pytest.mark.parametrize('shape', [(4, 4, 4), (3, 5, 2), (1, 4, 3)])
def test_emerging_contract(shape):
    rng = np.random.default_rng(0)
    layer = make_layer(rng, shape, 0.1)
    check_flow_layer(layer, [2, *shape], rng)


@pytest.mark.parametrize('scale', [0.02, 0.1, 0.3])
def test_inverse_equals_sequential_back_substitution(scale):
    rng = np.random.default_rng(int(scale * 100))
    shape = (5, 6, 4)
    layer = make_layer(rng, shape, scale)
    z = rng.normal(size=[3, *shape]).astype(np.float32)
    x, _ = layer.reverse(tf.constant(z), tf.zeros([3]))
    k1 = (layer.w1.numpy() * square_ar_mask(4)).astype(np.float64)
    k2 = (layer.w2.numpy() * square_ar_mask(4)[::-1, ::-1, ::-1, ::-1]).astype(np.float64)
    reference = sequential_emerging_inverse(z, k1, k2, layer.b.numpy())
    scale_of_solution = max(1., np.abs(reference).max())
    np.testing.assert_allclose(x.numpy(), reference, atol=1e-4 * scale_of_solution)


def test_forward_is_the_masked_3x3_convolutions():
    rng = np.random.default_rng(5)
    layer = make_layer(rng, (4, 4, 3), 0.2)
    x = tf.constant(rng.normal(size=[2, 4, 4, 3]), tf.float32)
    z, _ = layer.forward(x, tf.zeros([2]))
    k1 = layer.w1 * square_ar_mask(3)
    k2 = layer.w2 * square_ar_mask(3)[::-1, ::-1, ::-1, ::-1].copy()
    expected = tf.nn.conv2d(tf.nn.conv2d(x, k1, 1, 'SAME'), k2, 1, 'SAME') + layer.b
    np.testing.assert_allclose(z.numpy(), expected.numpy(), atol=1e-5)


def test_inverse_in_tf_function_and_xla():
    rng = np.random.default_rng(6)
    layer = make_layer(rng, (6, 6, 4), 0.1)
    z = tf.constant(rng.normal(size=[2, 6, 6, 4]), tf.float32)
    eager, _ = layer.reverse(z, tf.zeros([2]))
    graph = tf.function(lambda t: layer.reverse(t, tf.zeros([2]))[0])(z)
    xla = tf.function(lambda t: layer.reverse(t, tf.zeros([2]))[0], jit_compile=True)(z)
    np.testing.assert_allclose(graph.numpy(), eager.numpy(), atol=1e-5)
    np.testing.assert_allclose(xla.numpy(), eager.numpy(), atol=1e-4)


def test_inverse_graph_has_no_host_callbacks():
    rng = np.random.default_rng(7)
    layer = make_layer(rng, (4, 4, 2), 0.1)
    fn = tf.function(lambda t: layer.reverse(t, tf.zeros([1]))[0])
    graph = fn.get_concrete_function(tf.TensorSpec([1, 4, 4, 2])).graph
    op_types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():
        op_types |= {op.type for op in function.graph.get_operations()} if hasattr(function, 'graph') else set()
    assert not op_types & {'PyFunc', 'EagerPyFunc', 'PyFuncStateless'}


def test_parameter_count_counts_live_entries():
    layer = EmergingConv()
    layer.build([None, 4, 4, 5])
    assert layer.parameter_count() == 2 * (3 * 25 + 15) + 5


def test_bad_kernel_shape():
    w = tf.zeros([3, 3, 2, 3])
    with pytest.raises(ValueError, match='must both be'):
        EmergingConvBijector(w, w, tf.zeros([3]))
