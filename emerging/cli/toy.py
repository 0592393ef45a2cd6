"""2-D density estimation (data sets) and density matching (energies u1-u4) with BNAF, MAF or RealNVP.

    python scripts/toy_density.py --train --dataset 8gaussians --flow bnaf --output_dir runs/8gaussians_bnaf
    python scripts/toy_density.py --plot --restore_file runs/8gaussians_bnaf/checkpoint --dataset 8gaussians
    python scripts/toy_density.py --dataset t4 --experiment energy2d --flows 1 --layers 2 --hidden_dim 50 --save \
        --savefig

The data sets of emerging.data.toy2d train by maximum likelihood on fresh samples of the known distribution every
step; energies (u1-u4) by the reverse KL, E_q[log q(x) + u(x)] with x drawn through the flow's sampling direction.
Adam (amsgrad), gradients clipped to --clip_norm, the learning rate times --lr_decay after --lr_patience steps
without a new best loss (not below 5e-4).  BNAF has the public code's layout: --n_flows networks, each but the last
with the --residual; the last has none, so the density BNAF reaches a bounded set of latents and its samples are
the base draws inside it (the fraction is in the panel's title).  The public toy2d.py's flag names are accepted
too: --learning_rate, --batch_dim, --steps, --layers, --flows, --patience, --decay (its defaults: 0.1, 200, 20000,
3, 1, 2000, 0.5).  Every --log_interval steps, and at the end, {output_dir}/step_<N>.png shows the target density,
the learned density and samples side by side.  The last line is `test nll: <X> nats (true: <H>)` on 10,000 fresh
samples (H the distribution's entropy), or for an energy `KL gap: <X> nats` (KL(q || p) with p's normaliser by
quadrature).  --restore_file also takes a checkpoint.pt of the public BNAF toy2d.py.

The public toy2d.py's command lines run as printed (the third line above): --experiment density2d (a data set) or
energy2d (an energy; toy2d.py's t1-t4 are u1-u4) without --train or --plot trains, and then, as toy2d.py does,
writes {output_dir}/checkpoint only with --save and the figures only with --savefig.  --train writes both always.
A run that writes the checkpoint refuses an --output_dir holding another's (unless it starts from that very
checkpoint with --restore_file); --overwrite deletes that checkpoint and its step_<N>.png figures first.
"""
import argparse
import math
import os
import sys
import time

from emerging.choices import BNAF_RESIDUALS, VECTOR_FLOWS
from emerging.cli import toy_plots
from emerging.cli.paths import check_output_folder
from emerging.cli.public_bnaf import check_restore_file, is_torch_file, load_public_bnaf
from emerging.data import toy2d
from emerging.runs.folder import check_script_output, clear_run

PROG = 'toy_density.py'
N_TEST = 10000
PUBLIC_ENERGY_NAMES = {'t1': 'u1', 't2': 'u2', 't3': 'u3', 't4': 'u4'}  # toy2d.py's names of the energies
# --experiment -> the --dataset values it takes and how the error names them
EXPERIMENTS = {'density2d': (toy2d.DATASETS, 'a data set'), 'energy2d': (toy2d.ENERGIES, 'an energy (u1-u4 or t1-t4)')}


