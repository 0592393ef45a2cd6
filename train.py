"""Train (or run inference with) a Glow-family flow: the original's command line (emerging/cli/train.py).

    python train.py --problem digits --flow_permutation 3 ...                 one process
    mpiexec -n 4 python train.py --problem cifar10 --flow_permutation 3 ...   Horovod

From an installed package (this file is not installed): emerging train ...
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from emerging.cli.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
