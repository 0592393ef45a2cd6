"""Check the GPU path: per process, the visible GPUs, Horovod's build and one timed train step of a small Glow.

    mpiexec -n 4 python scripts/check_gpu.py       # one process per GPU (as root add --allow-run-as-root)
    python scripts/check_gpu.py --allow_cpu         # one process, on the CPU when TensorFlow sees no GPU

Each process (Horovod rank) initialises Horovod as training does, which pins it to the GPU of its local rank, and
prints its lines prefixed with `rank R:`: the GPUs TensorFlow sees and the one it uses, Horovod's build (NCCL, CUDA,
MPI, Gloo) and controller, then a warm-up step and `--steps` timed steps of the project's train step (gradients,
Horovod's allreduce over every process, the optimiser) on random images:

    rank 0: GPU:0 train step 12.3 ms (batch 16, 32x32x3, 4 processes)

Without a GPU it stops before building anything with `no GPU visible to TensorFlow: <why>` and exit code 2, unless
--allow_cpu.  Exit code 1: a step's loss is not finite.
"""
import argparse
import importlib.metadata
import os
import sys
import time

from emerging.choices import COMPUTE_DTYPES, FLOW_PERMUTATIONS, described
from emerging.models.config import GlowConfig
from emerging.quiet import has_nvidia_driver

PROG = 'check_gpu.py'


