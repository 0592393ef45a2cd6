"""train_resflow.py's command line: the public Residual Flows code's (train_img.py), parsed into configurations.

    python scripts/train_resflow.py --data mnist --imagesize 28 --actnorm True --wd 0 --save experiments/mnist
    python scripts/train_resflow.py --data digits --nblocks 2-2 --idim 64 --nepochs 20 --save runs/resflow_digits
    mpiexec -n 2 python scripts/train_resflow.py --data cifar10 --actnorm True --save experiments/cifar10

Every flag of that script parses with its name and default.  Values this
port does not implement (other tasks, blocks, norms, optimisers, schedulers,
padding, batch norm, dropout, ...) are errors naming the flag, raised before
any work.  What the flags become:

* --batchsize is per process; with --update-freq n a step averages the
  gradients of n batches (the data batch is n * batchsize, in n micro-batches);
* Adam or Adamax with betas (0.9, 0.99), --wd as L2 decay added to the
  gradients, gradients clipped to global norm 1, lr warm-up over the first
  --warmup-iters batches, an EMA of the weights with decay 0.999 used for
  evaluation and sample grids when --ema-val (the default);
* an epoch is one pass over the training set; the whole test set is
  evaluated after every --valid-freq epochs (1, as the public code), in
  batches of --val-batchsize per process;
* --save is the run folder (train.txt, test.txt, checkpoints, PNGs,
  TensorBoard, config.json, as train.py writes); --resume continues the run
  in --save exactly when given that folder, otherwise restores the weights
  and optimiser state of the checkpoint (prefix or run folder) it names;
* --print-freq prints every n-th step; --vis-freq (iterations) sets the
  sample-grid interval to ceil(vis_freq / steps per epoch) epochs;
* data: digits (scikit-learn's 8x8 digits, offline, 8x8x3), mnist (tfds,
  28x28x1), cifar10 (tfds), imagenet32 / imagenet64 (Glow's imagenet-oord
  shards in --dataroot), celebahq (Glow's celeba shards, 256x256, in
  --dataroot); random horizontal flips for cifar10 and celebahq.
"""
import argparse
import math
import os
import sys

from emerging.choices import LIPSCHITZ_ACTIVATIONS, OPTIMIZERS, ROULETTE_DISTRIBUTIONS
from emerging.cli.launch import LaunchOptions, RunConfig, launch
from emerging.data.problems import TRAIN_SIZE, DataConfig, default_n_test
from emerging.models.config import ResFlowConfig
from emerging.training.config import TrainConfig

PROG = 'train_resflow.py'
# --data -> (problem, image size (None: --imagesize), channels, horizontal flips, logit alpha)
DATA = {
    'digits': ('digits', 8, 3, False, 0.05),
    'mnist': ('mnist', None, 1, False, 1e-6),
    'cifar10': ('cifar10', None, 3, True, 0.05),
    'imagenet32': ('imagenet-oord', 32, 3, False, 0.05),
    'imagenet64': ('imagenet-oord', 64, 3, False, 0.05),
    'celebahq': ('celeba', 256, 3, True, 0.05),
}
# the `emerging` subcommands' data flags -> this command line's flag
RUN_DATA_FLAGS = {'data_dir': 'dataroot'}
# the public code's choices, and those of them this port implements (the only ones its help lists; any other
# value is an error naming the flag)
PUBLIC_ACTIVATIONS = ('softplus', 'elu', 'swish', 'lcube', 'identity', 'relu')
PUBLIC_OPTIMIZERS = ('adam', 'adamax', 'rmsprop', 'sgd')
ACTIVATIONS = tuple(a for a in PUBLIC_ACTIVATIONS if a in LIPSCHITZ_ACTIVATIONS)
RESFLOW_OPTIMIZERS = tuple(o for o in PUBLIC_OPTIMIZERS if o in OPTIMIZERS)
EMA_DECAY, ADAM_BETA2, MAX_GRAD_NORM = 0.999, 0.99, 1.
# what --resume must keep (flag destinations): the flags that shape the variables or the input streams
RESUME_KEYS = ('data', 'imagesize', 'nbits', 'coeff', 'n_lipschitz_iters', 'n_power_series', 'factor_out', 'n_dist',
               'n_samples', 'n_exact_terms', 'neumann_grad', 'act', 'idim', 'nblocks', 'squeeze_first', 'actnorm',
               'kernels', 'fc_end', 'fc_idim', 'preact', 'first_resblock', 'optimizer', 'batchsize', 'update_freq',
               'val_batchsize', 'seed')


