"""Two Horovod processes: train.py and scripts/train_resflow.py end with the same weights on both, `emerging
evaluate` is the mean over all test images, scripts/check_gpu.py prints every rank and averages the loss.

One `mpiexec -n 2` launch of two_process_checks.py runs every check in the same two processes (TensorFlow and
Horovod start once); each test asserts on its check's outputs.  Launching a real command line under mpiexec and
signalling one of its processes: tests/cli/test_faults.py."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.cli.test_command import result as evaluate_result
from tests.helpers import DIGITS, ROOT, TINY, env, mpiexec_command
from tests.scripts.test_gpu_setup import TINY as CHECK_GPU_TINY
from tests.scripts.test_gpu_setup import step_lines

# every test here reads the outputs of the mpiexec launch, which runs alone
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def checks(out_dir):
    """two_process_checks.py's checks.json: [name, program, arguments], in the order they run.  Small models
    with more than 20 variables each (the Glow's 37, two levels of one step; the Residual Flow's 36, a block per
    scale, spectral-norm vectors among them): tracing their steps, which grows with the blocks, is most of the
    time."""
    glow = out_dir / 'glow'
    return [
        ['glow', 'train', [*DIGITS, *TINY, '--depth', '1', '--flow_permutation', '3', '--flow_coupling', '1',
                           '--learnprior', '--n_train', '128', '--epochs', '3', '--epochs_full_valid', '2',
                           '--epochs_full_sample', '100', '--logdir', str(glow / 'logs')]],
        *([f'evaluate_k{k}', 'emerging', ['evaluate', '--logdir', str(glow / 'logs'), '--n_dequant', k]]
          for k in ('0', '1')),
        ['resflow', 'train_resflow', ['--data', 'digits', '--nblocks', '1-1', '--idim', '8', '--fc-end', 'False',
                                      '--batchsize', '32', '--nepochs', '1', '--warmup-iters', '0',
                                      '--val-batchsize', '50', '--no-progress', '--save',
                                      str(out_dir / 'resflow' / 'run')]],
        ['check_gpu', 'check_gpu', [*CHECK_GPU_TINY, '--allow_cpu']],
    ]


@pytest.fixture(scope='module')
def launches():
    """The module's launch, once made: {'out_dir': folder of the outputs, 'output': mpiexec's exit and output}."""
    return {}


@pytest.fixture
def two_processes(launches, tmp_path_factory):
    """The outputs of the one launch, made when the first test asks.  Function scope, so that the launch runs
    inside that test's exclusive hold of the serial room (tests/conftest.py), which a module-scoped fixture
    would precede."""
    if not launches:
        import horovod.tensorflow  # noqa: F401  (the checks need it: fail here, not in mpiexec)
        out_dir = tmp_path_factory.mktemp('two_processes')
        (out_dir / 'checks.json').write_text(json.dumps(checks(out_dir)))
        command = mpiexec_command(2) + [sys.executable, os.path.join(ROOT, 'tests', 'training',
                                                                     'two_process_checks.py'), str(out_dir)]
        try:
            launch = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=1200)
            output = f'mpiexec exit {launch.returncode}\n{launch.stdout}\n{launch.stderr[-5000:]}'
        except subprocess.TimeoutExpired as timeout:
            output = f'mpiexec timed out:\n{timeout.stdout}\n{timeout.stderr}'
        launches.update(out_dir=out_dir, output=output)
    return launches


def ranks_of(two_processes, name):
    """The check's results on ranks 0 and 1 ({"code", "stdout", "stderr", ...}), after asserting that it exited 0
    on both."""
    folder = two_processes['out_dir'] / name
    results = []
    for rank in range(2):
        path = folder / f'rank{rank}.json'
        assert path.exists(), f'{name} did not run on rank {rank}: {two_processes["output"]}'
        results.append(json.loads(path.read_text()))
        assert results[-1]['code'] == 0, (name, rank, results[-1], two_processes['output'])
    return results


def identical_weights_on_both_ranks(folder):
    """two_process_checks.py's dumps of the two ranks, after checking every variable is the same on both."""
    ranks = [np.load(folder / f'rank{r}.npz') for r in range(2)]
    assert int(ranks[0]['size']) == 2
    weights = [k for k in ranks[0].files if k.startswith('w')]
    assert len(weights) > 20
    for key in weights:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
    return ranks


def test_two_processes_end_with_identical_weights(two_processes):
    """train.py: identical weights, different data per rank with one averaged loss, one set of logs counting
    both processes, each rank's input position saved, --inference writing the whole test set in order."""
    outputs = ranks_of(two_processes, 'glow')
    stdout = outputs[0]['stdout'] + outputs[1]['stdout']
    assert 'Horovod: process 0 of 2' in stdout
    folder = two_processes['out_dir'] / 'glow'
    logdir = folder / 'logs'
    ranks = identical_weights_on_both_ranks(folder)
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
    assert stdout.count('parameters: ') == 1
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
    assert [output['inference_code'] for output in outputs] == [0, 0], outputs
    assert 'inference: wrote x.npy' in outputs[0]['inference']
    assert outputs[1]['inference'] == ''


def test_two_processes_train_a_residual_flow_to_identical_weights(two_processes):
    """scripts/train_resflow.py: identical weights (and spectral-norm vectors) on both ranks, different data per
    rank, one log counting both processes."""
    ranks_of(two_processes, 'resflow')
    folder = two_processes['out_dir'] / 'resflow'
    ranks = identical_weights_on_both_ranks(folder)
    assert ranks[0]['local'] != ranks[1]['local']
    with open(folder / 'run' / 'train.txt') as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    assert lines[0]['n_processes'] == 2 and lines[0]['model_kind'] == 'resflow'
    assert [line['epoch'] for line in lines[1:]] == [1]
    assert lines[1]['n_images'] == 2 * 24 * 32  # ceil(1497 / 64) steps of 32 images on each process


def test_evaluate_under_mpiexec_is_the_mean_over_all_images(two_processes, capsys, monkeypatch):
    """`emerging evaluate` on two processes prints once, splits the 300 test images between them and gives the
    mean and standard error of one process (deterministic: to 2e-4; one noise draw: to 0.01)."""
    import emerging.cli.command as emerging_cli
    monkeypatch.setattr(emerging_cli, 'SUBCOMMANDS', {'evaluate': 'evaluate'})  # build only evaluate's parser
    logdir = str(two_processes['out_dir'] / 'glow' / 'logs')
    for k, tolerance in (('0', 2e-4), ('1', 0.01)):
        code = emerging_cli.main(['evaluate', '--logdir', logdir, '--n_dequant', k])
        out, err = capsys.readouterr()
        assert code == 0, err
        single = evaluate_result(out)
        outputs = ranks_of(two_processes, f'evaluate_k{k}')
        stdout = outputs[0]['stdout'] + outputs[1]['stdout']
        assert stdout.count('test bits_x') == 1 and '2 processes x 6 batches of 25' in stdout
        mean, se = evaluate_result(stdout)
        assert abs(mean - single[0]) < tolerance and abs(se - single[1]) < max(tolerance, 1e-3)


def test_check_gpu_under_mpiexec_prints_every_rank_and_averages_the_loss(two_processes):
    """scripts/check_gpu.py --allow_cpu: each rank's process, build and timing lines; the same loss on both."""
    outputs = ranks_of(two_processes, 'check_gpu')
    stdout = outputs[0]['stdout'] + outputs[1]['stdout']
    losses = [step_lines(stdout, rank, 2) for rank in range(2)]
    assert losses[0] == losses[1]  # the statistics are averaged over both processes by Horovod's allreduce
