"""The containers and the joint-method machinery of emerging/flows/base.py."""
import numpy as np
import tensorflow as tf

from emerging.flows.actnorm import ActNorm
from emerging.flows.base import FlowChain, FlowSequence
from emerging.flows.coupling import Coupling
from emerging.flows.permutations import Reverse
from tests.flows.flow_checks import check_flow_layer, perturb


def test_sequence_contract_and_order():
    rng = np.random.default_rng(0)
    layers = [ActNorm(), Reverse(), Coupling(8, 1, rng=rng)]
    sequence = FlowSequence(layers)
    sequence.build([None, 4, 4, 4])
    perturb(sequence, rng, 0.1)
    check_flow_layer(sequence, [2, 4, 4, 4], rng)
    assert isinstance(sequence.bijector, FlowChain)
    x = tf.random.normal([2, 4, 4, 4])
    z = x
    for layer in layers:  # data -> latent in list order
        z = layer.forward(z, 0.)[0]
    np.testing.assert_allclose(sequence.forward(x, 0.)[0].numpy(), z.numpy(), atol=1e-6)


def test_sequence_initializes_each_layer_from_the_one_before():
    first, second = ActNorm(), ActNorm()
    sequence = FlowSequence([first, Reverse(), second])
    sequence.build([None, 4, 4, 3])
    x = tf.random.normal([32, 4, 4, 3], mean=[1., 2., 3.], stddev=[1., 2., 3.])
    z = sequence.initialize(x)
    np.testing.assert_allclose(first.bias.numpy().ravel(), -x.numpy().mean(axis=(0, 1, 2)), rtol=1e-5)
    # the second actnorm saw the first one's normalised output: nothing left to do
    np.testing.assert_allclose(second.bias.numpy(), 0., atol=1e-5)
    np.testing.assert_allclose(second.logs.numpy(), 0., atol=1e-5)
    np.testing.assert_allclose(z.numpy(), sequence.forward(x, 0.)[0].numpy(), atol=1e-6)


def test_tfp_inverse_and_log_det_share_one_pass():
    """TFP's `inverse` stores the log-det it computed: `inverse_log_det_jacobian` does not run again."""
    rng = np.random.default_rng(1)
    coupling = Coupling(8, 1, rng=rng)
    coupling.build([None, 4, 4, 4])
    perturb(coupling, rng, 0.1)
    bijector = coupling.make_bijector()
    calls = []
    network = bijector._network
    bijector._network = lambda t: calls.append(1) or network(t)
    x = tf.random.normal([2, 4, 4, 4])
    z = bijector.inverse(x)
    log_det = bijector.inverse_log_det_jacobian(x, event_ndims=3)
    assert len(calls) == 1
    expected_z, expected_log_det = coupling.forward(x, 0.)
    np.testing.assert_allclose(z.numpy(), expected_z.numpy(), atol=1e-6)
    np.testing.assert_allclose(log_det.numpy(), expected_log_det.numpy(), rtol=1e-6)
    bijector.forward_log_det_jacobian(z, event_ndims=3)  # the same pass, seen from the other side
    assert len(calls) == 1


def test_a_chain_hashes_its_parameter_tree_once(monkeypatch):
    """TFP keys its cache by hash(bijector); the parameter walk behind it runs once per bijector, not on every
    call, so a call costs the same for a long chain as for a short one; the hash still tells parameterisations
    apart."""
    from tensorflow_probability.python.internal import cache_util
    layers = [ActNorm(), Reverse(), Coupling(8, 1, rng=np.random.default_rng(0))]
    FlowSequence(layers).build([None, 4, 4, 4])
    long_chain = FlowChain([layer.make_bijector() for layer in layers])
    short_chain = FlowChain([layers[1].make_bijector()])
    assert hash(long_chain) != hash(short_chain)
    walks = []
    walk = cache_util.hashable_structure
    monkeypatch.setattr(cache_util, 'hashable_structure', lambda struct: walks.append(struct) or walk(struct))
    counts = []
    for chain in (long_chain, short_chain):
        hash(chain)  # walked once, here
        walks.clear()
        chain.inverse(tf.random.normal([2, 4, 4, 4]))
        counts.append(len(walks))
    assert counts[0] == counts[1], counts
