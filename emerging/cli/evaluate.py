"""`emerging evaluate`: test bits/dim of a run, with its standard error.

The metric is the training's validation metric, bits_x of
model.losses_per_example(x, y, noise=True) (uniform dequantisation noise), on
the same test batches (train.py's pipeline, full_test_its batches of
data.test).  Each image's value is averaged over --n_dequant K noise draws;
K = 0 gives the deterministic value at the bins' lower edges (noise=False, the
SavedModel's bits_per_dim).  For a Residual Flow every draw also draws the
(unbiased, random) log-det estimate, so K > 1 averages both (and K = 0 is
one draw of the estimate).  Under `mpiexec -n N` each process evaluates its
own shard and the sums of the values, of their squares and the counts are
added over processes, so that

    mean = sum(b_i) / n,   SE = std(b_i) / sqrt(n)   (std with n - 1)

over all n test images.  Only process 0 prints; the last line is
`test bits_x: <mean> +- <SE>`.
"""
import math

import numpy as np

from emerging.cli import common
from emerging.errors import InputError
from emerging.models.limits import check_memory
from emerging.runs.folder import read_config

MAX_DEQUANT = 1000  # noise draws per image: far more than the standard error needs


def add_parser(subparsers):
    parser = subparsers.add_parser('evaluate', help='test bits/dim with its standard error',
                                   description=__doc__.splitlines()[0])
    common.add_run_arguments(parser)
    parser.add_argument('--n_dequant', type=int, default=1, metavar='K',
                        help='dequantisation noise draws averaged per image (default 1, as the training '
                             'validation); 0: deterministic, without noise')
    common.add_data_arguments(parser)
    parser.set_defaults(run=run)


def run(args):
    import tensorflow as tf

    from emerging.data.images import get_data
    from emerging.training.distributed import Distributed

    if not 0 <= args.n_dequant <= MAX_DEQUANT:
        raise InputError(f'--n_dequant must be 0 (no noise) or a number of draws up to {MAX_DEQUANT}, '
                         f'got {args.n_dequant}')
    dist = Distributed()
    model_config, hparams = read_config(common.run_folder(args))
    config = common.derived_from(model_config, hparams, args, dist.rank, dist.size)
    batch = config.train.local_batch_test
    check_memory(model_config, batch, f'a test batch of {batch} images')
    loaded = common.load(args)
    data = get_data(config.data)
    model, its, batch = loaded.model, config.train.full_test_its, config.train.local_batch_test
    if dist.is_chief:
        print(f'weights: {loaded.weights} ({loaded.checkpoint})')
        draws = (f'{args.n_dequant} uniform dequantisation noise draw{"s" * (args.n_dequant > 1)} per image'
                 if args.n_dequant else 'no dequantisation noise (deterministic)')
        print(f'test set: {config.data.problem}, {its * batch * dist.size} images '
              f'({dist.size} process{"es" * (dist.size > 1)} x {its} batches of {batch}); {draws}')

    images = tf.TensorSpec([None, *loaded.model_config.image_shape], tf.uint8)

    @tf.function(input_signature=[images, tf.TensorSpec([None], tf.int32)], autograph=False)
    def bits_x(x, y):
        """Per-image bits_x, averaged over the K noise draws."""
        if args.n_dequant == 0:
            return model.losses_per_example(x, y, noise=False)['bits_x']

        def add_draw(k, total):
            return k + 1, total + model.losses_per_example(x, y, noise=True)['bits_x']

        _, total = tf.while_loop(lambda k, _: k < args.n_dequant, add_draw, (0, tf.zeros(tf.shape(x)[:1])))
        return total / args.n_dequant

    # float64 sums: sum of squares minus n * mean^2 loses little precision at these magnitudes
    sums = np.zeros(3)  # sum b, sum b^2, n
    test = iter(data.test)
    batches = common.progress(range(its), desc='test') if dist.is_chief else range(its)
    for _ in batches:
        x, y = next(test)
        values = bits_x(x, tf.cast(y, tf.int32)).numpy().astype(np.float64)
        sums += values.sum(), np.square(values).sum(), len(values)
    # the mean over processes times their number: the sums over all processes
    total, squares, n = np.asarray(dist.allreduce_mean([tf.constant(sums)], name='evaluate')[0]) * dist.size
    mean = total / n
    variance = max(squares - n * mean ** 2, 0.) / max(n - 1, 1)
    if dist.is_chief:
        if not math.isfinite(mean):
            print('test bits_x is not finite: the weights or the data are broken')
        print(f'test bits_x: {mean:.4f} +- {math.sqrt(variance / n):.4f}')
    return 0
