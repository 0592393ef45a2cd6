"""Tabular density estimation (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) with BNAF, MAF or RealNVP.

    python scripts/tabular_density.py --dataset miniboone --data_dir data --flow bnaf --flows 5 --layers 0 \
        --hidden_dim 10 --output_dir runs/miniboone

--data_dir is the extracted data/ folder of the MAF benchmark archive (files and preprocessing in
emerging/data/tabular.py); by default data/ in the working directory, where the public density_estimation.py
reads it, so that code's command line runs as printed (its --save is accepted: the best checkpoint is always
written, since the plateau restores it).  Training follows the public BNAF code: Adam (amsgrad) on shuffled train
batches, gradients clipped to --clip_norm, a Polyak average of the weights (--polyak) that is what validation and
test see; after every epoch the validation NLL: a new best (by more than 1e-4) writes {output_dir}/best, more than
--patience epochs without one restore the best and multiply the learning rate by --decay (not below --min_lr),
then --cooldown epochs pass uncounted; training stops after --early_stopping epochs without a new best or after
--epochs.  TensorBoard curves (loss/train, loss/validation, lr) go to {output_dir}.  The last line is
`test nll: <X> +- <SE> nats (published BNAF: <Y>)` for the best weights' Polyak average.  Training refuses an
--output_dir holding another run's best checkpoint (unless it starts from that very one with --restore_file);
--overwrite deletes it and the curves first.  --restore_file starts
from a checkpoint this script wrote, or from a checkpoint.pt of the public BNAF code (density_estimation.py's,
for the same --flows, --layers, --hidden_dim and --residual: its weights and its Polyak averages, which that code
does not debias, so they are used as saved); --epochs 0 only evaluates it.
"""
import argparse
import math
import os
import sys

from emerging.choices import BNAF_RESIDUALS, VECTOR_FLOWS
from emerging.cli.paths import check_output_folder
from emerging.cli.public_bnaf import check_restore_file, is_torch_file, load_public_bnaf
from emerging.data import tabular
from emerging.runs.folder import check_script_output, clear_run

PROG = 'tabular_density.py'