def build_parser(prog=PROG):
    """check_gpu.py's parser (`prog`: the program's name in the usage line and error messages)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument('--image_size', type=int, default=32, help='height and width of the random RGB images')
    p.add_argument('--batch', type=int, default=16, help='images per process and step')
    p.add_argument('--n_levels', type=int, default=3, help='L, the levels of the Glow (image_size divisible by 2^L)')
    p.add_argument('--depth', type=int, default=8, help='K, the flow steps per level')
    p.add_argument('--width', type=int, default=128, help='hidden channels of the coupling networks')
    p.add_argument('--flow_permutation', type=int, default=3, choices=sorted(FLOW_PERMUTATIONS),
                   help=described(FLOW_PERMUTATIONS))
    p.add_argument('--compute_dtype', default='float32', choices=COMPUTE_DTYPES,
                   help='the coupling networks\' dtype, as train.py\'s (float16 with dynamic loss scaling)')
    p.add_argument('--steps', type=int, default=1, help='timed train steps after the warm-up step; the mean is shown')
    p.add_argument('--allow_cpu', action='store_true',
                   help='run the step on the CPU when TensorFlow sees no GPU (checks the whole path without one)')
    return p


def model_config(args):
    """The Glow the step trains (raises ValueError naming a bad flag)."""
    for flag in ('image_size', 'batch', 'n_levels', 'depth', 'width', 'steps'):
        if getattr(args, flag) < 1:
            raise ValueError(f'--{flag} must be positive, got {getattr(args, flag)}')
    if args.image_size % 2 ** args.n_levels:
        raise ValueError(f'--image_size {args.image_size} is not divisible by 2^n_levels = {2 ** args.n_levels}')
    return GlowConfig(image_shape=(args.image_size, args.image_size, 3), n_levels=args.n_levels, depth=args.depth,
                      width=args.width, flow_permutation=args.flow_permutation, flow_coupling=1, learnprior=True,
                      compute_dtype=args.compute_dtype)


def why_no_gpu(tf):
    """Why TensorFlow lists no GPU: the likeliest cause, with what to do about it."""
    hidden = os.environ.get('CUDA_VISIBLE_DEVICES')
    if hidden is not None and hidden.strip() in ('', '-1'):
        return f'CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU'
    if not tf.test.is_built_with_cuda():
        return 'this TensorFlow is built without CUDA (scripts/setup.sh --gpu installs tensorflow[and-cuda])'
    if not has_nvidia_driver():
        return 'no NVIDIA driver is loaded'
    return ('the NVIDIA driver is loaded but TensorFlow found no usable GPU: are its CUDA libraries installed '
            '(scripts/setup.sh --gpu) and is the driver 525 or newer?')


def horovod_line(hvd):
    """What Horovod was built with and which controller this run uses."""
    if hvd is None:
        return 'Horovod not available: one process'
    nccl = hvd.nccl_built()  # NCCL_VERSION_CODE, e.g. 22105 for 2.21.5; 0 when built without
    parts = [f'NCCL {nccl // 10000}.{nccl % 10000 // 100}.{nccl % 100}' if nccl else 'no NCCL',
             'CUDA' if hvd.cuda_built() else 'no CUDA', 'MPI' if hvd.mpi_built() else 'no MPI',
             'Gloo' if hvd.gloo_built() else 'no Gloo']
    controller = 'MPI' if hvd.mpi_enabled() else 'Gloo' if hvd.gloo_enabled() else 'none'
    return f'Horovod {importlib.metadata.version("horovod")} built with {", ".join(parts)}; controller {controller}'


def main(argv=None, prog=PROG) -> int:
    """check_gpu.py: the per-process lines, then the timed step; returns the exit code.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.

    Returns:
      0 done, 1 a loss that is not finite, 2 bad input or no GPU (without --allow_cpu).
    """
    args = build_parser(prog).parse_args(argv)
    try:
        config = model_config(args)
    except ValueError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    import numpy as np
    import tensorflow as tf

    from emerging.models.registry import build_model
    from emerging.training.config import TrainConfig
    from emerging.training.distributed import Distributed
    from emerging.training.optim import DynamicLossScale, Optimizer
    from emerging.training.steps import build_steps

    dist = Distributed()  # Horovod as training starts it: this process sees only the GPU of its local rank
    rank = f'rank {dist.rank}'
    all_gpus = tf.config.list_physical_devices('GPU')
    if not all_gpus and not args.allow_cpu:
        print(f'{prog}: error: {rank}: no GPU visible to TensorFlow: {why_no_gpu(tf)}; --allow_cpu runs the check '
              'on the CPU', file=sys.stderr, flush=True)
        return 2

    def say(line):
        # one write per line, newline included, so that the lines of the ranks do not interleave under mpiexec
        print(f'{rank}: {line}\n', end='', flush=True)

    say(f'{dist.note}; TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}')
    if all_gpus:
        used = tf.config.get_visible_devices('GPU')[0]
        details = tf.config.experimental.get_device_details(used)
        capability = '.'.join(map(str, details.get('compute_capability', ('?',))))
        say(f'{len(all_gpus)} GPU(s) on this node: {", ".join(gpu.name for gpu in all_gpus)}; this process uses '
            f'{used.name} ({details.get("device_name", "?")}, compute capability {capability}) as GPU:0')
        device = 'GPU:0'
    else:
        say(f'no GPU visible to TensorFlow: {why_no_gpu(tf)}; running on CPU:0 (--allow_cpu)')
        device = 'CPU:0'
    say(horovod_line(dist.hvd))

    size = args.image_size
    train_config = TrainConfig(n_batch_train=args.batch, image_size=size, anchor_size=size, test_batch=1,
                               n_test=dist.size, n_processes=dist.size)
    with tf.device(device):
        model = build_model(config)
        images = np.random.default_rng(dist.rank).integers(0, 256, [args.batch, size, size, 3], dtype=np.uint8)
        x, y = tf.constant(images), tf.zeros([args.batch], tf.int32)
        model.initialize(x)
        dist.broadcast_variables(model.variables)
        optimizer = Optimizer(model.trainable_variables, train_config.optimizer, beta2=train_config.beta2)
        loss_scale = DynamicLossScale() if config.compute_dtype == 'float16' else None
        train_step = build_steps(model, optimizer, dist, train_config, loss_scale)[0]
        lr = tf.constant(1e-4)
        train_step(x, y, lr).numpy()  # warm-up: traces and compiles the step
        start = time.perf_counter()
        for _ in range(args.steps):
            stats = train_step(x, y, lr).numpy()  # .numpy() waits for the device
        ms = (time.perf_counter() - start) / args.steps * 1e3
    say(f'{device} train step {ms:.1f} ms (batch {args.batch}, {size}x{size}x3, {dist.size} process'
        f'{"es" if dist.size > 1 else ""}, {config.compute_dtype}); loss {stats[0]:.3f}')
    if not np.all(np.isfinite(stats)):
        print(f'{prog}: error: {rank}: the train step\'s statistics are not finite: {stats}', file=sys.stderr)
        return 1
    return 0
