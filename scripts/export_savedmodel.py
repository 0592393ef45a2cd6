"""Export a SavedModel from an existing training run's checkpoint.

    python scripts/export_savedmodel.py --logdir LOGDIR --export_dir DIR [--checkpoint PREFIX]

The model is rebuilt from the hyperparameters on the first line of
{logdir}/train.txt; the weights come from --checkpoint (default: the best
validation checkpoint {logdir}/model_best_loss.ckpt, else the latest in
{logdir}/checkpoints).
"""
import argparse
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--logdir', required=True)
    parser.add_argument('--export_dir', required=True)
    parser.add_argument('--checkpoint', default='')
    args = parser.parse_args(argv)

    import tensorflow as tf

    from emerging.export import export_savedmodel
    from emerging.flags import build_parser, derive
    from emerging.model import Glow

    log = os.path.join(args.logdir, 'train.txt')
    if not os.path.exists(log):
        raise SystemExit(f'export_savedmodel: {log} not found: --logdir must be a training run folder')
    with open(log) as f:
        hparams = json.loads(f.readline())
    flags = vars(build_parser().parse_args([]))
    flags.update({k: v for k, v in hparams.items() if k in flags})
    run = derive(argparse.Namespace(**flags), rank=0, size=1)
    checkpoint = args.checkpoint
    if not checkpoint:
        best = os.path.join(args.logdir, 'model_best_loss.ckpt')
        checkpoint = best if os.path.exists(best + '.index') else tf.train.latest_checkpoint(
            os.path.join(args.logdir, 'checkpoints'))
    if not checkpoint:
        raise SystemExit(f'export_savedmodel: no checkpoint in {args.logdir}')
    model = Glow(run.model)
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
    if not bool(model.initialized.numpy()):
        raise SystemExit(f'export_savedmodel: {checkpoint} holds no initialised model')
    export_savedmodel(model, args.export_dir)
    print(f'SavedModel of {checkpoint} written to {args.export_dir}')


if __name__ == '__main__':
    main()
