"""Every program's command line: a help text for every flag, --help and argument errors without TensorFlow (every
program, every `emerging` subcommand and scripts/check_gpu.py, all asked in one fresh process), every listed value
accepted, and the program name the `emerging` subcommands pass."""
import importlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from emerging.cli import command, compare_families, resflow_toy, tabular, toy, train, train_resflow, write_tfrecords
from emerging.data.problems import DEFAULT_IMAGE_SIZE
from tests.helpers import ROOT, env

# module of emerging.cli -> the name it runs under: the `emerging` command's, or (package_pretrained, a
# maintainer's tool that is not a subcommand) its script's
PROGRAMS = {**{module: f'emerging {name}' for name, (module, _) in command.PROGRAMS.items()},
            'package_pretrained': 'package_pretrained.py'}
BRACES = re.compile(r'^\{([^{}]+)\}$')


def parser_of(module):
    return importlib.import_module(f'emerging.cli.{module}').build_parser()


def listed_values(action):
    """The values a flag's help lists: its choices, or those of a '{a,b}' metavar."""
    if action.choices is not None:
        return [str(choice) for choice in action.choices]
    match = BRACES.match(action.metavar or '')
    return match.group(1).split(',') if match else []


def options_with_listed_values(module):
    return [(module, action.option_strings[0], value) for action in parser_of(module)._actions
            if action.option_strings for value in listed_values(action)]


@pytest.mark.parametrize('module', PROGRAMS)
def test_every_flag_has_a_help_text(module):
    missing = [action.option_strings or action.dest for action in parser_of(module)._actions
               if action.dest != 'help' and not (action.help or '').strip()]
    assert not missing, f'{module}: no help for {missing}'


# what the answers process runs, in this order: (module with main, its arguments, the program name to pass or None)
HELP_AND_ERROR_CALLS = [
    *[(f'emerging.cli.{module}', argv, None) for module in PROGRAMS for argv in (['--help'], ['--no-such-flag'])],
    ('emerging.cli.train_resflow', ['--data', 'svhn'], 'emerging train-resflow'),
    ('emerging.cli.command', ['--help'], None),
    *[('emerging.cli.command', [name, '--help'], None) for name in [*command.PROGRAMS, *command.SUBCOMMANDS]],
    (os.path.join(ROOT, 'scripts', 'check_gpu.py'), ['--help'], None),
    (os.path.join(ROOT, 'scripts', 'check_gpu.py'), ['--image_size', '12'], None),
]
# runs every call of HELP_AND_ERROR_CALLS (read from stdin) with its output captured: a module's main(argv[, prog])
# or a script as `python SCRIPT ARGS` runs it; prints one JSON list of {code, out, err, tensorflow (imported by
# then)}
ANSWERS_PROCESS = """
import contextlib, importlib, io, json, runpy, sys
answers = []
for target, argv, prog in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if target.endswith('.py'):
                sys.argv = [target, *argv]
                runpy.run_path(target, run_name='__main__')
                code = None
            else:
                main = importlib.import_module(target).main
                code = main(argv) if prog is None else main(argv, prog=prog)
        except SystemExit as exit:
            code = exit.code
    answers.append({'code': code, 'out': out.getvalue(), 'err': err.getvalue(),
                    'tensorflow': 'tensorflow' in sys.modules})
print(json.dumps(answers))
"""


