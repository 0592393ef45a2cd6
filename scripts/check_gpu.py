"""GPUs, Horovod's build and one timed train step per process (emerging/cli/check_gpu.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.check_gpu import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
