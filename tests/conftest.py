import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def trained_digits_run(tmp_path_factory):
    """A tiny digits run, trained once for the after-training tests: L=2, K=2, width 16, emerging
    convolutions, affine coupling, learned prior; a full validation (test.txt, model_best_loss.ckpt)
    at epoch 2, checkpoints after epochs 2 and 3 (with Polyak averages)."""
    from tests.helpers import DIGITS, TINY, train
    logdir = str(tmp_path_factory.mktemp('trained_digits'))
    train([*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior', '--epochs', '4',
           '--epochs_full_valid', '2', '--epochs_full_sample', '100', '--logdir', logdir])
    return logdir
