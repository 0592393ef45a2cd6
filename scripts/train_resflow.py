"""Train a Residual Flow with the public residual-flows code's command line (train_img.py's flags).

    python scripts/train_resflow.py --data mnist --imagesize 28 --actnorm True --wd 0 --save experiments/mnist
    python scripts/train_resflow.py --data digits --nblocks 2-2 --idim 64 --nepochs 20 --save runs/resflow_digits
    mpiexec -n 2 python scripts/train_resflow.py --data cifar10 --actnorm True --save experiments/cifar10

The run folder (--save) gets what train.py writes (train.txt, test.txt,
checkpoints, sample PNGs, TensorBoard, config.json), so scripts/plot_logs.py
and the `emerging` subcommands work on it.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    return run(argv)[0]


def run(argv=None):
    """Parse flags, build, train; returns (exit code, trainer or None)."""
    from emerging.resflow_flags import build_parser, derive, resume_mode
    from emerging.training.launch import LaunchOptions, launch
    args = build_parser().parse_args(argv)
    try:
        resume, restore_path = resume_mode(args)
    except FileNotFoundError as error:
        print(f'train_resflow.py: error: --resume: {error}', file=sys.stderr)
        return 2, None
    options = LaunchOptions(logdir=args.save, restore_path=restore_path, resume=resume,
                            verbose=args.print_freq, progress=not args.no_progress)
    return launch(lambda rank, size: derive(args, rank, size), options, 'train_resflow.py', args.dataroot)


if __name__ == '__main__':
    sys.exit(main())
