"""Times the in-graph emerging-convolution inverse against (a) the sequential
per-pixel, per-channel back-substitution the original ran (NumPy, vectorised
over the batch only) and (b) one forward pass of the same layer (the floor).

    python scripts/bench_inverse.py [--batch 100] [--repeats 10] [--xla]

Prints a table and, last, `min speedup vs reference: <X>x, max inverse/forward: <Y>x, max abs error: <E>`.
"""
import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from emerging.flows.emerging_conv import EmergingConv, sequential_emerging_inverse, square_ar_mask  # noqa: E402

SIZES = [(16, 16, 12), (8, 8, 24), (4, 4, 48)]


def best_times(functions, repeats):
    """Best-of-`repeats` wall time of each function, the functions called in
    turn so that they see the same machine load (this host is shared and noisy).
    Each timed call follows an untimed one of the same function: TensorFlow's
    threads, idle during the NumPy reference, would otherwise bill their wake-up
    to the first call after it (1.3-1.7x on this machine), which a sampler,
    running its layers back to back, never pays."""
    for fn in functions:
        fn()  # warm-up (tracing, compilation)
    times = [[] for _ in functions]
    for _ in range(repeats):
        for fn, fn_times in zip(functions, times):
            fn()
            start = time.perf_counter()
            fn()
            fn_times.append(time.perf_counter() - start)
    return [min(fn_times) for fn_times in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--xla', action='store_true', help='jit_compile the inverse and forward')
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f'device: {tf.config.list_logical_devices()[-1].device_type}, batch {args.batch}, xla {args.xla}')
    print(f'{"size":>10} | {"reference s":>11} | {"inverse s":>9} | {"forward s":>9} | '
          f'{"speedup":>8} | {"inv/fwd":>7} | {"max err":>8}')
    speedups, ratios, errors = [], [], []
    for height, width, channels in SIZES:
        layer = EmergingConv(rng=rng)
        layer.build([None, height, width, channels])
        z = tf.constant(rng.normal(size=[args.batch, height, width, channels]), tf.float32)
        zeros = tf.zeros([args.batch])
        inverse = tf.function(lambda t: layer.reverse(t, zeros)[0], jit_compile=args.xla, autograph=False)
        forward = tf.function(lambda t: layer.forward(t, zeros)[0], jit_compile=args.xla, autograph=False)
        k1 = layer.w1.numpy() * square_ar_mask(channels)
        k2 = layer.w2.numpy() * square_ar_mask(channels)[::-1, ::-1, ::-1, ::-1]
        z_np = z.numpy()
        reference = sequential_emerging_inverse(z_np, k1, k2, layer.b.numpy())
        t_ref, t_inv, t_fwd = best_times(
            [lambda: sequential_emerging_inverse(z_np, k1, k2, layer.b.numpy()),
             lambda: inverse(z).numpy(), lambda: forward(z).numpy()], args.repeats)
        error = float(np.abs(inverse(z).numpy() - reference).max())
        speedups.append(t_ref / t_inv)
        ratios.append(t_inv / t_fwd)
        errors.append(error)
        print(f'{height:>3}x{width}x{channels:<3} | {t_ref:11.4f} | {t_inv:9.4f} | {t_fwd:9.4f} | '
              f'{speedups[-1]:7.1f}x | {ratios[-1]:6.2f}x | {error:8.1e}')
    print(f'min speedup vs reference: {min(speedups):.1f}x, max inverse/forward: {max(ratios):.2f}x, '
          f'max abs error: {max(errors):.1e}')


if __name__ == '__main__':
    main()
