"""scripts/train_resflow.py: the public Residual Flows command lines, and digits runs end to end."""
import json
import os
import runpy
import shlex
import shutil
import sys

import numpy as np
import pytest

from emerging.cli import train_resflow
from emerging.cli.train_resflow import build_parser, derive
from emerging.runs.folder import best_checkpoint
from tests.helpers import ROOT, read_log

# the residual-flows README's command lines, as printed (after `python train_img.py`)
PUBLISHED = [
    '--data mnist --imagesize 28 --actnorm True --wd 0 --save experiments/mnist',
    '--data cifar10 --actnorm True --save experiments/cifar10',
    '--data imagenet32 --actnorm True --nblocks 32-32-32 --save experiments/imagenet32',
    '--data imagenet64 --imagesize 64 --actnorm True --nblocks 32-32-32 --factor-out True --squeeze-first True '
    '--save experiments/imagenet64',
    '--data celebahq --imagesize 256 --nbits 5 --actnorm True --act elu --batchsize 8 --update-freq 5 '
    '--n-exact-terms 8 --fc-end False --factor-out True --squeeze-first True --nblocks 16-16-16-16-16-16 '
    '--save experiments/celebahq256',
]
TINY = ['--data', 'digits', '--nblocks', '1-1', '--idim', '16', '--fc-idim', '16', '--batchsize', '64',
        '--warmup-iters', '0', '--lr', '3e-3', '--no-progress', '--print-freq', '1000']


@pytest.mark.parametrize('line', PUBLISHED)
def test_published_command_lines_parse_into_configs(line):
    run = derive(build_parser().parse_args(shlex.split(line)))
    model, train, data = run.model, run.train, run.data
    assert model.coeff == 0.98 and model.idim == 512 and model.kernels == '3-1-3' and model.neumann_grad
    assert model.mem_eff and model.n_dist == 'poisson' and model.actnorm and train.use_polyak_for_eval
    assert train.optimizer == 'adam' and train.fixed_beta2 == 0.99 and train.polyak_decay == 0.999
    assert train.max_grad_norm == 1. and run.hparams['model_kind'] == 'resflow'
    if '--data mnist' in line:
        assert model.image_shape == (28, 28, 1) and model.logit_alpha == 1e-6 and data.problem == 'mnist'
    if '--data cifar10' in line:
        assert model.image_shape == (32, 32, 3) and model.logit_alpha == 0.05 and data.augmentation == 'hflip'
    if '--data imagenet64' in line:
        assert data.problem == 'imagenet-oord' and model.image_shape == (64, 64, 3)
        assert model.n_blocks == (32, 32, 32) and model.factor_out and model.squeeze_first
    if '--data celebahq' in line:
        assert data.problem == 'celeba' and model.image_shape == (256, 256, 3) and model.n_bits_x == 5
        assert model.activation == 'elu' and model.n_exact_terms == 8 and not model.fc_end
        assert model.n_blocks == (16,) * 6 and train.grad_accumulation == 5 and train.local_batch_train == 40


@pytest.mark.parametrize('flags, named', [
    (['--vnorms', '2f22'], '--vnorms'), (['--task', 'hybrid'], '--task'), (['--block', 'coupling'], '--block'),
    (['--act', 'relu'], '--act'), (['--optimizer', 'sgd'], '--optimizer'), (['--data', 'svhn'], '--data'),
    (['--padding', '1'], '--padding'), (['--dropout', '0.5'], '--dropout'), (['--nblocks', '4-x'], '--nblocks'),
    (['--nbits', '5'], '--nbits'), (['--begin-epoch', '3'], '--begin-epoch'), (['--learn-p', 'True'], '--learn-p'),
])
def test_unsupported_values_are_errors_naming_the_flag(tmp_path, capsys, flags, named):
    code, trainer = train_resflow.run([*TINY, *flags, '--save', str(tmp_path / 'run')])
    assert code == 2 and trainer is None
    assert named in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'run')


