"""2-D density estimation with Residual Flows: the command line of the public Residual Flows code's train_toy.py.

    python scripts/train_resflow_toy.py --data 8gaussians --arch iresnet --coeff 0.9 --vnorms 222222 \\
        --dims 128-128-128-128 --act swish --nblocks 100 --save experiments/iresnet_toy
    python scripts/train_resflow_toy.py --data 8gaussians --nblocks 10 --dims 64-64-64 --niters 2000 --save runs/8g

Every flag of train_toy.py parses with its name and default; values this port cannot do (--vnorms other than
all 2s, --learn-p True) are errors naming the flag, before TensorFlow loads (exit code 2).  The model is
`emerging.vector.build_toy_flow`: `--arch iresnet` is [ActNorm1d], then --nblocks x (i-ResNet block, [ActNorm1d],
[MovingBatchNorm1d]), each block z = x + g(x) with g = [act, spectrally normalised linear] per width of
[2] + --dims + [2], its last layer started near zero; `--arch realnvp` is --nblocks pairs of affine coupling blocks.

Training as train_toy.py: fresh --batch_size samples every step, loss -mean(log N(z) + beta log|det dz/dx|) with
the unbiased log-det estimate (Russian roulette and a Hutchinson probe, or what --exact-trace, --brute-force,
--n-power-series choose) and beta = min(1, itr / --annealing-iters); Adam (betas 0.9, 0.999, eps 1e-8); after
every step --n-lipschitz-iters power iterations of every spectral norm.  A [TEST] validation every --val_freq
iterations and at the last first runs 200 power iterations, then scores --test_batch_size fresh samples with the
EXACT log-det (the 2x2 Jacobian, as the public code does in eval mode); the best one's weights are checkpointed.
Outputs in --save: `logs` (the arguments, then train_toy.py's `Iter` lines every --log_freq iterations and its
`[TEST]` and `Ords` lines), figs/{itr:04d}.png (target density, learned density, samples) at iteration 1 and
every --viz_freq, and the best checkpoint (`checkpt-<itr>`, named by the pointer file `checkpoint`).  A --save
folder holding another run is refused unless --resume names a checkpoint in it (the run continues there, its
logs appended) or --overwrite deletes that run first.
The last two lines printed are `parameters: N; train steps/s: S` (steps after the first, which traces the graph)
and `test nll: X +- SE nats (true: H +- SE)`: the final weights after 200 power iterations, with the exact log-det,
on the 10,000 points `toy2d.sample(data, 10000, np.random.default_rng(seed + 1))` (toy_density.py's test set),
H the data's entropy.  A loss that is not finite stops the run with exit code 3.
"""
import argparse
import math
import os
import sys
import time

from emerging.choices import ROULETTE_DISTRIBUTIONS, VECTOR_ACTIVATIONS
from emerging.cli.paths import check_output_folder
from emerging.cli.train_resflow import str_to_bool
from emerging.data import toy2d
from emerging.errors import InputError
from emerging.runs.folder import check_script_output, clear_run

PROG = 'train_resflow_toy.py'
N_TEST = 10000
EVAL_CHUNK = 5000  # points per evaluation call
VALIDATION_POWER_ITERATIONS = 200
LOG_MOMENTUM = 0.93  # train_toy.py's RunningAverageMeter(0.93)
ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-8


