"""scripts/compare_families.py: the parser and bad flags (exit code 2 naming the flag, before any run), the output
parsers on the programs' own lines, the commands it builds against the programs' parsers, the tables, the picture,
a failing run named with its stderr, and (slow) a tiny toy comparison end to end with all four families."""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from emerging.cli import compare_families as cf
from emerging.data import toy2d
from tests.helpers import ROOT, env, script_error_imports

SCRIPT = os.path.join(ROOT, 'scripts', 'compare_families.py')

# lines as the programs print them (toy_density.py, train_resflow_toy.py, launch.py, recorder.py, evaluate.py)
TOY_OUT = ('step 20: loss 4.1234, lr 0.01, /tmp/x/step_20.png\ncheckpoint: /tmp/x/checkpoint-1\n'
           'parameters: 8,204; train steps/s: 200\n'
           'test nll: 13.4323 +- 0.0323 nats (true: 2.8348 +- 0.0070)\n')
RESFLOW_OUT = ('[TEST] Iter 0020 | Test Loss 5.9 | Test Logp(z) -3.1 | Test DeltaLogp 0.2\n'
               'parameters: 12,210; train steps/s: 1.23e+03\n'
               'test nll: -0.5000 +- 0.0117 nats (true: -0.6000 +- 0.0000)\n')
TRAIN_OUT = ("Horovod: process 0 of 1\n"
             "parameters: 1x1 1,440, emerging 0, periodic 0, rest 40,388, total 41,828\n"
             "1 0 {'loss': '7.1367', 'bits_x': '7.1367', 'bits_y': '0.0000', 'pred_loss': '1.0000'} lr 0\n"
             "1 1536 1536 50.0 13.8 2.5 0.0 16.5 [7.68593774 7.68593774 0.         1.        ] "
             "[7.749016 7.749016 0.       1.      ]  *\n"
             "2 3072 3072 100.0 13.8 0.0 0.0 14.0 [7.1 7.1 0. 1.] []\n"
             "3 4608 4608 300.0 13.8 0.0 0.0 14.0 [7.0 7.0 0. 1.] []\n")
RESFLOW_TRAIN_OUT = ("parameters: residual 270,000, rest 436, total 270,436\n"
                     "1 1536 1536 39.2 39.2 4.8 0.0 44.1 [6.58870916 6.58870916 0.         1.        ] "
                     "[6.375468 6.375468 0.       1.      ]  *\n")
EVALUATE_OUT = ('weights: latest (/tmp/r/checkpoints/ckpt-1)\n'
                'test set: digits, 300 images (1 process x 6 batches of 50); 4 uniform dequantisation noise draws\n'
                'test bits_x: 6.3142 +- 0.1117\n')


def run_main(capsys, *argv):
    code = cf.main(list(argv))
    return code, capsys.readouterr().err


# ---- the parser and bad flags -----------------------------------------------------------------------------------
def test_defaults_are_the_documented_budget():
    args = cf.build_parser().parse_args([])
    assert (args.part, args.steps, args.batch_size, args.epochs, args.seed) == ('all', 2000, 200, 40, 0)
    assert (args.resflow_nblocks, args.resflow_dims) == (10, '32-32')
    assert (args.digits_depth, args.digits_width, args.digits_nblocks, args.digits_idim) == (8, 128, '8-8', 128)
    datasets, families = cf.check(argparse.Namespace(**{**vars(args), 'out': os.path.join(ROOT, 'no_such_dir')}))
    assert datasets == list(toy2d.DATASETS)  # the tuple at run time, every data set
    assert families == ['bnaf', 'maf', 'realnvp', 'resflow']


@pytest.mark.parametrize('argv, flag', [
    (['--steps', '0'], '--steps'),
    (['--batch_size', '-1'], '--batch_size'),
    (['--epochs', '0'], '--epochs'),
    (['--resflow_nblocks', '0'], '--resflow_nblocks'),
    (['--resflow_dims', '8-x'], '--resflow_dims'),
    (['--resflow_dims', '8-0'], '--resflow_dims'),
    (['--digits_nblocks', ''], '--digits_nblocks'),
    (['--datasets', '8gaussians,spiral'], '--datasets'),
    (['--datasets', 'moons,moons'], '--datasets'),
    (['--families', 'bnaf,glow'], '--families'),
])
def test_bad_flags_are_errors_naming_the_flag_before_any_run(capsys, tmp_path, argv, flag):
    code, err = run_main(capsys, *argv, '--out', str(tmp_path / 'out'))
    assert code == 2 and err.startswith(f'{cf.PROG}: error: {flag}'), err
    assert '[1/' not in err and not os.path.exists(tmp_path / 'out')


