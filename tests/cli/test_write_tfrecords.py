"""scripts/write_tfrecords.py (`emerging write-tfrecords`) on images and arrays the tests write: 8-bit as they
are, 16-bit and float values refused without --convert and converted by the stated rules with it, and every
refusal before any shard is written."""
import io
import os
import re
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from emerging.cli import write_tfrecords
from emerging.data.tfrecords import FEATURES, find_shards, write_shards


def png(width, height, depth, colour, rows=None):
    """The bytes of a PNG written field by field (Pillow writes no 16-bit colour PNG, nor one that declares more
    pixels than it holds).

    Args:
      width, height: the declared size.
      depth, colour: the IHDR bit depth and colour type (0 grey, 2 RGB, 4 grey + alpha, 6 RGBA).
      rows: the samples, [height, width * channels] unsigned integers of `depth` bits (8 or 16), or the
        decompressed data itself as bytes (filter bytes included); None: no data.
    """
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    header = struct.pack('>IIBBBBB', width, height, depth, colour, 0, 0, 0)
    if rows is None or isinstance(rows, bytes):
        raw = rows or b''
    else:
        raw = b''.join(b'\0' + np.asarray(row, f'>u{depth // 8}').tobytes() for row in rows)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')


def write(capsys, *argv):
    """(exit code, stdout, stderr) of write_tfrecords.main(argv)."""
    code = write_tfrecords.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def stored(data_dir, split='train'):
    """(images, labels) of the split's 4x4 shards, in order."""
    examples = [tf.io.parse_single_example(record, FEATURES)
                for record in tf.data.TFRecordDataset(find_shards(str(data_dir), split, 4))]
    images = [tf.reshape(tf.io.decode_raw(e['data'], tf.uint8), e['shape']).numpy() for e in examples]
    return np.stack(images), np.array([int(e['label'][0]) for e in examples])


SIXTEEN = np.array([[0, 128, 257, 32767], [32768, 40000, 65279, 65535], [1, 2, 3, 4], [5, 6, 7, 8]], np.uint16)
# round(v * 255 / 65535), computed in floating point here
SIXTEEN_AS_8 = np.floor(SIXTEEN.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)


def test_eight_bit_images_are_stored_as_they_are(tmp_path, capsys):
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, [3, 4, 4, 3]).astype(np.uint8)
    for k, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f'{k}.png')
    np.save(tmp_path / 'y.npy', np.array([2, 0, 1]))
    code, out, err = write(capsys, '--images', folder, '--labels', tmp_path / 'y.npy', '--out', tmp_path / 'd',
                           '--size', 4, '--shards', 3)
    assert code == 0, err
    images, labels = stored(tmp_path / 'd')
    np.testing.assert_array_equal(images, pictures)
    np.testing.assert_array_equal(labels, [2, 0, 1])


def test_sixteen_bit_grey_png_refused_then_converted(tmp_path, capsys):
    """The issue: 16-bit PNGs were clipped to 255 (any value above 255 stored as white), exit 0."""
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.fromarray(SIXTEEN).save(folder / 'grey16.png')
    assert Image.open(folder / 'grey16.png').mode == 'I;16'
    code, _, err = write(capsys, '--images', folder, '--out', tmp_path / 'd', '--size', 4)
    assert code == 2
    assert f'--images: {folder / "grey16.png"} (mode I;16) holds uint16 values, not uint8: pass --convert' in err
    assert not (tmp_path / 'd').exists()
    code, _, err = write(capsys, '--images', folder, '--out', tmp_path / 'd', '--size', 4, '--convert')
    assert code == 0, err
    images, _ = stored(tmp_path / 'd')
    np.testing.assert_array_equal(images[0], np.repeat(SIXTEEN_AS_8[..., None], 3, axis=-1))


