"""Per-process input pipelines yielding (uint8 images [B, H, W, C], int32 labels [B]).

Problems: digits (scikit-learn's bundled 8x8 handwritten digits, offline),
mnist and cifar10 (tensorflow-datasets), space (galaxy pickle), and the
Glow-format TFRecord problems imagenet-oord, imagenet, celeba, lsun,
lsun_realnvp.  Data is sharded per process *before* shuffling: process r of n
takes the r-th contiguous 1/n of train and of test (TFRecord problems: every
n-th shard file, except lsun validation).
"""
import dataclasses
import glob
import os

import numpy as np
import tensorflow as tf

from emerging import pickles
from emerging.data.augment import augment, random_horizontal_flips
from emerging.data.problems import DIGITS_N_TEST, N_Y, TFRECORD_PROBLEMS, DataConfig
from emerging.data.tfrecords import check_first_record, check_framing, find_shards, parse_record, read_shards
from emerging.errors import InputError

DOWNLOAD_HOST_TIMEOUT = 5.0  # seconds to wait for a tfds download host before saying it cannot be reached


@dataclasses.dataclass
class Data:
    """One process's pipelines: batches of (uint8 images, int32 labels), the init batch (numpy), the image
    shape and the number of classes."""
    train: tf.data.Dataset
    test: tf.data.Dataset
    init_batch: tuple
    image_shape: tuple
    n_y: int


def _resize(images, size):
    """Block-average down (the original's downsampling) or repeat up to size x size; floor, clip to uint8."""
    height = images.shape[1]
    if height == size:
        return images
    if height > size:
        if height % size:
            raise ValueError(f'cannot block-average {height}x{height} images to {size}x{size}')
        f = height // size
        x = images.astype(np.float64).reshape(len(images), size, f, size, f, images.shape[-1]).mean(axis=(2, 4))
        return np.clip(np.floor(x), 0, 255).astype(np.uint8)
    if size % height:
        raise ValueError(f'cannot upsample {height}x{height} images to {size}x{size}')
    f = size // height
    return images.repeat(f, axis=1).repeat(f, axis=2)


def _contiguous_shard(array, rank, size):
    return np.array_split(array, size)[rank]


def _load_digits():
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * 255. / 16.).astype(np.uint8)[..., None].repeat(3, axis=-1)
    labels = digits.target.astype(np.int32)
    n_train = len(images) - DIGITS_N_TEST
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


def _load_tfds(name, data_dir, rank, size, channels=3):
    """(train, test) of this process's share; mnist is padded to 32x32 and repeated to 3 channels
    (the original's layout) unless `channels` is 1 (28x28x1)."""
    import tensorflow_datasets as tfds
    where = data_dir or '~/tensorflow_datasets'
    advice = f'Prepare it with `tfds build {name} --data_dir DIR` on a machine with internet and pass --data_dir DIR.'
    builder = tfds.builder(name, data_dir=data_dir or None)
    if not builder.is_prepared():
        unreachable = _unreachable_download_host(builder.url_infos or {})
        if unreachable:
            raise FileNotFoundError(f'tensorflow-datasets has no prepared {name!r} in data_dir {where} and could '
                                    f'not download it: {unreachable}. {advice}')
    out = []
    for split in ('train', 'test'):
        try:
            data = tfds.load(name, split=tfds.even_splits(split, n=size)[rank], data_dir=data_dir or None,
                             as_supervised=True)
        except Exception as error:  # tfds raises many kinds; all mean "not available here"
            raise FileNotFoundError(
                f'tensorflow-datasets could not load {name!r} ({split}) from data_dir {where} and could not '
                f'download it: {type(error).__name__}: {error}. {advice}') from None
        examples = list(tfds.as_numpy(data))
        images = np.stack([image for image, _ in examples]).astype(np.uint8)
        labels = np.array([label for _, label in examples])
        if name == 'mnist' and channels != 1:
            pad = ((0, 0), (2, 2), (2, 2), (0, 0))
            images = np.pad(images, pad, constant_values=images.min() if images.size else 0).repeat(3, axis=-1)
        out.append((images, np.asarray(labels, np.int32)))
    return out


