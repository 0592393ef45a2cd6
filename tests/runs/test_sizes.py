"""Sizes read from a run's files or from flags, refused by name before anything is built (the issue's cases).

A run folder with the shipped digits model's config.json, its sizes changed (depth, width, image size of 10^9,
a validation of 10^9 images), made `emerging evaluate` hang or die out of memory; flags of the same sizes did
the same to `emerging import-tf1`, train.py and train_resflow.py.  Each now stops at once with one line naming
the file or flag, and exit code 2.
"""
import json
import os
import shlex
import time

import pytest

from emerging.errors import InputError
from emerging.models import limits
from emerging.runs.folder import PRETRAINED
from tests.helpers import DIGITS, TINY

PUBLISHED_CONFIG = os.path.join(PRETRAINED, 'digits', 'config.json')
# seconds within which a refusal comes: the cases ran past 10 minutes; this leaves room for a busy CI
PROMPT = 20.


def cli(capsys, monkeypatch, command, *args):
    """(exit code, stderr, seconds) of `emerging COMMAND ARGS`, in this process."""
    import emerging.cli.command as emerging_cli
    monkeypatch.setattr(emerging_cli, 'SUBCOMMANDS', {command: command.replace('-', '_')})
    start = time.perf_counter()
    code = emerging_cli.main([command, *args])
    seconds = time.perf_counter() - start
    return code, capsys.readouterr().err, seconds


def run_folder(folder, model=None, hparams=None):
    """A run folder holding the shipped digits model's config.json with `model` and `hparams` fields changed."""
    with open(PUBLISHED_CONFIG) as f:
        config = json.load(f)
    folder.mkdir(exist_ok=True)
    config['model'].update(model or {})
    config['hparams'].update(hparams or {})
    (folder / 'config.json').write_text(json.dumps(config))
    return str(folder)


def refused(code, err, seconds, *named):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in err and ': error: ' in lines[0], err
    assert all(text in err for text in named), err
    assert seconds < PROMPT, seconds


SUBCOMMANDS = {'evaluate': [], 'sample': ['--out', 'samples.png'],
               'interpolate': ['--test_index', '0', '1', '--out', 'row.png'], 'export': ['--export_dir', 'saved']}


@pytest.mark.parametrize('command', SUBCOMMANDS)
@pytest.mark.parametrize('model, named', [
    ({'depth': 10 ** 9}, 'depth=1000000000 is too large'), ({'width': 10 ** 9}, 'width=1000000000 is too large'),
    ({'image_shape': [2 ** 30, 2 ** 30, 3]}, 'image height=1073741824 is too large'),
    ({'depth': 1024, 'width': 16384}, 'this machine has'),
])
def test_config_json_sizes(tmp_path, capsys, monkeypatch, command, model, named):
    monkeypatch.chdir(tmp_path)
    logdir = run_folder(tmp_path / 'run', model=model)
    refused(*cli(capsys, monkeypatch, command, '--logdir', logdir, *SUBCOMMANDS[command]),
            os.path.join(logdir, 'config.json'), named)


def test_a_validation_of_a_billion_images_is_refused(tmp_path, capsys, monkeypatch):
    """n_test from the run's hyperparameters and --n_test, against the digits test set's size (the range of every
    run, for data sets of no fixed size, is tests/training/test_config.py's)."""
    refused(*cli(capsys, monkeypatch, 'evaluate', '--logdir', run_folder(tmp_path, hparams={'n_test': 10 ** 9})),
            '--n_test 1,000,000,000 is more than the digits test set holds (300 images)')
    refused(*cli(capsys, monkeypatch, 'evaluate', '--logdir', run_folder(tmp_path), '--n_test', '1000'),
            '--n_test 1,000 is more than the digits test set holds (300 images)')


@pytest.mark.parametrize('command, args, named', [
    ('evaluate', ['--n_dequant', '1000000'], '--n_dequant must be 0 (no noise) or a number of draws up to 1000'),
    ('sample', ['--n', '1000000000', '--out', 'x.png'], '--n must be 1 .. 100,000 samples per temperature'),
    ('interpolate', ['--steps', '1000000000', '--test_index', '0', '1', '--out', 'x.png'],
     '--steps must be 2 (both ends) .. 10,000'),
])
def test_subcommand_counts(tmp_path, capsys, monkeypatch, command, args, named):
    monkeypatch.chdir(tmp_path)
    refused(*cli(capsys, monkeypatch, command, '--pretrained', 'digits', *args), named)


