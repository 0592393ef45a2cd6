"""`emerging manipulate` on the tiny trained digits run and the pretrained digits model, in-process (the
command's own main)."""
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from emerging.data.images import ordered_split
from emerging.data.problems import DataConfig

N = '200'  # --n_examples: the first 200 training digits


@pytest.fixture(scope='module')
def run_dir(trained_digits_run, tmp_path_factory):
    """A copy of the shared run, so that manipulation/ is written to this module's folder only."""
    path = str(tmp_path_factory.mktemp('manipulate') / 'run')
    shutil.copytree(trained_digits_run, path)
    return path


def manipulate(capsys, monkeypatch, *args):
    """(exit code, stdout, stderr) of `emerging manipulate ARGS`."""
    import emerging.cli.command as cli
    monkeypatch.setattr(cli, 'SUBCOMMANDS', {'manipulate': 'manipulate'})  # build only this subcommand's parser
    code = cli.main(['manipulate', *args])
    out, err = capsys.readouterr()
    return code, out, err


def digits(split, n):
    x, y = zip(*ordered_split(DataConfig(problem='digits', image_size=8, channels=3), split, limit=n))
    return np.concatenate(x), np.concatenate(y)


def tiles(path, rows, columns):
    """A grid PNG as [rows, columns, 8, 8, 3], without the one-pixel separators between the cells."""
    grid = np.asarray(Image.open(path))
    assert grid.shape == (rows * 9 - 1, columns * 9 - 1, 3)
    padded = np.pad(grid, [(0, 1), (0, 1), (0, 0)])  # each 8 x 8 cell with the separator after it: 9 x 9
    return padded.reshape(rows, 9, columns, 9, 3)[:, :8, :, :8].transpose(0, 2, 1, 3, 4)


