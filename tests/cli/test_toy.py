"""scripts/toy_density.py end to end on tiny settings: every flow, data and energy, plots, restore, bad input."""
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env, script_error_imports

pytestmark = pytest.mark.slow  # subprocesses


def toy(*args, check=True):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'toy_density.py'), *args], cwd=ROOT,
                            env=env(), capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


NLL = re.compile(r'^test nll: (-?\d+\.\d{4}) \+- \d+\.\d{4} nats \(true: (-?\d+\.\d{4}) \+- \d+\.\d{4}\)$')


@pytest.mark.parametrize('flow', ['bnaf', 'maf', 'realnvp'])
def test_train_writes_plots_checkpoint_and_the_nll_line(tmp_path, flow):
    out = toy('--train', '--dataset', 'checkerboard', '--flow', flow, '--n_steps', '20', '--log_interval', '10',
              '--output_dir', str(tmp_path), '--no_progress').stdout
    assert os.path.exists(tmp_path / 'step_10.png') and os.path.exists(tmp_path / 'step_20.png')
    assert os.path.exists(tmp_path / 'checkpoint.index')
    match = NLL.match(out.strip().splitlines()[-1])
    assert match and float(match.group(2)) == pytest.approx(3.4657, abs=1e-4)  # log 32
    # --plot restores the same model: the same test NLL
    again = toy('--plot', '--restore_file', str(tmp_path / 'checkpoint'), '--dataset', 'checkerboard', '--flow', flow,
                '--output_dir', str(tmp_path / 'plot')).stdout
    assert again.strip().splitlines()[-1] == out.strip().splitlines()[-1]
    assert os.path.exists(tmp_path / 'plot' / 'step_0.png')


def test_energy_training_reports_the_kl_gap(tmp_path):
    out = toy('--train', '--dataset', 'u3', '--flow', 'bnaf', '--n_steps', '30', '--log_interval', '30',
              '--output_dir', str(tmp_path), '--no_progress').stdout
    assert re.match(r'^KL gap: \d+\.\d{4} \+- \d+\.\d{4} nats$', out.strip().splitlines()[-1])
    assert os.path.exists(tmp_path / 'step_30.png')


@pytest.mark.parametrize('args, message', [
    (['--train', '--dataset', 'spiral'], 'invalid choice'),
    (['--plot', '--dataset', 'u1'], '--plot needs --restore_file'),
    (['--train', '--restore_file', '/nonexistent/checkpoint'], '--restore_file'),
    (['--train', '--n_steps', '0'], '--n_steps'),
])
def test_bad_input_is_a_clear_error(args, message):
    result = toy(*args, check=False)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize('args', [['--train', '--dataset', 'spiral'], ['--train', '--n_steps', '0']])
def test_bad_input_is_reported_before_tensorflow_loads(args):
    stderr, tensorflow_imported = script_error_imports('toy_density.py', args)
    assert 'error' in stderr and not tensorflow_imported