def str_to_bool(value):
    """The public code's `type=eval, choices=[True, False]`, without eval."""
    if value in ('True', 'False'):
        return value == 'True'
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def listed(values):
    """'{a,b}': the metavar of a flag whose values `check_supported` checks: argparse's choices would have to
    include, and so list, the public code's values this port refuses."""
    return '{' + ','.join(values) + '}'


def build_parser(prog=PROG):
    """train_resflow.py's parser: every flag of the public train_img.py, with its name and default, then this
    port's.

    Args:
      prog: the program's name in the usage line and error messages.
    """
    p = argparse.ArgumentParser(prog=prog, description='Train a Residual Flow (Chen et al. 2019) '
                                'with the public code\'s command line.', allow_abbrev=False)
    a = p.add_argument
    b = dict(type=str_to_bool, metavar='{True,False}')
    only_false = dict(type=str_to_bool, metavar='{False}')  # True parses, and check_supported refuses it
    a('--data', type=str, default='cifar10', metavar=listed(DATA),
      help='the data set: digits (scikit-learn\'s 8x8 digits, offline), mnist and cifar10 (tensorflow-datasets), '
           'imagenet32, imagenet64 and celebahq (256x256) (Glow\'s shards in --dataroot)')
    a('--dataroot', type=str, default='data', help='tfds data_dir (mnist, cifar10) or the Glow shards\' folder')
    a('--imagesize', type=int, default=32,
      help='the image size of mnist (28, or 14 / 7 by block averaging) and cifar10; the other data sets have theirs')
    a('--nbits', type=int, default=8, help='bits per colour channel (fewer than 8 with celebahq only)')
    a('--block', type=str, default='resblock', metavar=listed(['resblock']), help='the block: residual blocks')
    a('--coeff', type=float, default=0.98, help='the Lipschitz bound of every layer of g, in (0, 1)')
    a('--vnorms', type=str, default='2222',
      help='the norm of g\'s input and of every layer\'s output, one more entry than --kernels has layers; only '
           '2 (spectral norms) here')
    a('--n-lipschitz-iters', type=int, default=None,
      help='power iterations of every spectral norm per training step (default: until --sn-tol)')
    a('--sn-tol', type=float, default=1e-3, help='the power iteration\'s tolerance without --n-lipschitz-iters')
    a('--learn-p', default=False, help='learned induced norms: only False here', **only_false)
    a('--n-power-series', type=int, default=None,
      help='a fixed number of log-det power-series terms in training (biased; default: Russian roulette, '
           'unbiased)')
    a('--factor-out', default=False, help='half of the channels leave the flow after every scale but the last',
      **b)
    a('--n-dist', choices=ROULETTE_DISTRIBUTIONS, default='poisson',
      help='the Russian roulette\'s number of terms: poisson (lambda 2) or geometric (p 0.5), after the exact ones')
    a('--n-samples', type=int, default=1, help='Russian-roulette draws per log-det estimate')
    a('--n-exact-terms', type=int, default=2, help='power-series terms always computed in training')
    a('--var-reduc-lr', type=float, default=0, help='the variance-reduction learning rate: only 0 here')
    a('--neumann-grad', default=True,
      help='the log-det\'s gradient by the Neumann series (False: backpropagation through the power series)', **b)
    a('--mem-eff', default=True,
      help='the log-det\'s gradient computed in the forward pass, g recomputed in the backward pass', **b)
    a('--act', type=str, default='swish', metavar=listed(ACTIVATIONS),
      help='the activation of g (swish: LipSwish with a learned beta)')
    a('--idim', type=int, default=512, help='the hidden channels of g')
    a('--nblocks', type=str, default='16-16-16', help='residual blocks per scale, joined by "-"')
    a('--squeeze-first', default=False, help='a 2x2 squeeze (space to channels) before the first scale', **b)
    a('--actnorm', default=True, help='an actnorm after every block', **b)
    a('--fc-actnorm', default=False, help='per-element (not per-channel) actnorms between the blocks: only False here',
      **only_false)
    a('--batchnorm', default=False, help='batch norm: only False here', **only_false)
    a('--dropout', type=float, default=0., help='dropout in g: only 0 here')
    a('--fc', default=False, help='fully connected blocks only: only False here (see --fc-end)', **only_false)
    a('--kernels', type=str, default='3-1-3', help='the kernel sizes of g\'s convolutions, joined by "-"')
    a('--add-noise', default=True, help='uniform dequantisation noise on the pixels: only True here',
      type=str_to_bool, metavar='{True}')
    a('--quadratic', default=False, help='invertible 1x1 layers between the blocks: only False here', **only_false)
    a('--fc-end', default=True, help='4 fully connected residual blocks at the end of the last scale', **b)
    a('--fc-idim', type=int, default=128, help='the hidden width of the --fc-end blocks')
    a('--preact', default=True, help='an activation before the first layer of g', **b)
    a('--padding', type=int, default=0, help='extra noise channels: only 0 here')
    a('--first-resblock', default=True,
      help='the model\'s first block without the leading activation of g (with --actnorm: an actnorm before it)',
      **b)
    a('--cdim', type=int, default=256, help='classifier width (classification tasks only: no effect here)')
    a('--optimizer', type=str, default='adam', metavar=listed(RESFLOW_OPTIMIZERS),
      help=f'the optimiser, with betas (0.9, {ADAM_BETA2}) and gradients clipped to global norm {MAX_GRAD_NORM:g}')
    a('--scheduler', default=False, help='a learning-rate schedule after the warm-up: only False here', **only_false)
    a('--nepochs', type=int, default=1000, help='training epochs (passes over the training set)')
    a('--batchsize', type=int, default=64, help='training batch per process (a step: --update-freq of them)')
    a('--lr', type=float, default=1e-3, help='learning rate, after the --warmup-iters warm-up')
    a('--wd', type=float, default=0, help='L2 weight decay, added to the gradients')
    a('--warmup-iters', type=int, default=1000, help='linear learning-rate warm-up over the first N batches')
    a('--annealing-iters', type=int, default=0, help='log-det annealing: only 0 here')
    a('--save', type=str, default='experiment1',
      help='the run folder: train.txt, test.txt, checkpoints, sample grids, TensorBoard, config.json')
    a('--val-batchsize', type=int, default=None, help='test batch per process (200; digits: 50)')
    a('--seed', type=int, default=None, help='seed (default 0); each process uses rank + processes * seed')
    a('--ema-val', default=True,
      help=f'evaluate and sample with the moving average of the weights (decay {EMA_DECAY})', **b)
    a('--update-freq', type=int, default=1, help='batches whose averaged gradients make one step')
    a('--task', type=str, default='density', metavar=listed(['density']), help='the task: density estimation')
    a('--scale-dim', default=False, help='a loss scaling of the hybrid task: no effect here', **b)
    a('--rcrop-pad-mode', type=str, choices=['constant', 'reflect'], default='reflect',
      help='the padding of the classification tasks\' random crops: no effect here')
    a('--padding-dist', type=str, choices=['uniform', 'gaussian'], default='uniform',
      help='the distribution of the --padding channels: no effect here')
    a('--resume', type=str, default=None,
      help='the --save folder: continue that run exactly; another checkpoint (prefix, or run folder: its latest): '
           'start from its weights and optimiser state')
    a('--overwrite', action='store_true',
      help='--save holds a run: delete its checkpoints, logs, samples and config.json and start over')
    a('--begin-epoch', type=int, default=0, help='the first epoch: only 0 here (--resume continues the epochs)')
    a('--nworkers', type=int, default=4, help='parallel input-pipeline calls')
    a('--print-freq', type=int, default=20, help='print every N-th training step')
    a('--vis-freq', type=int, default=500,
      help='sample grids every ceil(N / training steps per epoch) epochs (N in iterations, as the public code)')
    # beyond the public code
    a('--valid-freq', type=int, default=1, help='evaluate the whole test set every N epochs')
    a('--save-every-minutes', type=float, default=0.,
      help='also checkpoint within an epoch this often (0: at the end of every epoch only)')
    a('--no-progress', action='store_true', help='no progress bars')
    return p


