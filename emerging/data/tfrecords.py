"""Glow-format TFRecord shards: writing, checking and reading.

Files: {data_dir}/{split}/{split}-r{log2(res):02d}-s-{i:04d}-of-{n:04d}.tfrecords,
split in {train, validation}; each record has `shape` int64[3], `data` bytes
(raw uint8 HWC) and `label` int64[1].

A shard is TensorFlow's TFRecord framing, one record after the other:
uint64 length, uint32 masked CRC-32C of the length, the data, uint32 masked
CRC-32C of the data (all little-endian).  Before TensorFlow reads a record its
framing is walked here: TensorFlow allocates whatever length a record declares,
so a length past the end of the file is refused first.  A shard is "damaged"
when a record is cut off, fails a checksum or does not parse as a Glow-format
example; every message about one names the shard and the record's index
(counting from 0) and says how to make the shard again (`REWRITE`).
"""
import glob
import math
import os
import re
import struct

import numpy as np
import tensorflow as tf

from emerging.errors import InputError

SPLITS = ('train', 'validation')
REWRITE = ('write the shard again (`emerging write-tfrecords` or scripts/write_tfrecords.py with the flags that '
           'wrote it) or download it again')
HEADER, FOOTER = 12, 4  # the bytes of a record around its data: length and its CRC; the data's CRC
MAX_SIDE = 2 ** 15  # the largest stored image side read (lsun_realnvp's are cropped): H * W * C stays far from 2^63
NAME = re.compile(r'-s-(\d+)-of-(\d+)\.tfrecords$')


def shard_name(split, resolution, index, n_shards):
    """The file name of shard `index` of `n_shards` of a split at a resolution (a power of two)."""
    return f'{split}-r{int(math.log2(resolution)):02d}-s-{index:04d}-of-{n_shards:04d}.tfrecords'


def shard_pattern(data_dir, split, resolution):
    """The glob pattern of a split's shards at a resolution."""
    return os.path.join(data_dir, split, f'{split}-r{int(math.log2(resolution)):02d}-s-*-of-*.tfrecords')


def write_shards(images, labels, data_dir, split, n_shards=1, resolution=None):
    """Write images and labels as Glow-format shards.

    Each shard is written under a temporary name and renamed when complete, so a shard's name never stands
    for a file cut off by a kill.

    Args:
      images: [N, S, S, C] integers 0..255 (uint8, or any integer type holding such values).
      labels: N class indices (of any numeric type holding whole numbers).
      data_dir: the folder the split's subfolder goes in.
      split: 'train' or 'validation'.
      n_shards: the number of shards the images are spread over (in order); at most N.
      resolution: names the files (default: the image size; lsun_realnvp stores larger images than the
        --image_size its file names carry, and crops them).

    Returns:
      The shards' paths.

    Raises:
      InputError: images of another shape or range, labels of another count, too many shards, a resolution
        that is not a power of two.
    """
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.dtype.kind not in 'iu':
        raise InputError(f'images must be square [N, S, S, C] integers 0..255, got {images.dtype} {images.shape}')
    if images.dtype != np.uint8 and images.size and (images.min() < 0 or images.max() > 255):
        raise InputError(f'images must hold values 0..255, got {images.min()} .. {images.max()}')
    if labels.dtype.kind not in 'iuf' or len(labels) != len(images):
        raise InputError(f'{len(images)} images need {len(images)} labels, got {labels.dtype} {labels.shape}')
    if labels.size and not (np.all(labels == np.round(labels)) and labels.min() >= 0
                            and labels.max() <= np.iinfo(np.int32).max):
        raise InputError(f'labels must be class indices 0 .. 2^31 - 1 (read back as int32), got {labels.min()} .. '
                         f'{labels.max()}')
    if not 1 <= n_shards <= len(images):
        raise InputError(f'{len(images)} images cannot fill {n_shards} shards: every shard needs an image')
    resolution = resolution or images.shape[1]
    if resolution & (resolution - 1):
        raise InputError(f'image size must be a power of two for the file name, got {resolution}')
    os.makedirs(os.path.join(data_dir, split), exist_ok=True)
    paths = []
    for index, chunk in enumerate(np.array_split(np.arange(len(images)), n_shards)):
        path = os.path.join(data_dir, split, shard_name(split, resolution, index, n_shards))
        _write_shard(path + '.tmp', images[chunk].astype(np.uint8), labels[chunk].astype(np.int64))
        os.replace(path + '.tmp', path)
        paths.append(path)
    return paths


