#!/usr/bin/env bash
# Made these run folders with version 0.3.0 of this project on TensorFlow 2.18.1, so that the tests can check
# that later versions and TensorFlow releases read its runs and resume them: from a checkout of that version with
# its .venv,
#     bash tests/runs/v0_3_0/make.sh OUT
# trains a tiny Glow run (train.py) and a tiny Residual Flow run (scripts/train_resflow.py) on digits and
# records, with that version's load_run, each weights' latents (and, for Glow, bits_x) of the first 8 test
# digits without dequantisation noise in OUT/expected.npz.  Everything a --resume reads is kept (the committed
# checkpoint with its input position, the logs); TensorBoard's files and pictures are not.
set -euo pipefail
OUT=$1
PY=.venv/bin/python
mkdir -p "$OUT"
$PY train.py --problem digits --image_size 8 --anchor_size 8 --n_batch_train 32 --n_batch_init 64 --n_train 64 \
    --n_levels 2 --depth 1 --width 4 --gradient_checkpointing 0 --flow_permutation 3 --flow_coupling 1 \
    --epochs 4 --epochs_full_valid 2 --epochs_full_sample 100 --no_progress --seed 0 \
    --logdir "$OUT/glow" > /dev/null
$PY scripts/train_resflow.py --data digits --nblocks 1-1 --idim 8 --fc-idim 4 --batchsize 64 --nepochs 3 \
    --warmup-iters 0 --valid-freq 2 --vis-freq 100000 --print-freq 1000 --no-progress --save "$OUT/resflow" > /dev/null
for run in glow resflow; do  # the best checkpoint (epoch 2) and the latest (epoch 3) with its input position
    rm -rf "$OUT/$run"/tensorboard "$OUT/$run"/*.png "$OUT/$run"/checkpoints/*-2.*
    printf 'model_checkpoint_path: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-3"\n' > "$OUT/$run"/checkpoints/checkpoint
done
$PY - "$OUT" <<'PYTHON'
import os, sys
import numpy as np
import tensorflow as tf
import emerging
from emerging.data import DataConfig, ordered_split

out = sys.argv[1]
x, y = next(ordered_split(DataConfig(problem='digits', image_size=8), 'test', limit=8, batch=8))
expected = {'x': x, 'y': y}
for run in ('glow', 'resflow'):
    for weights in ('best', 'latest', 'polyak'):
        model = emerging.load_run(os.path.join(out, run), weights).model
        expected[f'{run}_{weights}_z'] = model.encode(tf.constant(x), tf.constant(y), noise=False).numpy()
        if run == 'glow':  # a Residual Flow's log-det is an estimate; its latents fix its weights
            losses = model.losses_per_example(tf.constant(x), tf.constant(y), noise=False)
            expected[f'{run}_{weights}_bits_x'] = losses['bits_x'].numpy()
np.savez_compressed(os.path.join(out, 'expected.npz'), **expected)
PYTHON