def _unreachable_download_host(url_infos) -> str:
    """Why the first of the download hosts that cannot be reached fails ('' when all answer).  Checked before
    tfds downloads, whose retries take minutes to give up on a machine without a network."""
    import socket
    from urllib.parse import urlparse

    for host, port in sorted({(url.hostname, url.port or (443 if url.scheme == 'https' else 80))
                              for url in map(urlparse, url_infos) if url.hostname}):
        try:
            socket.create_connection((host, port), timeout=DOWNLOAD_HOST_TIMEOUT).close()
        except OSError as error:
            return f'{host}:{port} cannot be reached ({error or type(error).__name__})'
    return ''


def _load_space(data_dir):
    path = data_dir
    if os.path.isdir(path):
        candidates = sorted(glob.glob(os.path.join(path, '*.pkl')) + glob.glob(os.path.join(path, '*.pickle')))
        if len(candidates) != 1:
            raise FileNotFoundError(f'--data_dir {data_dir} must be the galaxy pickle or a folder holding exactly '
                                    f'one *.pkl file; found {len(candidates)}')
        path = candidates[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f'galaxy pickle not found: --data_dir {data_dir!r} (expected a pickle of '
                                f'(x_train, x_val, x_test) uint8 arrays of 64x64x3 images)')
    x_train, x_val, x_test = _galaxy_arrays(path)
    for name, x in (('x_train', x_train), ('x_val', x_val), ('x_test', x_test)):
        if x.dtype != np.uint8 and not (np.issubdtype(x.dtype, np.integer) and x.size and x.min() >= 0
                                        and x.max() <= 255):
            low, high = (float(x.min()), float(x.max())) if x.size and x.dtype.kind in 'iuf' else (None, None)
            raise InputError(f'{path}: {name} holds {x.dtype} values (range {low}..{high}), not uint8 images '
                             f'0..255 (float images in [0, 1] must be scaled and cast first)')
        if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
            raise InputError(f'{path}: {name} has shape {x.shape}, not square RGB images [N, H, W, 3]')
    x_test = np.concatenate([x_val, x_test])
    return ((x_train.astype(np.uint8), np.zeros(len(x_train), np.int32)),
            (x_test.astype(np.uint8), np.zeros(len(x_test), np.int32)))


def _galaxy_arrays(path):
    """The three arrays of the galaxy pickle, read by a pickle machine that builds NumPy arrays only (a pickle
    naming anything else, code that would run while it loads, is refused), within `pickles.memory_bound()`."""
    arrays = pickles.load_file(path, pickles.numpy_arrays())
    items = list(arrays) if isinstance(arrays, (tuple, list)) else [arrays]
    if len(items) != 3 or not all(isinstance(a, np.ndarray) for a in items):
        raise InputError(f'{path} is not a pickle of (x_train, x_val, x_test) arrays: it holds '
                         f'{", ".join(pickles.describe(item) for item in items[:4])}')
    return items


def _in_memory(config):
    if config.problem in ('digits', 'space'):
        (x_train, y_train), (x_test, y_test) = (_load_digits() if config.problem == 'digits'
                                                else _load_space(config.data_dir))
        x_train, y_train, x_test, y_test = (_contiguous_shard(a, config.rank, config.size)
                                            for a in (x_train, y_train, x_test, y_test))
    else:  # tfds shards with even_splits
        (x_train, y_train), (x_test, y_test) = _load_tfds(config.problem, config.data_dir, config.rank, config.size,
                                                          config.channels)
    if x_train.ndim != 4 or x_train.shape[1] != x_train.shape[2]:
        raise ValueError(f'{config.problem}: expected square images [N, H, W, C], got {x_train.shape}')
    if x_train.shape[-1] != config.channels:
        raise ValueError(f'{config.problem} images have {x_train.shape[-1]} channels, but --channels is '
                         f'{config.channels}')
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f'{config.problem}: process {config.rank} of {config.size} got no train or test images')
    x_train, x_test = _resize(x_train, config.image_size), _resize(x_test, config.image_size)
    # Shuffle indices, not images: the shuffle buffer is then a few hundred KB, small enough
    # to save with every checkpoint so that --resume continues at the exact data position.
    images, labels = tf.constant(x_train), tf.constant(y_train)
    train = tf.data.Dataset.range(len(x_train)).shuffle(len(x_train), seed=config.seed).repeat().map(
        lambda i: (tf.gather(images, i), tf.gather(labels, i)))
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).repeat()
    return train, test


