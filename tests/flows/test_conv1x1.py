import numpy as np
import pytest
import tensorflow as tf

from emerging.flows.conv1x1 import InvertibleConv1x1
from tests.flows.flow_checks import check_flow_layer, perturb


@pytest.mark.parametrize('decomposition', ['', 'PLU', 'LU', 'QR'])
def test_conv1x1_contract(decomposition):
    rng = np.random.default_rng(0)
    layer = InvertibleConv1x1(decomposition, rng=rng)
    layer.build([None, 4, 4, 4])
    perturb(layer, rng, 0.1)
    check_flow_layer(layer, [2, 4, 4, 4], rng)


def test_plain_starts_orthogonal_and_plu_reconstructs_it():
    rng = np.random.default_rng(1)
    plain = InvertibleConv1x1('', rng=rng)
    plain.build([None, 2, 2, 5])
    w = plain.w.numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-5)
    plu = InvertibleConv1x1('PLU', rng=rng)
    plu.build([None, 2, 2, 5])
    w = plu.bijector._matrix64().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-5)
    assert not plu.p.trainable and not plu.sign_s.trainable
    names = sorted(v.name.split('/')[-1].split(':')[0] for v in plu.weights)
    assert names == ['L', 'P', 'U', 'log_S', 'sign_S']


def test_qr_variables_and_log_det():
    rng = np.random.default_rng(2)
    layer = InvertibleConv1x1('QR', rng=rng)
    layer.build([None, 3, 3, 3])
    assert len(layer.householder) == 3
    layer.s.assign([2., -0.5, 3.])
    _, log_det = layer.forward(tf.ones([1, 3, 3, 3]), tf.zeros([1]))
    np.testing.assert_allclose(log_det.numpy(), [9 * np.log(3.)], rtol=1e-5)


def test_unknown_decomposition_is_rejected():
    with pytest.raises(ValueError, match="unknown decomposition 'SVD'"):
        InvertibleConv1x1('SVD')
