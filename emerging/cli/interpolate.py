"""`emerging interpolate`: a row of images between two images, through the latent space.

Both images are encoded deterministically, zA = encode(A, noise=False) and zB
likewise (the whole latent: every level's eps, shape [H, W, C]), and the
row shows decode(z_t) for t = 0, 1/(steps-1), ..., 1 with

    linear:    z_t = (1 - t) zA + t zB
    spherical: z_t = sin((1 - t) w) / sin(w) zA + sin(t w) / sin(w) zB,
               w the angle between the flattened zA and zB (linear when w ~ 0)

so the two ends are A and B themselves (decode(encode(x)) == x).  A
class-conditional model encodes each end with its own class (--label, or with
--test_index the test images' labels, else 0) and decodes each point with the
class of the nearer end.
"""
import numpy as np

from emerging.cli import common
from emerging.errors import InputError
from emerging.models.limits import check_memory
from emerging.runs.folder import read_config

MODES = ('linear', 'spherical')
MAX_STEPS = 10000  # images in the row: a PNG 10,000 images wide


def add_parser(subparsers):
    parser = subparsers.add_parser('interpolate', help='a row of images between two images, through the latent space',
                                   description=__doc__.splitlines()[0])
    common.add_run_arguments(parser)
    ends = parser.add_mutually_exclusive_group(required=True)
    ends.add_argument('--images', nargs=2, metavar=('A', 'B'), help="two PNG / JPEG files of the model's size")
    ends.add_argument('--test_index', nargs=2, type=int, metavar=('I', 'J'),
                      help='images I and J of the test set, in stored order')
    parser.add_argument('--steps', type=int, default=9, help='images in the row, both ends included (default 9)')
    parser.add_argument('--mode', choices=MODES, default='linear',
                        help='straight line or great circle (default linear)')
    parser.add_argument('--label', type=int, metavar='Y',
                        help="class of both images (class-conditional models only; default: the test images' "
                             'labels, or 0)')
    common.add_data_arguments(parser)
    parser.add_argument('--out', required=True, metavar='FILE.png', help='the row of images')
    parser.set_defaults(run=run)


def run(args):
    import tensorflow as tf

    from emerging.training.recorder import image_grid, save_png

    if not 2 <= args.steps <= MAX_STEPS:
        raise InputError(f'--steps must be 2 (both ends) .. {MAX_STEPS:,}, got {args.steps:,}')
    common.check_output(args.out, ('.png',))
    config, _ = read_config(common.run_folder(args))
    check_memory(config, args.steps, f'--steps {args.steps} decoded at once')
    common.check_label(args.label, config)
    if args.images:
        x = np.stack([common.read_image(path, config.image_shape) for path in args.images])
        y = np.zeros(2, np.int32)
    loaded = common.load(args)
    if args.test_index:
        x, y = common.test_images(loaded, args, args.test_index)
    if args.label is not None:
        y = np.full(2, args.label, np.int32)

    model = loaded.model
    z = model.encode(tf.constant(x), tf.constant(y, tf.int32), noise=False).numpy().astype(np.float64)
    t = np.linspace(0., 1., args.steps)
    path = interpolate(z[0], z[1], t, args.mode).astype(np.float32)
    labels = np.where(t <= .5, y[0], y[1]).astype(np.int32)  # the nearer end's class
    row = model.decode(tf.constant(path), tf.constant(labels)).numpy()
    save_png(image_grid(row, columns=args.steps), args.out)
    print(f'{args.mode} interpolation in {args.steps} steps: wrote {args.out}')
    return 0


def interpolate(a, b, t, mode):
    """[len(t), *a.shape]: the points at fractions t from a to b (t = 0 gives a, t = 1 gives b exactly)."""
    t = t.reshape(-1, *[1] * a.ndim)
    weight_a, weight_b = 1. - t, t
    if mode == 'spherical':
        cosine = np.dot(a.ravel(), b.ravel()) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300)
        angle = np.arccos(np.clip(cosine, -1., 1.))
        if np.sin(angle) > 1e-6:  # else the great circle is (numerically) the straight line
            # weights first: sin(w) / sin(w) is exactly 1 at the ends, so the ends are exactly a and b
            weight_a, weight_b = np.sin(weight_a * angle) / np.sin(angle), np.sin(weight_b * angle) / np.sin(angle)
    return weight_a * a + weight_b * b
