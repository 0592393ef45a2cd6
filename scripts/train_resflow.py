"""Train a Residual Flow with the public residual-flows code's command line (emerging/cli/train_resflow.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.train_resflow import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
