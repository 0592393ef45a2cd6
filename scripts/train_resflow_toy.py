"""2-D density estimation with Residual Flows, the public train_toy.py's command line (emerging/cli/resflow_toy.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.resflow_toy import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
