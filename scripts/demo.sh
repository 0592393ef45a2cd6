#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), then trains a small emerging-convolution model
# (--flow_permutation 3) on scikit-learn's bundled handwritten digits (offline) for a few
# minutes on the CPU, and says where the logs, checkpoints and sample grids are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LOGDIR=${LOGDIR:-demo_logs}
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python train.py --problem digits --image_size 8 --anchor_size 8 --n_batch_train 64 \
  --n_levels 2 --depth 8 --width 128 --flow_permutation 3 --flow_coupling 1 --learnprior \
  --epochs 41 --epochs_warmup 2 --epochs_full_valid 10 --epochs_full_sample 10 \
  --logdir "$LOGDIR" "$@"
echo
echo "demo: done. Outputs in $LOGDIR/:"
echo "  train.txt, test.txt            JSON-lines logs (the original's keys)"
echo "  model_best_loss.ckpt.*         best validation checkpoint; checkpoints/ the latest epochs"
echo "  epoch_*_sample_{0..7}.png      sample grids at temperatures 0 .25 .5 .6 .7 .8 .9 1"
echo "  tensorboard/                   curves: .venv/bin/tensorboard --logdir $LOGDIR/tensorboard"
