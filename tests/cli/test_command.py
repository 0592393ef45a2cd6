"""`emerging evaluate | sample | interpolate` on the tiny trained digits run, in-process (the command's own
main).  evaluate under `mpiexec -n 2` is in tests/training/test_horovod.py, with the other two-process checks
(one launch for all)."""
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from emerging.data.images import ordered_split
from emerging.data.problems import DataConfig
from emerging.models.config import GlowConfig

# the tests that read trained_digits_run are marked slow: it is a real training run (once per session)
LAST_LINE = re.compile(r'^test bits_x: (\d+\.\d{4}) \+- (\d+\.\d{4})$')


def cli(capsys, monkeypatch, command, *args):
    """(exit code, stdout, stderr) of `emerging COMMAND ARGS`."""
    import emerging.cli.command as emerging_cli
    monkeypatch.setattr(emerging_cli, 'SUBCOMMANDS', {command: command})  # build only this subcommand's parser
    code = emerging_cli.main([command, *args])
    out, err = capsys.readouterr()
    return code, out, err


def result(stdout):
    """(mean, standard error) from evaluate's last line, which must have the exact format."""
    match = LAST_LINE.match(stdout.strip().splitlines()[-1])
    assert match, stdout
    return float(match[1]), float(match[2])


def digits_test(n):
    x, y = zip(*ordered_split(DataConfig(problem='digits', image_size=8, channels=3), 'test', limit=n))
    return np.concatenate(x), np.concatenate(y)


def tiles(path, rows, columns):
    """A grid PNG as [rows, columns, 8, 8, 3], without the one-pixel separators between the cells."""
    grid = np.asarray(Image.open(path))
    assert grid.shape == (rows * 9 - 1, columns * 9 - 1, 3)
    padded = np.pad(grid, [(0, 1), (0, 1), (0, 0)])  # each 8 x 8 cell with the separator after it: 9 x 9
    return padded.reshape(rows, 9, columns, 9, 3)[:, :8, :, :8].transpose(0, 2, 1, 3, 4)


