"""Ship a trained run with the package as a pretrained model (emerging/cli/package_pretrained.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.package_pretrained import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
