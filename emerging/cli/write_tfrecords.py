"""Write Glow-format TFRecord shards from a folder of images or a NumPy array.

    python scripts/write_tfrecords.py --images DIR_OR_NPY [--labels LABELS.npy] \
        --out DATA_DIR --split train --size 64 --shards 4 [--convert]

Images are centre-cropped to a square, resized to --size (a power of two),
stored as raw uint8 HWC with their labels (0 when none are given), in
{out}/{split}/{split}-r{log2(size):02d}-s-{i:04d}-of-{n:04d}.tfrecords.

Values: 8-bit images and uint8 arrays are stored as they are.  16-bit images
(PNGs of 16 bits per sample) and uint16 arrays, and floating-point arrays, are
refused unless --convert is given; with it a 16-bit value v is stored as
round(v * 255 / 65535) and a float x, which must be finite and in [0, 1], as
round(x * 255).  (Pillow reads 16-bit colour PNGs as their high byte,
v // 256, which is within one level of that rule; 16-bit grey PNGs follow it
exactly.)  Any other type (int32 arrays, 32-bit integer images) is refused.
An image declaring more pixels than Pillow's decompression-bomb bound
(`Image.MAX_IMAGE_PIXELS`) is refused before it is decoded.

Every input is read and checked before the first shard is written, and shards
of the split and size already in --out are never written over.
"""
import argparse
import glob
import math
import os
import sys
import warnings

import numpy as np
from PIL import Image

from emerging.cli.paths import check_output_folder
from emerging.data.npy import read_npy
from emerging.errors import InputError

PROG = 'write_tfrecords.py'
EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp')
RULES = {'uint16': 'round(v * 255 / 65535)', 'float': 'round(x * 255) of values in [0, 1]'}
MAX_LABEL = np.iinfo(np.int32).max  # labels are read back as int32


def build_parser(prog=PROG):
    """write_tfrecords.py's parser (`prog`: the program's name in the usage line and error messages)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument('--images', required=True, help='a folder of images or a .npy uint8 [N, H, W, C] array')
    parser.add_argument('--labels', default='', help='.npy of N integer labels (default: all 0)')
    parser.add_argument('--out', required=True, help='data_dir to write into')
    parser.add_argument('--split', default='train', choices=['train', 'validation'],
                        help='the shards\' subfolder and name prefix')
    parser.add_argument('--size', type=int, required=True, help='image size (power of two)')
    parser.add_argument('--shards', type=int, default=1, help='the number of shards the images are spread over')
    parser.add_argument('--convert', action='store_true',
                        help=f'store 16-bit images / uint16 arrays as {RULES["uint16"]} and float arrays as '
                             f'{RULES["float"]} (without it they are refused)')
    return parser


def main(argv=None, prog=PROG):
    """write_tfrecords.py: write the shards; returns the exit code.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    args = build_parser(prog).parse_args(argv)
    try:
        images, labels = read_inputs(args)
        from emerging.data.tfrecords import write_shards  # TensorFlow: only once the inputs are good
        paths = write_shards(images, labels, args.out, args.split, args.shards)
    except ValueError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {len(images)} images to {len(paths)} shards: {paths[0]} ...')
    return 0


def read_inputs(args):
    """(uint8 images [N, size, size, C], int labels [N]) from --images and --labels, checked.

    Raises:
      InputError: naming the flag or file and what is wrong.
    """
    if args.size < 1 or args.size & (args.size - 1):
        raise InputError(f'--size must be a power of two, got {args.size}')
    if args.shards < 1:
        raise InputError(f'--shards must be positive, got {args.shards}')
    check_output_folder(args.out, '--out')
    check_no_shards(args.out, args.split, args.size)
    if os.path.isdir(args.images):
        images = load_folder(args.images, args.size, args.convert)
    else:
        images = load_array(args.images, args.size, args.convert)
    if args.shards > len(images):
        raise InputError(f'--shards {args.shards}: more shards than the {len(images)} images of {args.images}')
    labels = read_labels(args.labels, len(images)) if args.labels else np.zeros(len(images), np.int64)
    return images, labels


def check_no_shards(out, split, size):
    """Refuse to write where shards of this split and size already are (two writes would mix)."""
    # emerging.data.tfrecords.shard_pattern's names, without importing TensorFlow before the inputs are checked
    existing = sorted(glob.glob(os.path.join(out, split, f'{split}-r{int(math.log2(size)):02d}-s-*.tfrecords')))
    if existing:
        raise InputError(f'--out {out} already holds {len(existing)} {split} shard(s) of {size}x{size} images '
                         f'({existing[0]}, ...): they are not written over; remove them first or choose another '
                         f'--out')


def load_folder(folder, size, convert=False):
    """The images of a folder, centre-cropped and resized to size x size: uint8 [N, size, size, 3].

    Args:
      folder: the folder; its files ending with one of EXTENSIONS are read, in name order.
      size: the side of the stored images.
      convert: convert 16-bit and float images by the stated rules (else they are refused).

    Raises:
      InputError: no images, or naming an image that cannot be read or has values of another kind.
    """
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS))
    if not names:
        raise InputError(f'--images: no images ({", ".join(EXTENSIONS)}) in {folder}')
    images = []
    for name in names:
        image = read_image(os.path.join(folder, name), convert)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        images.append(np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size),
                                                                                          Image.BICUBIC)))
    return np.stack(images)


