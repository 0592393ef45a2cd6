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
# the public code's choices (values this port does not implement are errors naming the flag)
PUBLIC_DATA = ('mnist', 'cifar10', 'svhn', 'celebahq', 'celeba_5bit', 'imagenet32', 'imagenet64')
PUBLIC_ACTIVATIONS = ('softplus', 'elu', 'swish', 'lcube', 'identity', 'relu')
PUBLIC_OPTIMIZERS = ('adam', 'adamax', 'rmsprop', 'sgd')
EMA_DECAY, ADAM_BETA2, MAX_GRAD_NORM = 0.999, 0.99, 1.


def str_to_bool(value):
    """The public code's `type=eval, choices=[True, False]`, without eval."""
    if value in ('True', 'False'):
        return value == 'True'
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def build_parser():
    """train_resflow.py's parser: every flag of the public train_img.py, with its name and default, then this
    port's."""
    p = argparse.ArgumentParser(prog=PROG, description='Train a Residual Flow (Chen et al. 2019) '
                                'with the public code\'s command line.', allow_abbrev=False)
    a = p.add_argument
    b = dict(type=str_to_bool, metavar='{True,False}')
    a('--data', type=str, default='cifar10', choices=PUBLIC_DATA + ('digits',))
    a('--dataroot', type=str, default='data', help='tfds data_dir (mnist, cifar10) or the Glow shards\' folder')
    a('--imagesize', type=int, default=32)
    a('--nbits', type=int, default=8, help='bits per colour channel (celebahq)')
    a('--block', type=str, choices=['resblock', 'coupling'], default='resblock')
    a('--coeff', type=float, default=0.98)
    a('--vnorms', type=str, default='2222')
    a('--n-lipschitz-iters', type=int, default=None)
    a('--sn-tol', type=float, default=1e-3)
    a('--learn-p', default=False, **b)
    a('--n-power-series', type=int, default=None)
    a('--factor-out', default=False, **b)
    a('--n-dist', choices=ROULETTE_DISTRIBUTIONS, default='poisson')
    a('--n-samples', type=int, default=1)
    a('--n-exact-terms', type=int, default=2)
    a('--var-reduc-lr', type=float, default=0)
    a('--neumann-grad', default=True, **b)
    a('--mem-eff', default=True, **b)
    a('--act', type=str, choices=PUBLIC_ACTIVATIONS, default='swish')
    a('--idim', type=int, default=512)
    a('--nblocks', type=str, default='16-16-16')
    a('--squeeze-first', default=False, **b)
    a('--actnorm', default=True, **b)
    a('--fc-actnorm', default=False, **b)
    a('--batchnorm', default=False, **b)
    a('--dropout', type=float, default=0.)
    a('--fc', default=False, **b)
    a('--kernels', type=str, default='3-1-3')
    a('--add-noise', default=True, **b)
    a('--quadratic', default=False, **b)
    a('--fc-end', default=True, **b)
    a('--fc-idim', type=int, default=128)
    a('--preact', default=True, **b)
    a('--padding', type=int, default=0)
    a('--first-resblock', default=True, **b)
    a('--cdim', type=int, default=256, help='classifier width (classification tasks only)')
    a('--optimizer', type=str, choices=PUBLIC_OPTIMIZERS, default='adam')
    a('--scheduler', default=False, **b)
    a('--nepochs', type=int, default=1000)
    a('--batchsize', type=int, default=64)
    a('--lr', type=float, default=1e-3)
    a('--wd', type=float, default=0)
    a('--warmup-iters', type=int, default=1000)
    a('--annealing-iters', type=int, default=0)
    a('--save', type=str, default='experiment1')
    a('--val-batchsize', type=int, default=None, help='test batch per process (200; digits: 50)')
    a('--seed', type=int, default=None, help='seed (default 0)')
    a('--ema-val', default=True, **b)
    a('--update-freq', type=int, default=1)
    a('--task', type=str, choices=['density', 'classification', 'hybrid'], default='density')
    a('--scale-dim', default=False, **b)
    a('--rcrop-pad-mode', type=str, choices=['constant', 'reflect'], default='reflect')
    a('--padding-dist', type=str, choices=['uniform', 'gaussian'], default='uniform')
    a('--resume', type=str, default=None)
    a('--begin-epoch', type=int, default=0)
    a('--nworkers', type=int, default=4, help='parallel input-pipeline calls')
    a('--print-freq', type=int, default=20)
    a('--vis-freq', type=int, default=500)
    # beyond the public code
    a('--valid-freq', type=int, default=1, help='evaluate the whole test set every N epochs')
    a('--save-every-minutes', type=float, default=0.,
      help='also checkpoint within an epoch this often (0: at the end of every epoch only)')
    a('--no-progress', action='store_true', help='no progress bars')
    return p


# flag -> (the only value this port supports, why)
SUPPORTED_ONLY = {
    'block': ('resblock', 'coupling blocks are not part of this port'),
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
    if args.act not in LIPSCHITZ_ACTIVATIONS:
        raise ValueError(f'--act {args.act} is not supported; allowed: '
                         + ', '.join(a for a in PUBLIC_ACTIVATIONS if a in LIPSCHITZ_ACTIVATIONS))
    if args.optimizer not in OPTIMIZERS:
        raise ValueError(f'--optimizer {args.optimizer} is not supported; allowed: '
                         + ', '.join(o for o in PUBLIC_OPTIMIZERS if o in OPTIMIZERS))
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


def run(argv=None):
    """Parse the flags, build, train.

    Args:
      argv: the arguments (default: the process's).

    Returns:
      (exit code, the `Trainer` or None): see `emerging.cli.launch`.
    """
    args = build_parser().parse_args(argv)
    try:
        resume, restore_path = resume_mode(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'{PROG}: error: --resume: {error}', file=sys.stderr)
        return 2, None
    options = LaunchOptions(logdir=args.save, restore_path=restore_path, resume=resume,
                            verbose=args.print_freq, progress=not args.no_progress, logdir_flag='--save')
    return launch(lambda rank, size: derive(args, rank, size), options, PROG, args.dataroot)


def main(argv=None):
    """train_resflow.py: returns its exit code."""
    return run(argv)[0]


if __name__ == '__main__':
    sys.exit(main())

