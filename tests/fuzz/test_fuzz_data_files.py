"""The data tools' readers keep the contract of contract.py on mutated files: TFRecord shards (the first-record
check before training, `check_first_record`, and `find_bad_shards`, which reads every record), training logs
as scripts/plot_logs.py reads them, images (write_tfrecords' folder reader and the `emerging` subcommands'
`--image`), .npy arrays (write_tfrecords' --images / --labels, manipulate's --attribute_file), CelebA attribute
text files and manipulate's saved directions.  Each is given bytes-level mutations of a valid file written
here, structured changes that bytes-level mutation rarely reaches (JSON values, PNG and .npy header fields,
TFRecord length fields with valid checksums), and the kept failing inputs of its kind."""
import io
import json
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from emerging.cli import attributes, common, manipulate, plot_logs, write_tfrecords
from emerging.data.tfrecords import check_first_record, find_bad_shards, masked_crc32c, write_shards
from tests.cli.test_write_tfrecords import png
from tests.fuzz.contract import FUZZ, holds, mutated, regression_files

ODD_VALUES = st.sampled_from([10 ** 30, -1, -10 ** 30, 0, 1e308, -1e308, -0.5, '', 'two', 'nan', '-inf', None,
                              True, [], [1, 2], {}, {'a': 1}, '9' * 5000, [[[[[]]]]], 'x' * 100000])


def write(path, data: bytes):
    with open(path, 'wb') as f:
        f.write(data)


