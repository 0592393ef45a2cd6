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

EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp')


def load_folder(folder, size):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS))
    if not names:
        raise SystemExit(f'write_tfrecords: no images ({", ".join(EXTENSIONS)}) in {folder}')
    images = []
    for name in names:
        image = Image.open(os.path.join(folder, name)).convert('RGB')
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        images.append(np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size),
                                                                                          Image.BICUBIC)))
    return np.stack(images)


def main(argv=None):
    """write_tfrecords.py: write the shards; returns the exit code."""
    from emerging.data.tfrecords import write_shards

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', required=True, help='a folder of images or a .npy uint8 [N, H, W, C] array')
    parser.add_argument('--labels', default='', help='.npy of N integer labels (default: all 0)')
    parser.add_argument('--out', required=True, help='data_dir to write into')
    parser.add_argument('--split', default='train', choices=['train', 'validation'])
    parser.add_argument('--size', type=int, required=True, help='image size (power of two)')
    parser.add_argument('--shards', type=int, default=1)
    args = parser.parse_args(argv)
    if os.path.isdir(args.images):
        images = load_folder(args.images, args.size)
    else:
        images = np.load(args.images)
        if images.ndim != 4 or images.shape[1:3] != (args.size, args.size):
            raise SystemExit(f'write_tfrecords: {args.images} has shape {images.shape}, '
                             f'expected [N, {args.size}, {args.size}, C]')
    labels = np.load(args.labels) if args.labels else np.zeros(len(images), np.int64)
    paths = write_shards(images, labels, args.out, args.split, args.shards)
    print(f'wrote {len(images)} images to {len(paths)} shards: {paths[0]} ...')
    return 0


if __name__ == '__main__':
    sys.exit(main())