def build_parser(prog=PROG):
    """toy_density.py's parser (`prog`: the program's name in the usage line and error messages)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument('--train', action='store_true', help='train, plot, save {output_dir}/checkpoint')
    mode.add_argument('--plot', action='store_true', help='plot (and evaluate) the model of --restore_file')
    p.add_argument('--experiment', choices=tuple(EXPERIMENTS),
                   help='the public toy2d.py\'s flag: density2d (--dataset a data set) or energy2d (an energy); '
                        'without --train or --plot it trains, writing the checkpoint only with --save and the '
                        'figures only with --savefig')
    p.add_argument('--restore_file', default='',
                   help='checkpoint to start from / to plot: a prefix this script wrote, or a checkpoint.pt of the '
                        'public BNAF toy2d.py run with the same --flows, --layers and --hidden_dim')
    p.add_argument('--dataset', choices=toy2d.DATASETS + toy2d.ENERGIES + tuple(PUBLIC_ENERGY_NAMES),
                   help='a data set (maximum likelihood on fresh samples) or an energy u1-u4 (reverse KL; t1-t4, '
                        'the public toy2d.py\'s names, are the same); default 8gaussians, u1 with --experiment '
                        'energy2d')
    p.add_argument('--flow', default='bnaf', choices=VECTOR_FLOWS,
                   help='bnaf, or a maf / realnvp stack of about the parameter count of the BNAF these flags describe')
    p.add_argument('--n_steps', '--steps', dest='n_steps', type=int, default=20000, help='training steps')
    p.add_argument('--n_hidden', '--layers', dest='n_hidden', type=int, default=2,
                   help='tanh hidden layers per network (the public toy2d.py\'s --layers)')
    p.add_argument('--hidden_dim', type=int, default=50, help='hidden units (per dimension for BNAF)')
    p.add_argument('--n_flows', '--flows', dest='n_flows', type=int, default=1,
                   help='BNAF networks, the coordinates reversed between them')
    p.add_argument('--residual', default='gated', choices=BNAF_RESIDUALS,
                   help='the residual of every BNAF network but the last, which has none (as in the public code)')
    p.add_argument('--batch_size', '--batch_dim', dest='batch_size', type=int, default=200,
                   help='fresh samples per step')
    p.add_argument('--lr', '--learning_rate', dest='lr', type=float, default=1e-2,
                   help='Adam\'s (amsgrad) initial learning rate')
    p.add_argument('--lr_decay', '--decay', dest='lr_decay', type=float, default=0.5,
                   help='the learning rate\'s factor on a plateau')
    p.add_argument('--lr_patience', '--patience', dest='lr_patience', type=int, default=2000,
                   help='steps without a new best loss before the learning rate decays (never below 5e-4)')
    p.add_argument('--clip_norm', type=float, default=0.1, help='the gradients\' global norm is clipped to this')
    p.add_argument('--log_interval', type=int, default=1000,
                   help='a loss line and {output_dir}/step_<N>.png every N steps and at the last')
    p.add_argument('--output_dir', default='toy_runs', help='the output folder: the plots and the checkpoint')
    p.add_argument('--save', action='store_true',
                   help='with --experiment and neither --train nor --plot: write {output_dir}/checkpoint after '
                        'training (--train always does)')
    p.add_argument('--savefig', action='store_true',
                   help='with --experiment and neither --train nor --plot: write the figures '
                        '{output_dir}/step_<N>.png (--train and --plot always do)')
    p.add_argument('--seed', type=int, default=0,
                   help='seeds the initial weights and a data set\'s training samples (its test samples: seed + 1)')
    p.add_argument('--overwrite', action='store_true',
                   help='--output_dir holds a checkpoint of another run: delete it and its figures first')
    p.add_argument('--no_progress', action='store_true', help='no progress bar')
    return p


# what shows that --output_dir holds a run, and what such a run wrote there
RUN_SHOWN_BY = ('checkpoint.index',)
RUN_OUTPUTS = ('checkpoint.index', 'checkpoint.data-*', 'step_*.png')


def check(args):
    """Settle --dataset (its default by --experiment; t1-t4 become u1-u4, args.dataset_name keeps the name given),
    then raise ValueError / FileNotFoundError naming the first bad flag."""
    if not (args.train or args.plot or args.experiment):
        raise ValueError('one of --train, --plot or --experiment is needed')
    if args.dataset is None:
        args.dataset = toy2d.ENERGIES[0] if args.experiment == 'energy2d' else toy2d.DATASETS[0]
    args.dataset_name = args.dataset
    args.dataset = PUBLIC_ENERGY_NAMES.get(args.dataset, args.dataset)
    if args.experiment:
        names, kind = EXPERIMENTS[args.experiment]
        if args.dataset not in names:
            raise ValueError(f'--experiment {args.experiment} needs {kind} for --dataset, got --dataset '
                             f'{args.dataset_name}')
    for flag in ('n_steps', 'n_hidden', 'hidden_dim', 'n_flows', 'batch_size', 'log_interval', 'lr_patience'):
        if getattr(args, flag) < 1:
            raise ValueError(f'--{flag} must be positive, got {getattr(args, flag)}')
    if not 0. < args.lr_decay <= 1. or args.lr <= 0. or args.clip_norm <= 0.:
        raise ValueError('--lr and --clip_norm must be positive and --lr_decay in (0, 1]')
    if args.plot and not args.restore_file:
        raise ValueError('--plot needs --restore_file (a checkpoint prefix written by --train)')
    check_restore_file(args.restore_file, args.flow)
    check_output_folder(args.output_dir, '--output_dir')
    if writes_checkpoint(args):
        check_script_output(args.output_dir, '--output_dir', RUN_SHOWN_BY, args.overwrite, args.restore_file)


def writes_checkpoint(args):
    """Whether this invocation writes {output_dir}/checkpoint: --train, or toy2d.py's form with --save."""
    public_form = args.experiment and not (args.train or args.plot)
    return not args.plot and (args.save or not public_form)