def png_bytes(array):
    """A PNG of `array` as Pillow writes it."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, 'PNG')
    return out.getvalue()


def npy_bytes(array):
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


# ---- TFRecord shards ----------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shard(tmp_path_factory):
    """(a data_dir, the path of its one train shard, the valid shard's bytes): 3 records of 4x4x3 images."""
    data_dir = str(tmp_path_factory.mktemp('shards'))
    rng = np.random.default_rng(0)
    [path] = write_shards(rng.integers(0, 256, [3, 4, 4, 3]), np.arange(3), data_dir, 'train')
    with open(path, 'rb') as f:
        return data_dir, path, f.read()


def check_shard(data_dir, path, data):
    """What training does with a shard before it starts and after a bad record stops it."""
    write(path, data)
    try:
        check_first_record(path, 4, 3)
    finally:
        bad = find_bad_shards(data_dir, 4, 4, 3)
    assert all(reason for _, reason in bad)
    return bad


def with_length(valid, record, length):
    """The shard with record `record`'s length field set to `length`, its checksum valid (records of one size)."""
    size = len(valid) // 3
    field = struct.pack('<Q', length)
    start = record * size
    return valid[:start] + field + struct.pack('<I', masked_crc32c(field)) + valid[start + 12:]


def test_the_valid_shard_checks(shard):
    assert check_shard(*shard) == []


@settings(parent=FUZZ, max_examples=60)  # each example starts TensorFlow's reader on every record
@given(data=st.data())
@pytest.mark.slow
def test_tfrecord_shard(shard, data):
    data_dir, path, valid = shard
    lengths = st.sampled_from([0, 1, 11, 100, 2 ** 31, 2 ** 32 + 5, 2 ** 62, 2 ** 64 - 1])
    bytes_ = data.draw(st.one_of(mutated(valid),
                                 st.builds(lambda r, n: with_length(valid, r, n), st.integers(0, 2), lengths)))
    holds('tfrecord_shard', bytes_, check_shard, data_dir, path, bytes_)


@pytest.mark.parametrize('data', regression_files('tfrecord_shard'))
def test_tfrecord_shard_regressions(shard, data):
    holds('tfrecord_shard', data, check_shard, shard[0], shard[1], data)


# ---- training logs, as plot_logs reads them ----------------------------------------------------------------

HPARAMS = {'problem': 'cifar10', 'flow_permutation': 3, 'n_levels': 3, 'depth': 8, 'width': 64, 'lr': 0.001}
RECORDS = [{'epoch': e, 'n_processed': 800 * e, 'n_images': 800 * e, 'train_time': e, 'loss': f'{4.5 - e / 10:.4f}',
            'bits_x': f'{4.5 - e / 10:.4f}', 'bits_y': '0.0000', 'pred_loss': '1.0000'} for e in (1, 2, 3)]
LOG = ''.join(json.dumps(line) + '\n' for line in [HPARAMS, *RECORDS]).encode()


@st.composite
def changed_log(draw):
    """The log with one to three values changed to odd ones, or one line replaced by another JSON value."""
    lines = [dict(HPARAMS), *[dict(record) for record in RECORDS]]
    for _ in range(draw(st.integers(1, 3))):
        line = draw(st.integers(0, len(lines) - 1))
        if draw(st.booleans()) and isinstance(lines[line], dict):
            lines[line][draw(st.sampled_from(sorted(lines[line])))] = draw(ODD_VALUES)
        else:
            lines[line] = draw(ODD_VALUES)
    return ''.join(json.dumps(line) + '\n' for line in lines).encode()


def read_logs(folder, data):
    """Everything plot_logs does with a log but drawing: the runs read, the metrics checked, labels, the table."""
    write(os.path.join(folder, 'train.txt'), data)
    runs = [plot_logs.read_run(folder)]
    plot_logs.check_metrics(runs, ['bits_x'])
    return plot_logs.final_table(runs, plot_logs.labels(runs), 'bits_x')


def plot(folder, data):
    """plot_logs' whole command, drawing included; its exit code."""
    write(os.path.join(folder, 'train.txt'), data)
    return plot_logs.main([folder, '--out', os.path.join(folder, 'plots'), '--metrics', 'bits_x'])


def test_the_valid_log_reads(tmp_path):
    assert read_logs(str(tmp_path), LOG).splitlines()[-1].split()[-3:] == ['4.2000', '-', '-']


@FUZZ
@given(data=st.one_of(mutated(LOG), changed_log()))
def test_plot_log(tmp_path, data):
    holds('plot_log', data, read_logs, str(tmp_path), data)


@settings(parent=FUZZ, max_examples=15)  # matplotlib takes about a second per figure
@given(data=st.one_of(mutated(LOG), changed_log()))
@pytest.mark.slow
def test_plot_log_drawn(tmp_path, data):
    holds('plot_log', data, plot, str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('plot_log'))
def test_plot_log_regressions(tmp_path, data):
    holds('plot_log', data, read_logs, str(tmp_path), data)
    holds('plot_log', data, plot, str(tmp_path), data)


# ---- images: write_tfrecords' folders and the emerging subcommands' --image ----------------------------------

RGB = png_bytes(np.random.default_rng(0).integers(0, 256, [4, 4, 3]).astype(np.uint8))
GREY16 = png_bytes(np.random.default_rng(0).integers(0, 2 ** 16, [4, 4]).astype(np.uint16))


def read_images(folder, data):
    """The folder reader of write_tfrecords (with and without --convert) and the subcommands' --image reader."""
    path = os.path.join(folder, 'image.png')
    write(path, data)
    results = []
    for reader in (lambda: write_tfrecords.load_folder(folder, 4, convert=False),
                   lambda: write_tfrecords.load_folder(folder, 4, convert=True),
                   lambda: common.read_image(path, (4, 4, 3))):
        results.append(holds('png_image', data, reader))
    return results


PNG_FIELDS = st.builds(
    lambda width, height, depth, colour, rows: png(width, height, depth, colour, rows),
    st.sampled_from([0, 1, 4, 3000, 2 ** 16, 10 ** 5, 2 ** 31 - 1, 2 ** 32 - 1]),
    st.sampled_from([0, 1, 4, 10 ** 5, 2 ** 31 - 1]),
    st.sampled_from([0, 1, 2, 4, 8, 16, 3, 255]),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]),
    st.one_of(st.none(), st.binary(max_size=200), st.sampled_from([bytes(10 ** 5), b'\1' * 3001 * 4])))


def test_the_valid_images_read(tmp_path):
    assert [None if r is None else r.shape for r in read_images(str(tmp_path), RGB)] == [(1, 4, 4, 3)] * 2 + [
        (4, 4, 3)]
    assert [None if r is None else r.shape for r in read_images(str(tmp_path), GREY16)] == [None, (1, 4, 4, 3),
                                                                                            None]


@FUZZ
@given(data=st.one_of(mutated(RGB), mutated(GREY16), PNG_FIELDS))
def test_png_image(tmp_path, data):
    read_images(str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('png_image'))
def test_png_image_regressions(tmp_path, data):
    read_images(str(tmp_path), data)


# ---- .npy arrays: write_tfrecords' --images and --labels, manipulate's --attribute_file ----------------------

IMAGES = npy_bytes(np.random.default_rng(0).integers(0, 256, [2, 4, 4, 3]).astype(np.uint8))
TABLE = npy_bytes(np.array([[0, 1], [1, 0], [1, 1]], np.uint8))
DESCRS = st.sampled_from(["'|u1'", "'<u2'", "'<f4'", "'>f8'", "'|b1'", "'<i8'", "'|O'", "'<U5'", "'|V0'",
                          "[('a', '<i4')]", "'<c16'", "'(3,)u1'", '12', 'None', "'<f4", "'<M8[s]'"])
