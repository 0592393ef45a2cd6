"""Write the BNAF checkpoints the tests import, with the public BNAF code itself (De Cao et al., UAI 2019).

    PYTHONPATH=PATH/TO/BNAF python tests/runs/pytorch/make_bnaf_checkpoints.py tests/runs/pytorch

PATH/TO/BNAF is a checkout of the public code (its bnaf.py and optim/adam.py are imported from there); the
environment needs torch and numpy, nothing of this project.  Each network is built as the public scripts build
theirs (density_estimation.py's create_model for the tabular cases, with the residual left off the last network
and the dimensions flipped between networks; toy2d.py's for the 2-D ones), trained for 30 steps on fixed random
data (Adam with the public Polyak average for the tabular cases, torch's Adam for the 2-D ones, gradients clipped
to norm 0.1), and saved as those scripts save theirs.  bnaf_expected.json records, for fixed points, the negative
log-likelihood the public code computes: after `optimizer.swap()` (the Polyak averages) for the tabular cases, as
density_estimation.py evaluates its test set, and with the trained weights for the 2-D ones, as toy2d.py does.
"""
import json
import os
import sys

import numpy as np
import torch
from bnaf import BNAF, MaskedWeight, Permutation, Sequential, Tanh
from optim.adam import Adam

# name -> (dims, flows, layers, hidden_dim, residual, kind)
CASES = {
    'bnaf_d6_gated': (6, 2, 2, 4, 'gated', 'tabular'),
    'bnaf_d6_normal': (6, 2, 1, 4, 'normal', 'tabular'),
    'bnaf_d6_none': (6, 3, 2, 3, None, 'tabular'),
    'bnaf_d2_toy': (2, 2, 3, 8, 'gated', 'toy'),
    'bnaf_d2_toy_one': (2, 1, 2, 8, 'gated', 'toy'),
}


def create_model(dims, flows, layers, hidden_dim, residual):
    networks = []
    for f in range(flows):
        hidden = []
        for _ in range(layers - 1):
            hidden += [MaskedWeight(dims * hidden_dim, dims * hidden_dim, dim=dims), Tanh()]
        networks.append(BNAF(*([MaskedWeight(dims, dims * hidden_dim, dim=dims), Tanh()] + hidden
                                + [MaskedWeight(dims * hidden_dim, dims, dim=dims)]),
                             res=residual if f < flows - 1 else None))
        if f < flows - 1:
            networks.append(Permutation(dims, 'flip'))
    return Sequential(*networks)


def nll(model, x):
    y, log_det = model(x)
    return -(torch.distributions.Normal(torch.zeros_like(y), torch.ones_like(y)).log_prob(y).sum(-1) + log_det)


def main(out):
    expected = {}
    for name, (dims, flows, layers, hidden_dim, residual, kind) in CASES.items():
        torch.manual_seed(0)
        rng = np.random.default_rng(dims)
        model = create_model(dims, flows, layers, hidden_dim, residual)
        if kind == 'tabular':
            optimizer = Adam(model.parameters(), lr=1e-2, amsgrad=True, polyak=0.9)
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        data = torch.tensor(rng.normal(size=[30, 16, dims]) * [1. + i for i in range(dims)], dtype=torch.float32)
        for batch in data:
            loss = nll(model, batch).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.1)
            optimizer.step()
        saved = {'model': model.state_dict(), 'optimizer': optimizer.state_dict()}
        if kind == 'tabular':
            saved['epoch'] = 1
        torch.save(saved, os.path.join(out, f'{name}.pt'))
        points = rng.normal(size=[8, dims]).astype(np.float32)
        if kind == 'tabular':
            optimizer.swap()
        with torch.no_grad():
            values = nll(model, torch.tensor(points)).numpy()
        expected[name] = {'dims': dims, 'flows': flows, 'layers': layers, 'hidden_dim': hidden_dim,
                          'residual': residual, 'kind': kind, 'points': points.tolist(),
                          'nll': [float(v) for v in values]}
    with open(os.path.join(out, 'bnaf_expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
    print(f'wrote {len(CASES)} checkpoints and bnaf_expected.json to {out} (torch {torch.__version__})')


if __name__ == '__main__':
    main(sys.argv[1])
