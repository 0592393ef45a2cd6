"""The benchmark and profiling scripts run and print their summaries (tiny settings; not timed)."""
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env

pytestmark = pytest.mark.slow  # end-to-end: subprocesses and real training runs


def run_script(name, *args):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', name), *args], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_bench_train_prints_every_table_and_the_summary_line():
    out = run_script('bench_train.py', '--depth', '1', '--width', '8', '--steps', '1', '--repeats', '1',
                     '--no_memory')
    for row in ('tfb.Glow', 'ours 1x1 (perm 2)', 'ours emerging (perm 3)', 'ours periodic (perm 4)',
                'ours emerging, XLA', 'ours 1x1, bfloat16', 'ours emerging, bfloat16'):
        assert row in out
    assert 'sample 100 images' in out and 'input pipeline alone' in out
    assert re.search(r'^train throughput vs tfb\.Glow: \d+\.\d\dx$', out.strip().splitlines()[-1])


def test_bench_horovod_runs_one_and_two_processes():
    import horovod.tensorflow  # noqa: F401
    out = run_script('bench_horovod.py', '--depth', '1', '--width', '8', '--steps', '1', '--repeats', '1',
                     '--rounds', '1')
    rows = re.findall(r'^ +([12]) \| +\d+\.\d+ \| +\d+\.\d \| +\d+\.\d\dx$', out, re.M)
    assert rows == ['1', '2'], out
    assert re.search(r'^horovod scaling efficiency \(2 processes\): \d\.\d\d$', out.strip().splitlines()[-1])


def test_profile_step_names_the_ops(tmp_path):
    out = run_script('profile_step.py', '--flow_permutation', '3', '--depth', '1', '--width', '8', '--steps', '1',
                     '--out', str(tmp_path / 'trace'))
    assert 'ms of op time per call' in out
    assert re.search(r'Conv2D', out)  # the convolutions show up among the top ops
    assert list((tmp_path / 'trace' / 'plugins' / 'profile').glob('*/*.xplane.pb'))


def test_bench_resflow_prints_the_memory_table_and_both_ratios():
    out = run_script('bench_resflow.py', '--idim', '8', '--nblocks', '1-1-1', '--terms', '2', '--batch', '2',
                     '--steps', '1', '--repeats', '1')
    for row in ('backprop', 'neumann', 'neumann + mem_eff', 'Residual Flow, fc_end True', '1x1 Glow, K='):
        assert row in out
    last = out.strip().splitlines()[-3:]
    assert re.search(r'^memory, Neumann \+ mem_eff vs backprop at n=2: \d+\.\d\dx$', last[0])
    assert re.search(r'^train step vs 1x1 Glow \(same parameters\), fc_end True: \d+\.\d\dx$', last[1])
    assert re.search(r'^train step vs 1x1 Glow \(same parameters\), fc_end False: \d+\.\d\dx$', last[2])
