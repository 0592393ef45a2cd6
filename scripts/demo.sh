#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), trains a small emerging-convolution model
# (--flow_permutation 3) on scikit-learn's bundled handwritten digits (offline) for a few
# minutes on the CPU, then uses it: test bits/dim, samples, an interpolation and digit-class
# manipulations, and says where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LOGDIR=${LOGDIR:-demo_logs}
export TF_CPP_MIN_LOG_LEVEL=2
# a second demo starts over in the same folder, unless it is asked to --resume the first
case " $* " in *" --resume "*) FRESH=() ;; *) FRESH=(--overwrite) ;; esac
.venv/bin/python train.py --problem digits --image_size 8 --anchor_size 8 --n_batch_train 64 \
  --n_levels 2 --depth 8 --width 128 --flow_permutation 3 --flow_coupling 1 --learnprior \
  --epochs 41 --epochs_warmup 2 --epochs_full_valid 10 --epochs_full_sample 10 \
  --logdir "$LOGDIR" "${FRESH[@]}" "$@"
OUT="$LOGDIR/after_training"
mkdir -p "$OUT"
.venv/bin/emerging evaluate --logdir "$LOGDIR" --n_dequant 4
.venv/bin/emerging sample --logdir "$LOGDIR" --n 100 --temperatures 0.7,1 --seed 0 --out "$OUT/samples.png"
.venv/bin/emerging interpolate --logdir "$LOGDIR" --test_index 0 1 --steps 9 --out "$OUT/interpolation.png"
.venv/bin/emerging manipulate --logdir "$LOGDIR" --attributes 0,1,7 --test_index 3 --n_examples 1497 \
  --out "$OUT/manipulation.png"
echo
echo "demo: done. Outputs in $LOGDIR/:"
echo "  train.txt, test.txt, config.json   JSON logs (the original's keys) and the run's configuration"
echo "  model_best_loss.ckpt.*             best validation checkpoint; checkpoints/ the latest epochs"
echo "  epoch_*_sample_{0..7}.png          sample grids at temperatures 0 .25 .5 .6 .7 .8 .9 1"
echo "  tensorboard/                       curves: .venv/bin/tensorboard --logdir $LOGDIR/tensorboard"
echo "  after_training/samples_t*.png      emerging sample: temperatures 0.7 and 1"
echo "  after_training/interpolation.png   emerging interpolate: test images 0 -> 1"
echo "  after_training/manipulation.png    emerging manipulate: test image 3 along digits 0, 1, 7"