SHAPES = st.sampled_from(['(2, 4, 4, 3)', '(3, 2)', '()', '(-1, 4, 4, 3)', '(10**12, 4, 4, 3)', '(2**62, 2)',
                          '(1000000000000, 4, 4, 3)', '(3,)', '[2, 4, 4, 3]', '(2.0, 4, 4, 3)', '("a",)', '(' * 300])


def npy_header(descr, shape, fortran, body):
    """A .npy file with header fields written as text (so they can be anything), then `body`."""
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header += ' ' * (-(len(header) + 11) % 64) + '\n'
    return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header.encode('latin1') + body


NPY_FIELDS = st.builds(npy_header, DESCRS, SHAPES, st.sampled_from(['False', 'True', '1', '"no"']),
                       st.sampled_from([b'', bytes(6), bytes(96), b'\x01' * 96]))


def read_arrays(folder, data):
    """write_tfrecords' --images (with --convert) and --labels readers, and --attribute_file's .npy reader."""
    path = os.path.join(folder, 'array.npy')
    write(path, data)
    return [holds('npy_array', data, write_tfrecords.load_array, path, 4, True),
            holds('npy_array', data, write_tfrecords.read_labels, path, 2),
            holds('npy_array', data, attributes.attribute_source, 'celeba', None, path, 'a,b', 2)]


def test_the_valid_arrays_read(tmp_path):
    images, _, _ = read_arrays(str(tmp_path), IMAGES)
    assert images.shape == (2, 4, 4, 3)
    _, _, table = read_arrays(str(tmp_path), TABLE)
    assert table.table.tolist() == [[False, True], [True, False]]


@FUZZ
@given(data=st.one_of(mutated(IMAGES), mutated(TABLE), NPY_FIELDS))
def test_npy_array(tmp_path, data):
    read_arrays(str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('npy_array'))
def test_npy_array_regressions(tmp_path, data):
    read_arrays(str(tmp_path), data)


# ---- CelebA's attribute text layout --------------------------------------------------------------------------

CELEBA = b'3\nSmiling Young\n000001.jpg  1 -1\n000002.jpg -1  1\n000003.jpg  1  1\n'


def read_celeba(folder, data):
    path = os.path.join(folder, 'list_attr_celeba.txt')
    write(path, data)
    return attributes.attribute_source('celeba', None, path, None, 3)


def test_the_valid_attribute_text_reads(tmp_path):
    assert read_celeba(str(tmp_path), CELEBA).table.tolist() == [[True, False], [False, True], [True, True]]


@FUZZ
@given(data=mutated(CELEBA))
def test_attribute_text(tmp_path, data):
    holds('attribute_text', data, read_celeba, str(tmp_path), data)


@pytest.mark.parametrize('data', regression_files('attribute_text'))
def test_attribute_text_regressions(tmp_path, data):
    holds('attribute_text', data, read_celeba, str(tmp_path), data)


# ---- manipulate's saved directions (a record read back: anything unreadable is computed again) ---------------

RECORD = {'attribute': '7', 'n_examples': 200, 'weights': 'best', 'checkpoint': 'ckpt-3', 'data': {'problem': 'x'}}
RECORD_JSON = json.dumps(RECORD).encode()
DZ = npy_bytes(np.ones([4, 4, 3], np.float32))


def read_direction(folder, record, dz):
    write(os.path.join(folder, 'dz_7.json'), record)
    write(os.path.join(folder, 'dz_7.npy'), dz)
    return manipulate._read(folder, '7', RECORD, (4, 4, 3))


def test_the_valid_direction_reads(tmp_path):
    assert read_direction(str(tmp_path), RECORD_JSON, DZ).sum() == 48


@FUZZ
@given(data=mutated(RECORD_JSON))
def test_direction_record(tmp_path, data):
    holds('direction_record', data, read_direction, str(tmp_path), data, DZ)


@FUZZ
@given(data=st.one_of(mutated(DZ), NPY_FIELDS))
def test_direction_array(tmp_path, data):
    holds('direction_array', data, read_direction, str(tmp_path), RECORD_JSON, data)


@pytest.mark.parametrize('data', regression_files('direction_record'))
def test_direction_record_regressions(tmp_path, data):
    holds('direction_record', data, read_direction, str(tmp_path), data, DZ)


@pytest.mark.parametrize('data', regression_files('direction_array'))
def test_direction_array_regressions(tmp_path, data):
    holds('direction_array', data, read_direction, str(tmp_path), RECORD_JSON, data)
