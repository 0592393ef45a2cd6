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
    from emerging.training.launch import LaunchOptions, launch
    args = build_parser().parse_args(argv)
    options = LaunchOptions(logdir=args.logdir, restore_path=args.restore_path, inference=args.inference,
                            resume=args.resume, export_dir=args.export_dir, verbose=args.verbose,
                            progress=not args.no_progress)
    data_dir = os.path.join(args.data_dir, args.category) if args.category else args.data_dir
    return launch(lambda rank, size: derive(args, rank, size), options, 'train.py', data_dir)


if __name__ == '__main__':
    sys.exit(main())