def build_parser(prog=PROG):
    """train_resflow_toy.py's parser: every flag of the public train_toy.py with its name and default, then this
    port's (`prog`: the program's name in the usage line and error messages)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], allow_abbrev=False)
    a = p.add_argument
    b = dict(type=str_to_bool, metavar='{True,False}')
    a('--data', type=str, default='pinwheel', choices=toy2d.DATASETS,
      help='the 2-D data set (emerging.data.toy2d), fresh samples every step; the public default pinwheel only '
           'where toy2d has it')
    a('--arch', choices=['iresnet', 'realnvp'], default='iresnet',
      help='iresnet: --nblocks i-ResNet blocks; realnvp: --nblocks pairs of affine coupling blocks (their networks '
           'an MLP of the --dims widths and --act: the public code gives them none)')
    a('--coeff', type=float, default=0.9, help="the spectral-norm bound of every linear layer of g, in (0, 1)")
    a('--vnorms', type=str, default='222222',
      help='the norm of every width of [2] + --dims + [2] (extra entries ignored, as the public code\'s zip); '
           'only 2 here (spectral norms)')
    a('--n-lipschitz-iters', type=int, default=5,
      help='power iterations of every spectral norm after each training step (200 before a validation, at the '
           'start and before the final test)')
    a('--atol', type=float, default=None,
      help='accepted, no effect, as in the public code: its linear layers (InducedNormLinear for 2-norms) use a '
           'tolerance only when the iteration count is None, which --n-lipschitz-iters never is')
    a('--rtol', type=float, default=None, help='as --atol')
    # True parses, and check refuses it naming the flag
    a('--learn-p', default=False, help='learned induced norms: only False here', type=str_to_bool, metavar='{False}')
    a('--mixed', default=True, help='with --learn-p True one learned norm per layer; no effect otherwise', **b)
    a('--dims', type=str, default='128-128-128-128', help='the hidden widths of g joined by "-"')
    a('--act', type=str, choices=VECTOR_ACTIVATIONS, default='swish',
      help='the activation before every linear layer (swish = LipSwish with a learned beta; selu is not '
           '1-Lipschitz; maxmin needs even widths)')
    a('--nblocks', type=int, default=100, help='residual blocks (realnvp: coupling pairs)')
    a('--brute-force', default=False, help='the exact log-det (2x2 Jacobian) in training too', **b)
    a('--actnorm', default=False,
      help='ActNorm1d first (iresnet) and after every block, initialised from the first training batch', **b)
    a('--batchnorm', default=False,
      help='MovingBatchNorm1d after every block: x - running mean + bias, log-det 0 (the public layer)', **b)
    a('--exact-trace', default=False,
      help='training series of exact traces tr(J^k) instead of the Hutchinson probe v^T J^k v', **b)
    a('--n-power-series', type=int, default=None,
      help='a fixed number of series terms in training (biased); default: Russian roulette (unbiased)')
    a('--n-samples', type=int, default=1, help='Russian-roulette draws per estimate')
    a('--n-dist', choices=ROULETTE_DISTRIBUTIONS, default='geometric',
      help='the roulette\'s number of terms: geometric (p 0.5) or poisson (lambda 2), plus 2 exact terms')
    a('--niters', type=int, default=50000, help='training steps (0: evaluate only, e.g. with --resume)')
    a('--batch_size', type=int, default=500, help='training samples per step')
    a('--test_batch_size', type=int, default=10000, help='fresh samples of every [TEST] validation')
    a('--lr', type=float, default=1e-3, help='Adam\'s learning rate (betas 0.9, 0.999; eps 1e-8)')
    a('--weight-decay', type=float, default=1e-5,
      help='accepted, no effect, as in the public code: its Adam computes p - step * wd * p out of place '
           '(resflows/optimizers.py: p.data.add, not add_) and drops it')
    a('--annealing-iters', type=int, default=0,
      help='the log-det\'s weight in the training loss is min(1, itr / N) (0: 1 throughout)')
    a('--save', type=str, default='experiments/iresnet_toy',
      help='the output folder: logs, figs/, the best checkpoint')
    a('--viz_freq', type=int, default=100, help='figs/{itr:04d}.png at iteration 1 and every N')
    a('--val_freq', type=int, default=100, help='a [TEST] validation every N iterations and at the last')
    a('--log_freq', type=int, default=10,
      help='an Iter line in {save}/logs every N iterations and at the last (the public code writes every one)')
    a('--gpu', type=int, default=0,
      help='accepted, selects nothing: TensorFlow places the ops (CUDA_VISIBLE_DEVICES selects GPUs)')
    a('--seed', type=int, default=0,
      help='seeds the initial weights, the training data (test points: seed + 1, validations: seed + 2) and '
           'the estimator\'s draws')
    # beyond the public code
    a('--resume', type=str, default=None,
      help='a checkpoint this script wrote (a prefix, or a --save folder: the one its pointer names): its '
           'weights, optimiser state, iteration and best loss; training continues to --niters (evaluate only '
           'when reached); the data draws restart from --seed')
    a('--overwrite', action='store_true',
      help='--save holds another run (logs, checkpoints, figs): delete it first')
    a('--no_progress', action='store_true', help='no progress bar')
    return p


def parse_dims(text):
    """'128-128' -> (128, 128); anything else is an InputError naming --dims."""
    try:
        widths = tuple(int(w) for w in text.split('-'))
    except ValueError:
        raise InputError(f'--dims must be widths joined by "-" (e.g. 128-128-128-128), got {text!r}') from None
    if min(widths) < 1:
        raise InputError(f'--dims needs positive widths, got {text!r}')
    return widths


def resume_prefix(path):
    """The checkpoint prefix --resume names (a prefix, or a folder whose pointer file names one)."""
    from emerging.runs import checkpoints
    if os.path.isdir(path):
        prefix = checkpoints.latest(path)
        if prefix is None:
            raise InputError(f'--resume {path}: the folder has no checkpoint pointer (a --save folder of this script '
                             f'after its first validation)')
        return prefix
    if not os.path.exists(path + '.index'):
        raise InputError(f'--resume {path}: no checkpoint there (expected {path}.index, or a --save folder)')
    return path


# what shows that --save holds a run, and what such a run wrote there
RUN_SHOWN_BY = ('logs', 'checkpoint', 'checkpt-*.index')
RUN_OUTPUTS = ('logs', 'checkpoint', 'checkpt-*', 'figs')


def check(args):
    """Check every flag before TensorFlow loads.

    Args:
      args: the parsed flags.

    Returns:
      (the hidden widths, the checkpoint prefix to restore or None).

    Raises:
      InputError: naming the first bad flag.
    """
    if args.data not in toy2d.DATASETS:
        raise InputError(f'--data {args.data} is not available here; allowed: {", ".join(toy2d.DATASETS)}')
    hidden = parse_dims(args.dims)
    if set(args.vnorms) != {'2'}:
        raise InputError(f'--vnorms {args.vnorms} is not supported: only spectral norms (all 2s); the induced '
                         f'p-norms of the public code are not part of this port')
    if args.arch == 'iresnet' and len(args.vnorms) < len(hidden) + 2:
        raise InputError(f'--vnorms {args.vnorms} needs one entry per width of [2] + --dims + [2]: '
                         f'{len(hidden) + 2} for --dims {args.dims}')
    if args.learn_p:
        raise InputError('--learn-p True is not supported: learned induced norms are not implemented (spectral norms '
                         'only; --mixed has no effect without it)')
    if args.arch == 'iresnet' and not 0. < args.coeff < 1.:
        raise InputError(f'--coeff must be in (0, 1) for invertible blocks, got {args.coeff}')
    for flag, value in (('--nblocks', args.nblocks), ('--n-lipschitz-iters', args.n_lipschitz_iters),
                        ('--n-samples', args.n_samples), ('--batch_size', args.batch_size),
                        ('--test_batch_size', args.test_batch_size), ('--viz_freq', args.viz_freq),
                        ('--val_freq', args.val_freq), ('--log_freq', args.log_freq)):
        if value < 1:
            raise InputError(f'{flag} must be positive, got {value}')
    for flag, value in (('--niters', args.niters), ('--annealing-iters', args.annealing_iters),
                        ('--seed', args.seed)):
        if value < 0:
            raise InputError(f'{flag} must not be negative, got {value}')
    if args.n_power_series is not None and args.n_power_series < 1:
        raise InputError(f'--n-power-series must be positive, got {args.n_power_series}')
    if not (math.isfinite(args.lr) and args.lr > 0.):
        raise InputError(f'--lr must be a positive number, got {args.lr}')
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0.):
        raise InputError(f'--weight-decay must be a number >= 0, got {args.weight_decay}')
    for flag, value in (('--atol', args.atol), ('--rtol', args.rtol)):
        if value is not None and not (math.isfinite(value) and value > 0.):
            raise InputError(f'{flag} must be a positive number, got {value}')
    if args.act == 'maxmin':
        widths = ([2] if args.arch == 'iresnet' else []) + list(hidden)
        if any(w % 2 for w in widths):
            raise InputError(f'--act maxmin pairs its inputs: --dims {args.dims} needs even widths')
    check_output_folder(args.save, '--save')
    restore = resume_prefix(args.resume) if args.resume else None
    check_script_output(args.save, '--save', RUN_SHOWN_BY, args.overwrite, restore or '')
    return hidden, restore


class RunningAverage:
    """train_toy.py's RunningAverageMeter: avg <- momentum avg + (1 - momentum) val, the first val as it is."""

    def __init__(self, momentum=LOG_MOMENTUM):
        self.momentum, self.val, self.avg = momentum, None, 0.

    def update(self, value):
        self.avg = value if self.val is None else self.avg * self.momentum + value * (1. - self.momentum)
        self.val = value


