"""A real two-process Horovod run of train.py under mpiexec."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import DIGITS, ROOT, TINY, env, mpiexec_command

pytestmark = pytest.mark.slow  # end-to-end: subprocesses and real training runs


def identical_weights_on_both_ranks(out_dir):
    """mpi_train_check.py's dumps of the two ranks, after checking every variable is the same on both."""
    ranks = [np.load(out_dir / f'rank{r}.npz') for r in range(2)]
    assert int(ranks[0]['size']) == 2
    weights = [k for k in ranks[0].files if k.startswith('w')]
    assert len(weights) > 20
    for key in weights:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
    return ranks


def test_two_processes_end_with_identical_weights(tmp_path):
    import horovod.tensorflow  # noqa: F401
    logdir = tmp_path / 'logs'
    command = mpiexec_command(2) + [sys.executable, os.path.join(ROOT, 'tests', 'training', 'mpi_train_check.py'),
                                    str(tmp_path), *DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling',
                                    '1', '--learnprior', '--n_train', '128', '--epochs', '3',
                                    '--epochs_full_valid', '2', '--epochs_full_sample', '100',
                                    '--logdir', str(logdir)]
    result = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Horovod: process 0 of 2' in result.stdout
    ranks = identical_weights_on_both_ranks(tmp_path)
    # different data per rank, one averaged statistic
    assert ranks[0]['local'] != ranks[1]['local']
    np.testing.assert_allclose(ranks[0]['averaged'], (ranks[0]['local'] + ranks[1]['local']) / 2, rtol=1e-6)
    np.testing.assert_allclose(ranks[1]['averaged'], ranks[0]['averaged'], rtol=1e-6)
    # one set of files, written by rank 0; per-epoch counters count both processes
    with open(logdir / 'train.txt') as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    assert lines[0]['n_processes'] == 2 and lines[0]['train_its'] == 2
    assert [line['epoch'] for line in lines[1:]] == [1, 2]
    assert lines[1]['n_images'] == 2 * 2 * 32
    assert result.stdout.count('parameters: ') == 1
    # each process saved its own input position beside the checkpoint (exact --resume)
    for rank in range(2):
        assert (logdir / 'checkpoints' / f'input-rank{rank}-2.index').exists()
    # --inference (run by both processes after training) writes the whole test set, in order
    from emerging.data.images import get_data
    from emerging.data.problems import DataConfig
    n_test = lines[0]['n_test']
    whole = get_data(DataConfig(problem='digits', image_size=8, local_batch_test=n_test, local_batch_train=32,
                                local_batch_init=32))
    expected = next(iter(whole.test))[0].numpy()
    x, z, recon = (np.load(logdir / f'{name}.npy') for name in ('x', 'z', 'recon'))
    assert len(x) == len(z) == len(recon) == n_test == 300
    np.testing.assert_array_equal(x, expected)
    assert np.abs(recon.astype(int) - x.astype(int)).max() <= 1
    assert 'inference: wrote x.npy' in (tmp_path / 'inference_rank0.txt').read_text()
    assert (tmp_path / 'inference_rank1.txt').read_text() == ''


def test_two_processes_train_a_residual_flow_to_identical_weights(tmp_path):
    """scripts/train_resflow.py under mpiexec: identical weights (and spectral-norm vectors) on both ranks."""
    import horovod.tensorflow  # noqa: F401
    save = tmp_path / 'run'
    command = mpiexec_command(2) + [sys.executable, os.path.join(ROOT, 'tests', 'training', 'mpi_train_check.py'),
                                    str(tmp_path), '--resflow', '--data', 'digits', '--nblocks', '1-1', '--idim', '8',
                                    '--fc-idim', '8', '--batchsize', '32', '--nepochs', '1', '--warmup-iters', '0',
                                    '--val-batchsize', '50', '--no-progress', '--save', str(save)]
    result = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = identical_weights_on_both_ranks(tmp_path)
    assert ranks[0]['local'] != ranks[1]['local']
    with open(save / 'train.txt') as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    assert lines[0]['n_processes'] == 2 and lines[0]['model_kind'] == 'resflow'
    assert [line['epoch'] for line in lines[1:]] == [1]
    assert lines[1]['n_images'] == 2 * 24 * 32  # ceil(1497 / 64) steps of 32 images on each process
