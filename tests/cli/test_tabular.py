"""scripts/tabular_density.py end to end on small files in the benchmark layouts: training, the plateau's
restore of the best weights, early stopping, the test line, bad input, the public BNAF README's command line, an
output folder holding another run refused (--overwrite starts over).

The runs call the script's `main` in this process (TensorFlow loads once per module, not once per run); the script
file itself runs as a user runs it in the README line's test, and bad input in fresh processes where it matters
that TensorFlow never loads."""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from emerging.cli.tabular import main
from tests.data import tabular_files
from tests.helpers import ROOT, env, run_main, script_error_imports

TEST_LINE = re.compile(r'^test nll: (-?\d+\.\d{4}) \+- (\d+\.\d{4}) nats \(published BNAF: (-?\d+\.\d{2})\)$')
EPOCH_LINE = re.compile(r'^epoch (\d+): train_loss (-?\d+\.\d{4}), validation_loss (-?\d+\.\d{4}), lr (\S+)$')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return tabular_files.write_all(str(tmp_path_factory.mktemp('tabular')))


def tabular(*args, check=True):
    """`tabular_density.py ARGS --no_progress`, in this process (tests/helpers.py run_main)."""
    return run_main(main, [*args, '--no_progress'], check)


# the training rows of the small files (tabular_files) and a batch size dividing them: every batch of the same
# shape, so the training step is traced once (a last, smaller batch retraces it; the README line's run has one)
WHOLE_BATCHES = {'power': '81', 'gas': '81', 'miniboone': '81', 'bsds300': '100'}


