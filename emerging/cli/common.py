"""What the subcommands share: choosing a run and its weights, its data, images in and out."""
import argparse
import os
import sys

import numpy as np

from emerging.choices import WEIGHTS
from emerging.cli import train, train_resflow
from emerging.cli.paths import check_output_file
from emerging.data.problems import check_n_test
from emerging.errors import InputError
from emerging.runs.folder import pretrained_run
from emerging.runs.load import load_run

# train.py's data flags that the subcommands accept (None: the run's own value)
DATA_FLAGS = ('problem', 'data_dir', 'category', 'n_test', 'fmap', 'pmap', 'n_batch_train', 'anchor_size')
# model kind -> the command line that trains it (its build_parser, derive and RUN_DATA_FLAGS)
TRAINING_COMMAND_LINES = {'glow': train, 'resflow': train_resflow}


def add_run_arguments(parser):
    """--logdir RUN | --pretrained NAME, --weights, --checkpoint."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--logdir', help='a training run folder (train.py --logdir)')
    source.add_argument('--pretrained', metavar='NAME', help='a model shipped with the package: digits')
    parser.add_argument('--weights', choices=WEIGHTS, default='best',
                        help='best validation checkpoint, latest epoch, or the latest Polyak averages (default best)')
    parser.add_argument('--checkpoint', default=None, metavar='PREFIX',
                        help="read this checkpoint prefix instead of the run's own")


def add_data_arguments(parser):
    """train.py's data flags; each defaults to the run's own value."""
    group = parser.add_argument_group('data (default: as the run was trained)')
    group.add_argument('--problem', help="the data set (train.py's --problem; a run of one data set can be "
                                         "evaluated on another of the same image shape)")
    group.add_argument('--data_dir', help='where the data set is (train.py --data_dir)')
    group.add_argument('--category', help='LSUN category, appended to --data_dir')
    group.add_argument('--n_test', type=int, help='test images to use (-1: the problem\'s whole test set)')
    group.add_argument('--fmap', type=int, help='parallel file reads of TFRecord problems')
    group.add_argument('--pmap', type=int, help='parallel map calls of the input pipeline')
    group.add_argument('--n_batch_train', type=int, help='sets the test batch as in train.py')
    group.add_argument('--anchor_size', type=int, help='batch sizes are scaled by (anchor/image_size)^2, as in '
                                                       'train.py')


def run_folder(args):
    """The run folder the arguments name (a pretrained model's folder for --pretrained)."""
    return pretrained_run(args.pretrained) if args.pretrained else args.logdir


def load(args):
    """The `emerging.runs.Run` the arguments name, with its weights."""
    return load_run(run_folder(args), args.weights, args.checkpoint)


def derived(run, args, rank=0, size=1):
    """The run's configurations (a `RunConfig`) as the command line that trained it derives them from the
    run's hyperparameters, with the data flags given here (those that command line has: all of them for
    train.py, only --data_dir for train_resflow.py)."""
    return derived_from(run.model_config, run.hparams, args, rank, size)


def derived_from(model_config, hparams, args, rank=0, size=1):
    """`derived` from a run's model configuration and hyperparameters (`read_config`), before its model is built.

    Args:
      model_config: the run's model configuration.
      hparams: the run's hyperparameters.
      args: the subcommand's flags (its data flags among them).
      rank, size: this process and the number of processes.

    Returns:
      The `RunConfig`.

    Raises:
      InputError: naming a data flag the run's command line does not have, or more test images than the
        test set holds.
    """
    command_line = TRAINING_COMMAND_LINES[model_config.kind]
    given = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k, None) is not None}
    unknown = [k for k in given if k not in command_line.RUN_DATA_FLAGS]
    if unknown:
        raise InputError(f'--{unknown[0]} does not apply to a {model_config.kind} run (its data flags: '
                         + ', '.join(f'--{k}' for k in command_line.RUN_DATA_FLAGS) + ')')
    # the run's recorded flags (those it lacks at their defaults), with the data flags given here
    flags = vars(command_line.build_parser().parse_args([]))
    flags.update({k: v for k, v in hparams.items() if k in flags})
    flags.update({command_line.RUN_DATA_FLAGS[k]: v for k, v in given.items()})
    config = command_line.derive(argparse.Namespace(**flags), rank=rank, size=size)
    try:  # the test stream repeats: more images than the test set holds would never end
        check_n_test(config.data.problem, config.train.n_test, '--n_test' if 'n_test' in given else 'n_test')
    except ValueError as error:
        raise InputError(str(error)) from None
    return config