def _write_shard(path, images, labels):
    with tf.io.TFRecordWriter(path) as writer:
        for image, label in zip(images, labels):
            feature = {
                'shape': tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
                'data': tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


FEATURES = {
    'shape': tf.io.FixedLenFeature([3], tf.int64),
    'data': tf.io.FixedLenFeature([], tf.string),
    'label': tf.io.FixedLenFeature([1], tf.int64),
}


def find_shards(data_dir, split, resolution):
    """All shards of a split, checked to be complete.

    Returns:
      The paths of shards 0 .. n-1 of n.

    Raises:
      InputError: no shards, a file of the pattern whose name does not end -s-IIII-of-NNNN.tfrecords, shards
        that disagree on n, or a missing shard (named).
    """
    pattern = shard_pattern(data_dir, split, resolution)
    files = sorted(glob.glob(pattern))
    if not files:
        raise InputError(f'no TFRecord shards for split {split!r} at resolution {resolution}: expected files '
                         f'matching {pattern}')
    numbered = [(path, NAME.search(path)) for path in files]
    strays = [path for path, match in numbered if match is None]
    if strays:
        raise InputError(f'{strays[0]}: not a shard name (expected {split}-rNN-s-IIII-of-NNNN.tfrecords with '
                         f'digits): rename or remove it')
    counts = {int(match.group(2)) for _, match in numbered}
    if len(counts) != 1:
        raise InputError(f'shards under {os.path.dirname(pattern)} disagree on the total count: {sorted(counts)} '
                         f'(two writes mixed?)')
    n_shards = counts.pop()
    expected = {os.path.join(data_dir, split, shard_name(split, resolution, i, n_shards)) for i in range(n_shards)}
    missing = sorted(expected - set(files))
    if missing:
        raise InputError(f'{len(missing)} of {n_shards} shards are missing, e.g. {missing[0]}')
    return sorted(expected)


def masked_crc32c(data):
    """TFRecord's masked CRC-32C (Castagnoli) of a few bytes (a record's length field)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def walk_records(path, limit=None, checksums=True):
    """Walk a shard's record framing (lengths and their checksums; the data's checksums are TensorFlow's).

    Args:
      path: the shard.
      limit: stop after this many records (None: all).
      checksums: check each length field's checksum (without: only that each record fits in the file).

    Returns:
      (the number of records whose framing is whole, None) or, at the first that is not, (its index, what is
      wrong with it).

    Raises:
      InputError: when the file cannot be read.
    """
    index = offset = 0
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            while offset < size and (limit is None or index < limit):
                f.seek(offset)
                header = f.read(HEADER)
                if len(header) < HEADER:
                    return index, f'is cut off in its {HEADER}-byte header: the file ends {size - offset} bytes in'
                length, crc = struct.unpack('<QI', header)
                if checksums and crc != masked_crc32c(header[:8]):
                    return index, 'fails its checksum (of the length field)'
                if length + FOOTER > size - offset - HEADER:
                    return index, (f'is cut off: it declares {length} bytes of data, the file ends '
                                   f'{size - offset - HEADER} bytes after its header')
                offset += HEADER + length + FOOTER
                index += 1
    except OSError as error:
        raise InputError(f'{path}: cannot be read ({error.strerror or error})') from None
    return index, None


def check_framing(path):
    """Refuse a shard whose record framing does not fit the file, before TensorFlow reads it.

    TensorFlow's reader allocates a record's declared length before reading it, so a length whose own checksum
    holds but that reaches past the end of the file aborts the process.  Every record's length is walked here (a
    seek and 12 bytes per record); when one does not fit, the walk is made again with the checksums to name the
    first record that is wrong.

    Args:
      path: the shard.

    Raises:
      InputError: naming the shard and the record: it is damaged, and how to write it again.
    """
    count, problem = walk_records(path, checksums=False)
    if problem is not None:
        count, problem = walk_records(path)
        raise InputError(damaged(path, count, problem))


def damaged(path, index, what):
    """The message for a damaged shard: its path, the record, what is wrong, how to make the shard again."""
    return f'{path} is damaged: record {index} (counting from 0) {what}; {REWRITE}'


def _first_example(path):
    """The first record of a shard, parsed; InputError when it cannot be."""
    count, problem = walk_records(path, limit=1)
    if problem is not None:
        raise InputError(damaged(path, count, problem))
    if count == 0:
        raise InputError(f'{path} holds no records (an empty file); {REWRITE}')
    try:
        record = next(iter(tf.data.TFRecordDataset(path).take(1)))
    except tf.errors.DataLossError:
        raise InputError(damaged(path, 0, 'fails its checksum (of the data)')) from None
    except tf.errors.OpError as error:
        raise InputError(f'{path}: cannot be read ({error.message.splitlines()[0][:200]})') from None
    try:
        return tf.io.parse_single_example(record, FEATURES)
    except tf.errors.InvalidArgumentError as error:
        raise InputError(damaged(path, 0, f'does not parse as a Glow-format example '
                                          f'({error.message.splitlines()[0][:200]})')) from None


def check_first_record(path, image_size, channels, allow_larger=False):
    """Parse the first record of a shard and check its image shape against the flags.

    Args:
      path: the shard.
      image_size, channels: the images the flags ask for.
      allow_larger: stored images may be larger than image_size x image_size (they are cropped).

    Raises:
      InputError: naming the shard: damaged (cut off, a failed checksum, a record that does not parse), empty,
        or holding images of another shape.
    """
    example = _first_example(path)
    shape = [int(d) for d in example['shape'].numpy()]
    if allow_larger:
        ok = all(image_size <= side <= MAX_SIDE for side in shape[:2])
        want = f'at least {image_size}x{image_size} (at most {MAX_SIDE})'
    else:
        ok = shape[:2] == [image_size] * 2
        want = f'{image_size}x{image_size}'
    if not ok or shape[2] != channels:
        raise InputError(f'{path} holds images of shape {shape}, but --image_size {image_size} '
                         f'and {channels} channels need {want}x{channels}')
    length = len(example['data'].numpy())
    if length != math.prod(shape):
        raise InputError(damaged(path, 0, f'holds {length} bytes of image data, but its shape {shape} needs '
                                          f'{math.prod(shape)}'))


def read_shards(files, image_size, channels, batch, rank, size, train, random_crop=False, shard_files=True,
                n_parallel_reads=1, n_parallel_calls=16, seed=None):
    """A repeated dataset of (uint8 [S, S, C], int32) examples from shard files; `batch`
    sizes the example shuffle buffer (4 x batch, as the original)."""
    files = list(files)
    if shard_files and size > 1:
        if len(files) < size:
            raise InputError(f'{len(files)} shards cannot be divided between {size} processes')
        files = files[rank::size]
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if train:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.repeat()
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=max(1, n_parallel_reads),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=not train)
    if train:
        dataset = dataset.shuffle(4 * batch, seed=seed)
    return dataset.map(lambda record: parse_record(record, image_size, channels, 'random' if random_crop else None),
                       num_parallel_calls=n_parallel_calls)


BAD_RECORD = 'bad Glow-format record'


def parse_record(record, image_size, channels, crop=None):
    """One serialised example -> (uint8 [S, S, C] image, int32 label); `crop` ('random' or
    'centre') cuts S x S out of a larger stored image.  A record whose `shape` is not
    [S, S, C] (with a crop: S .. MAX_SIDE x S .. MAX_SIDE, C channels) or whose `data` is not
    H * W * C bytes fails with an InvalidArgumentError whose message starts with
    `BAD_RECORD`."""
    example = tf.io.parse_single_example(record, FEATURES)
    shape, data = example['shape'], example['data']
    if crop is None:
        shape_ok = tf.reduce_all(tf.equal(shape, tf.constant([image_size, image_size, channels], tf.int64)))
    else:
        shape_ok = (tf.reduce_all(tf.greater_equal(shape[:2], image_size))
                    & tf.reduce_all(tf.less_equal(shape[:2], MAX_SIDE)) & tf.equal(shape[2], channels))
    length = tf.cast(tf.strings.length(data), tf.int64)
    checked = tf.debugging.Assert(shape_ok & tf.equal(length, tf.reduce_prod(shape)),
                                  [BAD_RECORD + ': shape', shape, 'bytes', length, f'expected {image_size}x'
                                   f'{image_size}x{channels}'])
    with tf.control_dependencies([checked]):
        image = tf.reshape(tf.io.decode_raw(data, tf.uint8), shape)
    if crop == 'random':
        image = tf.image.random_crop(image, [image_size, image_size, channels])
    elif crop == 'centre':
        image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
    image = tf.ensure_shape(tf.reshape(image, [image_size, image_size, channels]),
                            [image_size, image_size, channels])
    return image, tf.cast(example['label'][0], tf.int32)


def find_bad_shards(data_dir, resolution, image_size, channels, allow_larger=False):
    """Shard files (both splits) that are damaged or hold a record that is not an image of the flags' shape:
    used to name the file after an input error in the middle of a run, so it reads every record of every shard.

    Returns:
      [(path, what is wrong)], in file order; what is wrong names the record (counting from 0) and, for a
      damaged shard, how to write it again.
    """
    bad = []
    crop = 'centre' if allow_larger else None
    for split in SPLITS:
        for path in sorted(glob.glob(shard_pattern(data_dir, split, resolution))):
            problem = shard_problem(path, image_size, channels, crop)
            if problem is not None:
                bad.append((path, problem))
    return bad


def shard_problem(path, image_size, channels, crop=None):
    """What is wrong with a shard (every record read), or None.

    Args:
      path: the shard.
      image_size, channels: the images the flags ask for.
      crop: as `parse_record`'s.

    Returns:
      None, or one line: the first record that is damaged or not an image of the flags' shape, and for a
      damaged shard how to write it again.
    """
    try:
        count, framing = walk_records(path)
    except InputError as error:
        return str(error)
    records = iter(tf.data.TFRecordDataset(path).take(count))  # only the records whose framing is whole
    for index in range(count):
        try:
            record = next(records)
        except tf.errors.DataLossError:
            return _damage(index, 'fails its checksum (of the data)')
        except tf.errors.OpError as error:
            return f'cannot be read ({error.message.splitlines()[0][:200]})'
        try:
            parse_record(record, image_size, channels, crop)
        except tf.errors.InvalidArgumentError as error:
            message = error.message.splitlines()[0][:200]
            if BAD_RECORD not in message:
                return _damage(index, f'does not parse as a Glow-format example ({message})')
            return f'record {index} is not a {image_size}x{image_size}x{channels} image ({message})'
    return None if framing is None else _damage(count, framing)


def _damage(index, what):
    """`damaged`'s message without the path, which `find_bad_shards`' callers put before it."""
    return f'damaged: record {index} (counting from 0) {what}; {REWRITE}'
