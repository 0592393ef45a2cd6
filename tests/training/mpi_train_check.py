"""Run under `mpiexec -n 2`: trains with train.py's own entry point, then each
rank dumps its weights and its local / averaged loss on its own batch; then
both ranks run train.py --inference (same flags) on the best checkpoint, each
rank's output going to inference_rank{r}.txt.  With `--resflow` first, the
run is train_resflow.py's instead (no inference)."""
import contextlib
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from emerging.cli import train, train_resflow  # noqa: E402


def main():
    out_dir, args = sys.argv[1], sys.argv[2:]
    resflow = args[:1] == ['--resflow']
    if resflow:
        args = args[1:]
    code, trainer = (train_resflow if resflow else train).run(args)
    assert code == 0, code
    import tensorflow as tf
    rank = trainer.dist.rank
    x, y = trainer.data.init_batch
    local = float(tf.reduce_mean(trainer.model.losses_per_example(tf.constant(x[:8]), tf.constant(y[:8]),
                                                                  noise=False)['loss']))
    averaged = float(trainer.dist.allreduce_mean([tf.constant(local)], name='check')[0])
    np.savez(os.path.join(out_dir, f'rank{rank}.npz'), local=local, averaged=averaged, size=trainer.dist.size,
             **{f'w{i}': v.numpy() for i, v in enumerate(trainer.model.variables)})
    if resflow:
        return
    with open(os.path.join(out_dir, f'inference_rank{rank}.txt'), 'w') as f, contextlib.redirect_stdout(f):
        code, _ = train.run([*args, '--inference'])
    assert code == 0, code


if __name__ == '__main__':
    main()