@pytest.mark.parametrize('command', ['evaluate', 'sample', 'interpolate'])
def test_help(command, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        cli(capsys, monkeypatch, command, '--help')
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert '--logdir' in out and '--weights' in out and out.count('\n') > 8


# ---- evaluate -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_evaluate_is_the_training_validation(trained_digits_run, capsys, monkeypatch):
    with open(os.path.join(trained_digits_run, 'test.txt')) as f:
        logged = [json.loads(line) for line in f.read().splitlines()[1:]]
    validation = float(next(line for line in logged if line['epoch'] == 2)['bits_x'])
    code, out, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', trained_digits_run)
    assert code == 0, err
    mean, se = result(out)
    assert abs(mean - validation) < 0.01
    assert 0 < se < 0.1
    assert 'best/ckpt-2' in out and '300 images' in out

    code, out, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', trained_digits_run, '--weights', 'latest')
    assert code == 0, err
    assert 'ckpt-3' in out and np.isfinite(result(out)[0])


@pytest.mark.slow
def test_evaluate_deterministic_and_several_draws(trained_digits_run, capsys, monkeypatch):
    import emerging
    runs = [cli(capsys, monkeypatch, 'evaluate', '--logdir', trained_digits_run, '--n_dequant', k)
            for k in ('0', '0', '1', '3')]
    assert all(code == 0 for code, _, _ in runs), [err for _, _, err in runs]
    (mean0, se0), again, (mean1, _), (mean3, se3) = (result(out) for _, out, _ in runs)
    assert (mean0, se0) == again
    assert np.isfinite(se3) and abs(mean3 - mean1) < 0.05
    # K = 0 is the mean and standard error of the deterministic bits_x of the 300 test images
    x, y = digits_test(300)
    model = emerging.load_run(trained_digits_run).model
    bits = model.losses_per_example(x, y, noise=False)['bits_x'].numpy().astype(np.float64)
    assert abs(mean0 - bits.mean()) < 2e-4
    assert abs(se0 - bits.std(ddof=1) / np.sqrt(len(bits))) < 2e-4


@pytest.mark.slow
def test_evaluate_bad_input(trained_digits_run, tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    import emerging
    empty = tmp_path / 'no_checkpoints'
    empty.mkdir()
    for name in ('config.json', 'train.txt'):
        shutil.copy(os.path.join(trained_digits_run, name), empty / name)
    code, _, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', str(empty))
    assert code == 2 and 'no best checkpoint' in err, err
    code, _, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', str(empty), '--weights', 'latest')
    assert code == 2 and 'checkpoints' in err, err

    weights_only = str(tmp_path / 'weights_only' / 'ckpt')
    tf.train.Checkpoint(model=emerging.load_run(trained_digits_run).model).write(weights_only)
    code, _, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', trained_digits_run, '--weights', 'polyak',
                       '--checkpoint', weights_only)
    assert code == 2 and weights_only in err and 'optimiser state' in err, err

    code, _, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', trained_digits_run, '--n_dequant', '-1')
    assert code == 2 and '--n_dequant' in err, err
    code, _, err = cli(capsys, monkeypatch, 'evaluate', '--logdir', trained_digits_run, '--n_test', '310')
    assert code == 2 and 'n_test' in err, err


# ---- sample ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sample_npy_is_seeded(trained_digits_run, tmp_path, capsys, monkeypatch):
    arrays = []
    for name, seed in (('a', '7'), ('b', '7'), ('c', '8')):
        out = str(tmp_path / f'{name}.npy')
        code, _, err = cli(capsys, monkeypatch, 'sample', '--logdir', trained_digits_run, '--n', '5',
                           '--temperatures', '0,0.5,1', '--seed', seed, '--out', out)
        assert code == 0, err
        arrays.append(np.load(out))
    a, b, c = arrays
    assert a.dtype == np.uint8 and a.shape == (3, 5, 8, 8, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[1:], c[1:])
    # temperature 0: the latent is 0 for every sample, so one image (the model is not class-conditional)
    assert all(np.array_equal(image, a[0, 0]) for image in a[0])
    np.testing.assert_array_equal(a[0], c[0])
    assert not all(np.array_equal(image, a[2, 0]) for image in a[2])


@pytest.mark.slow
def test_sample_png_grids(trained_digits_run, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / 'samples.png')
    code, stdout, err = cli(capsys, monkeypatch, 'sample', '--logdir', trained_digits_run, '--n', '10',
                            '--out', out)
    assert code == 0, err
    for t in ('0', '0.25', '0.5', '0.6', '0.7', '0.8', '0.9', '1'):
        path = str(tmp_path / f'samples_t{t}.png')
        assert path in stdout
        grid = tiles(path, 3, 4)  # ceil(sqrt(10)) = 4 columns
        assert not grid[2, 2:].any()  # past the 10th sample: empty
    assert not os.path.exists(out)

    one = str(tmp_path / 'one.png')
    code, stdout, err = cli(capsys, monkeypatch, 'sample', '--logdir', trained_digits_run, '--n', '4',
                            '--temperatures', '0.7', '--out', one)
    assert code == 0, err
    tiles(one, 2, 2)
    assert sorted(os.listdir(tmp_path)) == sorted(['one.png'] + [f'samples_t{t}.png' for t in
                                                                 ('0', '0.25', '0.5', '0.6', '0.7', '0.8', '0.9', '1')])


@pytest.mark.slow
@pytest.mark.parametrize('args, named', [
    (['--temperatures', 'a,b', '--out', 'samples.npy'], '--temperatures'),
    (['--temperatures', '0.5,-1', '--out', 'samples.npy'], '--temperatures'),
    (['--n', '0', '--out', 'samples.npy'], '--n'),
    (['--label', '1', '--out', 'samples.npy'], '--label'),
    (['--out', 'samples.jpg'], '--out'),
])
def test_sample_bad_input(args, named, trained_digits_run, tmp_path, capsys, monkeypatch):
    args = [str(tmp_path / a) if a.startswith('samples.') else a for a in args]
    code, _, err = cli(capsys, monkeypatch, 'sample', '--logdir', trained_digits_run, *args)
    assert code == 2 and named in err, err
    assert os.listdir(tmp_path) == []


def test_sample_labels_of_a_class_conditional_model():
    from emerging.cli.sample import class_labels
    from emerging.errors import InputError
    config = GlowConfig(image_shape=(8, 8, 3), ycond=True, n_y=10)
    np.testing.assert_array_equal(class_labels(None, 12, config), [0, 1, 2, 3] * 3)  # one class per column
    np.testing.assert_array_equal(class_labels(3, 4, config), [3, 3, 3, 3])
    for label in (-1, 10):
        with pytest.raises(InputError, match='--label'):
            class_labels(label, 4, config)
    np.testing.assert_array_equal(class_labels(None, 3, GlowConfig(image_shape=(8, 8, 3))), [0, 0, 0])


# ---- interpolate ----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('mode', ['linear', 'spherical'])
def test_interpolate_test_images(mode, trained_digits_run, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / 'row.png')
    code, stdout, err = cli(capsys, monkeypatch, 'interpolate', '--logdir', trained_digits_run, '--test_index', '0',
                            '5', '--steps', '5', '--mode', mode, '--out', out)
    assert code == 0, err
    assert out in stdout
    row = tiles(out, 1, 5)[0]
    x = digits_test(6)[0]
    np.testing.assert_array_equal(row[0], x[0])  # decode(encode(x, noise=False)) == x
    np.testing.assert_array_equal(row[-1], x[5])
    assert any(not np.array_equal(image, x[0]) and not np.array_equal(image, x[5]) for image in row[1:-1])


@pytest.mark.slow
def test_interpolate_png_files(trained_digits_run, tmp_path, capsys, monkeypatch):
    x = digits_test(9)[0]
    paths = [str(tmp_path / f'digit{i}.png') for i in (3, 8)]
    for path, image in zip(paths, x[[3, 8]]):
        Image.fromarray(image).save(path)
    out = str(tmp_path / 'row.png')
    code, _, err = cli(capsys, monkeypatch, 'interpolate', '--logdir', trained_digits_run, '--images', *paths,
                       '--out', out)
    assert code == 0, err
    row = tiles(out, 1, 9)[0]
    np.testing.assert_array_equal(row[0], x[3])
    np.testing.assert_array_equal(row[-1], x[8])


@pytest.mark.slow
def test_interpolate_bad_input(trained_digits_run, tmp_path, capsys, monkeypatch):
    good, large, grey = (str(tmp_path / name) for name in ('good.png', 'large.png', 'grey.png'))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(large)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(grey)
    out = str(tmp_path / 'out' / 'row.png')

    def fails(*args):
        code, _, err = cli(capsys, monkeypatch, 'interpolate', '--logdir', trained_digits_run, '--out', out, *args)
        assert code == 2, err
        return err

    err = fails('--images', good, large)
    assert large in err and '9x9x3' in err and '8x8x3' in err
    err = fails('--images', grey, good)
    assert grey in err and '8x8x1' in err and '8x8x3' in err
    missing = str(tmp_path / 'missing.png')
    assert missing in fails('--images', good, missing)
    assert '--steps' in fails('--images', good, good, '--steps', '1')
    err = fails('--test_index', '0', '300')
    assert '--test_index' in err and '300' in err
    assert '--test_index' in fails('--test_index', '-1', '2')
    assert '--label' in fails('--images', good, good, '--label', '0')
    assert '--out' in fails('--images', good, good, '--out', str(tmp_path / 'row.gif'))
    with pytest.raises(SystemExit) as exit_:
        fails('--images', good, good, '--mode', 'cubic')
    assert exit_.value.code == 2 and '--mode' in capsys.readouterr().err
    assert not os.path.exists(out)


def test_spherical_interpolation():
    from emerging.cli.interpolate import interpolate
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 4, 3))
    t = np.linspace(0, 1, 7)
    path = interpolate(a, b, t, 'spherical')
    assert path.shape == (7, 4, 4, 3)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    # the great circle through a and b: for |a| = |b|, every point has their norm
    b_scaled = b * np.linalg.norm(a) / np.linalg.norm(b)
    norms = np.linalg.norm(interpolate(a, b_scaled, t, 'spherical').reshape(7, -1), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(a), rtol=1e-12)
    # parallel latents: the straight line
    np.testing.assert_allclose(interpolate(a, 2 * a, t, 'spherical'), interpolate(a, 2 * a, t, 'linear'))