def _tfrecords(config):
    data_dir = os.path.join(config.data_dir, config.category) if config.category else config.data_dir
    if not data_dir or not os.path.isdir(data_dir):
        raise FileNotFoundError(f'--data_dir {data_dir!r} is not a folder; {config.problem} needs Glow-format shards '
                                f'at {{data_dir}}/{{train,validation}}/{{split}}-rNN-s-IIII-of-NNNN.tfrecords')
    random_crop = config.problem == 'lsun_realnvp'
    resolution = config.image_size
    datasets = []
    for split, batch, train in (('train', config.local_batch_train, True),
                                ('validation', config.local_batch_test, False)):
        files = find_shards(data_dir, split, resolution)
        for path in files:
            check_first_record(path, config.image_size, config.channels, allow_larger=random_crop)
        shard_files = not (config.problem in ('lsun', 'lsun_realnvp') and split == 'validation')
        for path in files[config.rank::config.size] if shard_files and config.size > 1 else files:
            check_framing(path)  # every record of the shards this process reads
        datasets.append(read_shards(files, config.image_size, config.channels, batch, config.rank, config.size,
                                    train=train, random_crop=random_crop, shard_files=shard_files,
                                    n_parallel_reads=config.fmap, n_parallel_calls=config.pmap,
                                    seed=config.seed))
    return datasets


def get_data(config: DataConfig) -> Data:
    """Check the data exists and matches the flags, then build this process's pipelines."""
    if config.problem in TFRECORD_PROBLEMS:
        train, test = _tfrecords(config)
    else:
        train, test = _in_memory(config)
    init_images, init_labels = next(iter(train.batch(config.local_batch_init)))
    problem, dal = config.problem, config.dal
    train_batches = train.batch(config.local_batch_train, drop_remainder=True)
    if config.augmentation == 'hflip':
        transform = random_horizontal_flips
    elif problem not in TFRECORD_PROBLEMS and dal:
        def transform(images, seed):
            return augment(images, problem, dal, seed)
    else:
        transform = None
    if transform is not None:
        # One stateless seed per batch from (--seed, rank, batch index): reproducible under the
        # parallel map, and the index is part of the checkpointed iterator (exact resume).
        key = tf.constant([config.seed, config.rank], tf.int64)
        train_batches = train_batches.enumerate().map(
            lambda index, batch: (transform(batch[0], tf.random.experimental.stateless_fold_in(key, index)),
                                  batch[1]),
            num_parallel_calls=config.pmap)
    test_batches = test.batch(config.local_batch_test, drop_remainder=True)
    return Data(train=train_batches.prefetch(tf.data.AUTOTUNE),
                test=test_batches.prefetch(tf.data.AUTOTUNE),
                init_batch=(init_images.numpy(), init_labels.numpy()),
                image_shape=(config.image_size, config.image_size, config.channels),
                n_y=N_Y.get(problem, 1))


def ordered_split(config: DataConfig, split: str, limit=None, batch=100):
    """The images of `split` ('train' or 'test') in their stored order, all processes' shares,
    without shuffling or augmentation, at `config.image_size`: an iterator of (uint8 images,
    int32 labels) numpy batches, the first `limit` examples (all when None).  For the
    TFRecord problems the order is that of the shard files (train / validation), then
    of the records in each; random crops (lsun_realnvp) are central crops."""
    if split not in ('train', 'test'):
        raise ValueError(f'split must be train or test, got {split!r}')
    whole = dataclasses.replace(config, rank=0, size=1)
    if config.problem in TFRECORD_PROBLEMS:
        data_dir = os.path.join(config.data_dir, config.category) if config.category else config.data_dir
        files = find_shards(data_dir, 'train' if split == 'train' else 'validation', config.image_size)
        crop = 'centre' if config.problem == 'lsun_realnvp' else None
        dataset = tf.data.TFRecordDataset(files).map(
            lambda record: parse_record(record, config.image_size, config.channels, crop))
        if limit is not None:
            dataset = dataset.take(limit)
        for x, y in dataset.batch(batch):
            yield x.numpy(), y.numpy()
        return
    if config.problem == 'digits':
        arrays = _load_digits()
    elif config.problem == 'space':
        arrays = _load_space(config.data_dir)
    else:
        arrays = _load_tfds(config.problem, config.data_dir, whole.rank, whole.size, config.channels)
    x, y = arrays[0] if split == 'train' else arrays[1]
    x, y = _resize(x[:limit], config.image_size), y[:limit]
    for start in range(0, len(x), batch):
        yield x[start:start + batch], y[start:start + batch]