def test_samples_past_the_machine_are_refused(tmp_path, capsys, monkeypatch):
    """--n samples at every temperature are held at once: more than the memory is refused, naming --n."""
    from emerging.choices import TEMPERATURES
    from emerging.cli.sample import CHUNK
    from emerging.runs.folder import read_config
    config, _ = read_config(run_folder(tmp_path))
    # a machine with room for the model and one chunk of samples, but not for 100,000 samples at every temperature
    room = (limits.stored_values(config) + CHUNK * limits.activation_values(config)) * limits.BYTES_PER_VALUE
    assert room < len(TEMPERATURES) * 100000 * config.n_dims
    monkeypatch.setattr(limits, 'physical_memory', lambda: room)
    monkeypatch.chdir(tmp_path)
    refused(*cli(capsys, monkeypatch, 'sample', '--pretrained', 'digits', '--n', '100000', '--out', 'x.npy'),
            f'--n 100,000 samples at {len(TEMPERATURES)} temperature(s) of {config.n_dims} values each needs at least',
            'this machine has')


@pytest.mark.parametrize('flags, named', [
    (['--depth', '1000000000'], 'depth=1000000000 is too large'),
    (['--width', '1000000000'], 'width=1000000000 is too large'),
    (['--image_size', '1073741824', '--anchor_size', '8'], 'image height=1073741824 is too large'),
    (['--n_test', '1000000000'], '--n_test 1,000,000,000 is more than the digits test set holds'),
    (['--depth', '1024', '--width', '16384'], 'this machine has'),
])
def test_import_tf1_flags(tmp_path, capsys, monkeypatch, flags, named):
    """The sizes are refused before the checkpoint is read or a model built (the checkpoint does not exist)."""
    refused(*cli(capsys, monkeypatch, 'import-tf1', *DIGITS, *TINY, *flags, '--tf1_checkpoint',
                 str(tmp_path / 'model.ckpt'), '--logdir', str(tmp_path / 'out')), named)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('line, named', [
    ('--problem cifar10 --n_level 3 --depth 1000000000', 'depth=1000000000 is too large'),
    ('--problem cifar10 --width 1000000000', 'width=1000000000 is too large'),
    ('--problem cifar10 --n_levels 1000000000', 'n_levels=1000000000 is too large'),
])
def test_train_py_flags(line, named):
    from emerging.cli.train import build_parser, derive
    with pytest.raises(InputError, match=named):
        derive(build_parser().parse_args(shlex.split(line)))


@pytest.mark.parametrize('line, named', [
    ('--data cifar10 --nblocks 1000000000-16-16', 'n_blocks=1000000000 is too large'),
    ('--data cifar10 --idim 1000000000', 'idim=1000000000 is too large'),
    ('--data cifar10 --n-power-series 1000000000', 'n_power_series=1000000000 is too large'),
])
def test_train_resflow_flags(line, named):
    from emerging.cli.train_resflow import build_parser, derive
    with pytest.raises(InputError, match=named):
        derive(build_parser().parse_args(shlex.split(line)))


@pytest.mark.parametrize('fields, named', [
    (dict(pmap=10 ** 9), 'pmap must be 1 .. 1024'), (dict(fmap=0), 'fmap must be 1 .. 1024'),
    (dict(image_size=10 ** 9), 'image_size must be 1 .. 4096'),
    (dict(local_batch_test=10 ** 9), 'local_batch_test must be 1 .. 65536'),
    (dict(rank=2, size=2), 'rank must be 0 .. size - 1 = 1')])
def test_data_config_counts(fields, named):
    from emerging.data.problems import DataConfig
    with pytest.raises(ValueError, match=named):
        DataConfig(**fields)


def test_n_test_within_a_test_set_of_fixed_size():
    from emerging.data.problems import DIGITS_N_TEST, TEST_SIZE, check_n_test
    check_n_test('digits', DIGITS_N_TEST)
    with pytest.raises(ValueError, match=f'--n_test {DIGITS_N_TEST + 1} is more than the digits test set holds'):
        check_n_test('digits', DIGITS_N_TEST + 1)
    # a test set of the user's files has the size its files give: any n_test within TrainConfig's range
    assert 'imagenet' not in TEST_SIZE
    check_n_test('imagenet', 10 ** 7)
