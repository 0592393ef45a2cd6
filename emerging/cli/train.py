"""train.py's command line (the original's flags), parsed in one place into configurations, and its main.

    python train.py --problem digits --flow_permutation 3 ...                 one process
    mpiexec -n 4 python train.py --problem cifar10 --flow_permutation 3 ...   Horovod

argparse's unique-prefix matching is kept on purpose: the published command
lines use `--n_level 3` for `--n_levels 3`.  An unknown or ambiguous flag is an
error that names it.  `derive` turns the flags into a `RunConfig` with the
original's derived values (per-problem defaults from `emerging.data.problems`).
"""
import argparse
import os
import sys

from emerging.choices import COMPUTE_DTYPES, COUPLINGS, DECOMPOSITIONS, FLOW_PERMUTATIONS, OPTIMIZERS, described
from emerging.cli.launch import LaunchOptions, RunConfig, launch
from emerging.data.problems import (
    DEFAULT_IMAGE_SIZE,
    DIGITS_N_TRAIN,
    N_Y,
    PROBLEMS,
    TRAIN_SIZE,
    DataConfig,
    check_n_test,
    default_n_test,
)
from emerging.models.config import GlowConfig
from emerging.training.config import TrainConfig

PROG = 'train.py'
ORIGINAL_N_TRAIN = 50000  # the original's n_train for every problem but space (and digits, added here)
# the `emerging` subcommands' data flags -> this command line's flag
RUN_DATA_FLAGS = {name: name for name in ('problem', 'data_dir', 'category', 'n_test', 'fmap', 'pmap', 'n_batch_train',
                                          'anchor_size')}
# what --resume must keep: the flags that shape the variables (model, optimiser, loss scale) or the input streams
# (data, batches, processes, seeds); the others (epochs, lr, schedules, printing) may change
RESUME_FLAGS = {key: f'--{key}' for key in (
    'problem', 'category', 'image_size', 'channels', 'n_levels', 'depth', 'width', 'flow_permutation',
    'flow_coupling', 'decomposition', 'learnprior', 'ycond', 'n_bits_x', 'compute_dtype', 'optimizer', 'seed',
    'dal', 'n_train', 'n_test', 'n_batch_train', 'anchor_size')}
RESUME_FLAGS['n_processes'] = 'the number of processes'


def build_parser(prog=PROG):
    """train.py's parser: every flag of the original, with its name, type and default, then this port's.

    Args:
      prog: the program's name in the usage line and error messages.
    """
    p = argparse.ArgumentParser(
        prog=prog, description='Train Glow-family flows with emerging, periodic and autoregressive convolutions.',
        allow_abbrev=True)
    a = p.add_argument
    a('--verbose', action='store_true', help='print every training step')
    a('--restore_path', type=str, default='', help='checkpoint to restore before training / inference')
    a('--inference', action='store_true', help='encode+decode the test set instead of training')
    a('--logdir', type=str, default='./logs', help='output folder')
    a('--problem', type=str, default='cifar10', choices=PROBLEMS, help='data set')
    a('--category', type=str, default='', help='LSUN category, appended to data_dir')
    a('--data_dir', type=str, default='', help='data location')
    a('--dal', type=int, default=1, help='augmentation level 0/1/2')
    a('--fmap', type=int, default=1, help='parallel file reads')
    a('--pmap', type=int, default=16, help='parallel map calls')
    a('--n_train', type=int, default=None,
      help=f'images per training epoch ({ORIGINAL_N_TRAIN}; space: {TRAIN_SIZE["space"]}; digits: {DIGITS_N_TRAIN})')
    a('--n_test', type=int, default=-1, help='images per full validation (-1: per-problem default)')
    a('--n_batch_train', type=int, default=64, help='per-process batch at the anchor size')
    a('--n_batch_test', type=int, default=50,
      help='kept but unused, as in the original: the test batch follows from --n_batch_train')
    a('--n_batch_init', type=int, default=256, help='batch for data-dependent init at the anchor size')
    a('--optimizer', type=str, default='adamax', help=described(OPTIMIZERS))
    a('--lr', type=float, default=0.001, help='base learning rate')
    a('--beta1', type=float, default=.9, help='first-moment decay')
    a('--polyak_epochs', type=float, default=1, help='sets beta2 and the Polyak decay')
    a('--weight_decay', type=float, default=1., help='multiplicative decay per step (1.0 = off)')
    a('--epochs', type=int, default=1000000, help='the loop runs epochs 1 .. epochs-1: --epochs 41 trains 40')
    a('--epochs_warmup', type=float, default=10, help='linear lr warm-up length in epochs')
    a('--epochs_full_valid', type=int, default=50, help='full validation + best checkpoint every N epochs')
    a('--gradient_checkpointing', type=int, default=1, help='recompute activations in the backward pass')
    a('--image_size', type=int, default=-1, help='-1: per-problem default')
    a('--anchor_size', type=int, default=32, help='batch sizes are scaled by (anchor/image_size)^2')
    a('--channels', type=int, default=-1, help='-1: 3')
    a('--width', type=int, default=512, help='hidden channels of the coupling network')
    a('--depth', type=int, default=32, help='flow steps per level (K)')
    a('--weight_y', type=float, default=0.00, help='weight of the class-prediction loss')
    a('--n_bits_x', type=int, default=8, help='bits per colour channel')
    a('--n_levels', type=int, default=3, help='levels (L)')
    a('--decomposition', type=str, default='', help=f'1x1 conv parametrisation: {described(DECOMPOSITIONS)}')
    a('--n_sample', type=int, default=1, help='kept but unused, as in the original')
    a('--epochs_full_sample', type=int, default=50, help='sample grids every N epochs (and at epoch 10)')
    a('--learnprior', action='store_true', help='learn the top prior and the split priors')
    a('--ycond', action='store_true', help='class-conditional top prior')
    a('--seed', type=int, default=0, help='seed; each process uses rank + size * seed')
    a('--flow_permutation', type=int, default=2, help=described(FLOW_PERMUTATIONS))
    a('--flow_coupling', type=int, default=0, help=described(COUPLINGS))
    # beyond the original
    a('--resume', action='store_true',
      help='continue the run in --logdir from its latest checkpoint (its flags must be the same)')
    a('--overwrite', action='store_true',
      help='--logdir holds a run: delete its checkpoints, logs, samples and config.json and start over')
    a('--save_every_minutes', type=float, default=0.,
      help='also checkpoint within an epoch this often (0: at the end of every epoch only)')
    a('--export_dir', type=str, default='', help='write a SavedModel here after training')
    a('--polyak_eval', action='store_true', help='evaluate and sample with the Polyak-averaged weights')
    a('--jit_compile', action='store_true', help='XLA-compile the loss and gradient computation')
    a('--compute_dtype', type=str, default='float32', choices=COMPUTE_DTYPES,
      help='dtype of the coupling networks (mixed precision: weights, flows and log-dets stay float32; '
           'float16 adds dynamic loss scaling)')
    a('--no_progress', action='store_true', help='no progress bars')
    return p