# flag -> (the only value this port supports, why)
SUPPORTED_ONLY = {
    'block': ('resblock', 'residual blocks are the only blocks of this port'),
    'learn_p': (False, 'learned induced norms are not implemented (spectral norms only)'),
    'var_reduc_lr': (0, 'the variance-reduction learning rate is not implemented'),
    'fc_actnorm': (False, 'fc actnorm is not implemented'),
    'batchnorm': (False, 'batch norm would break the log-det; not implemented'),
    'dropout': (0., 'dropout is not implemented'),
    'fc': (False, 'all-dense blocks are not implemented (use --fc-end)'),
    'add_noise': (True, 'the likelihood needs dequantisation noise'),
    'quadratic': (False, 'invertible 1x1 layers between blocks are not implemented'),
    'padding': (0, 'channel padding is not implemented'),
    'scheduler': (False, 'the cosine / step schedulers are not implemented'),
    'annealing_iters': (0, 'log-det annealing is not implemented'),
    'task': ('density', 'only density estimation is implemented'),
    'begin_epoch': (0, 'epochs always continue from the checkpoint (use --resume)'),
}


def check_supported(args):
    """Raise ValueError naming the first flag whose value this port does not implement."""
    for name, (value, why) in SUPPORTED_ONLY.items():
        if getattr(args, name) != value:
            raise ValueError(f'--{name.replace("_", "-")} {getattr(args, name)} is not supported: {why}')
    if set(args.vnorms) != {'2'}:
        raise ValueError(f'--vnorms {args.vnorms} is not supported: only spectral norms (all 2s)')
    if args.act not in ACTIVATIONS:
        raise ValueError(f'--act {args.act} is not supported; allowed: {", ".join(ACTIVATIONS)}')
    if args.optimizer not in RESFLOW_OPTIMIZERS:
        raise ValueError(f'--optimizer {args.optimizer} is not supported; allowed: {", ".join(RESFLOW_OPTIMIZERS)}')
    if args.data not in DATA:
        raise ValueError(f'--data {args.data} is not supported (no loader); allowed: {", ".join(DATA)}')
    if len(args.vnorms) != len(args.kernels.split('-')) + 1:
        raise ValueError(f'--vnorms {args.vnorms} needs one more entry than --kernels {args.kernels} has layers')
    for flag, value in (('--batchsize', args.batchsize), ('--nepochs', args.nepochs), ('--idim', args.idim),
                        ('--fc-idim', args.fc_idim), ('--update-freq', args.update_freq),
                        ('--n-samples', args.n_samples), ('--print-freq', args.print_freq),
                        ('--vis-freq', args.vis_freq), ('--valid-freq', args.valid_freq),
                        ('--nworkers', args.nworkers)):
        if value < 1:
            raise ValueError(f'{flag} must be positive, got {value}')
    if args.warmup_iters < 0 or args.wd < 0 or args.n_exact_terms < 0:
        raise ValueError('--warmup-iters, --wd and --n-exact-terms must not be negative')
    for flag, value in (('--lr', args.lr), ('--wd', args.wd), ('--coeff', args.coeff)):
        if not math.isfinite(value):
            raise ValueError(f'{flag} must be a finite number, got {value}')


