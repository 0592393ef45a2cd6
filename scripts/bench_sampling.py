"""Sampling time of the emerging and periodic models against the 1x1 model over resolutions, measured side by side.

    python scripts/bench_sampling.py [--sizes 16,32,64,128] [--widths 32,512] [--batch 16] [--depth 4]
                                     [--levels 3] [--repeats 5]

Every model: HxHx3 images, `levels` levels, `depth` steps per level, affine coupling, learned prior, the coupling
networks `width` channels wide; flow_permutation 2 (1x1), 3 (emerging), 4 (periodic), each timed drawing `batch`
samples at temperature 1 (one compiled sample function per model, called in turn with the others of its size,
best of `repeats`).  A narrow width makes the invertible layers dominate, a wide one the coupling networks.

With `--profile DIR` every sampler of the last size and width is also traced with the TensorFlow profiler (into
DIR/<permutation>/) and its top ops printed, op time summed over threads per call.

The last line is `max sampling ratio vs 1x1: emerging <X>x, periodic <Y>x` over every size and width.
"""
import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_train import timed_rounds  # noqa: E402
from profile_step import op_times  # noqa: E402

from emerging.models.config import GlowConfig  # noqa: E402
from emerging.models.glow import Glow  # noqa: E402

PERMUTATIONS = {'1x1': 2, 'emerging': 3, 'periodic': 4}


def int_list(text):
    try:
        values = [int(v) for v in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}')
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f'expected positive integers, got {text!r}')
    return values


def sampler(size, width, permutation, args):
    config = GlowConfig(image_shape=(size, size, 3), n_levels=args.levels, depth=args.depth, width=width,
                         flow_permutation=permutation, flow_coupling=1, learnprior=True)
    model = Glow(config)
    init = np.random.default_rng(0).integers(0, 256, [16, size, size, 3]).astype(np.uint8)
    model.initialize(tf.constant(init))
    sample = tf.function(lambda: model.sample(batch=args.batch, temperature=1.), autograph=False)
    return lambda: sample().numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int_list, default=[16, 32, 64, 128], help='image sizes (pixels)')
    parser.add_argument('--widths', type=int_list, default=[32, 512], help='coupling network widths')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--depth', type=int, default=4)
    parser.add_argument('--levels', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--profile', default='', help='trace the last size and width into this folder')
    parser.add_argument('--top', type=int, default=8, help='ops listed per profile')
    args = parser.parse_args(argv)
    smallest = 2 ** args.levels
    bad = [size for size in args.sizes if size % smallest]
    if bad or min(args.batch, args.depth, args.levels, args.repeats) < 1:
        parser.error(f'--sizes must be multiples of 2^levels = {smallest} (got {bad}) and --batch, --depth, '
                     f'--levels, --repeats positive')
    print(f'device: {tf.config.list_logical_devices()[-1].device_type}, {os.cpu_count()} cores; {args.batch} '
          f'samples, L={args.levels}, K={args.depth}, affine coupling, learnprior')
    print(f'{"width":>5} | {"size":>7} | {"1x1 s":>8} | {"emerging s":>10} | {"periodic s":>10} | '
          f'{"emerging":>8} | {"periodic":>8}')
    worst = {'emerging': 0., 'periodic': 0.}
    for width in args.widths:
        for size in args.sizes:
            candidates = {name: sampler(size, width, permutation, args) for name, permutation in PERMUTATIONS.items()}
            seconds = timed_rounds(candidates, 1, args.repeats)
            ratios = {name: seconds[name] / seconds['1x1'] for name in worst}
            for name in worst:
                worst[name] = max(worst[name], ratios[name])
            print(f'{width:>5} | {size:>3}x{size:<3} | {seconds["1x1"]:8.3f} | {seconds["emerging"]:10.3f} | '
                  f'{seconds["periodic"]:10.3f} | {ratios["emerging"]:7.2f}x | {ratios["periodic"]:7.2f}x',
                  flush=True)
    if args.profile:
        print(f'\nprofiles, {args.sizes[-1]}x{args.sizes[-1]}, width {args.widths[-1]} (op time summed over threads):')
        for name, sample in candidates.items():
            folder = os.path.join(args.profile, name)
            tf.profiler.experimental.start(folder)
            for _ in range(args.repeats):
                sample()
            tf.profiler.experimental.stop()
            times, counts = op_times(folder, args.repeats)
            total = sum(times.values())
            print(f'{name}: {total / 1e3:.1f} ms of op time per call; ' + ', '.join(
                f'{op} {value / 1e3:.1f} ms ({counts[op]:.0f})' for op, value in times.most_common(args.top)))
    print(f'max sampling ratio vs 1x1: emerging {worst["emerging"]:.2f}x, periodic {worst["periodic"]:.2f}x')


if __name__ == '__main__':
    main()