def test_boolean_flags_take_true_or_false_only():
    assert build_parser().parse_args(['--neumann-grad=False']).neumann_grad is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(['--actnorm', 'yes'])


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
    save = str(tmp_path_factory.mktemp('resflow') / 'run')
    code, trainer = train_resflow.run([*TINY, '--nepochs', '2', '--save', save])
    assert code == 0
    return save, trainer


@pytest.mark.slow
def test_digits_run_writes_what_train_py_writes(digits_run):
    save, trainer = digits_run
    hparams, train_lines = read_log(os.path.join(save, 'train.txt'))
    _, test_lines = read_log(os.path.join(save, 'test.txt'))
    assert hparams['data'] == 'digits' and hparams['model_kind'] == 'resflow'
    assert [line['epoch'] for line in train_lines] == [1, 2] == [line['epoch'] for line in test_lines]
    for line in train_lines + test_lines:
        assert {'loss', 'bits_x', 'bits_y', 'pred_loss', 'n_processed'} <= set(line)
        assert 1. < float(line['bits_x']) < 8.
    with open(os.path.join(save, 'config.json')) as f:
        assert json.load(f)['model_kind'] == 'resflow'
    assert best_checkpoint(save) is not None
    assert os.listdir(os.path.join(save, 'tensorboard'))


@pytest.mark.slow
def test_ema_evaluation_is_what_test_txt_reports(digits_run):
    import tensorflow as tf

    from emerging.runs.load import load_run
    save, _ = digits_run
    _, test_lines = read_log(os.path.join(save, 'test.txt'))
    reported = float(test_lines[-1]['bits_x'])

    def evaluate(weights):
        run = load_run(save, weights=weights, checkpoint=tf.train.latest_checkpoint(os.path.join(save, 'checkpoints')))
        from emerging.data.images import ordered_split
        from emerging.data.problems import DataConfig
        x = np.concatenate([b for b, _ in ordered_split(DataConfig(problem='digits', image_size=8), 'test')])
        tf.random.set_seed(1)
        values = [run.model.losses_per_example(tf.constant(x))['bits_x'].numpy() for _ in range(3)]
        return float(np.mean(values)), float(np.std(np.mean(values, axis=1)))

    ema, spread = evaluate('polyak')
    raw, _ = evaluate('latest')
    # test.txt's estimate is one draw of the (unbiased) estimator and of the dequantisation noise
    assert abs(ema - reported) < 0.02 + 3 * spread
    assert abs(raw - ema) > abs(ema - reported)


@pytest.mark.slow
def test_resume_continues_the_run(digits_run, tmp_path):
    save, _ = digits_run
    copy = str(tmp_path / 'run')
    shutil.copytree(save, copy)
    _, before = read_log(os.path.join(copy, 'train.txt'))
    code, trainer = train_resflow.run([*TINY, '--nepochs', '3', '--save', copy, '--resume', copy])
    assert code == 0
    _, after = read_log(os.path.join(copy, 'train.txt'))
    assert [line['epoch'] for line in after] == [1, 2, 3] and after[:2] == before
    assert after[2]['n_processed'] > before[1]['n_processed']


@pytest.mark.slow
def test_emerging_subcommands_work_on_a_resflow_run(digits_run, tmp_path, capsys, monkeypatch):
    """`emerging evaluate` and `emerging sample`, and scripts/plot_logs.py as its command line runs it, all
    in-process, read a Residual Flows run."""
    from emerging.cli.command import main
    save, _ = digits_run
    for args in (['evaluate', '--logdir', save, '--weights', 'latest'],
                 ['sample', '--logdir', save, '--weights', 'latest', '--n', '4', '--out', str(tmp_path / 's.png')]):
        code = main(args)
        captured = capsys.readouterr()
        assert code == 0, captured.out + captured.err
    assert any(name.startswith('s') and name.endswith('.png') for name in os.listdir(tmp_path))
    script = os.path.join(ROOT, 'scripts', 'plot_logs.py')
    monkeypatch.setattr(sys, 'argv', [script, save, '--out', str(tmp_path / 'curves.png')])
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the script puts the repository first
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(script, run_name='__main__')
    assert exit_status.value.code == 0, capsys.readouterr()
