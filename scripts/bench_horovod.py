"""Horovod scaling on one machine: images/s of `mpiexec -n N` against one process.

    python scripts/bench_horovod.py [--processes 2] [--flow_permutation 2] [--batch 16] [--depth 8]
                                    [--width 128] [--steps 5] [--repeats 3] [--rounds 2]

Every process runs `Trainer.train_step` (the step train.py runs: loss,
gradients, Horovod allreduce of the gradients, adamax, Polyak) of the
bench_train.py architecture (32x32x3, L=3, K=`depth`, affine coupling,
learnprior, `width`) on its own batch of `batch` images, as train.py's
per-process `--n_batch_train` does.  The script launches itself under
`mpiexec -n 1` and `mpiexec -n N` in turn, `rounds` times (a shared host is
noisy), and keeps each one's best; in every launch rank 0 reports the best of
`repeats` rounds of `steps` steps.

Printed: images/s (all processes together), the speed-up of N processes over
one and the scaling efficiency, speed-up / N.  With GPUs, each process takes
the GPU of its local rank (several processes share a GPU when there are fewer
GPUs than processes); on a CPU the processes share its cores.

The last line is `horovod scaling efficiency (N processes): <E>`.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
sys.path.insert(0, ROOT)
sys.path.insert(0, SCRIPTS)


def mpiexec(n):
    executable = shutil.which('mpiexec')
    if executable is None:
        sys.exit('bench_horovod.py: mpiexec not found (install Open MPI: scripts/setup.sh)')
    command = [executable, '-n', str(n)]
    if os.geteuid() == 0:
        command += ['--allow-run-as-root']
    return command + ['--oversubscribe', '--bind-to', 'none', '-x', 'PYTHONPATH', '-x', 'TF_CPP_MIN_LOG_LEVEL']


def worker(args):
    """One process of the mpiexec run: times the train step, rank 0 prints a JSON line."""
    import numpy as np
    import tensorflow as tf
    from bench_train import our_trainer, random_images

    from emerging.training.distributed import Distributed

    distributed = Distributed()
    if distributed.hvd is None:
        sys.exit(f'bench_horovod.py: {distributed.note}')
    trainer = our_trainer(args, args.flow_permutation, distributed=distributed)
    trainer.initialize()
    rng = np.random.default_rng(distributed.rank)
    x = tf.constant(random_images(rng, args.batch))
    y = tf.zeros([args.batch], tf.int32)
    lr = tf.constant(1e-4)
    trainer.train_step(x, y, lr).numpy()
    best = float('inf')
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(x, y, lr).numpy()  # the allreduce keeps the processes in step
        best = min(best, (time.perf_counter() - start) / args.steps)
    if distributed.is_chief:
        print(json.dumps({'processes': distributed.size, 'seconds_per_step': best,
                          'images_per_second': distributed.size * args.batch / best}))


def run(args, n):
    command = mpiexec(n) + [sys.executable, os.path.abspath(__file__), '--worker', *sys.argv[1:]]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f'bench_horovod.py: mpiexec -n {n} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}')
    return json.loads([line for line in result.stdout.splitlines() if line.startswith('{')][-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--processes', type=int, default=2)
    parser.add_argument('--flow_permutation', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16, help='images per process and step')
    parser.add_argument('--depth', type=int, default=8)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=2, help='launches of each setting, in turn; best kept')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes < 2:
        parser.error(f'--processes must be at least 2, got {args.processes}')
    for flag in ('batch', 'depth', 'width', 'steps', 'repeats', 'rounds'):
        if getattr(args, flag) < 1:
            parser.error(f'--{flag} must be positive, got {getattr(args, flag)}')
    if args.worker:
        return worker(args)

    import tensorflow as tf
    gpus = len(tf.config.list_physical_devices('GPU'))
    device = f'{gpus} GPU(s)' if gpus else f'CPU, {os.cpu_count()} cores'
    print(f'device: {device}; flow_permutation {args.flow_permutation}, 32x32x3, batch {args.batch} per process, '
          f'L=3, K={args.depth}, width {args.width}')
    best = {}
    for _ in range(args.rounds):
        for n in (1, args.processes):
            result = run(args, n)
            if n not in best or result['seconds_per_step'] < best[n]['seconds_per_step']:
                best[n] = result
    one, many = best[1], best[args.processes]
    speedup = many['images_per_second'] / one['images_per_second']
    print(f'\n{"processes":>9} | {"s/step":>7} | {"images/s":>8} | {"speed-up":>8}')
    for result in (one, many):
        print(f'{result["processes"]:>9} | {result["seconds_per_step"]:7.3f} | '
              f'{result["images_per_second"]:8.1f} | '
              f'{result["images_per_second"] / one["images_per_second"]:7.2f}x')
    print(f'\nhorovod scaling efficiency ({args.processes} processes): {speedup / args.processes:.2f}')


if __name__ == '__main__':
    main()
