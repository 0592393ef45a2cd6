"""One table across flow families: toy densities and 8x8 digits, each model by its own program
(emerging/cli/compare_families.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.compare_families import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
