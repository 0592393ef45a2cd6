"""The benchmark and profiling scripts run and print their summaries (tiny settings; not timed)."""
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env


def run_script(name, *args):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', name), *args], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_bench_train_prints_every_table_and_the_summary_line():
    out = run_script('bench_train.py', '--depth', '1', '--width', '8', '--steps', '1', '--repeats', '1',
                     '--no_memory')
    for row in ('tfb.Glow', 'ours 1x1 (perm 2)', 'ours emerging (perm 3)', 'ours periodic (perm 4)',
                'ours emerging, XLA', 'ours 1x1, bfloat16', 'ours emerging, bfloat16'):
        assert row in out
    assert 'sample 100 images' in out and 'input pipeline alone' in out
    assert re.search(r'^fraction of fp32 peak: \d+\.\d\d$', out, re.M)
    assert re.search(r'^train throughput vs tfb\.Glow: \d+\.\d\dx$', out.strip().splitlines()[-1])


def test_step_flops_match_tensorflows_count_of_the_forward_pass():
    """The analytic count (a third of the step's: forward only) against TensorFlow's own FLOP statistics of the
    model's traced forward pass, per image (the difference of two batch sizes, so that the weight-side products,
    which do not grow with the batch, drop out; the element-wise work it adds is small)."""
    import numpy as np
    import tensorflow as tf

    from emerging.models.config import GlowConfig
    from emerging.models.glow import Glow
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    from bench_train import step_gflop

    depth, width, shape = 2, 32, (16, 16, 3)
    model = Glow(GlowConfig(image_shape=shape, n_levels=3, depth=depth, width=width, flow_permutation=2,
                             flow_coupling=1, learnprior=True))
    images = np.random.default_rng(0).integers(0, 256, [4, *shape]).astype(np.uint8)
    model.initialize(tf.constant(images))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'

    def counted(batch):
        forward = tf.function(lambda x: model.losses_per_example(x)['loss'])
        graph = forward.get_concrete_function(tf.constant(images[:batch])).graph
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops

    per_two_images = counted(4) - counted(2)
    analytic = step_gflop(2, depth, width, image_shape=shape) / 3. * 1e9
    assert 0.95 * per_two_images <= analytic <= per_two_images, (analytic, per_two_images)


@pytest.mark.slow
def test_bench_sampling_prints_the_ratios_profiles_and_the_summary_line(tmp_path):
    out = run_script('bench_sampling.py', '--sizes', '8,16', '--widths', '8', '--batch', '2', '--depth', '1',
                     '--levels', '2', '--repeats', '1', '--profile', str(tmp_path))
    rows = re.findall(r'^ +8 \| +(8x8|16x16) +\| .* \| +\d+\.\d\dx \| +\d+\.\d\dx$', out, re.M)
    assert rows == ['8x8', '16x16'], out
    for name in ('1x1', 'emerging', 'periodic'):
        assert re.search(rf'^{name}: \d+\.\d ms of op time per call; \w+', out, re.M), out
    assert re.search(r'^max sampling ratio vs 1x1: emerging \d+\.\d\dx, periodic \d+\.\d\dx$',
                     out.strip().splitlines()[-1])


@pytest.mark.slow
def test_bench_inverse_matches_the_reference_and_prints_the_summary_line():
    for flags in ([], ['--xla']):
        out = run_script('bench_inverse.py', '--batch', '3', '--repeats', '1', *flags)
        assert all(size in out for size in ('16x16x12', '8x8x24', '4x4x48'))
        last = re.match(r'^min speedup vs reference: \d+\.\dx, max inverse/forward: \d+\.\d\dx, '
                        r'max abs error: (\S+)$', out.strip().splitlines()[-1])
        assert last and float(last[1]) < 1e-4, out


@pytest.mark.slow
@pytest.mark.serial  # mpiexec -n 2: two processes of its own
def test_bench_horovod_runs_one_and_two_processes():
    import horovod.tensorflow  # noqa: F401
    out = run_script('bench_horovod.py', '--depth', '1', '--width', '8', '--steps', '1', '--repeats', '1',
                     '--rounds', '1')
    rows = re.findall(r'^ +([12]) \| +\d+\.\d+ \| +\d+\.\d \| +\d+\.\d\dx$', out, re.M)
    assert rows == ['1', '2'], out
    assert re.search(r'^horovod scaling efficiency \(2 processes\): \d\.\d\d$', out.strip().splitlines()[-1])


@pytest.mark.slow
def test_profile_step_names_the_ops(tmp_path):
    out = run_script('profile_step.py', '--flow_permutation', '3', '--depth', '1', '--width', '8', '--steps', '1',
                     '--out', str(tmp_path / 'trace'))
    assert 'ms of op time per call' in out
    assert re.search(r'Conv2D', out)  # the convolutions show up among the top ops
    assert list((tmp_path / 'trace' / 'plugins' / 'profile').glob('*/*.xplane.pb'))


@pytest.mark.slow
def test_bench_resflow_prints_the_memory_table_and_both_ratios():
    out = run_script('bench_resflow.py', '--idim', '8', '--nblocks', '1', '--fc_idim', '8', '--terms', '2',
                     '--batch', '2', '--steps', '1', '--repeats', '1')
    for row in ('backprop', 'neumann', 'neumann + mem_eff', 'Residual Flow, fc_end True', '1x1 Glow, K='):
        assert row in out
    last = out.strip().splitlines()[-3:]
    assert re.search(r'^memory, Neumann \+ mem_eff vs backprop at n=2: \d+\.\d\dx$', last[0])
    assert re.search(r'^train step vs 1x1 Glow \(same parameters\), fc_end True: \d+\.\d\dx$', last[1])
    assert re.search(r'^train step vs 1x1 Glow \(same parameters\), fc_end False: \d+\.\d\dx$', last[2])
