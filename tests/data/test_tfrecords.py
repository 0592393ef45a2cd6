"""Glow-format TFRecord shards (emerging/data/tfrecords.py): written, then damaged in each way a file on disk
can be (a flipped byte, cut off, a length past the end, a record that is not an example, empty), and each
named by `check_first_record` (before training) and `find_bad_shards` (after a bad record stops training)."""
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from emerging.data.tfrecords import (
    REWRITE,
    check_first_record,
    check_framing,
    find_bad_shards,
    find_shards,
    masked_crc32c,
    walk_records,
    write_shards,
)
from emerging.errors import InputError

N = 6


def images(n, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, [n, size, size, channels]).astype(np.uint8)


@pytest.fixture
def shard(tmp_path):
    """(data_dir, the one train shard of N 8x8x3 images, the bytes of one record)."""
    [path] = write_shards(images(N), np.arange(N), str(tmp_path), 'train')
    size = os.path.getsize(path)
    assert size % N == 0  # records of one length
    return str(tmp_path), path, size // N


def rewrite(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def record_header(length):
    """A record's length field and its valid checksum."""
    field = struct.pack('<Q', length)
    return field + struct.pack('<I', masked_crc32c(field))


def test_masked_crc32c_is_tensorflows():
    """The framing walk's checksum is the one TensorFlow writes: every length field of a written shard passes."""
    assert masked_crc32c(b'') == 0xA282EAD8  # CRC-32C of nothing is 0, masked
    assert masked_crc32c(b'123456789') == (((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_walk_of_a_good_shard(shard):
    _, path, _ = shard
    assert walk_records(path) == (N, None)
    assert walk_records(path, limit=2) == (2, None)
    check_first_record(path, 8, 3)
    assert find_bad_shards(os.path.dirname(os.path.dirname(path)), 8, 8, 3) == []


def test_flipped_data_byte_names_the_record(shard):
    """The issue's message named the record but not that the shard is damaged nor how to write it again."""
    data_dir, path, length = shard
    raw = bytearray(open(path, 'rb').read())
    raw[3 * length + 40] ^= 0x10  # inside record 3's data
    rewrite(path, raw)
    check_first_record(path, 8, 3)  # record 0 is whole: training starts, and stops at record 3
    [(bad, reason)] = find_bad_shards(data_dir, 8, 8, 3)
    assert bad == path
    assert reason == f'damaged: record 3 (counting from 0) fails its checksum (of the data); {REWRITE}'
    raw[40] ^= 0x10
    rewrite(path, raw)
    with pytest.raises(InputError) as error:
        check_first_record(path, 8, 3)
    assert str(error.value) == f'{path} is damaged: record 0 (counting from 0) fails its checksum (of the data); ' \
                               f'{REWRITE}'
    assert 'emerging write-tfrecords' in REWRITE and 'scripts/write_tfrecords.py' in REWRITE


@pytest.mark.parametrize('kept, expected', [
    (100, 'record 4 (counting from 0) is cut off: it declares'),
    (5, 'record 4 (counting from 0) is cut off in its 12-byte header: the file ends 5 bytes in'),
])
def test_truncated_shard_names_the_record(shard, kept, expected):
    """Cut off after 4 whole records and `kept` bytes of the fifth."""
    data_dir, path, length = shard
    raw = open(path, 'rb').read()
    rewrite(path, raw[:4 * length + kept])
    [(bad, reason)] = find_bad_shards(data_dir, 8, 8, 3)
    assert bad == path and reason.startswith(f'damaged: {expected}'), reason
    assert reason.endswith(REWRITE)
    check_first_record(path, 8, 3)


def test_length_past_the_end_is_refused_before_tensorflow_reads_it(shard):
    """A length field with a valid checksum declaring 2^62 bytes: TensorFlow's reader would allocate them (the
    process aborts); the framing walk refuses it first."""
    data_dir, path, length = shard
    raw = open(path, 'rb').read()
    rewrite(path, raw[:2 * length] + record_header(2 ** 62) + raw[2 * length + 12:])
    [(bad, reason)] = find_bad_shards(data_dir, 8, 8, 3)
    assert reason.startswith(f'damaged: record 2 (counting from 0) is cut off: it declares {2 ** 62} bytes of data')
    check_first_record(path, 8, 3)  # the first record is whole: only the walk of every record sees record 2
    with pytest.raises(InputError, match=rf'{path} is damaged: record 2 .* declares {2 ** 62} bytes'):
        check_framing(path)
    rewrite(path, record_header(2 ** 62) + raw[12:])
    with pytest.raises(InputError, match=rf'{path} is damaged: record 0 .* declares {2 ** 62} bytes'):
        check_first_record(path, 8, 3)


def test_the_framing_walk_names_the_first_bad_record_with_its_checksum(shard):
    """The walk without checksums only sees that record 3 reaches past the end; the second walk names record 1,
    whose length field fails its checksum (its changed length happens to fit in the file)."""
    _, path, length = shard
    raw = open(path, 'rb').read()
    field = bytearray(raw[length:length + 12])
    field[0] -= 12  # record 1 declares 12 bytes less, its checksum now wrong: the walk lands inside record 1
    rewrite(path, raw[:length] + bytes(field) + raw[length + 12:])
    assert walk_records(path, checksums=False)[1] is not None
    with pytest.raises(InputError, match=r'record 1 \(counting from 0\) fails its checksum \(of the length field\)'):
        check_framing(path)
    rewrite(path, raw)
    check_framing(path)


def test_length_checksum(shard):
    data_dir, path, length = shard
    raw = bytearray(open(path, 'rb').read())
    raw[length + 2] ^= 1  # record 1's length field
    rewrite(path, raw)
    [(_, reason)] = find_bad_shards(data_dir, 8, 8, 3)
    assert reason.startswith('damaged: record 1 (counting from 0) fails its checksum (of the length field)')


def test_record_that_is_not_an_example(tmp_path):
    """Whole framing and checksums, but the data is not a Glow-format example."""
    folder = tmp_path / 'train'
    folder.mkdir()
    path = str(folder / 'train-r03-s-0000-of-0001.tfrecords')
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(b'not an example')
    with pytest.raises(InputError, match=rf'{path} is damaged: record 0 \(counting from 0\) does not parse as a '
                                         rf'Glow-format example'):
        check_first_record(path, 8, 3)
    [(_, reason)] = find_bad_shards(str(tmp_path), 8, 8, 3)
    assert reason.startswith('damaged: record 0 (counting from 0) does not parse') and reason.endswith(REWRITE)


def test_empty_shard_and_other_shapes(tmp_path):
    [path] = write_shards(images(2, 8, 1), np.zeros(2), str(tmp_path), 'validation')
    with pytest.raises(InputError, match=r'holds images of shape \[8, 8, 1\], but --image_size 8 and 3 channels'):
        check_first_record(path, 8, 3)
    [(_, reason)] = find_bad_shards(str(tmp_path), 8, 8, 3)
    assert reason.startswith('record 0 is not a 8x8x3 image (')
    rewrite(path, b'')
    with pytest.raises(InputError, match=rf'{path} holds no records \(an empty file\)'):
        check_first_record(path, 8, 3)


def test_stray_and_mixed_shard_names(tmp_path):
    write_shards(images(4), np.zeros(4), str(tmp_path), 'train', n_shards=2)
    stray = tmp_path / 'train' / 'train-r03-s-0000-of-all.tfrecords'
    stray.write_bytes(b'')
    with pytest.raises(InputError, match=f'{stray}: not a shard name'):
        find_shards(str(tmp_path), 'train', 8)
    stray.unlink()
    write_shards(images(4), np.zeros(4), str(tmp_path), 'train', n_shards=4)
    with pytest.raises(InputError, match=r'disagree on the total count: \[2, 4\] \(two writes mixed\?\)'):
        find_shards(str(tmp_path), 'train', 8)


@pytest.mark.parametrize('arguments, expected', [
    ((images(3).astype(np.float32) / 255, np.zeros(3)), r'integers 0..255, got float32'),
    ((images(3).astype(np.int64) + 1, np.zeros(3)), r'values 0..255, got 1 .. 256'),
    ((images(3), np.zeros(4)), r'3 images need 3 labels, got float64 \(4,\)'),
    ((images(3), np.array([0, -1, 2])), r'class indices 0 .. 2\^31 - 1 \(read back as int32\), got -1 .. 2'),
    ((images(3), np.array([0, 0.5, 2])), r'class indices .*, got 0.0 .. 2.0'),
    ((images(3), np.zeros(3, np.int64), 'train', 4), '3 images cannot fill 4 shards'),
])
def test_write_shards_refuses_what_it_would_store_wrongly(tmp_path, arguments, expected):
    images_, labels, *rest = arguments
    with pytest.raises(InputError, match=expected):
        write_shards(images_, labels, str(tmp_path), *(rest or ['train']))
    assert not os.path.exists(tmp_path / 'train')


def test_write_shards_leaves_no_temporary_files(tmp_path):
    paths = write_shards(images(5), np.arange(5), str(tmp_path), 'train', n_shards=2)
    assert sorted(os.listdir(tmp_path / 'train')) == [os.path.basename(p) for p in paths]
    assert [walk_records(p)[0] for p in paths] == [3, 2]