def derive(args, rank=0, size=1):
    """Flags -> configurations with the original's derived values.

    Args:
      args: the parsed flags.
      rank, size: this process and the number of processes.

    Returns:
      A `RunConfig` (a `GlowConfig` model).

    Raises:
      ValueError: naming the flag.
    """
    image_size = args.image_size if args.image_size != -1 else DEFAULT_IMAGE_SIZE[args.problem]
    channels = args.channels if args.channels != -1 else 3
    n_test = args.n_test if args.n_test != -1 else default_n_test(args.problem, size)
    if args.problem == 'space':
        n_train = TRAIN_SIZE['space']
    elif args.n_train is not None:
        n_train = args.n_train
    else:
        n_train = DIGITS_N_TRAIN if args.problem == 'digits' else ORIGINAL_N_TRAIN
    for flag, value in (('--image_size', image_size), ('--anchor_size', args.anchor_size),
                        ('--n_train', n_train), ('--n_batch_train', args.n_batch_train),
                        ('--n_batch_init', args.n_batch_init), ('--n_test', n_test), ('--epochs', args.epochs)):
        if value < 1:
            raise ValueError(f'{flag} must be positive, got {value}')
    check_n_test(args.problem, n_test)
    model = GlowConfig(
        image_shape=(image_size, image_size, channels), n_levels=args.n_levels, depth=args.depth, width=args.width,
        flow_permutation=args.flow_permutation, flow_coupling=args.flow_coupling, decomposition=args.decomposition,
        learnprior=args.learnprior, ycond=args.ycond, n_y=N_Y.get(args.problem, 1), weight_y=args.weight_y,
        n_bits_x=args.n_bits_x, gradient_checkpointing=bool(args.gradient_checkpointing),
        compute_dtype=args.compute_dtype, seed=rank + size * args.seed)
    train = TrainConfig(
        n_train=n_train, n_test=n_test, n_batch_train=args.n_batch_train, n_batch_init=args.n_batch_init,
        image_size=image_size, anchor_size=args.anchor_size, n_processes=size, optimizer=args.optimizer,
        lr=args.lr, beta1=args.beta1, polyak_epochs=args.polyak_epochs, weight_decay=args.weight_decay,
        epochs=args.epochs, epochs_warmup=args.epochs_warmup, epochs_full_valid=args.epochs_full_valid,
        epochs_full_sample=args.epochs_full_sample, use_polyak_for_eval=args.polyak_eval,
        jit_compile=args.jit_compile, save_every_minutes=args.save_every_minutes)
    data = DataConfig(
        problem=args.problem, data_dir=args.data_dir, category=args.category, image_size=image_size,
        channels=channels, dal=args.dal, fmap=args.fmap, pmap=args.pmap, local_batch_train=train.local_batch_train,
        local_batch_test=train.local_batch_test, local_batch_init=train.local_batch_init, rank=rank, size=size,
        seed=rank + size * args.seed)
    hparams = dict(vars(args))
    hparams.update(image_size=image_size, channels=channels, n_test=n_test, n_train=n_train, n_y=model.n_y,
                   n_processes=size, local_batch_train=train.local_batch_train,
                   local_batch_test=train.local_batch_test, local_batch_init=train.local_batch_init,
                   train_its=train.train_its, full_test_its=train.full_test_its, beta2=train.beta2)
    return RunConfig(model=model, train=train, data=data, hparams=hparams)


def run(argv=None, prog=PROG):
    """Parse the flags, build, train or infer.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.

    Returns:
      (exit code, the `Trainer` or None): see `emerging.cli.launch`.
    """
    args = build_parser(prog).parse_args(argv)
    options = LaunchOptions(logdir=args.logdir, restore_path=args.restore_path, inference=args.inference,
                            resume=args.resume, overwrite=args.overwrite, export_dir=args.export_dir,
                            verbose=args.verbose, progress=not args.no_progress, resume_flags=RESUME_FLAGS)
    data_dir = os.path.join(args.data_dir, args.category) if args.category else args.data_dir
    return launch(lambda rank, size: derive(args, rank, size), options, prog, data_dir)


def main(argv=None, prog=PROG):
    """train.py: returns its exit code (`prog` names the program in its usage line and messages)."""
    return run(argv, prog)[0]


if __name__ == '__main__':
    sys.exit(main())
