"""Write tensors.pt and tensors.npz, the reader's test file: what torch.save writes for every storage type,
a strided view, a 0-d tensor, a parameter, an OrderedDict, an argparse.Namespace and an object of a class,
and the same values as NumPy arrays (bfloat16 as float32).

    python tests/runs/pytorch/make_tensor_file.py tests/runs/pytorch

Needs torch and numpy, nothing of this project.
"""
import argparse
import collections
import os
import sys
import types

import numpy as np
import torch


class Helper:
    """Like the public Residual Flows code's EMA helper: an object holding a module and a dict of tensors."""

    def __init__(self, module):
        self.module, self.decay = module, 0.999
        self.shadow_params = {name: p.detach().clone() for name, p in module.named_parameters()}


def main(out):
    torch.manual_seed(0)
    tensors = collections.OrderedDict()
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                  torch.int16, torch.int8, torch.uint8, torch.bool):
        values = torch.randn(2, 3) * 10
        tensors[str(dtype).split('.')[1]] = values.to(dtype)
    tensors['strided'] = torch.arange(24.).reshape(4, 6)[1:, ::2].t()
    tensors['scalar'] = torch.tensor(2.5)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    # the class as the public code's module would name it, so that the reader sees a foreign class
    package, helpers = types.ModuleType('public'), types.ModuleType('public.utils')
    helpers.Helper, Helper.__module__ = Helper, 'public.utils'
    sys.modules.update({'public': package, 'public.utils': helpers})
    saved = {'tensors': tensors, 'parameter': torch.nn.Parameter(torch.ones(3)), 'args': argparse.Namespace(
        nblocks='1-1', lr=0.001, flag=True), 'helper': Helper(module), 'epoch': 3}
    torch.save(saved, os.path.join(out, 'tensors.pt'))
    arrays = {name: (t.float() if t.dtype == torch.bfloat16 else t).numpy() for name, t in tensors.items()}
    arrays['helper_weight'] = module[0].weight.detach().numpy()
    np.savez(os.path.join(out, 'tensors.npz'), **arrays)
    print(f'wrote tensors.pt and tensors.npz to {out} (torch {torch.__version__})')


if __name__ == '__main__':
    main(sys.argv[1])
