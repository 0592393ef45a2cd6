"""Glow-format TFRecord shards: writing, checking and reading.

Files: {data_dir}/{split}/{split}-r{log2(res):02d}-s-{i:04d}-of-{n:04d}.tfrecords,
split in {train, validation}; each record has `shape` int64[3], `data` bytes
(raw uint8 HWC) and `label` int64[1].
"""
import glob
import math
import os
import re

import numpy as np
import tensorflow as tf

SPLITS = ('train', 'validation')


def shard_name(split, resolution, index, n_shards):
    return f'{split}-r{int(math.log2(resolution)):02d}-s-{index:04d}-of-{n_shards:04d}.tfrecords'


def shard_pattern(data_dir, split, resolution):
    return os.path.join(data_dir, split, f'{split}-r{int(math.log2(resolution)):02d}-s-*-of-*.tfrecords')


def write_shards(images, labels, data_dir, split, n_shards=1, resolution=None):
    """Write uint8 [N, H, W, C] images and int labels as Glow-format shards; returns the paths.
    `resolution` names the files (default: the image size; lsun_realnvp stores larger
    images than the --image_size its file names carry, and crops them)."""
    images = np.asarray(images, np.uint8)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f'images must be square uint8 [N, H, W, C], got shape {images.shape}')
    if len(labels) != len(images):
        raise ValueError(f'{len(images)} images but {len(labels)} labels')
    resolution = resolution or images.shape[1]
    if resolution & (resolution - 1):
        raise ValueError(f'image size must be a power of two for the file name, got {resolution}')
    os.makedirs(os.path.join(data_dir, split), exist_ok=True)
    paths = []
    for index, chunk in enumerate(np.array_split(np.arange(len(images)), n_shards)):
        path = os.path.join(data_dir, split, shard_name(split, resolution, index, n_shards))
        with tf.io.TFRecordWriter(path) as writer:
            for i in chunk:
                feature = {
                    'shape': tf.train.Feature(int64_list=tf.train.Int64List(value=list(images[i].shape))),
                    'data': tf.train.Feature(bytes_list=tf.train.BytesList(value=[images[i].tobytes()])),
                    'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[int(labels[i])])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        paths.append(path)
    return paths


FEATURES = {
    'shape': tf.io.FixedLenFeature([3], tf.int64),
    'data': tf.io.FixedLenFeature([], tf.string),
    'label': tf.io.FixedLenFeature([1], tf.int64),
}


def find_shards(data_dir, split, resolution):
    """All shards of a split, checked to be complete; a clear error otherwise."""
    pattern = shard_pattern(data_dir, split, resolution)
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f'no TFRecord shards for split {split!r} at resolution {resolution}: '
                                f'expected files matching {pattern}')
    counts = {int(re.search(r'-of-(\d+)\.tfrecords$', f).group(1)) for f in files}
    if len(counts) != 1:
        raise ValueError(f'shards under {os.path.dirname(pattern)} disagree on the total count: {sorted(counts)}')
    n_shards = counts.pop()
    expected = {os.path.join(data_dir, split, shard_name(split, resolution, i, n_shards)) for i in range(n_shards)}
    missing = sorted(expected - set(files))
    if missing:
        raise FileNotFoundError(f'{len(missing)} of {n_shards} shards are missing, e.g. {missing[0]}')
    return sorted(expected)


def check_first_record(path, image_size, channels, allow_larger=False):
    """Parse the first record of a shard and check its image shape against the flags."""
    try:
        record = next(iter(tf.data.TFRecordDataset(path).take(1)))
        example = tf.io.parse_single_example(record, FEATURES)
    except (StopIteration, tf.errors.OpError) as error:
        raise ValueError(f'cannot read a Glow-format record from {path}: {error}') from None
    shape = [int(d) for d in example['shape'].numpy()]
    ok = (shape[0] >= image_size and shape[1] >= image_size) if allow_larger else shape[:2] == [image_size] * 2
    if not ok or shape[2] != channels:
        want = f'at least {image_size}x{image_size}' if allow_larger else f'{image_size}x{image_size}'
        raise ValueError(f'{path} holds images of shape {shape}, but --image_size {image_size} '
                         f'and {channels} channels need {want}x{channels}')
    if len(example['data'].numpy()) != int(np.prod(shape)):
        raise ValueError(f'{path}: record data has {len(example["data"].numpy())} bytes, shape {shape} needs '
                         f'{int(np.prod(shape))}')


def read_shards(files, image_size, channels, batch, rank, size, train, random_crop=False, shard_files=True,
                n_parallel_reads=1, n_parallel_calls=16, seed=None):
    """A repeated dataset of (uint8 [S, S, C], int32) examples from shard files; `batch`
    sizes the example shuffle buffer (4 x batch, as the original)."""
    files = list(files)
    if shard_files and size > 1:
        if len(files) < size:
            raise ValueError(f'{len(files)} shards cannot be divided between {size} processes')
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
    [S, S, C] (with a crop: at least S x S, C channels) or whose `data` is not
    H * W * C bytes fails with an InvalidArgumentError whose message starts with
    `BAD_RECORD`."""
    example = tf.io.parse_single_example(record, FEATURES)
    shape, data = example['shape'], example['data']
    if crop is None:
        shape_ok = tf.reduce_all(tf.equal(shape, tf.constant([image_size, image_size, channels], tf.int64)))
    else:
        shape_ok = tf.reduce_all(tf.greater_equal(shape[:2], image_size)) & tf.equal(shape[2], channels)
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
    """Shard files (both splits) with a record that fails its checksum or is not an image of the flags' shape:
    used to name the file after an input error in the middle of a run, so it reads every record of every shard.

    Returns:
      [(path, what is wrong)], in file order.
    """
    bad = []
    crop = 'centre' if allow_larger else None
    for split in SPLITS:
        for path in sorted(glob.glob(shard_pattern(data_dir, split, resolution))):
            index = -1  # records counted from 0
            try:
                for index, record in enumerate(tf.data.TFRecordDataset(path)):
                    parse_record(record, image_size, channels, crop)
            except tf.errors.DataLossError:
                bad.append((path, f'record {index + 1} fails its checksum (a corrupt file)'))
            except tf.errors.InvalidArgumentError as error:
                bad.append((path, f'record {index} is not a {image_size}x{image_size}x{channels} image '
                                  f'({error.message.splitlines()[0][:200]})'))
    return bad
