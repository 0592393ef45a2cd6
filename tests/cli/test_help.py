"""Every program's command line: a help text for every flag, --help and argument errors without TensorFlow, every
listed value accepted, and the program name the `emerging` subcommands pass."""
import importlib
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


@pytest.mark.parametrize('module', PROGRAMS)
def test_help_and_argument_errors_do_not_load_tensorflow(module):
    code = ('import contextlib, io, sys\n'
            f'import emerging.cli.{module} as program\n'
            'for argv, expected in (["--help"], 0), (["--no-such-flag"], 2):\n'
            '    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n'
            '        try:\n'
            '            program.main(argv)\n'
            '        except SystemExit as exit:\n'
            '            assert exit.code == expected, (argv, exit.code)\n'
            '        else:\n'
            '            raise AssertionError(f"{argv}: no exit")\n'
            'assert "tensorflow" not in sys.modules, "tensorflow imported"\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('module, name', PROGRAMS.items())
def test_the_program_name_is_the_one_given(module, name, capsys):
    program = importlib.import_module(f'emerging.cli.{module}')
    with pytest.raises(SystemExit) as exit:
        program.main(['--help'], prog=name)
    assert exit.value.code == 0 and capsys.readouterr().out.startswith(f'usage: {name} ')
    with pytest.raises(SystemExit) as exit:
        program.main(['--no-such-flag'], prog=name)
    assert exit.value.code == 2 and f'\n{name}: error: ' in capsys.readouterr().err


def test_a_refused_value_is_named_with_the_given_program_name_before_tensorflow_loads():
    code = ('import sys\n'
            'import emerging.cli.train_resflow as program\n'
            'assert program.main(["--data", "svhn"], prog="emerging train-resflow") == 2\n'
            'assert "tensorflow" not in sys.modules, "tensorflow imported"\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'emerging train-resflow: error: --data svhn is not supported' in result.stderr


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
