"""scripts/toy_density.py end to end on tiny settings: every flow, data and energy, plots, restore, bad input, the
public BNAF README's command lines, an output folder holding another run refused (--overwrite starts over).

The runs call the script's `main` in this process (TensorFlow loads once per module, not once per run); the script
file itself runs as a user runs it in the README line's test, and bad input in fresh processes where it matters
that TensorFlow never loads."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from emerging.cli.toy import main
from tests.helpers import ROOT, env, run_main, script_error_imports


def toy(*args, check=True):
    """`toy_density.py ARGS`, in this process (tests/helpers.py run_main)."""
    return run_main(main, args, check)


NLL = re.compile(r'^test nll: (-?\d+\.\d{4}) \+- \d+\.\d{4} nats \(true: (-?\d+\.\d{4}) \+- \d+\.\d{4}\)$')
KL_GAP = re.compile(r'^KL gap: \d+\.\d{4} \+- \d+\.\d{4} nats$')


@pytest.fixture(scope='module')
def checkerboard_run(tmp_path_factory):
    """flow -> (its output folder, its stdout): a 2-step checkerboard run with a figure every step, trained once
    for this module on the first ask (the tests that change the folder work on a copy)."""
    runs = {}

    def trained(flow):
        if flow not in runs:
            folder = tmp_path_factory.mktemp(f'checkerboard_{flow}')
            runs[flow] = folder, toy('--train', '--dataset', 'checkerboard', '--flow', flow, '--n_steps', '2',
                                     '--log_interval', '1', '--output_dir', str(folder), '--no_progress').stdout
        return runs[flow]
    return trained


@pytest.mark.slow
@pytest.mark.parametrize('flow', ['bnaf', 'maf', 'realnvp'])
def test_train_writes_plots_checkpoint_and_the_nll_line(checkerboard_run, tmp_path, flow):
    """A figure every --log_interval steps, the checkpoint, and the test line with the true entropy log 32; --plot
    of that checkpoint draws it and reports the same test line."""
    folder, out = checkerboard_run(flow)
    assert os.path.exists(folder / 'step_1.png') and os.path.exists(folder / 'step_2.png')
    assert os.path.exists(folder / 'checkpoint.index')
    match = NLL.match(out.strip().splitlines()[-1])
    assert match and float(match.group(2)) == pytest.approx(3.4657, abs=1e-4)  # log 32
    # --plot restores the same model: the same test NLL
    again = toy('--plot', '--restore_file', str(folder / 'checkpoint'), '--dataset', 'checkerboard', '--flow', flow,
                '--output_dir', str(tmp_path / 'plot')).stdout
    assert again.strip().splitlines()[-1] == out.strip().splitlines()[-1]
    assert os.path.exists(tmp_path / 'plot' / 'step_0.png')


@pytest.mark.slow
def test_energy_training_reports_the_kl_gap(tmp_path):
    """An energy (u3) trains by the reverse KL: the last line is the KL gap, the last step's figure is written."""
    out = toy('--train', '--dataset', 'u3', '--flow', 'bnaf', '--n_steps', '3', '--log_interval', '3',
              '--output_dir', str(tmp_path), '--no_progress').stdout
    assert KL_GAP.match(out.strip().splitlines()[-1])
    assert os.path.exists(tmp_path / 'step_3.png')


@pytest.mark.parametrize('args, message', [
    (['--train', '--dataset', 'spiral'], 'invalid choice'),
    (['--plot', '--dataset', 'u1'], '--plot needs --restore_file'),
    (['--train', '--restore_file', '/nonexistent/checkpoint'], '--restore_file'),
    (['--train', '--n_steps', '0'], '--n_steps'),
])
def test_bad_input_is_a_clear_error(args, message):
    """Exit code 2 and an error naming the flag."""
    result = toy(*args, check=False)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize('args', [['--train', '--dataset', 'spiral'], ['--train', '--n_steps', '0']])
def test_bad_input_is_reported_before_tensorflow_loads(args):
    """The script file in a fresh process: the error, and TensorFlow never imported."""
    stderr, tensorflow_imported = script_error_imports('toy_density.py', args)
    assert 'error' in stderr and not tensorflow_imported