@pytest.mark.slow
def test_label_grid_saved_and_reused(run_dir, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / 'grid.png')
    args = ['--logdir', run_dir, '--attributes', '7,3', '--alphas', '-1,0,1.5', '--test_index', '4',
            '--n_examples', N, '--out', out]
    code, stdout, err = manipulate(capsys, monkeypatch, *args)
    assert code == 0, err
    assert 'row 1: 7' in stdout and 'row 2: 3' in stdout and 'alpha = -1, 0, 1.5' in stdout
    grid = tiles(out, 2, 3)
    image = digits('test', 5)[0][4]
    np.testing.assert_array_equal(grid[0, 1], image)  # alpha 0: decode(encode(x)) == x
    np.testing.assert_array_equal(grid[1, 1], image)
    assert not np.array_equal(grid[0, 0], image)
    labels = digits('train', 200)[1]
    npy = os.path.join(run_dir, 'manipulation', 'dz_7.npy')
    dz = np.load(npy)
    assert dz.dtype == np.float32 and dz.shape == (8, 8, 3) and np.abs(dz).max() > 0
    with open(npy[:-4] + '.json') as f:
        record = json.load(f)
    assert record['n_examples'] == 200 and record['n_used'] == 200 and record['weights'] == 'best'
    assert record['n_positive'] == np.sum(labels == 7) and record['n_negative'] == np.sum(labels != 7)

    mtime = os.stat(npy).st_mtime_ns
    code, stdout, err = manipulate(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "dz of '7': reused" in stdout and "dz of '3': reused" in stdout and 'positive' not in stdout
    assert os.stat(npy).st_mtime_ns == mtime
    np.testing.assert_array_equal(tiles(out, 2, 3), grid)

    # other weights: a different record, so computed again (for this attribute only)
    code, stdout, err = manipulate(capsys, monkeypatch, *args[:-4], '--weights', 'latest', '--out', out)
    assert code == 0, err
    assert "dz of '7': " in stdout and 'positive and' in stdout and os.stat(npy).st_mtime_ns != mtime


@pytest.mark.slow
def test_image_png(run_dir, tmp_path, capsys, monkeypatch):
    image = digits('test', 11)[0][10]
    path = str(tmp_path / 'digit.png')
    Image.fromarray(image).save(path)
    out = str(tmp_path / 'grid.png')
    code, stdout, err = manipulate(capsys, monkeypatch, '--logdir', run_dir, '--attributes', '1', '--alphas', '0,2',
                                   '--image', path, '--n_examples', N, '--out', out)
    assert code == 0, err
    np.testing.assert_array_equal(tiles(out, 1, 2)[0, 0], image)


@pytest.mark.slow
def test_attribute_files_match_labels(run_dir, tmp_path, capsys, monkeypatch):
    """'is_seven' read from a .npy or a CelebA-layout text file gives the dz of label 7."""
    labels = digits('train', 200)[1]
    table = np.stack([labels == 7, labels % 2 == 1], axis=1).astype(np.uint8)
    npy = str(tmp_path / 'attributes.npy')
    np.save(npy, table)
    text = str(tmp_path / 'list_attr.txt')
    lines = [f'{k + 1:06d}.png ' + ' '.join('1' if v else '-1' for v in row) for k, row in enumerate(table)]
    with open(text, 'w') as f:
        f.write('\n'.join([str(len(table)), 'is_seven is_odd', *lines]) + '\n')
    common = ['--logdir', run_dir, '--alphas', '0,1', '--test_index', '0', '--n_examples', N,
              '--out', str(tmp_path / 'grid.png')]
    folder = os.path.join(run_dir, 'manipulation')

    assert manipulate(capsys, monkeypatch, *common, '--attributes', '7')[0] == 0
    seven = np.load(os.path.join(folder, 'dz_7.npy'))
    code, stdout, err = manipulate(capsys, monkeypatch, *common, '--attributes', 'is_seven,is_odd',
                                   '--attribute_file', npy, '--attribute_names', 'is_seven,is_odd')
    assert code == 0, err
    assert 'row 2: is_odd' in stdout
    np.testing.assert_allclose(np.load(os.path.join(folder, 'dz_is_seven.npy')), seven, rtol=0, atol=1e-6)
    odd = np.load(os.path.join(folder, 'dz_is_odd.npy'))
    # the same values from the text file: the saved dz are reused
    code, stdout, err = manipulate(capsys, monkeypatch, *common, '--attributes', 'is_odd', '--attribute_file', text)
    assert code == 0, err
    assert "dz of 'is_odd': reused" in stdout
    np.testing.assert_array_equal(np.load(os.path.join(folder, 'dz_is_odd.npy')), odd)

    # file errors
    for extra, expected in ((['--attribute_file', npy], '--attribute_names'),
                            (['--attribute_file', npy, '--attribute_names', 'is_seven'], '--attribute_names'),
                            (['--attribute_file', text, '--attribute_names', 'a,b'], '--attribute_names'),
                            (['--attribute_file', text, '--n_examples', '300'], 'fewer than the training images')):
        code, _, err = manipulate(capsys, monkeypatch, *common, '--attributes', 'is_odd', *extra)
        assert code == 2 and expected in err, err
    with open(text, 'a') as f:
        f.write('000201.png 1 0\n')
    code, _, err = manipulate(capsys, monkeypatch, *common, '--n_examples', '201', '--attributes', 'is_odd',
                              '--attribute_file', text)
    assert code == 2 and 'line 203' in err and text in err, err


@pytest.mark.slow
@pytest.mark.parametrize('extra, expected', [
    (['--attributes', 'seven'], "unknown attribute 'seven'"),
    (['--attributes', '9', '--n_examples', '5'], "attribute '9': no positive examples among the first 5"),
    (['--attributes', '1', '--alphas', '1,x'], '--alphas'),
    (['--attributes', '1', '--test_index', '300'], '--test_index 300 is out of range'),
    (['--attributes', '1', '--alphas', ','.join(['0.5'] * 1001)], '--alphas lists 1,001 values; at most 1,000'),
    (['--attributes', ','.join(f'a{k}' for k in range(1001))], '--attributes names 1,001 attributes; at most 1,000'),
])
def test_bad_input(run_dir, tmp_path, capsys, monkeypatch, extra, expected):
    args = {'--attributes': None, '--test_index': '0', '--n_examples': N, '--out': str(tmp_path / 'grid.png')}
    args.update(dict(zip(extra[::2], extra[1::2])))
    code, _, err = manipulate(capsys, monkeypatch, '--logdir', run_dir,
                              *[part for item in args.items() for part in item])
    assert code == 2 and expected in err, err
    if 'seven' in extra:
        assert 'known: 0, 1, 2' in err
    assert not os.path.exists(args['--out'])


def test_label_sources():
    from emerging.cli.attributes import attribute_source
    from emerging.errors import InputError
    cifar = attribute_source('cifar10', 10)
    assert cifar.canonical('0') == cifar.canonical('airplane') == 'airplane' and cifar.identity('cat')['label'] == 3
    with pytest.raises(InputError, match='celeba data has no class labels: pass --attribute_file'):
        attribute_source('celeba', None)


@pytest.mark.parametrize('content, name, expected', [
    (b'3\nSmiling Young\n\xff\xfe000001.jpg 1 -1\n', 'list_attr.txt', ', line 3: not UTF-8 text (byte 0 of the line)'),
    (None, 'table.npy', 'not found'),
    ('object', 'table.npy', 'an array of object of shape [2]'),
    ('strings', 'table.npy', 'an array of <U1 of shape [2, 2]'),
    ('huge', 'table.npy', 'its header declares 4,611,686,018,427,387,904 values of 1 bytes, the file holds 8 bytes'),
    ('floats', 'table.npy', 'must hold only 0 / 1 values'),
])
def test_attribute_files_that_cannot_be_read(tmp_path, content, name, expected):
    """Each named, with what is wrong, before any image is encoded (a text file of other bytes raised a
    UnicodeDecodeError, a .npy header declaring more data than the file holds allocated it)."""
    from emerging.cli.attributes import attribute_source
    from emerging.errors import InputError
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == 'object':
        np.save(path, np.array([{}, None], object), allow_pickle=True)
    elif content == 'strings':
        np.save(path, np.array([['1', '0'], ['0', '1']]))
    elif content == 'huge':
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {'descr': '|u1', 'fortran_order': False, 'shape': (2 ** 61, 2)})
        path.write_bytes(header.getvalue() + bytes(8))
    elif content == 'floats':
        np.save(path, np.array([[0, 0.5], [1, 1]]))
    with pytest.raises(InputError) as error:
        attribute_source('celeba', None, str(path), 'a,b' if name.endswith('.npy') else None, 10)
    assert str(path) in str(error.value) and expected in str(error.value), error.value


