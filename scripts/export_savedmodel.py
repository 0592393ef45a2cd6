"""Export a SavedModel from an existing training run: `emerging export` under its former name.

    python scripts/export_savedmodel.py --logdir LOGDIR --export_dir DIR [--weights best|latest|polyak]
        [--checkpoint PREFIX]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.command import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(['export', *sys.argv[1:]]))