def test_an_out_that_cannot_be_written_is_refused(capsys, tmp_path):
    (tmp_path / 'file').write_text('')
    code, err = run_main(capsys, '--part', 'toy', '--out', str(tmp_path / 'file' / 'out'))
    assert code == 2 and err.startswith(f'{cf.PROG}: error: --out') and 'is a file' in err
    code, err = run_main(capsys, '--out', str(tmp_path / 'file'))
    assert code == 2 and '--out' in err and 'expected a folder' in err


def test_an_earlier_comparison_is_refused_without_overwrite(capsys, tmp_path):
    (tmp_path / 'out' / 'toy').mkdir(parents=True)
    code, err = run_main(capsys, '--part', 'toy', '--out', str(tmp_path / 'out'))
    assert code == 2 and 'holds an earlier comparison (toy): add --overwrite' in err and '[1/' not in err
    args = cf.build_parser().parse_args(['--overwrite'])
    assert cf.digits_command('glow', args, '/tmp/run')[-1] == cf.digits_command('resflow', args, '/tmp/run')[-1] \
        == cf.toy_command('maf', 'moons', args, '/tmp/run')[0][-1] == '--overwrite'


def test_a_bad_choice_is_argparses_error_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as exit:
        cf.main(['--part', 'images'])
    assert exit.value.code == 2 and '--part' in capsys.readouterr().err


def test_the_script_refuses_bad_flags_without_tensorflow():
    stderr, tensorflow_imported = script_error_imports('compare_families.py', ['--steps', '0'])
    assert '--steps' in stderr and not tensorflow_imported


# ---- the output parsers ---------------------------------------------------------------------------------------
def test_toy_lines_parse():
    assert cf.parse_train_line(TOY_OUT) == (8204, 200.)
    assert cf.parse_nll_line(TOY_OUT) == (13.4323, 0.0323, 2.8348, 0.0070)
    assert cf.parse_train_line(RESFLOW_OUT) == (12210, 1230.)
    assert cf.parse_nll_line(RESFLOW_OUT) == (-0.5, 0.0117, -0.6, 0.)
    rate = cf.parse_train_line('parameters: 1; train steps/s: nan\n')[1]
    assert np.isnan(rate)


def test_digits_lines_parse():
    assert cf.parse_parameters_line(TRAIN_OUT) == 41828
    assert cf.parse_parameters_line(RESFLOW_TRAIN_OUT) == 270436
    # the epochs after the first: 2 / (1/100 + 1/300) images/s; a single epoch is taken as it is
    assert cf.parse_images_per_second(TRAIN_OUT) == pytest.approx(150.)
    assert cf.parse_images_per_second(RESFLOW_TRAIN_OUT) == pytest.approx(39.2)
    assert cf.parse_bits_line(EVALUATE_OUT) == (6.3142, 0.1117)


def test_train_log_gives_the_last_epochs_bits(tmp_path):
    path = tmp_path / 'train.txt'
    path.write_text('{"problem": "digits"}\n{"epoch": 1, "bits_x": "7.6859"}\n{"epoch": 2, "bits_x": "7.1000"}\n')
    assert cf.read_last_train_bits(str(path)) == 7.1
    path.write_text('{"problem": "digits"}\n')
    with pytest.raises(ValueError, match='no epoch line'):
        cf.read_last_train_bits(str(path))
    with pytest.raises(ValueError, match='missing'):
        cf.read_last_train_bits(str(tmp_path / 'nothing.txt'))


@pytest.mark.parametrize('parse, what', [
    (cf.parse_train_line, 'train steps/s'), (cf.parse_nll_line, 'test nll'),
    (cf.parse_parameters_line, 'total N'), (cf.parse_images_per_second, 'status line'),
    (cf.parse_bits_line, 'test bits_x'),
])
def test_a_missing_line_is_named(parse, what):
    with pytest.raises(ValueError, match=re.escape(what)):
        parse('step 20: loss 1.0\n')


