"""scripts/tabular_density.py end to end on small files in the benchmark layouts: training, the plateau's
restore of the best weights, early stopping, the test line, bad input."""
import glob
import os
import re
import subprocess
import sys

import pytest

from tests.data import tabular_files
from tests.helpers import ROOT, env, script_error_imports

pytestmark = pytest.mark.slow  # subprocesses

TEST_LINE = re.compile(r'^test nll: (-?\d+\.\d{4}) \+- (\d+\.\d{4}) nats \(published BNAF: (-?\d+\.\d{2})\)$')
EPOCH_LINE = re.compile(r'^epoch (\d+): train_loss (-?\d+\.\d{4}), validation_loss (-?\d+\.\d{4}), lr (\S+)$')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return tabular_files.write_all(str(tmp_path_factory.mktemp('tabular')))


def tabular(*args, check=True):
    script = os.path.join(ROOT, 'scripts', 'tabular_density.py')
    result = subprocess.run([sys.executable, script, *args, '--no_progress'],
                            cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def epochs(stdout):
    return [(int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in map(EPOCH_LINE.match, stdout.splitlines())
            if m]


def test_bnaf_trains_and_ends_with_the_test_line(data_dir, tmp_path):
    out = tabular('--dataset', 'miniboone', '--data_dir', data_dir, '--flow', 'bnaf', '--epochs', '4',
                  '--output_dir', str(tmp_path)).stdout
    lines = out.splitlines()
    assert lines[0] == 'miniboone: d = 7, train 243, validation 27, test 30'
    history = epochs(out)
    assert [e[0] for e in history] == [1, 2, 3, 4] and history[-1][2] < history[0][2]
    match = TEST_LINE.match(lines[-1])
    assert match and float(match[3]) == 8.95, lines[-1]
    assert os.path.exists(tmp_path / 'best.index') and glob.glob(str(tmp_path / 'events.out.tfevents.*'))


@pytest.mark.parametrize('flow, dataset', [('maf', 'power'), ('realnvp', 'gas'), ('bnaf', 'bsds300')])
def test_every_flow_and_layout_runs(data_dir, tmp_path, flow, dataset):
    out = tabular('--dataset', dataset, '--data_dir', data_dir, '--flow', flow, '--epochs', '2', '--flows', '2',
                  '--output_dir', str(tmp_path)).stdout
    assert TEST_LINE.match(out.splitlines()[-1]), out


def test_the_plateau_restores_the_best_weights_and_stops_early(data_dir, tmp_path):
    out = tabular('--dataset', 'hepmass', '--data_dir', data_dir, '--epochs', '300', '--learning_rate', '0.2',
                  '--patience', '0', '--cooldown', '0', '--early_stopping', '3', '--polyak', '0',
                  '--residual', 'normal', '--output_dir', str(tmp_path)).stdout
    history = epochs(out)
    assert 'stopping' in out and len(history) < 300
    assert history[-1][3] < 0.2  # reduced
    best = min(e[2] for e in history)
    final = float(re.search(r'^validation nll: (-?\d+\.\d{4}) nats$', out, re.M)[1])
    assert abs(final - best) <= 1e-4, (final, best)  # the best weights, restored


def test_bad_input_is_a_clear_error(data_dir, tmp_path):
    missing = tabular('--dataset', 'power', '--data_dir', str(tmp_path), check=False)
    assert missing.returncode == 2 and 'power/data.npy' in missing.stderr and '1161203' in missing.stderr
    assert missing.stdout == ''
    unknown = tabular('--dataset', 'cifar10', '--data_dir', data_dir, check=False)
    assert unknown.returncode == 2 and '--dataset' in unknown.stderr
    for flag, value in (('--polyak', '1'), ('--decay', '0'), ('--epochs', '0'), ('--layers', '-1')):
        bad = tabular('--dataset', 'power', '--data_dir', data_dir, flag, value, check=False)
        assert bad.returncode == 2 and flag in bad.stderr, (flag, bad.stderr)
    no_dir = tabular('--dataset', 'power', '--data_dir', str(tmp_path / 'nowhere'), check=False)
    assert no_dir.returncode == 2 and '--data_dir' in no_dir.stderr


def test_bad_input_is_reported_before_tensorflow_loads(data_dir, tmp_path):
    for args in (['--dataset', 'power', '--data_dir', str(tmp_path)], ['--flow', 'glow', '--data_dir', data_dir],
                 ['--dataset', 'power', '--data_dir', data_dir, '--decay', '0']):
        stderr, tensorflow_imported = script_error_imports('tabular_density.py', args)
        assert 'error' in stderr and not tensorflow_imported, (args, stderr)
