"""Training throughput, sampling time, XLA, gradient-checkpointing memory and the
input pipeline, measured side by side in one run (ratios, not absolute times).

    python scripts/bench_train.py [--batch 16] [--depth 8] [--width 128] [--repeats 7] [--steps 5]
                                  [--no_memory] [--no_pipeline]

Architecture of every model: 32x32x3 images, L=3 levels, K steps,
affine coupling, learned prior, `width` hidden channels.  Candidates:

* tfb.Glow: TFP's own Glow bijector with the same levels, steps, width and
  coupling (GlowDefaultNetwork / GlowDefaultExitNetwork), trained with
  -log_prob and tf_keras Adamax in one tf.function;
* ours: `Trainer.train_step` of this project (the step train.py runs: loss,
  gradients, allreduce (identity on one process), adamax, Polyak), for
  flow_permutation 2 (1x1), 3 (emerging), 4 (periodic), with and without XLA,
  and with the coupling networks in bfloat16 (`--compute_dtype`; float16 too
  on a GPU).

The candidates are timed in turn, `steps` steps each, `repeats` rounds, best
round kept.  Sampling: 100 images at temperature 1, per permutation.  Memory:
a K=32 train step in a fresh process per setting, its peak tensor memory
(TensorFlow's allocator statistics) with and without gradient checkpointing.  Pipeline: images/s of the TFRecord input
pipeline alone (shards written by this script) against the train step.

Peak: the best float32 GFLOP/s of a 4096x4096 matrix product measured in the same run (`repeats` rounds of 2
products); the 1x1 step's FLOPs are counted from the layer shapes (`step_gflop`), and `fraction of fp32 peak: <P>`
is its GFLOP/s over that peak.

The last line is `train throughput vs tfb.Glow: <X>x`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import tf_keras  # noqa: E402

from emerging.data.images import Data  # noqa: E402
from emerging.models.config import GlowConfig  # noqa: E402
from emerging.models.glow import Glow  # noqa: E402
from emerging.training.config import TrainConfig  # noqa: E402
from emerging.training.distributed import Distributed  # noqa: E402
from emerging.training.loop import Trainer  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions
IMAGE_SHAPE = (32, 32, 3)
LEVELS = 3


def random_images(rng, n):
    return rng.integers(0, 256, [n, *IMAGE_SHAPE]).astype(np.uint8)


def our_trainer(args, flow_permutation, jit_compile=False, depth=None, gradient_checkpointing=False, logdir=None,
                distributed=None, compute_dtype='float32'):
    config = GlowConfig(image_shape=IMAGE_SHAPE, n_levels=LEVELS, depth=depth or args.depth, width=args.width,
                         flow_permutation=flow_permutation, flow_coupling=1, learnprior=True,
                         gradient_checkpointing=gradient_checkpointing, compute_dtype=compute_dtype)
    model = Glow(config)
    rng = np.random.default_rng(0)
    init = (random_images(rng, 64), np.zeros([64], np.int32))
    model.initialize(tf.constant(init[0]), tf.constant(init[1]))
    train_config = TrainConfig(n_train=args.batch * 100, n_test=100, n_batch_train=args.batch,
                               image_size=IMAGE_SHAPE[0], jit_compile=jit_compile)
    empty = tf.data.Dataset.from_tensors((init[0][:1], init[1][:1])).repeat()
    data = Data(train=empty, test=empty, init_batch=init, image_shape=IMAGE_SHAPE, n_y=1)
    return Trainer(model, train_config, data, distributed or Distributed(use_horovod=False),
                   logdir or tempfile.mkdtemp(), progress=False)


def our_step(trainer, x, y):
    lr = tf.constant(1e-4)
    return lambda: trainer.train_step(x, y, lr)[0].numpy()


def tfb_glow_step(args, x):
    glow = tfb.Glow(output_shape=IMAGE_SHAPE, num_glow_blocks=LEVELS, num_steps_per_block=args.depth,
                    coupling_bijector_fn=lambda shape: tfb.GlowDefaultNetwork(shape, num_hidden=args.width),
                    exit_bijector_fn=tfb.GlowDefaultExitNetwork)
    z_shape = glow.inverse_event_shape(IMAGE_SHAPE)
    distribution = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), z_shape), glow)
    optimizer = tf_keras.optimizers.Adamax(1e-4)
    x_float = tf.cast(x, tf.float32) / 256. - .5

    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(distribution.log_prob(x))
        variables = glow.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step(x_float)  # builds the networks and the optimiser slots
    n_params = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
    return (lambda: step(x_float).numpy()), n_params


def step_gflop(batch, depth, width, image_shape=IMAGE_SHAPE, levels=LEVELS):
    """GFLOP of one 1x1-model train step, counted from the layer shapes (multiply-adds as 2 FLOPs): per flow step
    at h x w x c (after each level's squeeze) the coupling network's 3x3 c/2 -> width, 1x1 width -> width and
    3x3 width -> c convolutions and the invertible 1x1 convolution c -> c; per split the prior's 3x3 c/2 -> c
    convolution; the backward pass twice the forward (input and weight gradients).  Element-wise work (actnorm,
    activations, log-dets) is left out, so the fraction of peak is an upper bound of the matrix work's share."""
    height, _, channels = image_shape
    forward = 0.
    for level in range(levels):
        height, channels = height // 2, channels * 4
        pixels = height * height
        per_step = 9 * (channels // 2) * width + width * width + 9 * width * channels + channels * channels
        forward += 2. * pixels * depth * per_step
        if level < levels - 1:
            forward += 2. * pixels * 9 * (channels // 2) * channels
            channels //= 2
    return 3. * forward * batch / 1e9


def matmul_peak_gflops(repeats, n=4096):
    """The best GFLOP/s of an n x n float32 matrix product (the machine's practical peak)."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    seconds = timed_rounds({'matmul': lambda: product().numpy()}, 2, repeats)['matmul']
    return 2. * n ** 3 / seconds / 1e9


def timed_rounds(candidates, steps, repeats):
    """Best-of-`repeats` seconds per call, the candidates called in turn (a shared, noisy host)."""
    for fn in candidates.values():
        fn()  # tracing, compilation, first-call allocation
    best = {name: float('inf') for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best


def memory_child(args):
    """Runs in a fresh process: peak tensor memory of a K=32 train step (MiB) and seconds per step."""
    rng = np.random.default_rng(1)
    x, y = tf.constant(random_images(rng, args.batch)), tf.zeros([args.batch], tf.int32)
    trainer = our_trainer(args, 2, depth=32, gradient_checkpointing=bool(args.memory_child_checkpointing))
    trainer.test_step(x, y)  # a forward pass: weights and the allocator's pools in place
    lr = tf.constant(1e-4)
    trainer.train_step.get_concrete_function(x, y, lr)  # trace without running
    peak_mib = peak_tensor_mib(lambda: trainer.train_step(x, y, lr))
    seconds = timed_rounds({'step': our_step(trainer, x, y)}, 3, 3)['step']
    print(json.dumps({'peak_mib': peak_mib, 'seconds_per_step': seconds}))


def peak_tensor_mib(fn):
    """The peak tensor memory (MiB) of one call of `fn` above what was allocated before it,
    from TensorFlow's own allocator statistics (CPU or GPU)."""
    device = 'GPU:0' if tf.config.list_logical_devices('GPU') else 'CPU:0'
    tf.config.experimental.reset_memory_stats(device)
    before = tf.config.experimental.get_memory_info(device)['current']
    fn()
    return (tf.config.experimental.get_memory_info(device)['peak'] - before) / 2 ** 20


# TensorFlow keeps statistics of CPU memory only in its BFC allocator, its default only where oneDNN is on
# (Intel CPUs): the memory children ask for it so that the tables can be measured on any CPU.
MEMORY_CHILD_ENV = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC='true')


def memory_table(args):
    results = {}
    for checkpointing in (0, 1):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), '--batch', str(args.batch),
                              '--width', str(args.width), '--memory_child_checkpointing', str(checkpointing)],
                             env=MEMORY_CHILD_ENV, capture_output=True, text=True, check=True)
        results[checkpointing] = json.loads(out.stdout.strip().splitlines()[-1])
    print('\ngradient checkpointing, K=32 train step (fresh process each; peak tensor memory of one step above '
          'the weights, from TensorFlow\'s allocator statistics):')
    for checkpointing, result in results.items():
        print(f'  checkpointing {checkpointing}: {result["peak_mib"]:8.0f} MiB, '
              f'{result["seconds_per_step"]:.3f} s/step')
    print(f'  memory with/without: {results[1]["peak_mib"] / results[0]["peak_mib"]:.2f}x, '
          f'slow-down: {results[1]["seconds_per_step"] / results[0]["seconds_per_step"]:.2f}x')


