"""`emerging manipulate`: move an image along attribute directions of the latent space (as in the Glow paper).

For attribute a, over the first n_examples training images in stored order
(latents z = encode(x, y, noise=False), so z has the image's shape [H, W, C]):

    dz_a = mean(z | a) - mean(z | not a)

and for the chosen image x with latent z the output grid has one row per
attribute and one column per alpha: decode(z + alpha * dz_a); the alpha = 0
column is x itself.  The attributes come from the data's class labels or an
--attribute_file (see emerging/cli/attributes.py).

Far enough along dz the decoding overflows (in the shipped digits model the
affine couplings' inverse divides by their scales, all below 1, and the values
grow layer after layer until they are infinite, then NaN): such values are
shown black and a line names the cell and the share of its values.  The default alphas, -1 .. 1,
decode to finite images on the README's example (the shipped digits model,
test image 3, digits 0, 1, 7); over all its test images and digit classes
about 1 cell in 12 overflows at alpha -1 or 1, and more than half at -2 or 2.

dz_a is saved as {run}/manipulation/dz_<a>.npy (float32 [H, W, C]) with
dz_<a>.json beside it: {"attribute", "n_examples" (asked), "n_used",
"n_positive", "n_negative", "weights", "checkpoint", "checkpoint_sha256" (of
its .index, which holds every tensor's checksum), "data" (problem, category,
data_dir, image_size), "source" and "label" or "values_sha256" (of the
attribute's values over the rows read)}.  A later call reuses dz_a when every
field but "source" and the counts matches (the same values read from another
file do); a run folder that cannot be written to is left alone (the dz are
computed every time).  A model shipped with the package (--pretrained) is
never written to: its dz are read from its folder (the package holds those of
the digit classes), then from the user's cache folder
{cache}/pretrained/<name>/manipulation, where new ones are saved; {cache} is
$EMERGING_CACHE_DIR, else $XDG_CACHE_HOME/emerging, else ~/.cache/emerging.
"""
import hashlib
import json
import math
import os
import re

import numpy as np

from emerging.cli import common
from emerging.cli.attributes import attribute_source
from emerging.data.npy import read_npy
from emerging.errors import InputError
from emerging.runs.folder import PRETRAINED

FOLDER = 'manipulation'
INFORMATIVE = ('source', 'n_used', 'n_positive', 'n_negative')  # recorded, not compared
ALPHAS = '-1,-0.5,0,0.5,1'
MAX_CELLS = 1000  # rows (attributes) and columns (alphas) of the grid: a PNG 1,000 images wide


def add_parser(subparsers):
    parser = subparsers.add_parser('manipulate', help='attribute manipulation along mean latent differences',
                                   description=__doc__.splitlines()[0])
    common.add_run_arguments(parser)
    parser.add_argument('--attributes', required=True, metavar='A[,B,...]',
                        help='attributes, one grid row each: class labels (3, or cifar10 names such as cat) '
                             'or names of --attribute_file')
    parser.add_argument('--alphas', default=ALPHAS,
                        help=f'steps along each dz, one column each (default {ALPHAS})')
    # argparse (before Python 3.13) takes '-2,-1,0' for an option; none of ours starts with '-<digit>'
    parser._negative_number_matcher = re.compile(r'^-\.?\d')
    image = parser.add_mutually_exclusive_group(required=True)
    image.add_argument('--image', metavar='FILE', help='a PNG of the model\'s size')
    image.add_argument('--test_index', type=int, metavar='I', help='image I of the test set, in stored order')
    parser.add_argument('--label', type=int, help='class label of --image (class-conditional models only)')
    parser.add_argument('--n_examples', type=int, default=30000,
                        help='dz from the first N training images in stored order (default 30000)')
    parser.add_argument('--attribute_file', metavar='PATH',
                        help="CelebA's list_attr_celeba.txt, or a .npy array [N, A] of 0 / 1 (with --attribute_names); "
                             'row k belongs to image k of the ordered train split')
    parser.add_argument('--attribute_names', metavar='N1,N2,...', help='the column names of a .npy --attribute_file')
    common.add_data_arguments(parser)
    parser.add_argument('--out', required=True, help='the grid, a .png')
    parser.set_defaults(run=run)


