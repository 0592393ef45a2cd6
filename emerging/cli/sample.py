"""`emerging sample`: samples of a run at several temperatures, as PNG grids or one NPY array.

Temperature t draws the latent z ~ N(0, t^2) (t = 0: the mode of the prior,
the same image for every sample of a class).  A .png --out gets one grid per
temperature, ceil(sqrt(n)) columns, filled row by row, a grey pixel between
neighbouring samples: FILE.png for one
temperature, FILE_t<t>.png (e.g. samples_t0.7.png) for each of several.  A
.npy --out gets one uint8 array [temperatures, n, H, W, C].  A
class-conditional model draws every sample of class --label, or one class per grid
column (sample i of class (i mod columns) mod n_classes, as the training's grids).
"""
import math
import os

import numpy as np

from emerging.choices import TEMPERATURES as GRID_TEMPERATURES
from emerging.cli import common
from emerging.errors import InputError
from emerging.models.limits import check_bytes, check_memory
from emerging.runs.folder import read_config

TEMPERATURES = ','.join(f'{t:g}' for t in GRID_TEMPERATURES)  # the training's sample grids
MAX_SAMPLES = 100000  # per temperature: a grid of 317 x 317 images
# samples drawn at once, as the training's sample grids (so it fits where training fits): up to 64x64, and larger
CHUNK, LARGE_CHUNK = 100, 16


def add_parser(subparsers):
    parser = subparsers.add_parser('sample', help='sample grids (PNG) or raw samples (NPY) at several temperatures',
                                   description=__doc__.splitlines()[0])
    common.add_run_arguments(parser)
    parser.add_argument('--n', type=int, default=100, help='samples per temperature (default 100)')
    parser.add_argument('--temperatures', default=TEMPERATURES, metavar='T1,T2,...',
                        help=f'standard deviations of the latent, comma-separated (default {TEMPERATURES})')
    parser.add_argument('--label', type=int, metavar='Y',
                        help='class of every sample (class-conditional models only; default: one class per grid '
                             'column)')
    parser.add_argument('--seed', type=int, help='the same seed gives the same samples (default: fresh ones)')
    parser.add_argument('--out', required=True, metavar='FILE.png|FILE.npy',
                        help='PNG grids (FILE_t<temperature>.png for several temperatures) or one NPY array')
    parser.set_defaults(run=run)


def run(args):
    import tensorflow as tf

    from emerging.training.recorder import image_grid, save_png

    temperatures = common.parse_floats(args.temperatures, '--temperatures')
    if min(temperatures) < 0:
        raise InputError(f'--temperatures must not be negative, got {args.temperatures!r}')
    if not 1 <= args.n <= MAX_SAMPLES:
        raise InputError(f'--n must be 1 .. {MAX_SAMPLES:,} samples per temperature, got {args.n:,}')
    common.check_output(args.out, ('.png', '.npy'))
    config, _ = read_config(common.run_folder(args))
    chunk = min(args.n, CHUNK if config.image_shape[0] <= 64 else LARGE_CHUNK)
    check_memory(config, chunk, f'samples drawn {chunk} at a time')
    check_bytes(len(temperatures) * args.n * config.n_dims,
                f'--n {args.n:,} samples at {len(temperatures)} temperature(s) of {config.n_dims:,} values each')
    labels = class_labels(args.label, args.n, config)
    model = common.load(args).model

    if args.seed is not None:
        tf.random.set_seed(args.seed)
    sample = tf.function(lambda y, t: model.sample(y, t, seed=args.seed), autograph=False,
                         input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)])
    chunks = [labels[i:i + chunk] for i in range(0, args.n, chunk)]
    samples = np.stack([np.concatenate([sample(y, tf.fill([len(y)], t)).numpy() for y in chunks])
                        for t in common.progress(temperatures, desc='temperatures')])

    if args.out.lower().endswith('.npy'):
        with open(args.out, 'wb') as f:  # np.save(path) would add .npy to FILE.NPY
            np.save(f, samples)
        print(f'wrote {args.out}: uint8 {list(samples.shape)} (temperatures {", ".join(map(name, temperatures))})')
        return 0
    columns = math.ceil(math.sqrt(args.n))
    stem, extension = os.path.splitext(args.out)
    for t, images in zip(temperatures, samples):
        path = args.out if len(temperatures) == 1 else f'{stem}_t{name(t)}{extension}'
        save_png(image_grid(images, columns), path)
        print(f'temperature {name(t)}: wrote {path}')
    return 0


def class_labels(label, n, config):
    """int32 [n]: every sample's class (zeros for a model that is not class-conditional)."""
    if common.check_label(label, config) is not None:
        return np.full(n, label, np.int32)
    # one class per grid column, as the training's sample grids
    if not config.conditional:
        return np.zeros(n, np.int32)
    return (np.arange(n) % math.ceil(math.sqrt(n)) % config.n_classes).astype(np.int32)


def name(temperature):
    """The shortest decimal that reads back as `temperature`: 0.7, 1, 0.25."""
    return np.format_float_positional(temperature, trim='-')
