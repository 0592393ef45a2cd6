"""scripts/train_resflow_toy.py, the public train_toy.py's command line: every public flag with its default, the
published command line, every data set; tiny runs (iresnet, realnvp) write the reference's log lines, the figures,
the best checkpoint and the two final lines, and resume from the checkpoint; bad flags, and a --save folder holding
another run, are errors naming the flag before TensorFlow loads (--overwrite starts over).

The runs call the script's `main` in this process (TensorFlow loads once per module, not once per run); the script
file itself runs in the --overwrite test, and bad flags in fresh processes where it matters that TensorFlow never
loads."""
import os
import re

import pytest

from emerging.cli.resflow_toy import build_parser, check, main
from emerging.data import toy2d
from tests.helpers import run_main, run_script, script_error_imports

# train_toy.py's flags (argparse dests) and defaults
PUBLIC_DEFAULTS = {
    'data': 'pinwheel', 'arch': 'iresnet', 'coeff': 0.9, 'vnorms': '222222', 'n_lipschitz_iters': 5, 'atol': None,
    'rtol': None, 'learn_p': False, 'mixed': True, 'dims': '128-128-128-128', 'act': 'swish', 'nblocks': 100,
    'brute_force': False, 'actnorm': False, 'batchnorm': False, 'exact_trace': False, 'n_power_series': None,
    'n_samples': 1, 'n_dist': 'geometric', 'niters': 50000, 'batch_size': 500, 'test_batch_size': 10000,
    'lr': 1e-3, 'weight_decay': 1e-5, 'annealing_iters': 0, 'save': 'experiments/iresnet_toy', 'viz_freq': 100,
    'val_freq': 100, 'log_freq': 10, 'gpu': 0, 'seed': 0,
}
PUBLISHED = ['--data', '8gaussians', '--arch', 'iresnet', '--coeff', '0.9', '--vnorms', '222222', '--dims',
             '128-128-128-128', '--act', 'swish', '--nblocks', '100']
TINY = ['--data', '8gaussians', '--nblocks', '2', '--dims', '16-16', '--niters', '30', '--batch_size', '100',
        '--viz_freq', '15', '--val_freq', '15', '--no_progress']
NLL = re.compile(r'^test nll: (-?\d+\.\d{4}) \+- \d+\.\d{4} nats \(true: (-?\d+\.\d{4}) \+- \d+\.\d{4}\)$')
PARAMETERS = re.compile(r'^parameters: [\d,]+; train steps/s: (\d+(\.\d+)?|nan)$')
# train_toy.py's logger lines
ITER = re.compile(r'^Iter (\d{4}) \| Time \d+\.\d{4}\(\d+\.\d{4}\) \| Loss -?\d+\.\d{6}\(-?\d+\.\d{6}\) '
                  r'\| Logp\(z\) -?\d+\.\d{6}\(-?\d+\.\d{6}\) \| DeltaLogp -?\d+\.\d{6}\(-?\d+\.\d{6}\)$')
TEST = re.compile(r'^\[TEST\] Iter (\d{4}) \| Test Loss (-?\d+\.\d{6}) \| Test Logp\(z\) -?\d+\.\d{6} '
                  r'\| Test DeltaLogp -?\d+\.\d{6}$')


def run(*args, check=True):
    """`train_resflow_toy.py ARGS`, in this process (tests/helpers.py run_main)."""
    return run_main(main, args, check)


def final_nll(stdout):
    lines = stdout.strip().splitlines()
    assert PARAMETERS.match(lines[-2]), lines[-2]
    match = NLL.match(lines[-1])
    assert match, lines[-1]
    return float(match.group(1)), float(match.group(2))


def test_every_public_flag_parses_with_its_default():
    """train_toy.py's flags and defaults, this port's two more, and help text on every flag."""
    args = build_parser().parse_args([])
    assert {name: getattr(args, name) for name in PUBLIC_DEFAULTS} == PUBLIC_DEFAULTS
    assert args.resume is None and args.no_progress is False
    # every flag has help text
    assert all(action.help for action in build_parser()._actions)


def test_the_published_command_line_parses(tmp_path):
    """The published command line checks: its widths, no checkpoint to restore, its architecture."""
    args = build_parser().parse_args([*PUBLISHED, '--save', str(tmp_path)])
    hidden, restore = check(args)
    assert hidden == (128, 128, 128, 128) and restore is None
    assert (args.arch, args.coeff, args.act, args.nblocks) == ('iresnet', 0.9, 'swish', 100)


@pytest.mark.parametrize('name', toy2d.DATASETS)
def test_every_data_set_is_accepted(tmp_path, name):
    """Every toy2d data set passes the checks."""
    check(build_parser().parse_args(['--data', name, '--save', str(tmp_path)]))


