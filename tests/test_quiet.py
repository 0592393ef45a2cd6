"""TensorFlow's start-up noise filtered out of the command lines' and notebooks' output (emerging/quiet.py)."""
import subprocess
import sys
import textwrap

import pytest

from emerging import quiet
from tests.helpers import ROOT, env

FAKE_TENSORFLOW = textwrap.dedent('''
    import os
    os.write(2, b"E cuda_fft.cc:477] Unable to register cuFFT factory: Attempting to register factory\\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"E0000 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register\\n")
    os.write(2, b"a real message of the import\\n")

    class config:
        @staticmethod
        def list_physical_devices(kind):
            os.write(2, b"E cuda_driver.cc:152] failed call to cuInit: INTERNAL: CUDA error\\n")
            return []
''')


def test_noise_is_recognised_and_cuinit_kept_where_a_driver_is():
    line = 'E0000 00:00:17 cuda_blas.cc:1418] Unable to register cuBLAS factory: Attempting to register'
    assert quiet.is_noise(line, driver=False) and quiet.is_noise(line, driver=True)
    cuinit = 'E cuda_driver.cc:152] failed call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)'
    assert quiet.is_noise(cuinit, driver=False) and not quiet.is_noise(cuinit, driver=True)
    assert not quiet.is_noise('Traceback (most recent call last):', driver=False)


def test_the_first_import_keeps_real_lines_and_drops_the_noise(tmp_path):
    (tmp_path / 'tensorflow').mkdir()
    (tmp_path / 'tensorflow' / '__init__.py').write_text(FAKE_TENSORFLOW)
    code = 'import emerging, tensorflow, sys; print("imported", tensorflow.__name__); sys.exit(0)'
    e = env()
    e['PYTHONPATH'] = f'{tmp_path}:{e["PYTHONPATH"]}'
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=e, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'imported tensorflow'
    expected = ['a real message of the import'] + (['E cuda_driver.cc:152] failed call to cuInit: INTERNAL: CUDA error']
                                                   if quiet.has_nvidia_driver() else [])
    assert result.stderr.splitlines() == expected


@pytest.mark.slow
def test_a_command_on_this_machine_prints_no_cuda_noise():
    code = 'import emerging, tensorflow as tf; print(int(tf.reduce_sum(tf.ones([3]))))'
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == '3', result.stderr
    assert 'Unable to register' not in result.stderr and 'absl::InitializeLog' not in result.stderr
    if not quiet.has_nvidia_driver():
        assert 'cuInit' not in result.stderr