@pytest.mark.slow
def test_a_checkpoint_of_the_public_toy_code_plots_and_reports_its_nll(tmp_path):
    """toy2d.py's checkpoint (2 networks of 3 tanh layers, 8 units per dimension): --plot draws it and the test
    line is its NLL on the 10,000 test points; flags describing another layout are refused naming the difference."""
    import numpy as np
    import tensorflow as tf

    from emerging.data import toy2d
    from emerging.runs.torch_files import read_torch_file
    from emerging.vector import public_bnaf

    path = os.path.join(ROOT, 'tests', 'runs', 'pytorch', 'bnaf_d2_toy.pt')
    flags = ['--plot', '--restore_file', path, '--dataset', '8gaussians', '--hidden_dim', '8', '--flows', '2',
             '--output_dir', str(tmp_path)]
    out = toy(*flags, '--n_hidden', '3').stdout
    assert os.path.exists(tmp_path / 'step_0.png')
    reported = float(NLL.match(out.splitlines()[-1])[1])
    flow = public_bnaf(read_torch_file(path)['model'], 'gated')[0]
    test = toy2d.sample('8gaussians', 10000, np.random.default_rng(1))  # the script's test points for --seed 0
    expected = -flow.density_distribution().log_prob(tf.constant(test, tf.float32)).numpy().mean()
    assert abs(reported - expected) <= 6e-5, (reported, expected)
    wrong = toy(*flags, '--n_hidden', '2', check=False)
    assert wrong.returncode == 2 and 'tanh layers per network: 3 in the checkpoint, 2 by the flags' in wrong.stderr


AUTHORS_SETTINGS = ['--learning_rate', '0.1', '--batch_dim', '200', '--clip_norm', '0.1', '--steps', '400',
                    '--patience', '2000', '--decay', '0.5', '--flows', '1', '--layers', '3', '--hidden_dim', '50']


def test_the_public_toy2d_flag_names_set_the_same_settings():
    """toy2d.py's flag names parse to this script's settings."""
    from emerging.cli.toy import build_parser

    args = build_parser().parse_args(['--train', *AUTHORS_SETTINGS])
    assert (args.lr, args.batch_size, args.clip_norm, args.n_steps, args.lr_patience, args.lr_decay, args.n_flows,
            args.n_hidden, args.hidden_dim) == (0.1, 200, 0.1, 400, 2000, 0.5, 1, 3, 50)


@pytest.mark.slow
def test_bnaf_trains_at_the_authors_settings(tmp_path):
    """toy2d.py's defaults (learning rate 0.1, 3 tanh layers, one network without residual), 400 steps: the test NLL
    is far below the best single Gaussian's on 8gaussians, log(2 pi) + 1 + log(4 + 1/8) = 4.255 nats (with a
    gated residual on the network it stayed there)."""
    out = toy('--train', '--dataset', '8gaussians', *AUTHORS_SETTINGS, '--log_interval', '400', '--output_dir',
              str(tmp_path), '--no_progress').stdout
    nll = float(NLL.match(out.strip().splitlines()[-1])[1])
    assert nll < 4.255 - 0.5, out


# the public BNAF README's toy2d.py command lines, as printed
PUBLIC_README_LINES = {
    'density2d': '--dataset 8gaussians --experiment density2d --flows 1 --layers 2 --hidden_dim 50 --save --savefig',
    'energy2d': '--dataset t4 --experiment energy2d --flows 1 --layers 2 --hidden_dim 50 --save --savefig',
}


def toy_in(folder, *args):
    """toy_density.py run from `folder` in a fresh process, as a user runs the public command lines (the default
    --output_dir)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'toy_density.py'), *args], cwd=folder,
                          env=env(), capture_output=True, text=True, timeout=600)


def test_the_public_readme_lines_parse_to_their_settings():
    """Both lines parse to their experiment, layout and switches, with the default --output_dir toy_runs; t4 is
    u4."""
    from emerging.cli.toy import build_parser, check

    for experiment, line in PUBLIC_README_LINES.items():
        args = build_parser().parse_args(line.split())
        check(args)
        assert (args.experiment, args.n_flows, args.n_hidden, args.hidden_dim, args.save, args.savefig,
                args.train, args.plot, args.output_dir) == (experiment, 1, 2, 50, True, True, False, False, 'toy_runs')
    assert args.dataset == 'u4' and args.dataset_name == 't4'


@pytest.mark.parametrize('flags, dataset', [
    (['--train'], '8gaussians'), (['--experiment', 'density2d'], '8gaussians'), (['--experiment', 'energy2d'], 'u1'),
    (['--train', '--dataset', 't4'], 'u4'), (['--experiment', 'energy2d', '--dataset', 't1'], 'u1'),
])
def test_the_dataset_follows_the_experiment_and_t1_to_t4_are_u1_to_u4(flags, dataset, tmp_path):
    """The default --dataset by --experiment, and toy2d.py's energy names."""
    from emerging.cli.toy import build_parser, check

    args = build_parser().parse_args([*flags, '--output_dir', str(tmp_path)])
    check(args)
    assert args.dataset == dataset


