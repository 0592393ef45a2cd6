"""The pretrained digits model shipped with the package, through every subcommand (--pretrained digits)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import emerging
from emerging.cli.command import main
from emerging.runs.folder import pretrained_run


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shipped_model_is_a_run_folder():
    folder = pretrained_run('digits')
    run = emerging.load_run(folder)
    assert run.model_config.flow_permutation == 3 and run.model_config.image_shape == (8, 8, 3)
    with open(os.path.join(folder, 'test.txt')) as f:
        assert len(f.read().splitlines()) > 1


def test_loaded_by_name():
    """`load_pretrained(NAME)` and `load_run('pretrained:NAME')` are the shipped folder's best weights; an
    unknown name is an InputError listing the shipped ones."""
    by_name, by_prefix = emerging.load_pretrained('digits'), emerging.load_run('pretrained:digits')
    assert by_name.logdir == by_prefix.logdir == pretrained_run('digits')
    assert by_name.weights == 'best' and by_name.checkpoint == by_prefix.checkpoint
    for a, b in zip(by_name.model.variables, by_prefix.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(emerging.InputError, match="unknown pretrained model 'faces'; available: digits"):
        emerging.load_pretrained('faces')


@pytest.mark.slow
def test_evaluate_matches_its_log(capsys):
    with open(os.path.join(pretrained_run('digits'), 'test.txt')) as f:
        best = min(float(json.loads(line)['bits_x']) for line in f.read().splitlines()[1:])
    code, out, err = cli(capsys, 'evaluate', '--pretrained', 'digits')
    assert code == 0, err
    value = float(out.strip().splitlines()[-1].split()[2])
    assert abs(value - best) < 0.01


@pytest.mark.slow
def test_sample_interpolate_manipulate_export(capsys, tmp_path):
    code, _, err = cli(capsys, 'sample', '--pretrained', 'digits', '--n', '6', '--temperatures', '0.7',
                       '--seed', '1', '--out', str(tmp_path / 's.npy'))
    assert code == 0, err
    assert np.load(tmp_path / 's.npy').shape == (1, 6, 8, 8, 3)
    code, _, err = cli(capsys, 'interpolate', '--pretrained', 'digits', '--test_index', '0', '1', '--steps', '3',
                       '--out', str(tmp_path / 'i.png'))
    assert code == 0, err
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / 'i.png'))).shape == (8, 26, 3)  # 3 cells, 2 separators
    code, out, err = cli(capsys, 'manipulate', '--pretrained', 'digits', '--attributes', '0,7', '--test_index', '3',
                         '--out', str(tmp_path / 'm.png'))
    assert code == 0, err
    assert out.count('reused') == 2  # the shipped directions of digits 0 and 7
    code, _, err = cli(capsys, 'export', '--pretrained', 'digits', '--export_dir', str(tmp_path / 'saved'))
    assert code == 0, err
    assert os.path.exists(tmp_path / 'saved' / 'saved_model.pb')


def test_what_the_shipped_models_lack_is_named(capsys, tmp_path):
    """Weights it does not ship (only its best) and a model that is not shipped: exit code 2 naming them."""
    code, _, err = cli(capsys, 'sample', '--pretrained', 'digits', '--weights', 'latest', '--out',
                       str(tmp_path / 'x.png'))
    assert code == 2 and 'checkpoints' in err
    code, _, err = cli(capsys, 'sample', '--pretrained', 'imagenet', '--out', str(tmp_path / 'x.png'))
    assert code == 2 and "unknown pretrained model 'imagenet'" in err
