import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.coupling import Coupling
from tests.flows.flow_checks import check_flow_layer, perturb


@pytest.mark.parametrize('flow_coupling', [0, 1])
def test_coupling_contract(flow_coupling):
    rng = np.random.default_rng(0)
    layer = Coupling(8, flow_coupling, rng=rng)
    layer.build([None, 4, 4, 4])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, 4, 4, 4], rng)


def test_starts_as_identity_and_names_follow_original():
    layer = Coupling(8, 1, rng=np.random.default_rng(0))
    layer.build([None, 4, 4, 6])
    x = tf.random.normal([2, 4, 4, 6])
    z, log_det = layer.forward(x, tf.zeros([2]))
    # zero last layer: shift 0, scale sigmoid(2)
    np.testing.assert_allclose(z[..., :3].numpy(), x[..., :3].numpy())
    np.testing.assert_allclose(z[..., 3:].numpy(), x[..., 3:].numpy() / (1 + np.exp(-2.)), rtol=1e-5)
    net = layer.network
    assert tuple(net.l_1.w.shape) == (3, 3, 4, 8)  # edge-bias channel on the 3x3 input
    assert tuple(net.l_2.w.shape) == (1, 1, 8, 8)
    assert tuple(net.l_last.w.shape) == (3, 3, 9, 6)
    assert tuple(net.l_last.logs.shape) == (1, 6)


def test_odd_channels_rejected():
    with pytest.raises(ValueError, match='even number of channels'):
        Coupling(8, 0).build([None, 4, 4, 3])


@pytest.mark.parametrize('compute_dtype', ['bfloat16', 'float16'])
def test_mixed_precision_network_keeps_the_flow_invertible(compute_dtype):
    """The network computes in compute_dtype; the coupling stays an exact float32 bijection."""
    rng = np.random.default_rng(0)
    layer = Coupling(8, 1, rng=rng, compute_dtype=compute_dtype)
    layer.build([None, 4, 4, 4])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, 4, 4, 4], rng, atol=1e-5, traced_atol=1e-2)
    assert all(w.dtype == tf.float32 for w in layer.trainable_weights)
    # same weights in float32: the same function up to the compute dtype's rounding
    reference = Coupling(8, 1, rng=np.random.default_rng(0))
    reference.build([None, 4, 4, 4])
    for w_ref, w in zip(reference.weights, layer.weights):
        w_ref.assign(w)
    x = tf.random.normal([2, 4, 4, 4])
    h, h_ref = layer.network(x[..., :2]), reference.network(x[..., :2])
    assert h.dtype == tf.float32
    assert not np.array_equal(h.numpy(), h_ref.numpy())  # really computed in the lower precision
    np.testing.assert_allclose(h.numpy(), h_ref.numpy(), atol=0.05 * np.abs(h_ref.numpy()).max())
    graph = tf.function(layer.network).get_concrete_function(tf.TensorSpec([2, 4, 4, 2])).graph
    convolutions = [op.get_attr('T') for op in graph.get_operations() if op.type == 'Conv2D']
    assert len(convolutions) == 2 and set(convolutions) == {tf.as_dtype(compute_dtype)}


def test_unknown_compute_dtype_rejected():
    with pytest.raises(ValueError, match='compute_dtype'):
        Coupling(8, 1, compute_dtype='int8').build([None, 4, 4, 4])