def build_parser(prog=PROG):
    """tabular_density.py's parser (the public BNAF density_estimation.py's flags, plus --flow); `prog` is the
    program's name in the usage line and error messages."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument('--dataset', required=True, choices=tabular.DATASETS, help='the benchmark')
    p.add_argument('--data_dir', default='data',
                   help='the extracted data/ folder of the MAF benchmark archive (default: data, in the working '
                        'directory, as the public density_estimation.py reads it)')
    p.add_argument('--flow', default='bnaf', choices=VECTOR_FLOWS,
                   help='bnaf, or a maf / realnvp stack of about the parameter count of the BNAF these flags describe')
    p.add_argument('--learning_rate', type=float, default=1e-2, help='Adam\'s (amsgrad) initial learning rate')
    p.add_argument('--batch_dim', type=int, default=200, help='the batch size of training and evaluation')
    p.add_argument('--clip_norm', type=float, default=0.1, help='the gradients\' global norm is clipped to this')
    p.add_argument('--epochs', type=int, default=1000, help='at most N epochs (0: only evaluate --restore_file)')
    p.add_argument('--patience', type=int, default=20,
                   help='epochs without a new best validation loss before the learning rate decays')
    p.add_argument('--cooldown', type=int, default=10, help='epochs after a decay that --patience does not count')
    p.add_argument('--early_stopping', type=int, default=100,
                   help='stop after N epochs without a new best validation loss')
    p.add_argument('--decay', type=float, default=0.5,
                   help='the learning rate\'s factor on a plateau (the best weights restored)')
    p.add_argument('--min_lr', type=float, default=5e-4, help='the learning rate\'s floor')
    p.add_argument('--polyak', type=float, default=0.998,
                   help='the decay of the Polyak average of the weights, which validation and test use')
    p.add_argument('--flows', type=int, default=5, help='BNAF networks, reversed between')
    p.add_argument('--layers', type=int, default=1,
                   help='tanh layers per network (0 builds one, as the public code does)')
    p.add_argument('--hidden_dim', type=int, default=10, help='hidden units per dimension')
    p.add_argument('--residual', default='gated', choices=BNAF_RESIDUALS,
                   help='the residual of every BNAF network but the last, which has none (as in the public code)')
    p.add_argument('--restore_file', default='',
                   help='start from this checkpoint: a prefix this script wrote ({output_dir}/best), or a '
                        'checkpoint.pt of the public BNAF code for the same flags (its weights and Polyak averages); '
                        'with --epochs 0, only evaluate it')
    p.add_argument('--output_dir', default='tabular_runs',
                   help='the output folder: the best checkpoint ({output_dir}/best) and TensorBoard curves')
    p.add_argument('--save', action='store_true',
                   help='the public density_estimation.py\'s switch to save the best model: accepted; '
                        '{output_dir}/best is always written, as the plateau restores it')
    p.add_argument('--seed', type=int, default=0, help='seeds the initial weights and the order of the batches')
    p.add_argument('--overwrite', action='store_true',
                   help='--output_dir holds another run\'s best checkpoint: delete it and its curves first')
    p.add_argument('--no_progress', action='store_true', help='no progress bars')
    return p


# what shows that --output_dir holds a run, and what such a run wrote there
RUN_SHOWN_BY = ('best.index',)
RUN_OUTPUTS = ('best.index', 'best.data-*', 'events.out.tfevents.*')


def check(args):
    """Raise ValueError / FileNotFoundError naming the first bad flag."""
    for flag in ('batch_dim', 'flows', 'hidden_dim', 'early_stopping'):
        if getattr(args, flag) < 1:
            raise ValueError(f'--{flag} must be positive, got {getattr(args, flag)}')
    if args.epochs < (0 if args.restore_file else 1):
        raise ValueError(f'--epochs must be positive (0 only to evaluate a --restore_file), got {args.epochs}')
    check_restore_file(args.restore_file, args.flow)
    for flag in ('patience', 'cooldown', 'layers'):
        if getattr(args, flag) < 0:
            raise ValueError(f'--{flag} must not be negative, got {getattr(args, flag)}')
    if args.learning_rate <= 0. or args.clip_norm <= 0. or args.min_lr < 0.:
        raise ValueError('--learning_rate and --clip_norm must be positive and --min_lr not negative')
    if not 0. < args.decay <= 1.:
        raise ValueError(f'--decay must be in (0, 1], got {args.decay}')
    if not 0. <= args.polyak < 1.:
        raise ValueError(f'--polyak must be in [0, 1), got {args.polyak}')
    check_output_folder(args.output_dir, '--output_dir')
    if args.epochs:  # --epochs 0 only evaluates: it writes no checkpoint
        restore = args.restore_file if args.restore_file and not is_torch_file(args.restore_file) else ''
        check_script_output(args.output_dir, '--output_dir', RUN_SHOWN_BY, args.overwrite, restore)


def main(argv=None, prog=PROG):
    """tabular_density.py: train, then the test line; returns the exit code (2 bad input, 3 diverged).

    Args:
      argv: the arguments (default: the process's).
      prog: the program's name in the usage line and error messages.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    args = build_parser(prog).parse_args(argv)
    try:
        check(args)
        train, validation, test = tabular.load(args.dataset, args.data_dir)
    except (ValueError, FileNotFoundError) as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from emerging.averaging import PolyakAverage
    from emerging.runs.checkpoints import check_matches
    from emerging.vector import Plateau, build_flow, clipped_train_step, public_polyak_averages

    dims = train.shape[1]
    print(f'{args.dataset}: d = {dims}, train {len(train):,}, validation {len(validation):,}, test {len(test):,}')
    public = args.restore_file and is_torch_file(args.restore_file)
    try:
        if public:  # the public code's layout: no residual on the last network
            flow, order, saved = load_public_bnaf(args.restore_file, BNAF_RESIDUALS[args.residual], dims, args.flows,
                                                  max(1, args.layers), args.hidden_dim)
        else:
            flow = build_flow(args.flow, dims, args.hidden_dim, max(1, args.layers), n_flows=args.flows,
                              residual=BNAF_RESIDUALS[args.residual], baseline_units=args.hidden_dim * dims,
                              seed=args.seed)
        variables = flow.variables
        polyak = PolyakAverage(variables, args.polyak)
        if public:
            polyak.assign_averages(public_polyak_averages(flow, order, saved['optimizer']))
        elif args.restore_file:
            check_matches(args.restore_file, tf.train.Checkpoint(variables=variables, polyak=polyak),
                          ['variables', 'polyak'], f'--flow {args.flow} with these flags')
    except ValueError as error:
        print(f'{prog}: error: --restore_file: {error}', file=sys.stderr)
        return 2
    print(f'{args.flow}: {flow.parameter_count:,} parameters' + (f', from {args.restore_file}' if public else ''))
    density = flow.density_distribution()
    optimizer = tf_keras.optimizers.Adam(args.learning_rate, amsgrad=True)
    checkpoint = tf.train.Checkpoint(variables=variables, optimizer=optimizer, polyak=polyak)
    if args.restore_file and not public:
        checkpoint.read(args.restore_file).expect_partial()
    os.makedirs(args.output_dir, exist_ok=True)
    if args.overwrite and args.epochs:
        clear_run(args.output_dir, RUN_OUTPUTS)
    best_path = os.path.join(args.output_dir, 'best')
    writer = tf.summary.create_file_writer(args.output_dir)

    train_step = clipped_train_step(lambda x: -tf.reduce_mean(density.log_prob(x)), variables, optimizer,
                                    args.clip_norm, after_update=polyak.update)

    log_prob = tf.function(density.log_prob, reduce_retracing=True, autograph=False)

    def negative_log_likelihoods(data):
        return np.concatenate([-log_prob(tf.constant(data[k:k + args.batch_dim])).numpy()
                               for k in range(0, len(data), args.batch_dim)])

    def averaged_nll(data):
        polyak.swap_polyak()
        try:
            return negative_log_likelihoods(data)
        finally:
            polyak.swap_polyak()

    rng = np.random.default_rng(args.seed)
    schedule = Plateau(args.learning_rate, args.decay, args.patience, args.min_lr, args.cooldown)
    lr, saved = args.learning_rate, None
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train))
        batches = range(0, len(train), args.batch_dim)
        if not args.no_progress:
            from tqdm import tqdm
            batches = tqdm(batches, desc=f'epoch {epoch}', leave=False, dynamic_ncols=True, file=sys.stderr)
        losses = [float(train_step(tf.constant(train[order[k:k + args.batch_dim]]), tf.constant(lr, tf.float32)))
                  for k in batches]
        train_loss = float(np.mean(losses))
        if not math.isfinite(train_loss):
            print(f'{prog}: error: the train loss is not finite in epoch {epoch}', file=sys.stderr)
            return 3
        validation_loss = float(averaged_nll(validation).mean())
        lr = schedule.step(validation_loss)
        if schedule.improved:
            saved = checkpoint.write(best_path)
        if schedule.reduced and saved:
            checkpoint.read(saved).assert_consumed()
        print(f'epoch {epoch}: train_loss {train_loss:.4f}, validation_loss {validation_loss:.4f}, lr {lr:.2g}',
              flush=True)
        with writer.as_default(step=epoch):
            tf.summary.scalar('loss/train', train_loss)
            tf.summary.scalar('loss/validation', validation_loss)
            tf.summary.scalar('lr', lr)
        if schedule.since_best >= args.early_stopping:
            print(f'no new best validation loss for {args.early_stopping} epochs: stopping')
            break
    if saved:
        checkpoint.read(saved).assert_consumed()
    print(f'best checkpoint: {saved}' if saved else f'not trained: the weights of {args.restore_file}')
    values = averaged_nll(test)
    print(f'validation nll: {averaged_nll(validation).mean():.4f} nats')
    print(f'test nll: {values.mean():.4f} +- {values.std(ddof=1) / math.sqrt(len(values)):.4f} nats '
          f'(published BNAF: {tabular.PUBLISHED_BNAF[args.dataset]:.2f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
