"""Checkpoints of the public BNAF code (tests/runs/pytorch, written by that code: make_bnaf_checkpoints.py) become
BNAFs of this package with the same densities: each point's negative log-likelihood as the public code computed it
(with its Polyak averages for the density_estimation.py checkpoints), to float32 rounding."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from emerging.averaging import PolyakAverage
from emerging.runs.torch_files import read_torch_file
from emerging.vector import public_bnaf, public_polyak_averages

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'runs', 'pytorch')
with open(os.path.join(FOLDER, 'bnaf_expected.json')) as f:
    EXPECTED = json.load(f)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_the_public_codes_densities(name):
    case = EXPECTED[name]
    saved = read_torch_file(os.path.join(FOLDER, f'{name}.pt'))
    flow, order = public_bnaf(saved['model'], case['residual'])
    assert flow.dims == case['dims'] and len(order) == len(flow.variables)
    if case['kind'] == 'tabular':  # density_estimation.py evaluates with the Polyak averages
        polyak = PolyakAverage(flow.variables, 0.9)
        polyak.assign_averages(public_polyak_averages(flow, order, saved['optimizer']))
        polyak.swap_polyak()
    nll = -flow.density_distribution().log_prob(tf.constant(case['points'], tf.float32)).numpy()
    np.testing.assert_allclose(nll, case['nll'], rtol=1e-6, atol=1e-5)


def test_a_layout_the_flags_do_not_describe_is_named():
    state = read_torch_file(os.path.join(FOLDER, 'bnaf_d6_gated.pt'))['model']
    with pytest.raises(ValueError, match="network 0 of the checkpoint has gate, but a residual 'normal'"):
        public_bnaf(state, 'normal')
    with pytest.raises(ValueError, match='holds what no BNAF of this layout has: 0.0.running_mean'):
        public_bnaf({**state, '0.0.running_mean': np.zeros([2])}, 'gated')
    with pytest.raises(ValueError, match='not a state dict of the public BNAF code'):
        public_bnaf({'weight': np.zeros(3)}, 'gated')