def parse_nblocks(text):
    """'16-16-16' -> (16, 16, 16); anything else is a ValueError naming --nblocks."""
    try:
        blocks = tuple(int(n) for n in text.split('-'))
    except ValueError:
        raise ValueError(f'--nblocks must be block counts joined by "-" (e.g. 16-16-16), got {text!r}') from None
    if not blocks or min(blocks) < 1:
        raise ValueError(f'--nblocks needs positive block counts, got {text!r}')
    return blocks


def derive(args, rank=0, size=1):
    """Flags -> configurations.

    Args:
      args: the parsed flags.
      rank, size: this process and the number of processes.

    Returns:
      A `RunConfig` (a `ResFlowConfig` model).

    Raises:
      ValueError: naming the flag.
    """
    check_supported(args)
    problem, image_size, channels, flips, alpha = DATA[args.data]
    n_train, n_test = TRAIN_SIZE[problem], default_n_test(problem, size)
    if image_size is None:
        image_size = args.imagesize
    if args.data == 'mnist' and image_size not in (28, 14, 7):
        raise ValueError(f'--imagesize {image_size}: mnist is 28x28 here (or 14, 7 by block averaging)')
    if args.nbits != 8 and args.data != 'celebahq':
        raise ValueError(f'--nbits {args.nbits} is only used with --data celebahq (as the public code)')
    seed = 0 if args.seed is None else args.seed
    val_batch = args.val_batchsize or (50 if args.data == 'digits' else 200)
    if n_test % (val_batch * size):
        raise ValueError(f'--val-batchsize {val_batch}: {n_test} test images do not split into batches of '
                         f'{val_batch} on {size} process(es)')
    batch = args.batchsize * args.update_freq
    tfds_default = ''  # the public default 'data' means tensorflow-datasets' own folder for mnist and cifar10
    model = ResFlowConfig(
        image_shape=(image_size, image_size, channels), n_blocks=parse_nblocks(args.nblocks), idim=args.idim,
        kernels=args.kernels, activation=args.act, factor_out=args.factor_out, squeeze_first=args.squeeze_first,
        actnorm=args.actnorm, fc_end=args.fc_end, fc_idim=args.fc_idim, preact=args.preact,
        first_resblock=args.first_resblock, coeff=args.coeff, n_lipschitz_iters=args.n_lipschitz_iters,
        sn_tol=args.sn_tol, n_power_series=args.n_power_series, n_dist=args.n_dist, n_samples=args.n_samples,
        n_exact_terms=args.n_exact_terms, neumann_grad=args.neumann_grad, mem_eff=args.mem_eff, logit_alpha=alpha,
        n_bits_x=args.nbits, seed=rank + size * seed)
    train_its = math.ceil(n_train / (args.batchsize * size))
    train = TrainConfig(
        n_train=n_train, n_test=n_test, n_batch_train=batch, n_batch_init=args.batchsize, image_size=image_size,
        anchor_size=image_size, n_processes=size, optimizer=args.optimizer, lr=args.lr, beta1=0.9,
        epochs=args.nepochs + 1, epochs_warmup=args.warmup_iters * args.batchsize * size / n_train,
        epochs_full_valid=args.valid_freq, epochs_full_sample=max(1, math.ceil(args.vis_freq / train_its)),
        use_polyak_for_eval=args.ema_val, test_batch=val_batch, grad_accumulation=args.update_freq,
        max_grad_norm=MAX_GRAD_NORM, l2_decay=args.wd, fixed_beta2=ADAM_BETA2, ema_decay=EMA_DECAY,
        save_every_minutes=args.save_every_minutes)
    data = DataConfig(
        problem=problem, data_dir=tfds_default if args.dataroot == 'data' and problem in ('mnist', 'cifar10')
        else args.dataroot, image_size=image_size, channels=channels, dal=0, pmap=args.nworkers,
        local_batch_train=train.local_batch_train, local_batch_test=train.local_batch_test,
        local_batch_init=train.local_batch_init, rank=rank, size=size, seed=rank + size * seed,
        augmentation='hflip' if flips else 'original')
    hparams = dict(vars(args))
    hparams.update(model_kind='resflow', seed=seed, problem=problem, image_size=image_size, channels=channels,
                   n_train=n_train, n_test=n_test, n_processes=size, local_batch_train=train.local_batch_train,
                   local_batch_test=train.local_batch_test, train_its=train.train_its,
                   full_test_its=train.full_test_its, beta2=train.beta2, polyak_decay=train.polyak_decay,
                   logit_alpha=alpha)
    return RunConfig(model=model, train=train, data=data, hparams=hparams)


