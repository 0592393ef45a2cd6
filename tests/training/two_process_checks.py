"""Run under `mpiexec -n 2` by tests/training/test_horovod.py: the checks that need two Horovod processes, one
after another in the same two processes, so that TensorFlow and Horovod start once for all of them.

    mpiexec -n 2 python tests/training/two_process_checks.py OUT_DIR

OUT_DIR/checks.json lists the checks, in order, as [name, program, arguments]:

* train: train.py's own entry point; then each rank dumps its weights and its local and averaged loss on its own
  batch (NAME/rank{r}.npz), and both ranks run train.py --inference (same arguments) on the best checkpoint;
* train_resflow: scripts/train_resflow.py's entry point, then the dumps as for train (no inference);
* emerging: the `emerging` command line's main (`python -m emerging ARGUMENTS`);
* check_gpu: scripts/check_gpu.py's main.

Each rank writes NAME/rank{r}.json: the exit code, what the program printed on that rank and the check's wall time
({"code", "stdout", "stderr", "seconds"}; for train also "inference_code" and "inference", the exit code and
output of the --inference run).  The first check that fails or raises ends both processes (exit code 1; mpiexec
stops the other), since the next check's collective operations would wait for the process that stopped.
"""
import contextlib
import io
import json
import os
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def captured(function, *args):
    """(what `function(*args)` returned, its stdout, its stderr); an exception's traceback ends its stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            returned = function(*args)
        except Exception:
            traceback.print_exc()
            returned = None
    return returned, out.getvalue(), err.getvalue()


def dump(trainer, path):
    """The trainer's weights, and its model's loss on the first 8 images of its own init batch, on this rank and
    averaged over the ranks."""
    import tensorflow as tf
    x, y = trainer.data.init_batch
    local = float(tf.reduce_mean(trainer.model.losses_per_example(tf.constant(x[:8]), tf.constant(y[:8]),
                                                                  noise=False)['loss']))
    averaged = float(trainer.dist.allreduce_mean([tf.constant(local)], name='check')[0])
    np.savez(path, local=local, averaged=averaged, size=trainer.dist.size,
             **{f'w{i}': v.numpy() for i, v in enumerate(trainer.model.variables)})


def run_check(program, args, folder, rank):
    """One check on this rank: {"code" (None: it raised), "stdout", "stderr"[, "inference_code", "inference"]}."""
    from emerging.cli import check_gpu, command, train, train_resflow
    if program in ('train', 'train_resflow'):
        module = train if program == 'train' else train_resflow
        returned, out, err = captured(module.run, args)
        code, trainer = returned or (None, None)
        result = {'code': code, 'stdout': out, 'stderr': err}
        if code == 0:
            dump(trainer, os.path.join(folder, f'rank{rank}.npz'))
            if program == 'train':
                returned, result['inference'], err = captured(train.run, [*args, '--inference'])
                result['inference_code'] = returned[0] if returned else None
                result['stderr'] += err
        return result
    main = {'emerging': command.main, 'check_gpu': check_gpu.main}[program]
    code, out, err = captured(main, args)
    return {'code': code, 'stdout': out, 'stderr': err}


def main():
    out_dir = sys.argv[1]
    with open(os.path.join(out_dir, 'checks.json')) as f:
        checks = json.load(f)
    from emerging.training.distributed import Distributed
    rank = Distributed().rank
    for name, program, args in checks:
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        start = time.perf_counter()
        result = run_check(program, args, folder, rank)
        result['seconds'] = time.perf_counter() - start
        with open(os.path.join(folder, f'rank{rank}.json'), 'w') as f:
            json.dump(result, f)
        if result['code'] != 0 or result.get('inference_code', 0) != 0:
            sys.stderr.write(f'rank {rank}: check {name} failed:\n{result["stderr"]}')
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