@pytest.mark.parametrize('json_bytes, npy', [
    (b'[' * 100000 + b']' * 100000, None),
    (b'\xff\xfe', None),
    (None, 'huge'),
    (None, 'object'),
])
def test_saved_direction_that_cannot_be_read_is_computed_again(tmp_path, json_bytes, npy):
    """A dz record or array in a run folder is read as any other file: whatever its bytes, it is computed again
    (a record nested past Python's recursion limit raised a RecursionError)."""
    from emerging.cli.manipulate import _read
    record = {'attribute': '7', 'n_examples': 200}
    (tmp_path / 'dz_7.json').write_bytes(json_bytes or json.dumps(record).encode())
    if npy == 'huge':
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {'descr': '<f4', 'fortran_order': False, 'shape': (2 ** 60,)})
        (tmp_path / 'dz_7.npy').write_bytes(header.getvalue())
    elif npy == 'object':
        np.save(tmp_path / 'dz_7.npy', np.array([None], object), allow_pickle=True)
    else:
        np.save(tmp_path / 'dz_7.npy', np.ones([8, 8, 3], np.float32))
    assert _read(str(tmp_path), '7', record, (8, 8, 3)) is None
    (tmp_path / 'dz_7.json').write_text(json.dumps(record))
    np.save(tmp_path / 'dz_7.npy', np.ones([8, 8, 3], np.float32))
    assert _read(str(tmp_path), '7', record, (8, 8, 3)).shape == (8, 8, 3)  # the same files, whole: reused


@pytest.mark.slow
def test_unwritable_run_folder(trained_digits_run, tmp_path, capsys, monkeypatch):
    run = str(tmp_path / 'run')
    shutil.copytree(trained_digits_run, run, ignore=shutil.ignore_patterns('manipulation'))
    open(os.path.join(run, 'manipulation'), 'w').close()  # a file in the way: the folder cannot be made
    out = str(tmp_path / 'grid.png')
    code, stdout, err = manipulate(capsys, monkeypatch, '--logdir', run, '--attributes', '2', '--test_index', '1',
                                   '--n_examples', '100', '--out', out)
    assert code == 0, err
    assert 'cannot be written to' in stdout and os.path.isfile(out)