def run(args):
    import tensorflow as tf

    from emerging.data.problems import N_Y
    from emerging.training.recorder import image_grid, save_png

    alphas = common.parse_floats(args.alphas, '--alphas')
    if len(alphas) > MAX_CELLS:
        raise InputError(f'--alphas lists {len(alphas):,} values; at most {MAX_CELLS:,} (the columns of the grid)')
    wanted = list(dict.fromkeys(a.strip() for a in args.attributes.split(',') if a.strip()))
    if not wanted:
        raise InputError(f'--attributes must name at least one attribute, got {args.attributes!r}')
    if len(wanted) > MAX_CELLS:
        raise InputError(f'--attributes names {len(wanted):,} attributes; at most {MAX_CELLS:,} (the rows of the '
                         f'grid)')
    if args.n_examples < 2:
        raise InputError(f'--n_examples must be at least 2, got {args.n_examples}')
    common.check_output(args.out, ('.png',))
    loaded = common.load(args)
    model, data = loaded.model, common.derived(loaded, args).data
    source = attribute_source(data.problem, N_Y.get(data.problem), args.attribute_file, args.attribute_names,
                              args.n_examples)
    names = list(dict.fromkeys(source.canonical(a) for a in wanted))
    if args.image is not None:
        x = common.read_image(args.image, loaded.model_config.image_shape)[None]
        if common.check_label(args.label, model.config) is None and model.conditional:
            raise InputError(f'this model is class-conditional: give the class of --image with --label '
                             f'0 .. {model.n_classes - 1}')
        y = np.array([args.label or 0], np.int32)
    else:
        x, y = common.test_images(loaded, args, [args.test_index])

    dz = directions(loaded, data, source, names, args)
    z = model.encode(tf.constant(x), tf.constant(y), noise=False)
    steps = tf.constant(alphas, tf.float32)[:, None, None, None]
    bijector = model.bijector(tf.constant(np.repeat(y, len(alphas)), tf.int32))
    rows = []
    for name in names:
        decoded = bijector.forward_and_log_det(z + steps * dz[name][None], map_only=True)[0].numpy()
        finite = np.isfinite(decoded)
        images = model.postprocess(tf.constant(np.where(finite, decoded, 0.))).numpy()
        images[~finite] = 0
        for alpha, cell in zip(alphas, finite):
            if not cell.all():
                print(f'alpha {alpha:g} for attribute {name!r}: {1 - cell.mean():.0%} of the decoded values are not '
                      f'finite (the inverse flow overflowed), shown black; smaller --alphas avoid it')
        rows.append(images)
    save_png(image_grid(np.concatenate(rows), columns=len(alphas)), args.out)
    print(f'columns: alpha = {", ".join(f"{a:g}" for a in alphas)}')
    for row, name in enumerate(names):
        print(f'row {row + 1}: {name}')
    print(f'wrote {args.out}')
    return 0


def directions(loaded, data, source, names, args):
    """{name: dz [H, W, C] float32}: read from the first of `record_folders` whose record matches, else
    computed in one pass over the training images (and saved when the folder for new ones can be written to)."""
    read_from, folder = record_folders(common.run_folder(args))
    records = {name: dict(source.identity(name), **identity(loaded, data, args), attribute=name) for name in names}
    shape = tuple(loaded.model.config.image_shape)
    dz = {}
    for name in names:
        for saved_in in read_from:
            saved = _read(saved_in, name, records[name], shape)
            if saved is not None:
                dz[name] = saved
                print(f'dz of {name!r}: reused {_path(saved_in, name)}.npy')
                break
    missing = [name for name in names if name not in dz]
    if not missing:
        return dz
    for name in missing:
        source.check(name)
    computed = _compute(loaded.model, data, source, missing, args.n_examples)
    writable = _writable(folder)
    for name, (value, counts) in computed.items():
        dz[name] = value
        records[name].update(counts)
        print(f'dz of {name!r}: {counts["n_positive"]} positive and {counts["n_negative"]} negative of the first '
              f'{counts["n_used"]} training images ({source.description})')
        if writable:
            _write(folder, name, value, records[name])
    if not writable:
        print(f'{folder} cannot be written to: the dz are not saved and will be computed again next time')
    return dz