def main(argv=None, prog=PROG):
    """toy_density.py: train or plot, then the test line; returns the exit code (2 bad input, 3 diverged).

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    args = build_parser(prog).parse_args(argv)
    try:
        check(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from emerging.runs.checkpoints import check_matches
    from emerging.vector import Plateau, build_flow, clipped_train_step

    if args.dataset_name != args.dataset:
        print(f'--dataset {args.dataset_name}: the energy {args.dataset} (toy2d.py\'s name for it)')
    # toy2d.py's form writes what its switches ask for; this script's --train and --plot always write
    public_form = args.experiment and not (args.train or args.plot)
    write_checkpoint = writes_checkpoint(args)
    write_figures = args.savefig or not public_form
    energy_mode = args.dataset in toy2d.ENERGIES
    public = args.restore_file and is_torch_file(args.restore_file)
    try:
        if public:  # toy2d.py's layout: gated residuals, none on the last network
            flow = load_public_bnaf(args.restore_file, 'gated', 2, args.n_flows, args.n_hidden, args.hidden_dim)[0]
        else:
            flow = build_flow(args.flow, 2, args.hidden_dim, args.n_hidden, args.n_flows,
                              BNAF_RESIDUALS[args.residual], seed=args.seed)
        if args.restore_file and not public:
            check_matches(args.restore_file, tf.train.Checkpoint(variables=flow.variables), ['variables'],
                          f'--flow {args.flow} with these flags')
    except ValueError as error:
        print(f'{prog}: error: --restore_file: {error}', file=sys.stderr)
        return 2
    optimizer = tf_keras.optimizers.Adam(args.lr, amsgrad=True)
    checkpoint = tf.train.Checkpoint(variables=flow.variables, optimizer=optimizer)
    if args.restore_file and not public:
        checkpoint.restore(args.restore_file).expect_partial()
    if write_checkpoint or write_figures:
        os.makedirs(args.output_dir, exist_ok=True)
    if args.overwrite and write_checkpoint:
        clear_run(args.output_dir, RUN_OUTPUTS)
    rng = np.random.default_rng(args.seed)
    xp = tf.experimental.numpy
    log_z = toy2d.log_normaliser(args.dataset) if energy_mode else None

    def loss_fn(x):
        if energy_mode:
            q = flow.sampler_distribution()
            points = q.sample(args.batch_size)
            return tf.reduce_mean(q.log_prob(points) + toy2d.energy(args.dataset, points, xp=xp))
        return -tf.reduce_mean(flow.density_distribution().log_prob(x))

    train_step = clipped_train_step(loss_fn, flow.variables, optimizer, args.clip_norm)

    def plot(step):
        grid = toy_plots.grid_points()
        if energy_mode:
            target = np.exp(-toy2d.energy(args.dataset, grid) - log_z)
            model = flow.sampler_distribution()
            samples = tf.function(lambda: model.sample(toy_plots.N_SAMPLES), autograph=False)()
            title = f'{args.flow}, step {step}'
        else:
            target = np.exp(toy2d.log_density(args.dataset, grid))
            model = flow.density_distribution()
            # compiled: BNAF's sampling is a root find; draws its last network cannot reach are rejected
            samples, kept = tf.function(lambda: flow.density_samples(toy_plots.N_SAMPLES), autograph=False)()
            title = f'{args.flow}, step {step}' + (f' ({float(kept):.0%} of N(0, I))' if float(kept) < 1. else '')
        learned = np.exp(tf.function(model.log_prob, autograph=False)(tf.constant(grid, tf.float32)).numpy())
        path = os.path.join(args.output_dir, f'step_{step}.png')
        return toy_plots.save_density_panels(path, target, learned, samples.numpy(), title)

    if not args.plot:
        schedule = Plateau(args.lr, args.lr_decay, args.lr_patience)
        steps = range(1, args.n_steps + 1)
        if not args.no_progress:
            from tqdm import tqdm
            steps = tqdm(steps, desc=f'{args.flow} {args.dataset}', dynamic_ncols=True, file=sys.stderr)
        lr, train_time = args.lr, 0.
        for step in steps:
            x = tf.constant(toy2d.sample(args.dataset, args.batch_size, rng) if not energy_mode
                            else np.zeros([args.batch_size, 2]), tf.float32)
            start = time.time()
            loss = float(train_step(x, tf.constant(lr, tf.float32)))
            if step > 1:  # the first call traces
                train_time += time.time() - start
            if not math.isfinite(loss):
                print(f'{prog}: error: the loss is not finite at step {step}', file=sys.stderr)
                return 3
            lr = schedule.step(loss)
            if step % args.log_interval == 0 or step == args.n_steps:
                figure = f', {plot(step)}' if write_figures else ''
                print(f'step {step}: loss {loss:.4f}, lr {lr:.2g}{figure}', flush=True)
        if write_checkpoint:
            print(f'checkpoint: {checkpoint.write(os.path.join(args.output_dir, "checkpoint"))}')
        steps_per_second = (args.n_steps - 1) / train_time if args.n_steps > 1 else float('nan')
        print(f'parameters: {flow.parameter_count:,}; train steps/s: {steps_per_second:.0f}')
    else:
        print(f'plot: {plot(0)}')
    if energy_mode:
        q = flow.sampler_distribution()
        points = q.sample(N_TEST)
        values = (q.log_prob(points) + toy2d.energy(args.dataset, points, xp=xp)).numpy() + log_z
        print(f'KL gap: {values.mean():.4f} +- {values.std(ddof=1) / math.sqrt(N_TEST):.4f} nats')
    else:
        test = tf.constant(toy2d.sample(args.dataset, N_TEST, np.random.default_rng(args.seed + 1)), tf.float32)
        values = -flow.density_distribution().log_prob(test).numpy()
        entropy, entropy_se = toy2d.entropy(args.dataset)
        print(f'test nll: {values.mean():.4f} +- {values.std(ddof=1) / math.sqrt(N_TEST):.4f} nats '
              f'(true: {entropy:.4f} +- {entropy_se:.4f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