# ---- the pretrained digits model -------------------------------------------------------------------------

@pytest.mark.slow
def test_pretrained_default_alphas_stay_finite(tmp_path, capsys, monkeypatch):
    """The README's example: with the default alphas no cell is black or white; at -2 .. 2 the cells whose
    decoding overflows are shown black, each named on a line."""
    monkeypatch.setenv('EMERGING_CACHE_DIR', str(tmp_path / 'cache'))
    out = str(tmp_path / 'grid.png')
    example = ['--pretrained', 'digits', '--attributes', '0,1,7', '--test_index', '3', '--out', out]
    code, stdout, err = manipulate(capsys, monkeypatch, *example)
    assert code == 0, err
    assert 'alpha = -1, -0.5, 0, 0.5, 1' in stdout and 'not finite' not in stdout
    cells = tiles(out, 3, 5).reshape(15, -1)
    assert np.all(cells.max(axis=1) > 0) and np.all(cells.min(axis=1) < 255)

    code, stdout, err = manipulate(capsys, monkeypatch, *example, '--alphas', '-2,-1,0,1,2')
    assert code == 0, err
    noted = {(name, alpha) for alpha, name in re.findall(r"^alpha (\S+) for attribute '(\d)': .* not finite", stdout,
                                                         re.M)}
    black = {(name, alpha) for name, row in zip('017', tiles(out, 3, 5))
             for alpha, cell in zip(['-2', '-1', '0', '1', '2'], row) if not cell.any()}
    assert noted and noted == black
    assert "alpha 2 for attribute '0': 100% of the decoded values are not finite" in stdout


@pytest.mark.slow
def test_pretrained_records_go_to_the_cache_not_the_package(tmp_path, capsys, monkeypatch):
    from emerging.runs.folder import pretrained_run
    package = pretrained_run('digits')

    def listing():
        return sorted((os.path.relpath(os.path.join(folder, name), package), os.stat(os.path.join(folder, name)))
                      for folder, _, names in os.walk(package) for name in names)

    before = listing()
    cache = tmp_path / 'cache'
    monkeypatch.setenv('EMERGING_CACHE_DIR', str(cache))
    table = (digits('train', 200)[1] % 2 == 1)[:, None]
    np.save(tmp_path / 'odd.npy', table)
    args = ['--pretrained', 'digits', '--attributes', 'is_odd', '--attribute_file', str(tmp_path / 'odd.npy'),
            '--attribute_names', 'is_odd', '--n_examples', N, '--test_index', '3', '--out', str(tmp_path / 'grid.png')]
    code, stdout, err = manipulate(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "dz of 'is_odd': " in stdout and 'positive and' in stdout
    record = cache / 'pretrained' / 'digits' / 'manipulation' / 'dz_is_odd'
    assert sorted(os.listdir(record.parent)) == ['dz_is_odd.json', 'dz_is_odd.npy']
    code, stdout, err = manipulate(capsys, monkeypatch, *args)
    assert code == 0, err
    assert f"dz of 'is_odd': reused {record}.npy" in stdout
    assert listing() == before


def test_record_folders(tmp_path, monkeypatch):
    from emerging.cli.manipulate import cache_root, record_folders
    from emerging.runs.folder import pretrained_run
    run = str(tmp_path / 'run')
    assert record_folders(run) == ([os.path.join(run, 'manipulation')], os.path.join(run, 'manipulation'))
    monkeypatch.delenv('EMERGING_CACHE_DIR', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert cache_root() == str(tmp_path / 'xdg' / 'emerging')
    shipped = pretrained_run('digits')
    assert record_folders(shipped) == ([os.path.join(shipped, 'manipulation'),
                                        str(tmp_path / 'xdg' / 'emerging' / 'pretrained' / 'digits' / 'manipulation')],
                                       str(tmp_path / 'xdg' / 'emerging' / 'pretrained' / 'digits' / 'manipulation'))
    monkeypatch.setenv('XDG_CACHE_HOME', 'relative')  # not absolute: ignored, as the XDG specification asks
    assert cache_root() == os.path.join(os.path.expanduser('~'), '.cache', 'emerging')
    monkeypatch.setenv('EMERGING_CACHE_DIR', str(tmp_path / 'mine'))
    assert cache_root() == str(tmp_path / 'mine')
