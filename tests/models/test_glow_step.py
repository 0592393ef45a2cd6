import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.nets.conv import edge_conv
from emerging.models.glow_step import Classifier, FlowStep
from tests.flows.flow_checks import check_flow_layer, perturb


@pytest.mark.parametrize('flow_permutation', [0, 2, 3, 4])
def test_step_contract(flow_permutation):
    rng = np.random.default_rng(flow_permutation)
    step = FlowStep(8, flow_permutation, flow_coupling=1, rng=rng)
    step.build([None, 4, 4, 4])
    perturb(step, rng, 0.05)
    check_flow_layer(step, [2, 4, 4, 4], rng)


def test_step_is_the_chain_of_its_layers():
    rng = np.random.default_rng(0)
    step = FlowStep(8, 3, flow_coupling=1, rng=rng)
    step.build([None, 4, 4, 4])
    perturb(step, rng, 0.05)
    assert [type(layer).__name__ for layer in step.flow_layers] == [
        'ActNorm', 'InvertibleConv1x1', 'EmergingConv', 'Coupling']
    x = tf.random.normal([2, 4, 4, 4])
    z, log_det = x, tf.zeros([2])
    for layer in step.flow_layers:
        z, log_det = layer.forward(z, log_det)
    step_z, step_log_det = step.forward(x, tf.zeros([2]))
    np.testing.assert_array_equal(step_z.numpy(), z.numpy())
    np.testing.assert_allclose(step_log_det.numpy(), log_det.numpy(), rtol=1e-6)


def test_initialize_runs_the_layers_in_order():
    step = FlowStep(8, 2, flow_coupling=1, rng=np.random.default_rng(0))
    step.build([None, 4, 4, 4])
    x = tf.random.normal([32, 4, 4, 4], mean=1., stddev=2.)
    z = step.initialize(x)
    np.testing.assert_allclose(step.forward(x, 0.)[0].numpy(), z.numpy(), atol=1e-5)
    out = step.actnorm.forward(x, 0.)[0].numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0., atol=1e-4)
    # the coupling network's actnorms saw the first half of the 1x1 convolution's output
    h = step.flow_layers[1].forward(step.actnorm.forward(x, 0.)[0], 0.)[0][..., :2]
    l_1 = step.coupling.network.l_1
    hidden = l_1.actnorm.forward(edge_conv(h, l_1.w), 0.)[0].numpy()  # before its ReLU
    np.testing.assert_allclose(hidden.mean(axis=(0, 1, 2)), 0., atol=1e-4)
    np.testing.assert_allclose(hidden.std(axis=(0, 1, 2)), 1., atol=1e-3)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        rng = np.random.default_rng(0)
        step = FlowStep(8, 3, flow_coupling=1, rng=rng, gradient_checkpointing=checkpointing)
        step.build([None, 4, 4, 4])
        perturb(step, rng, 0.05)
        x = tf.constant(rng.normal(size=[2, 4, 4, 4]), tf.float32)

        @tf.function
        def gradients(t):
            with tf.GradientTape() as tape:
                z, log_det = step.forward(t, 0.)
                loss = tf.reduce_sum(z ** 2) - tf.reduce_sum(log_det)
            return tape.gradient(loss, step.trainable_weights)

        grads.append([g.numpy() for g in gradients(x)])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_classifier_logits_from_the_spatial_mean():
    classifier = Classifier(4, 5)
    classifier.build()
    for v in classifier.trainable_variables:
        v.assign(tf.random.normal(v.shape))
    z = tf.random.normal([2, 3, 3, 4])
    linear = classifier.linear
    expected = (tf.reduce_mean(z, axis=[1, 2]) @ linear.w + linear.b) * tf.exp(3. * linear.logs)
    np.testing.assert_allclose(classifier(z).numpy(), expected.numpy(), rtol=1e-5)