def record_folders(run):
    """(the folders dz records are read from, in order; the folder new ones are saved to).

    A run of the package's own (a pretrained model) is read in its folder, then in the user's cache folder,
    which is the only one written to; any other run is read and written in its own folder."""
    own = os.path.join(run, FOLDER)
    shipped = os.path.relpath(os.path.realpath(run), os.path.realpath(PRETRAINED))
    if shipped == os.pardir or shipped.startswith(os.pardir + os.sep):
        return [own], own
    cached = os.path.join(cache_root(), 'pretrained', shipped, FOLDER)
    return [own, cached], cached


def cache_root():
    """$EMERGING_CACHE_DIR, else $XDG_CACHE_HOME/emerging, else ~/.cache/emerging (an empty or relative
    XDG_CACHE_HOME is ignored, as the XDG base directory specification asks)."""
    if os.environ.get('EMERGING_CACHE_DIR'):
        return os.environ['EMERGING_CACHE_DIR']
    base = os.environ.get('XDG_CACHE_HOME', '')
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'emerging')


def identity(loaded, data, args):
    """The record fields besides the attribute's own: model weights, data, n_examples."""
    index = loaded.checkpoint + '.index'
    digest = None
    if os.path.isfile(index):
        with open(index, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    data = {'problem': data.problem, 'category': data.category, 'data_dir': data.data_dir,
            'image_size': data.image_size}
    return {'n_examples': args.n_examples, 'weights': loaded.weights,
            'checkpoint': os.path.basename(loaded.checkpoint), 'checkpoint_sha256': digest, 'data': data}


def _compute(model, data, source, names, n_examples):
    """One pass: per attribute, the sums of the latents of positives and negatives (float64)."""
    import tensorflow as tf

    from emerging.data.images import ordered_split

    batch = data.local_batch_test
    encode = tf.function(lambda x, y: model.encode(x, y, noise=False), autograph=False)  # one graph for all the batches
    sums = {name: np.zeros((2, *model.config.image_shape)) for name in names}
    counts = {name: np.zeros(2, np.int64) for name in names}
    used = 0
    batches = ordered_split(data, 'train', limit=n_examples, batch=batch)
    for x, y in common.progress(batches, total=math.ceil(n_examples / batch), desc='encoding training images'):
        masks = {name: source.values(name, y, used) for name in names}  # before encoding: a short file stops here
        z = encode(tf.constant(x), tf.constant(y, tf.int32)).numpy().astype(np.float64)
        for name, mask in masks.items():
            sums[name] += z[mask].sum(axis=0), z[~mask].sum(axis=0)
            counts[name] += int(mask.sum()), int((~mask).sum())
        used += len(x)
    out = {}
    for name in names:
        positive, negative = (int(c) for c in counts[name])
        if not positive or not negative:
            raise InputError(f'attribute {name!r}: no {"positive" if not positive else "negative"} examples among '
                             f'the first {used} training images (--n_examples {n_examples})')
        dz = sums[name][0] / positive - sums[name][1] / negative
        out[name] = dz.astype(np.float32), {'n_used': used, 'n_positive': positive, 'n_negative': negative}
    return out


def _path(folder, name):
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)
    return os.path.join(folder, f'dz_{safe}')


def _read(folder, name, record, shape):
    """The saved dz of `name` when its record matches `record` and it is a finite float array of `shape`;
    otherwise None (it is computed again): a record or array that cannot be read, whatever its bytes, is one
    to compute again."""
    path = _path(folder, name)
    try:
        with open(path + '.json', encoding='utf-8') as f:
            saved = json.load(f)
        dz = read_npy(path + '.npy', path + '.npy')
    except (OSError, ValueError, RecursionError):  # InputError and bad JSON are ValueErrors: computed again
        return None
    if not isinstance(saved, dict) or _compared(saved) != _compared(record):
        return None
    if dz.shape != shape or dz.dtype.kind != 'f' or not np.all(np.isfinite(dz)):
        return None
    return dz.astype(np.float32)


def _compared(record):
    return {k: v for k, v in record.items() if k not in INFORMATIVE}


def _writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, '.probe')
        open(probe, 'w').close()
        os.remove(probe)
        return True
    except OSError:
        return False


def _write(folder, name, dz, record):
    """Both files through temporary names; the old record goes first and the new one comes last,
    so that a record never describes another array."""
    path = _path(folder, name)
    if os.path.exists(path + '.json'):
        os.remove(path + '.json')
    np.save(path + '.tmp.npy', dz)
    os.replace(path + '.tmp.npy', path + '.npy')
    with open(path + '.json.tmp', 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(path + '.json.tmp', path + '.json')
