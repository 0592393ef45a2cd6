"""Import a checkpoint of the original TF1 code: `emerging import-tf1` under its former name.

    python scripts/import_tf1_checkpoint.py --tf1_checkpoint PATH/model_best_loss.ckpt --logdir OUT \\
        --problem cifar10 --n_levels 3 --depth 32 --width 512 --flow_permutation 3 --flow_coupling 1 --learnprior
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emerging.cli.command import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(['import-tf1', *sys.argv[1:]]))
