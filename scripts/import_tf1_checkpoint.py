"""Import a checkpoint of the original TF1 code into this project's format.

    python scripts/import_tf1_checkpoint.py --tf1_checkpoint PATH/model_best_loss.ckpt --logdir OUT \\
        --problem cifar10 --n_levels 3 --depth 32 --width 512 --flow_permutation 3 --flow_coupling 1 --learnprior

Takes the model flags of train.py exactly as the original run was started
(architecture flags must match; data and optimiser flags are recorded but not
used) and writes {OUT}/model_best_loss.ckpt plus {OUT}/train.txt holding the
hyperparameter line, so that afterwards

    python train.py ... --inference --logdir OUT          (encode/decode the test set)
    python train.py ... --restore_path OUT/model_best_loss.ckpt   (fine-tune)
    python scripts/export_savedmodel.py --logdir OUT --export_dir DIR

all work.  Every `model/` variable of the checkpoint must map onto the model
and every model weight must be in the checkpoint, with the same shape;
otherwise nothing is written and the problems are listed.
"""
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    from emerging.flags import build_parser, derive
    parser = build_parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument('--tf1_checkpoint', required=True, help='checkpoint prefix written by the original code')
    args = parser.parse_args(argv)

    import tensorflow as tf

    from emerging.model import Glow
    from emerging.tf1_import import CheckpointMismatch, import_tf1_checkpoint
    from emerging.training.state import BEST_CHECKPOINT, write_checkpoint_atomically

    prefix = os.path.join(args.logdir, BEST_CHECKPOINT)
    log = os.path.join(args.logdir, 'train.txt')
    for path in (prefix + '.index', log):
        if os.path.exists(path):
            parser.error(f'{path} exists: --logdir must be a new folder (nothing is overwritten)')
    try:
        run = derive(args)
        model = Glow(run.model)
        report = import_tf1_checkpoint(model, args.tf1_checkpoint)
    except (ValueError, CheckpointMismatch) as error:
        print(f'import_tf1_checkpoint: error: {error}', file=sys.stderr)
        return 2
    os.makedirs(args.logdir, exist_ok=True)
    write_checkpoint_atomically(tf.train.Checkpoint(model=model), prefix)
    hparams = dict(run.hparams, imported_from=os.path.abspath(args.tf1_checkpoint))
    hparams.pop('tf1_checkpoint', None)
    with open(log + '.tmp', 'w') as f:
        f.write(json.dumps(hparams) + '\n')
    os.replace(log + '.tmp', log)
    print(f'imported {len(report["imported"])} variables from {args.tf1_checkpoint} '
          f'(skipped {len(report["skipped"])} that are not weights: Polyak averages, optimiser state)')
    print(f'wrote {prefix} and {log}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