def test_sixteen_bit_colour_png_refused_then_read_by_pillow(tmp_path, capsys):
    folder = tmp_path / 'images'
    folder.mkdir()
    rgb = np.stack([SIXTEEN, SIXTEEN[::-1], SIXTEEN.T], axis=-1)
    (folder / 'rgb16.png').write_bytes(png(4, 4, 16, 2, rgb.reshape(4, 12)))
    code, _, err = write(capsys, '--images', folder, '--out', tmp_path / 'd', '--size', 4)
    assert code == 2 and f'{folder / "rgb16.png"} is a 16-bit RGB image: pass --convert' in err, err
    code, _, err = write(capsys, '--images', folder, '--out', tmp_path / 'd', '--size', 4, '--convert')
    assert code == 0, err
    images, _ = stored(tmp_path / 'd')
    np.testing.assert_array_equal(images[0], rgb // 256)
    assert np.abs(images[0].astype(int) - np.stack([SIXTEEN_AS_8, SIXTEEN_AS_8[::-1], SIXTEEN_AS_8.T], -1)).max() <= 1


@pytest.mark.parametrize('array, stored_as', [
    (SIXTEEN, SIXTEEN_AS_8),
    (np.array([[0, 0.3 / 255, 1.6 / 255, 0.2], [0.5, 0.75, 254.4 / 255, 1]] * 2, np.float32),
     np.array([[0, 0, 2, 51], [128, 191, 254, 255]] * 2, np.uint8)),
    (np.array([[0, 0.25, 0.5, 1]] * 4, np.float64), np.array([[0, 64, 128, 255]] * 4, np.uint8)),
])
def test_sixteen_bit_and_float_arrays_refused_then_converted(tmp_path, capsys, array, stored_as):
    """The issue: float arrays were cast (0.7 -> 0) and uint16 arrays wrapped, exit 0."""
    path = tmp_path / 'x.npy'
    np.save(path, np.repeat(array[None, ..., None], 2, axis=0))
    code, _, err = write(capsys, '--images', path, '--out', tmp_path / 'd', '--size', 4)
    assert code == 2 and f'--images {path} holds {array.dtype} values, not uint8: pass --convert' in err, err
    assert not (tmp_path / 'd').exists()
    code, _, err = write(capsys, '--images', path, '--out', tmp_path / 'd', '--size', 4, '--convert')
    assert code == 0, err
    images, _ = stored(tmp_path / 'd')
    np.testing.assert_array_equal(images, np.repeat(stored_as[None, ..., None], 2, axis=0))


@pytest.mark.parametrize('array, expected', [
    (np.full([1, 4, 4, 1], 1.5, np.float32), r'holds float32 values outside \[0, 1\] \(1.5 .. 1.5\)'),
    (np.array([np.nan, 0.5] * 8, np.float32).reshape(1, 4, 4, 1), r'outside \[0, 1\] \(0.5 .. 0.5, and non-finite'),
    (np.zeros([1, 4, 4, 1], np.int32), r'holds int32 values: expected uint8 \(0..255\), or uint16 or floats'),
    (np.zeros([1, 4, 4, 1], bool), r'holds bool values: expected uint8'),
    (np.zeros([0, 4, 4, 3], np.uint8), r'has shape \[0, 4, 4, 3\], expected \[N, 4, 4, C\] with N, C > 0'),
    (np.zeros([2, 4, 8, 3], np.uint8), r'has shape \[2, 4, 8, 3\]'),
    (np.array([{'a': 1}], object), 'an array of object of shape'),
])
def test_arrays_that_cannot_be_stored(tmp_path, capsys, array, expected):
    path = tmp_path / 'x.npy'
    np.save(path, array, allow_pickle=True)
    code, _, err = write(capsys, '--images', path, '--out', tmp_path / 'd', '--size', 4, '--convert')
    assert code == 2 and str(path) in err and re.search(expected, err), err
    assert not (tmp_path / 'd').exists()


def npy_header(shape, descr='|u1'):
    """The bytes of a .npy file's magic and header declaring `shape` of `descr`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {'descr': descr, 'fortran_order': False, 'shape': shape})
    return header.getvalue()


def test_npy_header_declaring_more_than_the_file_allocates_nothing(tmp_path, capsys):
    path = tmp_path / 'x.npy'
    path.write_bytes(npy_header((10 ** 12, 4, 4, 3)) + bytes(48))
    code, _, err = write(capsys, '--images', path, '--out', tmp_path / 'd', '--size', 4)
    assert code == 2 and f'--images {path}: its header declares 48,000,000,000,000 values of 1 bytes' in err, err


def test_folder_with_one_bad_image_writes_nothing(tmp_path, capsys):
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.fromarray(np.zeros([4, 4, 3], np.uint8)).save(folder / 'a.png')
    (folder / 'b.png').write_bytes(png(4, 4, 8, 2, np.zeros([4, 12]))[:45])  # cut off in its data
    Image.fromarray(np.zeros([4, 4, 3], np.uint8)).save(folder / 'c.png')
    code, _, err = write(capsys, '--images', folder, '--out', tmp_path / 'd', '--size', 4)
    assert code == 2 and f'--images: {folder / "b.png"}: cannot be read as an image (' in err, err
    assert not (tmp_path / 'd').exists()


@pytest.mark.parametrize('width, height', [(10 ** 5, 10 ** 5), (10000, 9000)])
def test_decompression_bomb_refused_by_name(tmp_path, capsys, width, height):
    """A PNG declaring 10^10 pixels (or 9 * 10^7, past Pillow's bound, where Pillow only warns) is refused
    before it is decoded."""
    folder = tmp_path / 'images'
    folder.mkdir()
    (folder / 'bomb.png').write_bytes(png(width, height, 8, 0))
    code, _, err = write(capsys, '--images', folder, '--out', tmp_path / 'd', '--size', 4)
    assert code == 2, err
    assert f'--images: {folder / "bomb.png"} declares more pixels than the 89,478,485 decoded at most' in err
    assert f'{width * height} pixels' in err


def test_existing_shards_are_not_written_over(tmp_path, capsys):
    path = tmp_path / 'x.npy'
    np.save(path, np.zeros([4, 4, 4, 3], np.uint8))
    [shard] = write_shards(np.ones([2, 4, 4, 3], np.uint8), np.zeros(2), str(tmp_path / 'd'), 'train')
    before = open(shard, 'rb').read()
    code, _, err = write(capsys, '--images', path, '--out', tmp_path / 'd', '--size', 4, '--shards', 2)
    assert code == 2 and f'--out {tmp_path / "d"} already holds 1 train shard(s) of 4x4 images ({shard}, ...)' in err
    assert open(shard, 'rb').read() == before and os.listdir(tmp_path / 'd' / 'train') == [os.path.basename(shard)]
    code, _, err = write(capsys, '--images', path, '--out', tmp_path / 'd', '--size', 4, '--split', 'validation')
    assert code == 0, err


@pytest.mark.parametrize('labels, flags, expected', [
    (np.array([0, 1, -1, 2]), [], r'--labels .*y.npy must hold class indices 0 .. 2147483647, got -1 .. 2'),
    (np.array([0, 1, 2]), [], r'must hold 4 integer labels, got int64 \[3\]'),
    (np.array([0., 1, 2, 3]), [], r'must hold 4 integer labels, got float64 \[4\]'),
    (np.arange(4), ['--shards', '5'], r'--shards 5: more shards than the 4 images of'),
])
def test_labels_and_shards_checked_before_writing(tmp_path, capsys, labels, flags, expected):
    np.save(tmp_path / 'x.npy', np.zeros([4, 4, 4, 3], np.uint8))
    np.save(tmp_path / 'y.npy', labels)
    code, _, err = write(capsys, '--images', tmp_path / 'x.npy', '--labels', tmp_path / 'y.npy', '--out',
                         tmp_path / 'd', '--size', 4, *flags)
    assert code == 2 and re.search(expected, err), err
    assert not (tmp_path / 'd').exists()
