"""Residual Flow training costs, measured side by side in one run (ratios, not absolute times).

    python scripts/bench_resflow.py [--batch 8] [--idim 128] [--nblocks 2-2-2] [--fc_idim 128]
                                    [--terms 2,4,8,16] [--steps 3] [--repeats 3] [--no_memory]

Memory: one train step of a Residual Flow on 32x32x3 images (fc_end, actnorm,
`--nblocks`, `--idim`, fully connected blocks of width `--fc_idim`), in a
fresh process per setting, with a fixed number n of power-series terms
(`n_power_series`, so every setting does the same work each step): its peak
tensor memory above the weights (TensorFlow's allocator statistics) and
seconds per step for

* plain backpropagation through the power series (neumann_grad False),
* the Neumann-series gradient (neumann_grad True, mem_eff False),
* the Neumann-series gradient computed in the forward pass (mem_eff True,
  the public code's default),

for n in `--terms`.  Speed: the train step (the default unbiased estimator,
Neumann + mem_eff), with and without the fully connected blocks at the end,
against Glow's 1x1 model with about the same number of parameters (L=3,
affine coupling, learned prior; its K and width chosen to match), both run
by this project's Trainer.

Last lines: `memory, Neumann + mem_eff vs backprop at n=<max>: <X>x` and
`train step vs 1x1 Glow (same parameters), fc_end True / False: <Y>x`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_train import MEMORY_CHILD_ENV, peak_tensor_mib, timed_rounds  # noqa: E402

from emerging.data.images import Data  # noqa: E402
from emerging.models.config import GlowConfig, ResFlowConfig  # noqa: E402
from emerging.models.glow import Glow  # noqa: E402
from emerging.models.resflow import ResFlow  # noqa: E402
from emerging.training.config import TrainConfig  # noqa: E402
from emerging.training.distributed import Distributed  # noqa: E402
from emerging.training.loop import Trainer  # noqa: E402

IMAGE_SHAPE = (32, 32, 3)
MODES = {'backprop': dict(neumann_grad=False, mem_eff=False), 'neumann': dict(neumann_grad=True, mem_eff=False),
         'neumann + mem_eff': dict(neumann_grad=True, mem_eff=True)}


def random_images(rng, n):
    return rng.integers(0, 256, [n, *IMAGE_SHAPE]).astype(np.uint8)


def trainer_for(model, batch):
    rng = np.random.default_rng(0)
    init = (random_images(rng, 32), np.zeros([32], np.int32))
    model.initialize(tf.constant(init[0]), tf.constant(init[1]))
    config = TrainConfig(n_train=batch * 100, n_test=batch, n_batch_train=batch, image_size=IMAGE_SHAPE[0],
                         anchor_size=IMAGE_SHAPE[0], test_batch=batch, optimizer='adam')
    empty = tf.data.Dataset.from_tensors((init[0][:1], init[1][:1])).repeat()
    data = Data(train=empty, test=empty, init_batch=init, image_shape=IMAGE_SHAPE, n_y=1)
    return Trainer(model, config, data, Distributed(use_horovod=False), tempfile.mkdtemp(), progress=False)


def resflow(args, **overrides):
    blocks = tuple(int(n) for n in args.nblocks.split('-'))
    return ResFlow(ResFlowConfig(image_shape=IMAGE_SHAPE, n_blocks=blocks, idim=args.idim, fc_idim=args.fc_idim,
                                 **overrides))


def step_fn(trainer, x, y):
    lr = tf.constant(1e-4)
    return lambda: trainer.train_step(x, y, lr)[0].numpy()


def memory_child(args):
    """In a fresh process: peak tensor memory (MiB) and seconds of one train step of one setting."""
    mode, terms = args.memory_child.split(':')
    trainer = trainer_for(resflow(args, n_power_series=int(terms), **MODES[mode]), args.batch)
    rng = np.random.default_rng(1)
    x, y = tf.constant(random_images(rng, args.batch)), tf.zeros([args.batch], tf.int32)
    trainer.test_step(x, y)  # weights and the allocator's pools in place
    lr = tf.constant(1e-4)
    trainer.train_step.get_concrete_function(x, y, lr)  # trace without running
    peak_mib = peak_tensor_mib(lambda: trainer.train_step(x, y, lr))
    seconds = timed_rounds({'step': step_fn(trainer, x, y)}, args.steps, 1)['step']
    print(json.dumps({'peak_mib': peak_mib, 'seconds_per_step': seconds}))


def memory_table(args, terms):
    results = {}
    for mode in MODES:
        for n in terms:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), '--batch', str(args.batch), '--idim',
                                  str(args.idim), '--nblocks', args.nblocks, '--fc_idim', str(args.fc_idim),
                                  '--steps', str(args.steps), '--memory_child', f'{mode}:{n}'],
                                 env=MEMORY_CHILD_ENV, capture_output=True, text=True, check=True)
            results[mode, n] = json.loads(out.stdout.strip().splitlines()[-1])
    print('\ntrain step memory (fresh process each; peak tensor memory above the weights, TensorFlow\'s allocator '
          'statistics), n power-series terms:')
    print(f'{"gradient":<18} | ' + ' | '.join(f'{f"n={n} MiB":>10} | {"s/step":>6}' for n in terms))
    for mode in MODES:
        print(f'{mode:<18} | ' + ' | '.join(f'{results[mode, n]["peak_mib"]:10.0f} | '
                                           f'{results[mode, n]["seconds_per_step"]:6.3f}' for n in terms))
    return results


def glow_matching(target):
    """A 1x1 Glow (L=3, affine, learned prior) whose parameter count is closest to `target`: the three
    closest by the flow steps' own count (1x1 C^2, actnorm 2C, coupling network 3x3 C/2 -> w, 1x1 w -> w,
    3x3 w -> C, its actnorms), built to count everything (priors too)."""
    def steps_count(depth, width):
        return sum(depth * (c * c + 2 * c + 9 * c // 2 * width + width * width + 9 * width * c + c + 4 * width)
                   for c in (12, 24, 48))
    candidates = sorted(((depth, width) for depth in (4, 8, 16) for width in (64, 96, 128, 192, 256, 384)),
                        key=lambda dw: abs(steps_count(*dw) - target))[:3]
    models = [Glow(GlowConfig(image_shape=IMAGE_SHAPE, n_levels=3, depth=depth, width=width, flow_permutation=2,
                               flow_coupling=1, learnprior=True, gradient_checkpointing=False))
              for depth, width in candidates]
    return min(models, key=lambda model: abs(model.parameter_counts()['total'] - target))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--idim', type=int, default=128)
    parser.add_argument('--nblocks', default='2-2-2')
    parser.add_argument('--fc_idim', type=int, default=ResFlowConfig.fc_idim,
                        help='hidden width of the fully connected end blocks')
    parser.add_argument('--terms', default='2,4,8,16', help='power-series terms of the memory table')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no_memory', action='store_true')
    parser.add_argument('--memory_child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        return memory_child(args)
    terms = [int(n) for n in args.terms.split(',')]
    print(f'{os.cpu_count()} cores; Residual Flow 32x32x3, nblocks {args.nblocks}, idim {args.idim}, '
          f'fc_idim {args.fc_idim}, batch {args.batch}')
    summary = []
    if not args.no_memory:
        results = memory_table(args, terms)
        n = max(terms)
        ratio = results['neumann + mem_eff', n]['peak_mib'] / results['backprop', n]['peak_mib']
        flat = results['neumann + mem_eff', n]['peak_mib'] / results['neumann + mem_eff', min(terms)]['peak_mib']
        print(f'  Neumann + mem_eff, n={n} vs n={min(terms)}: {flat:.2f}x')
        summary.append(f'memory, Neumann + mem_eff vs backprop at n={n}: {ratio:.2f}x')

    rng = np.random.default_rng(0)
    x, y = tf.constant(random_images(rng, args.batch)), tf.zeros([args.batch], tf.int32)
    print(f'\n{"train step":<46} | {"params":>10} | {"s/step":>7} | {"vs 1x1 Glow":>11}')
    for fc_end in (True, False):
        ours = trainer_for(resflow(args, fc_end=fc_end), args.batch)
        params = ours.model.parameter_counts()['total']
        glow = trainer_for(glow_matching(params), args.batch)
        seconds = timed_rounds({'resflow': step_fn(ours, x, y), 'glow': step_fn(glow, x, y)}, args.steps,
                               args.repeats)
        ratio = seconds['resflow'] / seconds['glow']
        name = f'Residual Flow, fc_end {fc_end}'
        print(f'{name:<46} | {params:>10,} | {seconds["resflow"]:7.3f} | {ratio:10.2f}x')
        name = f'  1x1 Glow, K={glow.model.config.depth}, width {glow.model.config.width}'
        print(f'{name:<46} | {glow.model.parameter_counts()["total"]:>10,} | {seconds["glow"]:7.3f} | {1.:10.2f}x')
        summary.append(f'train step vs 1x1 Glow (same parameters), fc_end {fc_end}: {ratio:.2f}x')
    print()
    print('\n'.join(summary))


if __name__ == '__main__':
    main()
