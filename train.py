"""Train (or run inference with) a Glow-family flow: the original's command line.

    python train.py --problem digits --flow_permutation 3 ...          one process
    mpiexec -n 4 python train.py --problem cifar10 --flow_permutation 3 ...   Horovod
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def main(argv=None):
    return run(argv)[0]


def run(argv=None):
    """Parse flags, build, train or infer; returns (exit code, trainer or None)."""
    from emerging.flags import build_parser, derive
    args = build_parser().parse_args(argv)

    import tensorflow as tf

    from data_utils import get_data
    from emerging.distributed import Distributed
    from emerging.export import export_savedmodel
    from emerging.model import Glow
    from emerging.run import write_config
    from emerging.training import BEST_CHECKPOINT, Trainer, TrainingDiverged
    from emerging.training.state import check_readable

    dist = Distributed()
    chief = dist.is_chief

    def corrupt_data(error):
        from data_utils.tfrecords import find_corrupt_shards
        data_dir = os.path.join(args.data_dir, args.category) if args.category else args.data_dir
        files = find_corrupt_shards(data_dir, run.data.image_size) if data_dir else []
        where = ', '.join(files) if files else data_dir
        return fail(f'corrupt input record in {where}: {error.message}', code=4)

    def fail(message, code=2):
        if chief:
            print(f'train.py: error: {message}', file=sys.stderr, flush=True)
        return code, None

    try:
        run = derive(args, dist.rank, dist.size)
        if args.restore_path or args.inference:
            check_readable(args.restore_path or os.path.join(args.logdir, BEST_CHECKPOINT))
        if chief:
            print(dist.note, flush=True)
        tf.random.set_seed(run.model.seed)
        data = get_data(run.data)
        model = Glow(run.model)
    except (ValueError, FileNotFoundError) as error:
        return fail(error)
    except tf.errors.DataLossError as error:
        return corrupt_data(error)
    if chief:
        os.makedirs(args.logdir, exist_ok=True)
        if not args.inference:
            write_config(args.logdir, run.model, run.train, run.data, run.hparams)
        counts = model.parameter_counts()
        print('parameters: ' + ', '.join(f'{k} {v:,}' for k, v in counts.items()), flush=True)
    trainer = Trainer(model, run.train, data, dist, args.logdir, run.hparams, verbose=args.verbose,
                      progress=not args.no_progress)
    if args.inference:
        trainer.restore(args.restore_path or os.path.join(args.logdir, BEST_CHECKPOINT))
        trainer.inference()
        if chief:
            print(f'inference: wrote x.npy, z.npy, recon.npy to {args.logdir}', flush=True)
        return 0, trainer
    if args.restore_path:
        # fine-tuning: the weights and optimiser state, no data-dependent init, fresh counters
        trainer.restore(args.restore_path, counters=False)
    try:
        trainer.train(resume=args.resume)
    except TrainingDiverged as error:
        return fail(error, code=3)[0], trainer
    except tf.errors.DataLossError as error:
        return corrupt_data(error)[0], trainer
    if args.export_dir and chief:
        export_savedmodel(model, args.export_dir)
        print(f'SavedModel written to {args.export_dir}', flush=True)
    return 0, trainer


if __name__ == '__main__':
    sys.exit(main())