# ---- the commands, against the programs' own parsers ----------------------------------------------------------
def test_toy_commands_parse_with_the_toy_scripts():
    from emerging.cli import resflow_toy, toy
    args = cf.build_parser().parse_args(['--steps', '30', '--batch_size', '40', '--seed', '3'])
    command, figure = cf.toy_command('maf', 'moons', args, '/tmp/run')
    assert command[1:4] == ['-m', 'emerging', 'toy'] and figure == '/tmp/run/step_30.png'
    parsed = toy.build_parser().parse_args(command[4:])
    assert (parsed.flow, parsed.dataset, parsed.n_steps, parsed.batch_size, parsed.log_interval, parsed.seed,
            parsed.output_dir) == ('maf', 'moons', 30, 40, 30, 3, '/tmp/run')
    command, figure = cf.toy_command('resflow', 'rings', args, '/tmp/run')
    assert command[1:4] == ['-m', 'emerging', 'resflow-toy'] and figure == '/tmp/run/figs/0030.png'
    parsed = resflow_toy.build_parser().parse_args(command[4:])
    assert (parsed.data, parsed.niters, parsed.batch_size, parsed.nblocks, parsed.dims, parsed.viz_freq,
            parsed.val_freq, parsed.seed, parsed.save) == ('rings', 30, 40, 10, '32-32', 30, 30, 3, '/tmp/run')
    overwrite = cf.build_parser().parse_args(['--overwrite'])
    for family, program in (('maf', toy), ('resflow', resflow_toy)):
        line = cf.toy_command(family, 'rings', overwrite, '/tmp/run')[0]
        assert program.build_parser().parse_args(line[4:]).overwrite


def test_digits_commands_parse_with_the_trainers():
    from emerging.cli import command, train, train_resflow
    args = cf.build_parser().parse_args(['--epochs', '40'])
    for model, permutation in (('glow', 2), ('emerging', 3), ('periodic', 4)):
        line = cf.digits_command(model, args, '/tmp/run')
        assert line[1:4] == ['-m', 'emerging', 'train']
        parsed = train.build_parser().parse_args(line[4:])
        assert (parsed.flow_permutation, parsed.epochs, parsed.epochs_full_valid, parsed.depth, parsed.width,
                parsed.n_levels, parsed.learnprior, parsed.flow_coupling) == (permutation, 41, 40, 8, 128, 2, True, 1)
    line = cf.digits_command('resflow', args, '/tmp/run')
    assert line[1:4] == ['-m', 'emerging', 'train-resflow']
    parsed = train_resflow.build_parser().parse_args(line[4:])
    assert (parsed.data, parsed.nblocks, parsed.idim, parsed.nepochs, parsed.valid_freq, parsed.warmup_iters,
            parsed.save) == ('digits', '8-8', 128, 40, 40, 48, '/tmp/run')
    line = cf.evaluate_command('/tmp/run')
    assert line[1:3] == ['-m', 'emerging']
    parsed = command.build_parser().parse_args(line[3:])
    assert (parsed.logdir, parsed.n_dequant, parsed.weights) == ('/tmp/run', 4, 'latest')
    overwrite = cf.build_parser().parse_args(['--overwrite'])
    assert train.build_parser().parse_args(cf.digits_command('glow', overwrite, '/tmp/run')[4:]).overwrite
    assert train_resflow.build_parser().parse_args(cf.digits_command('resflow', overwrite, '/tmp/run')[4:]).overwrite


# ---- tables and picture ---------------------------------------------------------------------------------------
def figure(path, seed=0):
    """A figure as the toy scripts write it (toy_plots.save_density_panels)."""
    from emerging.cli import toy_plots
    rng = np.random.default_rng(seed)
    grid = toy_plots.grid_points()
    target = np.exp(-0.5 * np.sum(grid ** 2, axis=1))
    learned = np.exp(-0.5 * np.sum((grid - 1.) ** 2, axis=1))
    return toy_plots.save_density_panels(str(path), target, learned, rng.standard_normal([500, 2]), 'model')


def fake_toy_results(tmp_path, datasets, families):
    path = figure(tmp_path / 'figure.png')
    results = {}
    for i, d in enumerate(datasets):
        for j, f in enumerate(families):
            results[d, f] = cf.ToyResult(2. + i + 0.1 * ((j + 1) % len(families)), 0.01, 2. + i, 0.001,
                                         8000 + j, 100. * (j + 1), path)
    return results


def test_toy_tables_bold_the_best_of_each_row(tmp_path):
    datasets, families = ['8gaussians', 'moons'], list(cf.TOY_FAMILIES)
    args = cf.build_parser().parse_args(['--steps', '20', '--batch_size', '50'])
    text = cf.toy_tables(fake_toy_results(tmp_path, datasets, families), datasets, families, args)
    assert '| data set | true H | BNAF | MAF | RealNVP | ResFlow |' in text
    rows = [line for line in text.splitlines() if line.startswith(('| 8gaussians', '| moons'))]
    assert len(rows) == 2 and all(row.count('**') == 2 for row in rows)
    assert rows[0].rstrip(' |').split(' | ')[5] == '**2.000 +- 0.010 (+0.000)**'  # ResFlow: gap 0
    assert rows[0].split(' | ')[1] == '2.000 +- 0.001'
    assert '| MAF | 8,001 | 200 | +0.200 |' in text