@pytest.mark.slow
def test_the_public_density2d_line_runs_as_printed_by_the_script_file(tmp_path):
    """scripts/toy_density.py in a fresh process from a working folder, 2 steps: the default --output_dir toy_runs
    gets the checkpoint (--save) and the figure (--savefig); the last line is the test NLL."""
    result = toy_in(tmp_path, *PUBLIC_README_LINES['density2d'].split(), '--steps', '2')
    assert result.returncode == 0, result.stdout + result.stderr
    assert NLL.match(result.stdout.strip().splitlines()[-1]), result.stdout
    assert os.path.exists(tmp_path / 'toy_runs' / 'checkpoint.index')
    assert os.path.exists(tmp_path / 'toy_runs' / 'step_2.png')


@pytest.mark.slow
def test_the_public_energy2d_line_runs_as_printed(tmp_path, monkeypatch):
    """From a working folder, 2 steps: the default --output_dir toy_runs gets the checkpoint (--save) and the figure
    (--savefig); t4 is reported as u4 first, the KL gap last."""
    monkeypatch.chdir(tmp_path)
    lines = toy(*PUBLIC_README_LINES['energy2d'].split(), '--steps', '2').stdout.strip().splitlines()
    assert KL_GAP.match(lines[-1]), lines
    assert os.path.exists(tmp_path / 'toy_runs' / 'checkpoint.index')
    assert os.path.exists(tmp_path / 'toy_runs' / 'step_2.png')
    assert lines[0] == "--dataset t4: the energy u4 (toy2d.py's name for it)"


@pytest.mark.slow
def test_the_public_form_writes_only_what_its_switches_ask_for(tmp_path):
    """--experiment with --save and without --savefig: the checkpoint, no figure, and no figure named in the
    output."""
    out = toy('--dataset', '8gaussians', '--experiment', 'density2d', '--steps', '2', '--save',
              '--output_dir', str(tmp_path), '--no_progress').stdout
    assert os.path.exists(tmp_path / 'checkpoint.index') and not list(tmp_path.glob('*.png'))
    assert 'step 2: loss' in out and '.png' not in out and NLL.match(out.strip().splitlines()[-1])


@pytest.mark.parametrize('args, message', [
    (['--dataset', 't4', '--experiment', 'density2d'], '--experiment density2d needs a data set for --dataset, got '
                                                       '--dataset t4'),
    (['--dataset', '8gaussians', '--experiment', 'energy2d'], '--experiment energy2d needs an energy (u1-u4 or '
                                                              't1-t4) for --dataset, got --dataset 8gaussians'),
    (['--dataset', '8gaussians'], 'one of --train, --plot or --experiment is needed'),
])
def test_an_experiment_that_does_not_fit_the_dataset_is_refused_before_tensorflow_loads(args, message):
    """The script file in a fresh process: the error naming the mismatch, and TensorFlow never imported."""
    stderr, tensorflow_imported = script_error_imports('toy_density.py', args)
    assert f'toy_density.py: error: {message}' in stderr and not tensorflow_imported


@pytest.mark.slow
def test_a_folder_holding_another_runs_checkpoint_is_refused_and_overwrite_starts_over(checkerboard_run, tmp_path):
    """A copy of a trained run's folder: a new run there is refused, naming --overwrite; continuing from its own
    checkpoint is allowed, --overwrite of the folder it is read from is not; --overwrite deletes the checkpoint and
    the figures only."""
    shutil.copytree(checkerboard_run('maf')[0], tmp_path, dirs_exist_ok=True)
    assert os.path.exists(tmp_path / 'step_1.png')
    flags = ['--train', '--dataset', 'checkerboard', '--flow', 'maf', '--output_dir', str(tmp_path)]
    again = toy(*flags, '--n_steps', '2', check=False)
    assert again.returncode == 2 and f'--output_dir {tmp_path} holds a run (checkpoint.index)' in again.stderr
    assert '--overwrite' in again.stderr
    # continuing from its own checkpoint there is allowed; --overwrite of the folder it is read from is not
    toy(*flags, '--n_steps', '2', '--log_interval', '2', '--restore_file', str(tmp_path / 'checkpoint'),
        '--no_progress')
    both = toy(*flags, '--restore_file', str(tmp_path / 'checkpoint'), '--overwrite', check=False)
    assert both.returncode == 2 and 'which --overwrite would delete first' in both.stderr
    (tmp_path / 'notes.md').write_text('mine')
    toy(*flags, '--n_steps', '3', '--log_interval', '3', '--overwrite', '--no_progress')
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.data-00000-of-00001', 'checkpoint.index', 'notes.md',
                                            'step_3.png']