def read_image(path, convert=False):
    """An image file as an 8-bit RGB Pillow image.

    Args:
      path: the file.
      convert: convert 16-bit and float images by the stated rules (else they are refused).

    Returns:
      The decoded image, mode RGB.

    Raises:
      InputError: naming the file: not an image Pillow reads, more pixels than Pillow's decompression-bomb bound,
        or values of another kind (16-bit or float without `convert`, 32-bit integers).
    """
    what = f'--images: {path}'
    image = open_image(path, what)
    try:
        if image.mode.startswith('I;16') or image.mode in ('I', 'F'):
            values = to_uint8(np.asarray(image), f'{what} (mode {image.mode})', convert)
            return Image.fromarray(values).convert('RGB')
        if sixteen_bit(image) and not convert:
            raise InputError(f'{what} is a 16-bit {image.mode} image: pass --convert to store it as 8 bits (Pillow '
                             f'reads 16-bit colour as v // 256)')
        return image.convert('RGB')
    except InputError:
        raise
    except Exception as error:  # Pillow's decoders raise many kinds for damaged data
        raise InputError(f'{what}: cannot be read as an image ({type(error).__name__}: {error})') from None


def open_image(path, what):
    """Open an image file without decoding it (Pillow reads the header only), refusing a decompression bomb.

    Args:
      path: the file.
      what: names the file in messages ('--image x.png').

    Returns:
      The Pillow image, not yet decoded.

    Raises:
      InputError: naming `what`: not an image Pillow reads, or more pixels than `Image.MAX_IMAGE_PIXELS`.
    """
    try:
        with warnings.catch_warnings():
            # past the bound Pillow only warns (up to twice the bound, then it refuses): refuse it all
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise InputError(f'{what} declares more pixels than the {Image.MAX_IMAGE_PIXELS:,} decoded at most '
                         f'({error})') from None
    except Exception as error:  # Pillow raises many kinds for a file that is not an image
        raise InputError(f'{what}: cannot be read as an image ({type(error).__name__}: {error})') from None


def sixteen_bit(image):
    """Whether Pillow decodes the image from 16-bit samples (a 16-bit colour PNG that it reads as 8 bits)."""
    return any(';16' in str(tile.args) for tile in image.tile)


def to_uint8(values, what, convert):
    """The values of an image or array as uint8.

    Args:
      values: a NumPy array.
      what: names the file in messages.
      convert: convert uint16 and float values by RULES (else they are refused).

    Returns:
      uint8 values: uint8 as they are; with `convert`, uint16 v as round(v * 255 / 65535) and floats x in
      [0, 1] as round(x * 255).

    Raises:
      InputError: naming `what` and its dtype: another type, uint16 or float without `convert`, or floats that
        are not finite or outside [0, 1].
    """
    if values.dtype == np.uint8:
        return values
    kind = {('u', 2): 'uint16', ('f', 2): 'float', ('f', 4): 'float', ('f', 8): 'float'}.get(
        (values.dtype.kind, values.dtype.itemsize))
    if kind is None:
        raise InputError(f'{what} holds {values.dtype} values: expected uint8 (0..255), or uint16 or floats in '
                         f'[0, 1] with --convert')
    if not convert:
        raise InputError(f'{what} holds {values.dtype} values, not uint8: pass --convert to store them as '
                         f'{RULES[kind]}, or convert them yourself')
    if kind == 'uint16':
        # integer arithmetic: v * 255 / 65535 = v / 257 is never halfway, so adding 32767 rounds it
        return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
        finite = values[np.isfinite(values)]
        found = f'{finite.min()} .. {finite.max()}' if finite.size else 'no finite value'
        raise InputError(f'{what} holds {values.dtype} values outside [0, 1] ({found}'
                         f'{", and non-finite values" if finite.size < values.size else ""}): --convert stores '
                         f'floats in [0, 1] only')
    return np.rint(values.astype(np.float64) * 255).astype(np.uint8)


def load_array(path, size, convert=False):
    """--images given as a .npy array [N, size, size, C] (not resized): its values as uint8.

    Raises:
      InputError: naming the file: not a readable .npy array, another shape, no images, values of another kind.
    """
    what = f'--images {path}'
    images = read_npy(path, what)
    if images.ndim != 4 or images.shape[1:3] != (size, size) or not images.shape[0] or not images.shape[3]:
        raise InputError(f'{what} has shape {list(images.shape)}, expected [N, {size}, {size}, C] with N, C > 0')
    return to_uint8(images, what, convert)


def read_labels(path, count):
    """--labels: a .npy of `count` integer class indices 0 .. 2^31 - 1, as int64 [count].

    Raises:
      InputError: naming the file: not a readable .npy array, another count or type, a label out of range.
    """
    labels = read_npy(path, f'--labels {path}')
    if labels.dtype.kind not in 'iu' or labels.size != count:
        raise InputError(f'--labels {path} must hold {count} integer labels, got {labels.dtype} '
                         f'{list(labels.shape)}')
    if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL):
        raise InputError(f'--labels {path} must hold class indices 0 .. {MAX_LABEL}, got {labels.min()} .. '
                         f'{labels.max()}')
    return labels.reshape(-1).astype(np.int64)


if __name__ == '__main__':
    sys.exit(main())
