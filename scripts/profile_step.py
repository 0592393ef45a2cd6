"""Profile the train step (or sampling) with the TensorFlow profiler and print where the time goes.

    python scripts/profile_step.py [--flow_permutation 3] [--what train|sample] [--steps 5]
                                   [--depth 8] [--width 128] [--batch 16] [--out profile]

Uses the bench_train.py architecture (32x32x3, L=3, affine coupling,
learnprior).  Writes the trace to {out}/ (open it with
`tensorboard --logdir {out}`, Profile tab) and prints the TensorFlow ops
grouped by type, with their summed time per step over all threads.
"""
import argparse
import collections
import glob
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def op_times(trace_folder, calls):
    """{op type: microseconds per call} summed over the executor threads of the newest trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    path = sorted(glob.glob(os.path.join(trace_folder, 'plugins', 'profile', '*', '*.xplane.pb')))[-1]
    space = xplane_pb2.XSpace()
    with open(path, 'rb') as f:
        space.ParseFromString(f.read())
    times, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if 'tf_Compute' not in line.name and 'TFE' not in line.name and 'Stream' not in line.name:
                continue
            for event in line.events:
                name = names.get(event.metadata_id, '?')
                if ':' not in name or '::' in name:  # executor bookkeeping, not an op
                    continue
                op = name.split(':')[-1]
                times[op] += event.duration_ps / 1e6 / calls
                counts[op] += 1. / calls
    return times, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--flow_permutation', type=int, default=2)
    parser.add_argument('--what', choices=['train', 'sample'], default='train')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--depth', type=int, default=8)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--jit_compile', action='store_true')
    parser.add_argument('--top', type=int, default=15)
    parser.add_argument('--out', default='profile')
    args = parser.parse_args()

    from bench_train import our_step, our_trainer, random_images
    trainer = our_trainer(args, args.flow_permutation, jit_compile=args.jit_compile)
    if args.what == 'train':
        x = tf.constant(random_images(np.random.default_rng(0), args.batch))
        step = our_step(trainer, x, tf.zeros([args.batch], tf.int32))
    else:
        labels, temperature = tf.zeros([100], tf.int32), tf.ones([100])

        def step():
            return trainer.sample_fn(labels, temperature).numpy()
    for _ in range(2):
        step()
    tf.profiler.experimental.start(args.out)
    for _ in range(args.steps):
        step()
    tf.profiler.experimental.stop()
    times, counts = op_times(args.out, args.steps)
    total = sum(times.values())
    print(f'{args.what}, flow_permutation {args.flow_permutation}, jit_compile {args.jit_compile}: '
          f'{total / 1e3:.1f} ms of op time per call (all threads), trace in {args.out}/')
    print(f'{"op":<40} | {"ms/call":>8} | {"share":>6} | {"ops/call":>8}')
    for op, value in times.most_common(args.top):
        print(f'{op[:40]:<40} | {value / 1e3:8.2f} | {value / total:6.1%} | {counts[op]:8.0f}')


if __name__ == '__main__':
    main()
