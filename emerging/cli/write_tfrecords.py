"""Write Glow-format TFRecord shards from a folder of images or a NumPy array.

    python scripts/write_tfrecords.py --images DIR_OR_NPY [--labels LABELS.npy] \
        --out DATA_DIR --split train --size 64 --shards 4

Images are centre-cropped to a square, resized to --size (a power of two),
stored as raw uint8 HWC with their labels (0 when none are given), in
{out}/{split}/{split}-r{log2(size):02d}-s-{i:04d}-of-{n:04d}.tfrecords.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

from emerging.cli.paths import check_output_folder
from emerging.errors import InputError

PROG = 'write_tfrecords.py'
EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp')


def load_folder(folder, size):
    """The images of a folder, centre-cropped and resized to size x size: uint8 [N, size, size, 3]."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS))
    if not names:
        raise InputError(f'--images: no images ({", ".join(EXTENSIONS)}) in {folder}')
    images = []
    for name in names:
        try:
            image = Image.open(os.path.join(folder, name)).convert('RGB')
        except Exception as error:  # PIL raises many kinds for a file that is not an image
            raise InputError(f'cannot read image {os.path.join(folder, name)}: {error}') from None
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        images.append(np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size),
                                                                                          Image.BICUBIC)))
    return np.stack(images)


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
    """(uint8 images [N, size, size, C], int labels [N]) from --images and --labels, checked."""
    if args.size < 1 or args.size & (args.size - 1):
        raise InputError(f'--size must be a power of two, got {args.size}')
    if args.shards < 1:
        raise InputError(f'--shards must be positive, got {args.shards}')
    check_output_folder(args.out, '--out')
    if os.path.isdir(args.images):
        images = load_folder(args.images, args.size)
    else:
        images = _load_array(args.images, '--images')
        if images.ndim != 4 or images.shape[1:3] != (args.size, args.size):
            raise InputError(f'--images {args.images} has shape {images.shape}, expected [N, {args.size}, '
                             f'{args.size}, C]')
        if images.dtype != np.uint8:
            raise InputError(f'--images {args.images} holds {images.dtype} values, expected uint8 images 0..255')
    labels = _load_array(args.labels, '--labels') if args.labels else np.zeros(len(images), np.int64)
    if labels.dtype.kind not in 'iu' or labels.size != len(images):
        raise InputError(f'--labels {args.labels} must hold {len(images)} integer labels, got {labels.dtype} '
                         f'{labels.shape}')
    return images, labels


def _load_array(path, flag):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f'{flag} {path}: not a readable .npy array ({type(error).__name__}: {error})') from None


if __name__ == '__main__':
    sys.exit(main())