def test_images(run, args, indices):
    """Test-set images (uint8 [len(indices), H, W, C]) and labels at `indices`, in stored order."""
    from emerging.data.images import ordered_split
    indices = [int(i) for i in indices]
    if min(indices) < 0:
        raise InputError(f'--test_index must be non-negative, got {indices}')
    config = derived(run, args).data
    wanted = max(indices) + 1
    images, labels = [], []
    for x, y in ordered_split(config, 'test', limit=wanted):
        images.append(x)
        labels.append(y)
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(images) < wanted:
        raise InputError(f'--test_index {max(indices)} is out of range: the {config.problem} test set has '
                         f'{len(images)} images')
    return images[indices], labels[indices]


def check_label(label, config):
    """--label: a class 0 .. n_classes - 1 of a class-conditional model (None stays None)."""
    if label is None:
        return None
    if not config.conditional:
        raise InputError('--label is for class-conditional models; this model is not (trained without --ycond)')
    if not 0 <= label < config.n_classes:
        raise InputError(f'--label must be a class 0 .. {config.n_classes - 1}, got {label}')
    return label


def parse_floats(text, flag):
    """'0,0.5,1' -> [0.0, 0.5, 1.0]; anything else is an error naming `flag`."""
    try:
        values = [float(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise InputError(f'{flag} must be comma-separated numbers, got {text!r}') from None
    if not values or not all(np.isfinite(values)):
        raise InputError(f'{flag} must be comma-separated finite numbers, got {text!r}')
    return values


def read_image(path, image_shape):
    """A PNG / JPEG file of 8-bit samples as uint8 [H, W, C]; its size and channels must be the model's."""
    from emerging.cli.write_tfrecords import open_image, sixteen_bit
    if not os.path.isfile(path):
        raise InputError(f'image file not found: {path}')
    image = open_image(path, path)  # the header only: a decompression bomb is refused here
    height, width, channels = image_shape
    if image.size != (width, height):  # checked before decoding: the model's size bounds what is decoded
        raise InputError(f'{path} is {image.height}x{image.width}x{len(image.getbands())}, but the model takes '
                         f'{height}x{width}x{channels} images')
    if image.mode not in ('1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA') or sixteen_bit(image):
        raise InputError(f'{path}: a {"16-bit " if sixteen_bit(image) else ""}{image.mode} image; the model takes '
                         f'8-bit images')
    try:
        if image.mode in ('1', 'P', 'PA'):  # bits and palette indices are not intensities
            image = image.convert('L' if image.mode == '1' else 'RGBA' if image.has_transparency_data else 'RGB')
        array = np.asarray(image)
    except Exception as error:  # noqa: BLE001 - Pillow's decoders raise many kinds for damaged data
        raise InputError(f'cannot read image {path}: {type(error).__name__}: {error}') from None
    array = array[..., None] if array.ndim == 2 else array
    if array.shape[2] != channels:
        raise InputError(f'{path} is {height}x{width}x{array.shape[2]}, but the model takes {height}x{width}x'
                         f'{channels} images')
    return array


def check_output(path, extensions):
    """--out must be a writable file name ending with one of `extensions`; its folder is created."""
    check_output_file(path, '--out', extensions)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def progress(iterable, total=None, desc=None):
    """A progress bar on stderr."""
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