def main(argv=None, prog=PROG):
    """train_resflow_toy.py: returns the exit code (0; 2 bad input; 3 a loss that is not finite).

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    args = build_parser(prog).parse_args(argv)
    try:
        hidden, restore = check(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    return run(args, hidden, restore, prog)


def run(args, hidden, restore, prog=PROG):
    """Build, [restore], train, validate, plot, test (see the module docstring); returns the exit code (`prog`
    names the program in error messages)."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from emerging.cli import toy_plots
    from emerging.runs import checkpoints
    from emerging.vector import build_toy_flow

    # Grappler's graph rewrites cost more than they save here: the first step of the default model (100 blocks, each
    # with its roulette loop and that loop's gradient) spent ~7 of its ~9 minutes in them on a 2-vCPU machine, for
    # no faster steps
    tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})
    tf.random.set_seed(args.seed)
    flow = build_toy_flow(args.arch, 2, hidden, args.nblocks, args.act, args.coeff, args.n_lipschitz_iters,
                          args.n_power_series, args.n_dist, args.n_samples, args.exact_trace, args.brute_force,
                          args.actnorm, args.batchnorm, seed=args.seed)
    variables = flow.trainable_variables
    # the legacy Adam: one fused update op per variable (the public Adam's update: step lr sqrt(1 - b2^t) / (1 - b1^t),
    # denominator sqrt(v) + eps), which traces far faster than the new optimizer's for the default model's 1,500
    optimizer = tf_keras.optimizers.legacy.Adam(args.lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                                epsilon=ADAM_EPSILON)
    if hasattr(optimizer, '_create_all_weights'):  # its slots now, not in the first trace (which would run twice)
        optimizer._create_all_weights(variables)
    iteration = tf.Variable(0, dtype=tf.int64, trainable=False)
    best_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
    # the key, not the counter, from the seed: Generator.from_seed(s) starts the same stream at counter s
    generator = tf.random.Generator.from_key_counter(args.seed, [0, 0], 'philox')
    checkpoint = tf.train.Checkpoint(model=flow, optimizer=optimizer, iteration=iteration, best_loss=best_loss,
                                     rng=generator)
    if restore:
        try:
            described = f'the model of --arch {args.arch} with these flags'
            # subset: the legacy Adam keeps its slots under the model's keys; the count catches extra variables
            checkpoints.check_matches(restore, checkpoint, ['model'], described, subset_roots=['model'])
            stored = [key for key in tf.train.load_checkpoint(restore).get_variable_to_shape_map()
                      if key.startswith('model/') and '.OPTIMIZER_SLOT' not in key]
            if len(stored) != len(flow.variables):
                raise InputError(f'checkpoint {restore} does not fit {described}: it holds {len(stored)} model '
                                 f'variables, the model has {len(flow.variables)}')
        except ValueError as error:
            print(f'{prog}: error: --resume: {error}', file=sys.stderr)
            return 2
        checkpoint.restore(restore).expect_partial()

    if args.overwrite:
        clear_run(args.save, RUN_OUTPUTS)
    os.makedirs(os.path.join(args.save, 'figs'), exist_ok=True)
    log_file = open(os.path.join(args.save, 'logs'), 'a')
    progress = None

    def log(line, show=False):
        log_file.write(line + '\n')
        log_file.flush()
        if show:
            (progress.write if progress is not None else print)(line)

    log(str(args))
    log(f'Number of trainable parameters: {flow.parameter_count}')
    if restore:
        log(f'Restored {restore} (iteration {int(iteration.numpy())}, best test loss {float(best_loss.numpy()):.6f})')
    train_rng, val_rng, plot_rng = (np.random.default_rng(args.seed + k) for k in (0, 2, 3))
    log_norm = 0.5 * math.log(2. * math.pi)

    def log_normal(z):
        return tf.reduce_sum(-0.5 * tf.square(z) - log_norm, axis=1)

    @tf.function(autograph=False)
    def train_step(x, beta):
        with tf.GradientTape() as tape:
            z, log_det = flow.forward_and_log_det(x, training=True, rng=generator)
            logpz = log_normal(z)
            loss = -tf.reduce_mean(logpz + beta * log_det)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        flow.update_spectral_norms()
        return loss, tf.reduce_mean(logpz), tf.reduce_mean(log_det)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)], autograph=False)
    def compiled_log_densities(x):
        z, log_det = flow.forward_and_log_det(x)
        return log_normal(z), log_det

    def log_densities(x):
        """(log N(z), the exact log|det dz/dx|) per point of x [n, 2], as NumPy, in chunks (memory)."""
        parts = [compiled_log_densities(x[i:i + EVAL_CHUNK]) for i in range(0, int(x.shape[0]), EVAL_CHUNK)]
        return tuple(np.concatenate([part[k].numpy() for part in parts]) for k in (0, 1))

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)], autograph=False)
    def to_data(z):
        return flow.invert(z)

    @tf.function(autograph=False)
    def converge_spectral_norms():
        flow.update_spectral_norms(VALIDATION_POWER_ITERATIONS)

    def data(n, rng):
        return tf.constant(toy2d.sample(args.data, n, rng), tf.float32)

    n_linear = sum(len(layer.linears) for layer in flow.flow_layers if hasattr(layer, 'linears'))
    ords = 'Ords: [[' + ','.join(['2.00'] * (2 * n_linear)) + ']]'  # train_toy.py's pretty_repr of the 2-norms

    def validate(itr):
        converge_spectral_norms()
        logpz, log_det = log_densities(data(args.test_batch_size, val_rng))
        test_loss = -float(np.mean(logpz + log_det))
        log(f'[TEST] Iter {itr:04d} | Test Loss {test_loss:.6f} | Test Logp(z) {np.mean(logpz):.6f} '
            f'| Test DeltaLogp {np.mean(log_det):.6f}', show=True)
        log(ords)
        if test_loss < float(best_loss.numpy()):
            best_loss.assign(test_loss)
            name, existing = f'checkpt-{itr}', checkpoints.committed(args.save)
            while name in existing:
                name += 'r'
            checkpoints.commit(checkpoint, args.save, name, keep=1)

    grid = toy_plots.grid_points()
    target = np.exp(toy2d.log_density(args.data, grid))

    def plot(itr):
        logpz, log_det = log_densities(tf.constant(grid, tf.float32))
        samples = to_data(tf.constant(plot_rng.standard_normal([toy_plots.N_SAMPLES, 2]), tf.float32)).numpy()
        samples = samples[np.all(np.isfinite(samples), axis=1)]
        toy_plots.save_density_panels(os.path.join(args.save, 'figs', f'{itr:04d}.png'), target,
                                      np.exp(logpz + log_det), samples, f'{args.arch}, iter {itr}')

    start = int(iteration.numpy()) + 1
    first_batch = None
    if not restore:
        first_batch = data(args.batch_size, train_rng)
        if args.actnorm:
            flow.initialize(first_batch)
    steps = range(start, args.niters + 1)
    if not args.no_progress and len(steps):
        from tqdm import tqdm
        progress = steps = tqdm(steps, desc=f'{args.arch} {args.data}', dynamic_ncols=True, file=sys.stderr)
    meters = {key: RunningAverage() for key in ('time', 'loss', 'logpz', 'delta')}
    train_time, timed_steps = 0., 0
    for itr in steps:
        begin = time.time()
        x = first_batch if itr == start and first_batch is not None else data(args.batch_size, train_rng)
        beta = min(1., itr / args.annealing_iters) if args.annealing_iters > 0 else 1.
        loss, logpz, log_det = (float(t) for t in train_step(x, tf.constant(beta, tf.float32)))
        elapsed = time.time() - begin
        if itr > start:  # the first call traces the graph
            train_time, timed_steps = train_time + elapsed, timed_steps + 1
        if not math.isfinite(loss):
            print(f'{prog}: error: the loss is not finite at iteration {itr}', file=sys.stderr)
            log(f'Iter {itr:04d}: the loss is not finite ({loss})')
            return 3
        for key, value in (('time', elapsed), ('loss', loss), ('logpz', logpz), ('delta', log_det)):
            meters[key].update(value)
        iteration.assign(itr)
        if itr % args.log_freq == 0 or itr == args.niters:
            m = meters
            log(f'Iter {itr:04d} | Time {m["time"].val:.4f}({m["time"].avg:.4f}) | Loss {m["loss"].val:.6f}'
                f'({m["loss"].avg:.6f}) | Logp(z) {m["logpz"].val:.6f}({m["logpz"].avg:.6f}) | DeltaLogp '
                f'{m["delta"].val:.6f}({m["delta"].avg:.6f})')
        if progress is not None:
            progress.set_postfix_str(f'loss {meters["loss"].avg:.3f}', refresh=False)
        if itr % args.val_freq == 0 or itr == args.niters:
            validate(itr)
        if itr == 1 or itr % args.viz_freq == 0:
            plot(itr)
    if progress is not None:
        progress.close()
        progress = None
    log('Training has finished.')

    converge_spectral_norms()
    logpz, log_det = log_densities(data(N_TEST, np.random.default_rng(args.seed + 1)))
    values = -(logpz + log_det)
    entropy, entropy_se = toy2d.entropy(args.data)
    steps_per_second = timed_steps / train_time if timed_steps else float('nan')
    for line in (f'parameters: {flow.parameter_count:,}; train steps/s: {steps_per_second:.3g}',
                 f'test nll: {values.mean():.4f} +- {values.std(ddof=1) / math.sqrt(N_TEST):.4f} nats '
                 f'(true: {entropy:.4f} +- {entropy_se:.4f})'):
        log(line, show=True)
    log_file.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
