"""Write Glow-format TFRecord shards from a folder of images or a NumPy array (emerging/cli/write_tfrecords.py)."""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.write_tfrecords import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
