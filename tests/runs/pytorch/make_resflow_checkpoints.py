"""Write the Residual Flow checkpoints the tests import, with the public Residual Flows code itself (Chen et al.,
NeurIPS 2019).

    PYTHONPATH=PATH/TO/residual-flows python tests/runs/pytorch/make_resflow_checkpoints.py \\
        PATH/TO/residual-flows/train_img.py tests/runs/pytorch

The environment needs torch and numpy (nothing of this project; torchvision is not needed: train_img.py's flag
parser is read from the file and run alone).  For each case the flags are train_img.py's own, parsed by its own
parser, with a few changed; the model is built as train_img.py builds it (ResidualFlow with its init layer),
trained for three steps on fixed random images as train_img.py trains (bits/dim, Adam, gradients clipped to 1,
the power iterations, the EMA), and saved as train_img.py saves its checkpoints: {'state_dict',
'optimizer_state_dict', 'args', 'ema', 'test_bpd'}.  resflow_expected.json records, for two fixed dequantised
images per case, log p(x) as the public model gives it with its exact log-det (from the full Jacobian of its
map, float64), for the model's weights and for the EMA's.
"""
import json
import math
import os
import sys

import numpy as np
import resflows.layers as layers
import resflows.layers.base as base_layers
import resflows.utils as utils
import torch
from resflows.resflow import ACT_FNS, ResidualFlow

# name -> train_img.py flags
CASES = {
    'resflow_mnist': ['--data', 'mnist', '--imagesize', '28', '--nblocks', '1-1', '--idim', '8',
                      '--fc-end', 'False'],
    'resflow_cifar': ['--data', 'cifar10', '--nblocks', '1-1-1', '--idim', '2', '--fc-idim', '2',
                      '--fc-end', 'True', '--factor-out', 'True', '--squeeze-first', 'True', '--act', 'elu'],
}


def public_parser(train_img):
    """train_img.py's argparse parser, run from its source (the lines that build it)."""
    source = open(train_img).read()
    start = source.index('parser = argparse.ArgumentParser()')
    end = source.index('args = parser.parse_args()')
    scope = {'argparse': __import__('argparse'), 'ACT_FNS': ACT_FNS}
    exec(source[start:end], scope)
    return scope['parser']


def build(args):
    """The model as train_img.py builds it for these flags (density task, resblocks)."""
    im_dim = 1 if args.data == 'mnist' else 3
    alpha = 1e-6 if args.data == 'mnist' else 0.05
    init_layer = layers.LogitTransform(alpha) if getattr(args, 'logit_transform', True) else None
    input_size = (args.batchsize, im_dim, args.imagesize, args.imagesize)
    if args.squeeze_first:
        input_size = (input_size[0], input_size[1] * 4, input_size[2] // 2, input_size[3] // 2)
    model = ResidualFlow(
        input_size, n_blocks=list(map(int, args.nblocks.split('-'))), intermediate_dim=args.idim,
        factor_out=args.factor_out, quadratic=args.quadratic, init_layer=init_layer, actnorm=args.actnorm,
        fc_actnorm=args.fc_actnorm, batchnorm=args.batchnorm, dropout=args.dropout, fc=args.fc, coeff=args.coeff,
        vnorms=args.vnorms, n_lipschitz_iters=args.n_lipschitz_iters, sn_atol=args.sn_tol, sn_rtol=args.sn_tol,
        n_power_series=args.n_power_series, n_dist=args.n_dist, n_samples=args.n_samples, kernels=args.kernels,
        activation_fn=args.act, fc_end=args.fc_end, fc_idim=args.fc_idim, n_exact_terms=args.n_exact_terms,
        preact=args.preact, neumann_grad=args.neumann_grad, grad_in_forward=args.mem_eff,
        first_resblock=args.first_resblock, learn_p=args.learn_p, classification=False, n_classes=1,
        block_type=args.block)
    return model, input_size, im_dim


def squeezed(args, x):
    return layers.SqueezeLayer(2)(x) if args.squeeze_first else x


def log_px(model, args, input_size, x):
    """log p(x) [N] of dequantised images x in [0, 1) with the exact log-det, float64."""
    n_dims = x[0].numel()
    values = []
    for image in x:
        flat = image.reshape(-1).double()

        def f(v):
            z, _ = model(squeezed(args, v.view(1, *image.shape)).view(1, *input_size[1:]), torch.zeros(1, 1))
            return z.view(-1)

        model.double()
        jacobian = torch.autograd.functional.jacobian(f, flat)
        z = f(flat)
        model.float()
        log_pz = -0.5 * (z ** 2).sum() - 0.5 * n_dims * math.log(2 * math.pi)
        values.append(float(log_pz + torch.slogdet(jacobian)[1]))
    return values


def main(train_img, out):
    parser = public_parser(train_img)
    expected = {}
    for name, flags in CASES.items():
        args = parser.parse_args(flags + ['--seed', '0', '--batchsize', '4'])
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model, input_size, im_dim = build(args)
        ema = utils.ExponentialMovingAverage(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.wd)
        size = args.imagesize
        pixels = torch.tensor(rng.integers(0, 256, [5, 4, im_dim, size, size]), dtype=torch.float32)
        model.train()
        for batch in pixels[:3]:
            x = (batch + torch.rand_like(batch)) / 256.
            z, delta_logp = model(squeezed(args, x).view(-1, *input_size[1:]), 0)
            log_pz = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).view(z.size(0), -1).sum(1, keepdim=True)
            bits = -torch.mean(log_pz - delta_logp - math.log(256) * im_dim * size * size) / (
                im_dim * size * size) / math.log(2)
            bits.backward()
            torch.nn.utils.clip_grad.clip_grad_norm_(model.parameters(), 1.)
            optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, (base_layers.SpectralNormConv2d, base_layers.SpectralNormLinear)):
                        m.compute_weight(update=True)
            ema.apply()
        model.eval()
        torch.save({'state_dict': model.state_dict(), 'optimizer_state_dict': optimizer.state_dict(), 'args': args,
                    'ema': ema, 'test_bpd': float(bits.detach())}, os.path.join(out, f'{name}.pth'))
        u = torch.tensor(rng.random([2, im_dim, size, size]), dtype=torch.float32)
        images = pixels[3, :2]
        x = (images + u) / 256.
        with torch.no_grad():
            model_values = log_px(model, args, input_size, x)
            ema.swap()
            ema_values = log_px(model, args, input_size, x)
            ema.swap()
        expected[name] = {'flags': flags, 'pixels': images.permute(0, 2, 3, 1).int().tolist(),
                          'noise': u.permute(0, 2, 3, 1).tolist(), 'log_px_model': model_values,
                          'log_px_ema': ema_values}
        print(f'{name}: log p(x) {model_values} (model), {ema_values} (EMA)', flush=True)
    with open(os.path.join(out, 'resflow_expected.json'), 'w') as f:
        json.dump(expected, f)
    print(f'wrote {len(CASES)} checkpoints and resflow_expected.json to {out} (torch {torch.__version__})')


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