def resume_flags():
    """{hyperparameter key: the flag as typed} of what a resumed run must keep (`RESUME_KEYS`, and the number of
    processes)."""
    return {**{key: '--' + key.replace('_', '-') for key in RESUME_KEYS}, 'n_processes': 'the number of processes'}


def resume_mode(args):
    """(resume exactly, restore_path): --resume naming the --save folder continues it exactly;
    any other checkpoint (prefix, or run folder: its latest) is restored into a new run."""
    if not args.resume:
        return False, ''
    if os.path.isdir(args.resume) and os.path.realpath(args.resume) == os.path.realpath(args.save):
        return True, ''
    if os.path.isdir(args.resume):
        from emerging.runs.folder import checkpoint_for
        return False, checkpoint_for(args.resume, 'latest')
    return False, args.resume


def run(argv=None, prog=PROG):
    """Parse the flags, build, train.

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.

    Returns:
      (exit code, the `Trainer` or None): see `emerging.cli.launch`.
    """
    args = build_parser(prog).parse_args(argv)
    try:  # here, not only in derive: a value this port refuses is an error before TensorFlow loads
        check_supported(args)
    except ValueError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2, None
    try:
        resume, restore_path = resume_mode(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'{prog}: error: --resume: {error}', file=sys.stderr)
        return 2, None
    options = LaunchOptions(logdir=args.save, restore_path=restore_path, resume=resume, overwrite=args.overwrite,
                            verbose=args.print_freq, progress=not args.no_progress, logdir_flag='--save',
                            resume_flags=resume_flags())
    return launch(lambda rank, size: derive(args, rank, size), options, prog, args.dataroot)


def main(argv=None, prog=PROG):
    """train_resflow.py: returns its exit code (`prog` names the program in its usage line and messages)."""
    return run(argv, prog)[0]


if __name__ == '__main__':
    sys.exit(main())