def epochs(stdout):
    return [(int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in map(EPOCH_LINE.match, stdout.splitlines())
            if m]


def power_flags(data_dir, output_dir, flows='1'):
    """A small BNAF on power (--flows 1 unless told), in whole batches, writing to `output_dir`."""
    return ['--dataset', 'power', '--data_dir', data_dir, '--flows', flows, '--batch_dim', WHOLE_BATCHES['power'],
            '--output_dir', str(output_dir)]


@pytest.fixture(scope='module')
def power_run(data_dir, tmp_path_factory):
    """(its output folder, its stdout): `power_flags`, 2 epochs, trained once for this module (the tests that
    change the folder work on a copy)."""
    folder = tmp_path_factory.mktemp('power_run')
    return folder, tabular(*power_flags(data_dir, folder), '--epochs', '2').stdout


@pytest.mark.slow
def test_bnaf_trains_and_ends_with_the_test_line(data_dir, tmp_path):
    """The sizes line first, an epoch line per epoch with the validation loss falling, the test line with the
    published number last; the best checkpoint and the TensorBoard curves written."""
    out = tabular('--dataset', 'miniboone', '--data_dir', data_dir, '--flow', 'bnaf', '--flows', '2', '--epochs', '4',
                  '--batch_dim', WHOLE_BATCHES['miniboone'], '--output_dir', str(tmp_path)).stdout
    lines = out.splitlines()
    assert lines[0] == 'miniboone: d = 7, train 243, validation 27, test 30'
    history = epochs(out)
    assert [e[0] for e in history] == [1, 2, 3, 4] and history[-1][2] < history[0][2]
    match = TEST_LINE.match(lines[-1])
    assert match and float(match[3]) == 8.95, lines[-1]
    assert os.path.exists(tmp_path / 'best.index') and glob.glob(str(tmp_path / 'events.out.tfevents.*'))


@pytest.mark.slow
@pytest.mark.parametrize('flow, dataset', [('maf', 'power'), ('realnvp', 'gas'), ('bnaf', 'bsds300')])
def test_every_flow_and_layout_runs(data_dir, tmp_path, flow, dataset):
    """Every flow on another benchmark's layout (bsds300: 63 dimensions) ends with the test line."""
    out = tabular('--dataset', dataset, '--data_dir', data_dir, '--flow', flow, '--epochs', '2', '--flows', '1',
                  '--batch_dim', WHOLE_BATCHES[dataset], '--output_dir', str(tmp_path)).stdout
    assert TEST_LINE.match(out.splitlines()[-1]), out


@pytest.mark.slow
def test_the_plateau_restores_the_best_weights_and_stops_early(data_dir, tmp_path):
    """A high learning rate, no patience and no cooldown: the plateau reduces the learning rate, early stopping ends
    the run long before --epochs, and the final validation NLL is the best epoch's (its weights restored)."""
    out = tabular('--dataset', 'hepmass', '--data_dir', data_dir, '--flows', '2', '--epochs', '300',
                  '--learning_rate', '0.2', '--patience', '0', '--cooldown', '0', '--early_stopping', '3',
                  '--polyak', '0', '--residual', 'normal', '--output_dir', str(tmp_path)).stdout
    history = epochs(out)
    assert 'stopping' in out and len(history) < 300
    assert history[-1][3] < 0.2  # reduced
    best = min(e[2] for e in history)
    final = float(re.search(r'^validation nll: (-?\d+\.\d{4}) nats$', out, re.M)[1])
    assert abs(final - best) <= 1e-4, (final, best)  # the best weights, restored


def test_bad_input_is_a_clear_error(data_dir, tmp_path):
    """Exit code 2 and an error naming the flag (a missing file by its path and the record to download it from),
    nothing on stdout."""
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
    """The script file in fresh processes: the error, and TensorFlow never imported."""
    for args in (['--dataset', 'power', '--data_dir', str(tmp_path)], ['--flow', 'glow', '--data_dir', data_dir],
                 ['--dataset', 'power', '--data_dir', data_dir, '--decay', '0']):
        stderr, tensorflow_imported = script_error_imports('tabular_density.py', args)
        assert 'error' in stderr and not tensorflow_imported, (args, stderr)


PUBLIC = os.path.join(ROOT, 'tests', 'runs', 'pytorch')


@pytest.mark.slow
def test_a_checkpoint_of_the_public_code_reports_its_test_nll(data_dir, tmp_path):
    """density_estimation.py's checkpoint of a power-sized BNAF (2 networks, 2 tanh layers, 4 units per
    dimension, gated): --epochs 0 reports the test NLL of its Polyak averages, as that code evaluates it."""
    import numpy as np
    import tensorflow as tf

    from emerging.averaging import PolyakAverage
    from emerging.data import tabular as tabular_data
    from emerging.runs.torch_files import read_torch_file
    from emerging.vector import public_bnaf, public_polyak_averages

    path = os.path.join(PUBLIC, 'bnaf_d6_gated.pt')
    flags = ['--dataset', 'power', '--data_dir', data_dir, '--flows', '2', '--layers', '2', '--hidden_dim', '4',
             '--residual', 'gated', '--batch_dim', WHOLE_BATCHES['power'], '--output_dir', str(tmp_path)]
    out = tabular(*flags, '--restore_file', path, '--epochs', '0').stdout
    assert f'from {path}' in out and 'not trained' in out
    reported = float(TEST_LINE.match(out.splitlines()[-1])[1])
    saved = read_torch_file(path)
    flow, order = public_bnaf(saved['model'], 'gated')
    polyak = PolyakAverage(flow.variables, 0.998)
    polyak.assign_averages(public_polyak_averages(flow, order, saved['optimizer']))
    polyak.swap_polyak()
    test = tabular_data.load('power', data_dir)[2]
    expected = -flow.density_distribution().log_prob(tf.constant(test)).numpy().mean()
    assert abs(reported - expected) <= 6e-5, (reported, expected)
    # training goes on from it
    trained = tabular(*flags, '--restore_file', path, '--epochs', '1').stdout
    assert [e[0] for e in epochs(trained)] == [1] and TEST_LINE.match(trained.splitlines()[-1])
    # a layout the flags do not describe, or another flow, is refused before any work
    wrong = tabular(*[f if f != '4' else '5' for f in flags], '--restore_file', path, '--epochs', '0', check=False)
    assert wrong.returncode == 2 and 'hidden units per dimension (--hidden_dim): 4 in the checkpoint, 5 by the flags' \
        in wrong.stderr and np.isfinite(expected)
    maf = tabular(*flags, '--flow', 'maf', '--restore_file', path, check=False)
    assert maf.returncode == 2 and 'needs --flow bnaf' in maf.stderr


@pytest.mark.slow
def test_a_checkpoint_of_this_script_evaluates_to_its_own_test_line(data_dir, power_run, tmp_path):
    """--epochs 0 from a trained run's best checkpoint reports that run's test line; flags describing another
    model are refused."""
    folder, trained = power_run
    again = tabular(*power_flags(data_dir, tmp_path / 'again'), '--epochs', '0', '--restore_file',
                    str(folder / 'best')).stdout
    assert again.splitlines()[-1] == trained.splitlines()[-1]
    other = tabular(*power_flags(data_dir, tmp_path / 'other', flows='2'), '--epochs', '0', '--restore_file',
                    str(folder / 'best'), check=False)
    assert other.returncode == 2 and 'does not fit --flow bnaf with these flags' in other.stderr


# the public BNAF README's density_estimation.py command line, as printed
PUBLIC_README_LINE = '--dataset miniboone --flows 5 --layers 0 --hidden_dim 10 --save'.split()


def tabular_in(folder, *args):
    """tabular_density.py run from `folder` in a fresh process, as a user runs the public command line (the default
    --data_dir data)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'tabular_density.py'), *args], cwd=folder,
                          env=env(), capture_output=True, text=True, timeout=600)


def test_the_public_readme_line_parses_to_its_settings():
    """The line's flags, with the defaults data and tabular_runs."""
    from emerging.cli.tabular import build_parser

    args = build_parser().parse_args(PUBLIC_README_LINE)
    assert (args.dataset, args.flows, args.layers, args.hidden_dim, args.save, args.data_dir, args.output_dir) == \
        ('miniboone', 5, 0, 10, True, 'data', 'tabular_runs')


@pytest.mark.slow
def test_the_public_readme_line_runs_as_printed(tmp_path):
    """scripts/tabular_density.py in a fresh process from a working folder holding data/ (the small files), one
    epoch: the best checkpoint in the default --output_dir and the test line."""
    tabular_files.write_all(str(tmp_path / 'data'))
    result = tabular_in(tmp_path, *PUBLIC_README_LINE, '--epochs', '1')
    assert result.returncode == 0, result.stdout + result.stderr
    assert TEST_LINE.match(result.stdout.splitlines()[-1]), result.stdout
    assert os.path.exists(tmp_path / 'tabular_runs' / 'best.index')


def test_the_public_readme_line_without_the_data_names_the_missing_file(tmp_path, monkeypatch):
    """From a working folder without data/: exit code 2 naming the file and where to download it, nothing on
    stdout."""
    monkeypatch.chdir(tmp_path)
    result = tabular(*PUBLIC_README_LINE, check=False)
    assert result.returncode == 2 and result.stdout == ''
    assert os.path.join('data', 'miniboone', 'data.npy') in result.stderr and '1161203' in result.stderr


@pytest.mark.slow
def test_an_output_folder_holding_another_runs_best_checkpoint_is_refused(data_dir, power_run, tmp_path):
    """A copy of a trained run's folder: a new run there is refused, naming --overwrite; continuing from its own
    best checkpoint is allowed; --overwrite deletes the run's checkpoint and curves, not the other files."""
    shutil.copytree(power_run[0], tmp_path, dirs_exist_ok=True)
    flags = power_flags(data_dir, tmp_path)
    again = tabular(*flags, '--epochs', '1', check=False)
    assert again.returncode == 2 and f'--output_dir {tmp_path} holds a run (best.index)' in again.stderr
    assert '--overwrite' in again.stderr
    tabular(*flags, '--epochs', '1', '--restore_file', str(tmp_path / 'best'))  # continues from its own best
    (tmp_path / 'notes.md').write_text('mine')
    before = sorted(glob.glob(str(tmp_path / 'events.out.tfevents.*')))
    tabular(*flags, '--epochs', '1', '--overwrite')
    assert (tmp_path / 'notes.md').read_text() == 'mine'
    assert not set(before) & set(glob.glob(str(tmp_path / 'events.out.tfevents.*')))