def test_density_panels_cut_the_images_without_titles(tmp_path):
    target, learned = cf.density_panels(figure(tmp_path / 'f.png'), size=50)
    assert target.shape == learned.shape == (50, 50, 3)
    # the image fills the crop: no white title or margin rows left
    assert (target.min(axis=-1) < 235).mean() > 0.95 and (learned.min(axis=-1) < 235).mean() > 0.95
    assert not np.array_equal(target, learned)


def test_the_picture_has_a_row_per_family_and_the_target(tmp_path):
    from PIL import Image
    datasets, families = ['8gaussians', 'moons', 'rings'], ['bnaf', 'resflow']
    path = cf.toy_picture(fake_toy_results(tmp_path, datasets, families), datasets, families,
                          str(tmp_path / 'grid.png'), size=60)
    with Image.open(path) as image:
        width, height = image.size
    assert width == 70 + 3 * 60 and height == 30 + 3 * 60


def test_the_digits_table_bolds_the_lowest_bits(tmp_path):
    args = cf.build_parser().parse_args(['--epochs', '2'])
    results = {m: cf.DigitsResult(800000 + i, 3. - 0.1 * i, 0.01, 2.5, 100.) for i, m in enumerate(cf.DIGITS_MODELS)}
    text = cf.digits_table(results, args)
    assert text.count('**') == 2 and '| Residual Flow (`--nblocks 8-8 --idim 128`) | 800,003 | **2.700 +- 0.010** |' \
        in text
    assert '| Glow 1x1 (`--flow_permutation 2`) | 800,000 | 3.000 +- 0.010 | 2.500 | 100 |' in text


# ---- a failing run --------------------------------------------------------------------------------------------
def test_a_failing_run_is_named_with_its_stderr(tmp_path, capsys):
    runner = cf.Runner(1, str(tmp_path / 'logs'))
    failing = [sys.executable, '-c', 'import sys; print("out"); sys.stderr.write("boom\\n"); sys.exit(3)']
    with pytest.raises(cf.RunFailed) as error:
        runner.run('toy: BNAF on moons', 'toy_moons_bnaf', failing)
    message = str(error.value)
    assert 'toy: BNAF on moons' in message and 'exit code 3' in message and 'boom' in message
    assert '[1/1] toy: BNAF on moons' in capsys.readouterr().err  # the command line echoed
    assert (tmp_path / 'logs' / 'toy_moons_bnaf.err').read_text() == 'boom\n'
    with pytest.raises(cf.RunFailed, match='toy: BNAF on moons.*test nll.*out'):
        runner.parsed('toy: BNAF on moons', 'toy_moons_bnaf', cf.parse_nll_line, 'out\n')


# ---- end to end -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_tiny_toy_comparison_writes_the_table_and_the_picture(tmp_path):
    """The script file in a fresh process, every family on one data set for 2 steps (each run its own process): the
    table printed and written, a row of cells with the best in bold, the size-and-speed rows, the picture, every
    command line echoed, each run's output kept in logs/."""
    out = tmp_path / 'cmp'
    result = subprocess.run([sys.executable, SCRIPT, '--part', 'toy', '--datasets', '8gaussians', '--steps', '2',
                             '--batch_size', '50', '--resflow_nblocks', '1', '--resflow_dims', '8-8', '--out',
                             str(out)], cwd=str(tmp_path), env=env(), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    table = (out / 'compare_toy.md').read_text()
    assert table in result.stdout
    assert '| data set | true H | BNAF | MAF | RealNVP | ResFlow |' in table
    row = next(line for line in table.splitlines() if line.startswith('| 8gaussians |'))
    cells = row.strip('|').split(' | ')
    assert len(cells) == 6 and row.count('**') == 2
    assert all(re.fullmatch(r'\**-?\d+\.\d{3} \+- \d+\.\d{3} \([+-]\d+\.\d{3}\)\**', c.strip()) for c in cells[2:])
    for name in ('BNAF', 'MAF', 'RealNVP', 'ResFlow'):
        assert re.search(rf'^\| {name} \| [\d,]+ \| \S+ \| [+-]\d+\.\d{{3}} \|$', table, re.M), name
    assert '| ResFlow | 117 |' in table  # 1 block of 8-8
    assert os.path.getsize(out / 'compare_toy.png') > 1000
    # every run's command line echoed, to be repeated alone
    assert result.stderr.count(f'$ {sys.executable} -m emerging ') == 4
    assert '[4/4] toy: ResFlow on 8gaussians' in result.stderr
    assert '-m emerging resflow-toy --data 8gaussians --niters 2 --batch_size 50' in result.stderr
    assert sorted(os.listdir(out / 'logs')) == sorted(f'toy_8gaussians_{f}.{s}' for f in cf.TOY_FAMILIES
                                                      for s in ('out', 'err'))