@pytest.fixture(scope='module')
def answers():
    """{(module or script, *arguments): {code, out, err, tensorflow}} of every call of HELP_AND_ERROR_CALLS, all
    in one fresh process (TensorFlow is imported once and stays: the calls run in order, nothing before loads it)."""
    result = subprocess.run([sys.executable, '-c', ANSWERS_PROCESS], input=json.dumps(HELP_AND_ERROR_CALLS), cwd=ROOT,
                            env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {(target, *argv): answer
            for (target, argv, _), answer in zip(HELP_AND_ERROR_CALLS, json.loads(result.stdout.splitlines()[-1]))}


@pytest.mark.parametrize('module', PROGRAMS)
def test_help_and_argument_errors_do_not_load_tensorflow(module, answers):
    for argv, expected in (['--help'], 0), (['--no-such-flag'], 2):
        answer = answers[(f'emerging.cli.{module}', *argv)]
        assert answer['code'] == expected, (argv, answer)
        assert not answer['tensorflow'], f'{module} {argv}: tensorflow imported'


@pytest.mark.parametrize('module, name', PROGRAMS.items())
def test_the_program_name_is_the_one_given(module, name, capsys):
    program = importlib.import_module(f'emerging.cli.{module}')
    with pytest.raises(SystemExit) as exit:
        program.main(['--help'], prog=name)
    assert exit.value.code == 0 and capsys.readouterr().out.startswith(f'usage: {name} ')
    with pytest.raises(SystemExit) as exit:
        program.main(['--no-such-flag'], prog=name)
    assert exit.value.code == 2 and f'\n{name}: error: ' in capsys.readouterr().err


def test_a_refused_value_is_named_with_the_given_program_name_before_tensorflow_loads(answers):
    answer = answers[('emerging.cli.train_resflow', '--data', 'svhn')]
    assert answer['code'] == 2 and not answer['tensorflow'], answer
    assert 'emerging train-resflow: error: --data svhn is not supported' in answer['err']


def test_the_emerging_command_lists_every_subcommand(answers):
    answer = answers[('emerging.cli.command', '--help')]
    assert answer['code'] == 0 and not answer['tensorflow'], answer
    for name in [*command.PROGRAMS, *command.SUBCOMMANDS]:
        assert name in answer['out'], name


@pytest.mark.parametrize('name', [*command.PROGRAMS, *command.SUBCOMMANDS])
def test_every_subcommand_answers_help_without_tensorflow(name, answers):
    """`emerging NAME --help`: exit code 0, its own usage line, TensorFlow not imported; a run's subcommands list
    --logdir and --weights among their flags."""
    answer = answers[('emerging.cli.command', name, '--help')]
    assert answer['code'] == 0 and f'usage: emerging {name}' in answer['out'], answer
    assert not answer['tensorflow'], f'emerging {name} --help: tensorflow imported'
    if name in ('evaluate', 'sample', 'interpolate'):
        assert '--logdir' in answer['out'] and '--weights' in answer['out'] and answer['out'].count('\n') > 8


def test_check_gpu_script_help_and_bad_flags_answer_without_tensorflow(answers):
    """scripts/check_gpu.py as `python scripts/check_gpu.py ARGS` runs it: --help exits 0, a size its levels do not
    divide exits 2 naming it; neither imports TensorFlow."""
    script = os.path.join(ROOT, 'scripts', 'check_gpu.py')
    for argv, expected in (['--help'], 0), (['--image_size', '12'], 2):
        answer = answers[(script, *argv)]
        assert answer['code'] == expected and not answer['tensorflow'], (argv, answer)
    assert 'check_gpu.py: error: --image_size 12 is not divisible by 2^n_levels = 8' in answer['err']


def test_a_refused_output_format_is_named(capsys, tmp_path):
    """`emerging sample --out x.gif`: exit code 2 naming --out (sample checks it after importing TensorFlow, so
    in this process rather than the answers process)."""
    code = command.main(['sample', '--logdir', ROOT, '--out', str(tmp_path / 'x.gif')])
    assert code == 2 and '--out' in capsys.readouterr().err


# the values a program's own checks accept before any work: module -> (flags that make a run, the check)
def check_train(flags, tmp_path):
    args = train.build_parser().parse_args(flags)
    # the batch at the problem's own size: the default --anchor_size 32 would make digits' 8x8 batch 1024
    args.anchor_size = DEFAULT_IMAGE_SIZE[args.problem]
    train.derive(args)


def check_train_resflow(flags, tmp_path):
    train_resflow.check_supported(train_resflow.build_parser().parse_args(flags))


def check_toy(flags, tmp_path):
    toy.check(toy.build_parser().parse_args(['--train', '--output_dir', str(tmp_path / 'run'), *flags]))


def check_tabular(flags, tmp_path):
    tabular.check(tabular.build_parser().parse_args(
        ['--dataset', 'power', '--data_dir', str(tmp_path), '--output_dir', str(tmp_path / 'run'), *flags]))


def check_resflow_toy(flags, tmp_path):
    resflow_toy.check(resflow_toy.build_parser().parse_args(['--save', str(tmp_path / 'run'), *flags]))


def check_compare_families(flags, tmp_path):
    compare_families.check(compare_families.build_parser().parse_args(['--out', str(tmp_path / 'out'), *flags]))


def check_write_tfrecords(flags, tmp_path):
    images = tmp_path / 'images.npy'
    np.save(images, np.zeros([2, 4, 4, 3], np.uint8))
    write_tfrecords.read_inputs(write_tfrecords.build_parser().parse_args(
        ['--images', str(images), '--out', str(tmp_path / 'data'), '--size', '4', *flags]))


CHECKS = {'train': check_train, 'train_resflow': check_train_resflow, 'toy': check_toy, 'tabular': check_tabular,
          'resflow_toy': check_resflow_toy, 'compare_families': check_compare_families,
          'write_tfrecords': check_write_tfrecords}


@pytest.mark.parametrize('module, flag, value', [case for module in CHECKS for case in
                                                 options_with_listed_values(module)])
def test_every_listed_value_passes_the_programs_checks(module, flag, value, tmp_path):
    CHECKS[module]([flag, value], tmp_path)


def test_train_resflow_lists_only_the_data_sets_it_loads():
    data = [value for _, flag, value in options_with_listed_values('train_resflow') if flag == '--data']
    assert data == list(train_resflow.DATA) and 'svhn' not in data and 'celeba_5bit' not in data


def test_every_flag_of_the_emerging_subcommands_has_a_help_text():
    import argparse

    subparsers = next(a for a in command.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in command.SUBCOMMANDS:
        missing = [action.option_strings for action in subparsers.choices[name]._actions
                   if action.dest != 'help' and not (action.help or '').strip()]
        assert not missing, f'emerging {name}: no help for {missing}'