@pytest.mark.parametrize('args, message', [
    (['--vnorms', '2f2222'], '--vnorms 2f2222 is not supported'),
    (['--vnorms', '2222'], '--vnorms 2222 needs one entry per width'),
    (['--learn-p', 'True'], '--learn-p True is not supported'),
    (['--learn-p', 'True', '--mixed', 'False'], '--learn-p True is not supported'),
    (['--coeff', '1.2'], '--coeff must be in (0, 1)'),
    (['--dims', '64-x'], '--dims must be widths'),
    (['--dims', '64-0'], '--dims needs positive widths'),
    (['--act', 'maxmin', '--dims', '64-63'], '--act maxmin pairs its inputs'),
    (['--nblocks', '0'], '--nblocks must be positive'),
    (['--n-lipschitz-iters', '0'], '--n-lipschitz-iters must be positive'),
    (['--n-power-series', '0'], '--n-power-series must be positive'),
    (['--batch_size', '0'], '--batch_size must be positive'),
    (['--niters', '-1'], '--niters must not be negative'),
    (['--seed', '-1'], '--seed must not be negative'),
    (['--lr', '0'], '--lr must be a positive number'),
    (['--weight-decay', '-1'], '--weight-decay must be a number >= 0'),
    (['--atol', '-1'], '--atol must be a positive number'),
    (['--resume', '/nonexistent/checkpt-10'], '--resume /nonexistent/checkpt-10: no checkpoint there'),
    (['--brute-force', 'yes'], '--brute-force'),
    (['--act', 'gelu'], '--act'),
    (['--data', 'spiral'], '--data'),
])
def test_bad_flags_are_errors_naming_the_flag(tmp_path, args, message):
    """Exit code 2 and an error naming the flag, nothing on stdout and nothing written to --save."""
    base = ['--data', '8gaussians'] if '--data' not in args else []
    result = run(*base, *args, '--save', str(tmp_path), check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stdout == '' and not os.listdir(tmp_path)


def test_the_public_default_data_set(tmp_path):
    """pinwheel, train_toy.py's default: accepted where toy2d has it, else an error naming --data."""
    args = build_parser().parse_args(['--save', str(tmp_path)])
    if 'pinwheel' in toy2d.DATASETS:
        check(args)
    else:
        with pytest.raises(ValueError, match='--data pinwheel is not available here'):
            check(args)


@pytest.mark.parametrize('args', [['--vnorms', '22f222'], ['--learn-p', 'True'], ['--dims', '1-x'],
                                  ['--resume', '/nonexistent']])
def test_bad_flags_are_reported_before_tensorflow_loads(tmp_path, args):
    """The script file in a fresh process: the error, and TensorFlow never imported."""
    stderr, tensorflow_imported = script_error_imports('train_resflow_toy.py',
                                                       ['--data', '8gaussians', *args, '--save', str(tmp_path)])
    assert 'error' in stderr and not tensorflow_imported


@pytest.mark.slow
def test_tiny_iresnet_run_writes_logs_figures_checkpoint_and_the_final_lines(tmp_path):
    """train_toy.py's log lines, the figures, the best checkpoint and the final lines; training lowers the test NLL;
    --resume evaluates or continues the run; a checkpoint of another model is refused naming what differs."""
    save = tmp_path / 'run'
    out = run(*TINY, '--save', str(save)).stdout
    nll, entropy = final_nll(out)
    assert entropy == pytest.approx(toy2d.entropy('8gaussians')[0], abs=1e-4)
    with open(save / 'logs') as f:
        lines = f.read().splitlines()
    assert lines[0].startswith('Namespace(') and "data='8gaussians'" in lines[0]
    assert lines[1].startswith('Number of trainable parameters: ')
    assert [int(ITER.match(line).group(1)) for line in lines if ITER.match(line)] == [10, 20, 30]
    tests = [TEST.match(line) for line in lines if line.startswith('[TEST]')]
    assert all(tests) and [int(t.group(1)) for t in tests] == [15, 30]
    assert sum(line == 'Ords: [[' + ','.join(['2.00'] * 12) + ']]' for line in lines) == 2  # 2 blocks x 3 layers
    assert 'Training has finished.' in lines and lines[-1] == out.strip().splitlines()[-1]
    assert sorted(os.listdir(save / 'figs')) == ['0001.png', '0015.png', '0030.png']
    best = min(float(t.group(2)) for t in tests)
    prefixes = [name[:-len('.index')] for name in os.listdir(save) if name.endswith('.index')]
    assert len(prefixes) == 1 and prefixes[0].startswith('checkpt-')
    assert os.path.exists(save / 'checkpoint')
    # training lowered the test NLL below the initial model's (--niters 0: the same model, evaluated only)
    initial, _ = final_nll(run(*TINY, '--niters', '0', '--save', str(tmp_path / 'initial')).stdout)
    assert nll < initial - 0.02, (nll, initial)
    # --resume: the best checkpoint's iteration reached, so it is evaluated only (the same weights as the last
    # step when the last validation was the best)
    again = run(*TINY, '--resume', str(save), '--save', str(tmp_path / 'again')).stdout
    assert PARAMETERS.match(again.strip().splitlines()[-2]).group(1) == 'nan'
    if best == float(tests[-1].group(2)):
        assert final_nll(again)[0] == nll
    # ... and continues to a later --niters from there
    more = run(*TINY[:-1], '--niters', '40', '--resume', str(save), '--save', str(save), '--no_progress')
    with open(save / 'logs') as f:
        later = f.read().splitlines()[len(lines):]
    assert [int(ITER.match(line).group(1)) for line in later if ITER.match(line)] == [40]
    final_nll(more.stdout)
    # a checkpoint of another model is refused, naming what differs
    for flags in (['--nblocks', '3'], ['--nblocks', '1'], ['--dims', '16-8']):
        wrong = run(*TINY, *flags, '--resume', str(save), '--save', str(tmp_path / 'wrong'), check=False)
        assert wrong.returncode == 2 and 'does not fit the model of --arch iresnet' in wrong.stderr, wrong.stderr


@pytest.mark.slow
def test_tiny_realnvp_run(tmp_path):
    """--arch realnvp with ActNorm and batch norm: the final lines, the figures, a [TEST] line per validation."""
    out = run(*TINY, '--arch', 'realnvp', '--actnorm', 'True', '--batchnorm', 'True', '--save', str(tmp_path)).stdout
    final_nll(out)
    assert sorted(os.listdir(tmp_path / 'figs')) == ['0001.png', '0015.png', '0030.png']
    with open(tmp_path / 'logs') as f:
        assert sum(bool(TEST.match(line)) for line in f.read().splitlines()) == 2


@pytest.mark.slow
def test_a_loss_that_is_not_finite_exits_with_3(tmp_path):
    """A learning rate that makes the loss overflow: exit code 3, said on stderr."""
    result = run(*TINY, '--lr', '1e30', '--niters', '20', '--save', str(tmp_path), check=False)
    assert result.returncode == 3 and 'the loss is not finite' in result.stderr, result.stdout + result.stderr


def make_run(folder):
    """What a run of this script leaves in --save: logs, figs/, the best checkpoint and its pointer."""
    os.makedirs(folder / 'figs')
    (folder / 'logs').write_text('Namespace()\n')
    (folder / 'figs' / '0001.png').write_bytes(b'png')
    (folder / 'checkpt-30.index').write_bytes(b'index')
    (folder / 'checkpoint').write_text('model_checkpoint_path: "checkpt-30"\n')


def test_a_save_folder_holding_another_run_is_refused_before_tensorflow_loads(tmp_path):
    """A --save folder holding a run: refused in a fresh process naming what shows the run and --overwrite,
    before TensorFlow loads; allowed with --overwrite, or continuing from it with --resume, not both."""
    make_run(tmp_path)
    stderr, tensorflow_imported = script_error_imports('train_resflow_toy.py', ['--save', str(tmp_path)])
    assert f'--save {tmp_path} holds a run (checkpoint, checkpt-30.index, logs)' in stderr and '--overwrite' in stderr
    assert not tensorflow_imported
    check(build_parser().parse_args(['--data', '8gaussians', '--save', str(tmp_path), '--overwrite']))
    with pytest.raises(ValueError, match='which --overwrite would delete first'):
        check(build_parser().parse_args(['--data', '8gaussians', '--save', str(tmp_path), '--resume', str(tmp_path),
                                         '--overwrite']))
    check(build_parser().parse_args(['--data', '8gaussians', '--save', str(tmp_path), '--resume', str(tmp_path)]))


@pytest.mark.slow
def test_overwrite_deletes_the_earlier_run_only(tmp_path):
    """scripts/train_resflow_toy.py in a fresh process (--niters 0): --overwrite deletes the earlier run's logs,
    checkpoint and figures, not the other files, and the run ends with its two final lines."""
    make_run(tmp_path)
    (tmp_path / 'notes.md').write_text('mine')
    result = run_script('train_resflow_toy.py', [*TINY, '--niters', '0', '--save', str(tmp_path), '--overwrite'],
                        timeout=900)
    final_nll(result.stdout)
    with open(tmp_path / 'logs') as f:
        assert f.readline().startswith('Namespace(') and 'checkpt-30.index' not in os.listdir(tmp_path)
    assert (tmp_path / 'notes.md').read_text() == 'mine' and os.listdir(tmp_path / 'figs') != ['0001.png']