def pipeline_table(args, step_images_per_second):
    from emerging.data.images import get_data
    from emerging.data.problems import DataConfig
    from emerging.data.tfrecords import write_shards
    folder = tempfile.mkdtemp()
    rng = np.random.default_rng(2)
    for split, n in (('train', 2048), ('validation', 256)):
        write_shards(random_images(rng, n), np.zeros(n), folder, split, n_shards=4)
    data = get_data(DataConfig(problem='imagenet-oord', data_dir=folder, image_size=IMAGE_SHAPE[0],
                               local_batch_train=args.batch, local_batch_test=args.batch, local_batch_init=args.batch))
    iterator = iter(data.train)
    for _ in range(20):
        next(iterator)
    batches = 200
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    pipeline = batches * args.batch / (time.perf_counter() - start)
    print(f'\ninput pipeline alone (TFRecord shards, dal 1 augmentation, batch {args.batch}): {pipeline:,.0f} images/s '
          f'= {pipeline / step_images_per_second:.0f}x the 1x1 train step')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--depth', type=int, default=8)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--no_memory', action='store_true')
    parser.add_argument('--no_pipeline', action='store_true')
    parser.add_argument('--memory_child_checkpointing', type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child_checkpointing is not None:
        return memory_child(args)

    device = tf.config.list_logical_devices()[-1].device_type
    print(f'device: {device}, {os.cpu_count()} cores; 32x32x3, batch {args.batch}, L={LEVELS}, K={args.depth}, '
          f'width {args.width}, affine coupling, learnprior')
    rng = np.random.default_rng(0)
    x = tf.constant(random_images(rng, args.batch))
    y = tf.zeros([args.batch], tf.int32)
    tfb_step, tfb_params = tfb_glow_step(args, x)
    trainers = {}
    settings = [('ours 1x1 (perm 2)', 2, False, 'float32'), ('ours emerging (perm 3)', 3, False, 'float32'),
                ('ours periodic (perm 4)', 4, False, 'float32'), ('ours 1x1, XLA', 2, True, 'float32'),
                ('ours emerging, XLA', 3, True, 'float32'), ('ours 1x1, bfloat16', 2, False, 'bfloat16'),
                ('ours emerging, bfloat16', 3, False, 'bfloat16')]
    if device == 'GPU':  # float16 convolutions only pay off on GPUs (the CPU runs them in Eigen, not oneDNN)
        settings += [('ours 1x1, float16', 2, False, 'float16'), ('ours emerging, float16', 3, False, 'float16')]
    for name, permutation, jit, compute_dtype in settings:
        trainers[name] = our_trainer(args, permutation, jit_compile=jit, compute_dtype=compute_dtype)
    candidates = {'tfb.Glow': tfb_step, **{name: our_step(t, x, y) for name, t in trainers.items()}}
    seconds = timed_rounds(candidates, args.steps, args.repeats)
    params = {'tfb.Glow': tfb_params,
              **{name: t.model.parameter_counts()['total'] for name, t in trainers.items()}}
    print(f'\n{"train step":<24} | {"params":>10} | {"s/step":>7} | {"images/s":>8} | {"vs tfb.Glow":>11} | '
          f'{"vs ours 1x1":>11}')
    base, ours = seconds['tfb.Glow'], seconds['ours 1x1 (perm 2)']
    for name, value in seconds.items():
        print(f'{name:<24} | {params[name]:>10,} | {value:7.3f} | {args.batch / value:8.1f} | '
              f'{base / value:10.2f}x | {value / ours:10.2f}x')

    gflop, peak = step_gflop(args.batch, args.depth, args.width), matmul_peak_gflops(args.repeats)
    fraction = gflop / ours / peak
    print(f'\n1x1 step: {gflop:.1f} GFLOP (convolutions and matrix products, forward and backward) at '
          f'{gflop / ours:.0f} GFLOP/s; float32 4096x4096 matmul: {peak:.0f} GFLOP/s')
    print(f'fraction of fp32 peak: {fraction:.2f}')

    y100 = tf.zeros([100], tf.int32)
    temperature = tf.ones([100])
    samplers = {name: (lambda t=t: t.sample_fn(y100, temperature).numpy())
                for name, t in trainers.items()
                if not t.config.jit_compile and t.model.config.compute_dtype == 'float32'}
    sampling = timed_rounds(samplers, 1, args.repeats)
    print(f'\n{"sample 100 images":<24} | {"seconds":>7} | {"vs ours 1x1":>11}')
    for name, value in sampling.items():
        print(f'{name:<24} | {value:7.3f} | {value / sampling["ours 1x1 (perm 2)"]:10.2f}x')

    if not args.no_memory:
        memory_table(args)
    if not args.no_pipeline:
        pipeline_table(args, args.batch / ours)
    print(f'\ntrain throughput vs tfb.Glow: {base / ours:.2f}x')


if __name__ == '__main__':
    main()
