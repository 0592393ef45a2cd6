"""The GPU path on a machine without GPUs: scripts/setup.sh --gpu stops at its checks or, with fakes of the driver,
the CUDA toolkit and NCCL, prints its commands in a dry run; scripts/check_gpu.py stops without a GPU and runs its
train step on the CPU with --allow_cpu on one process (under `mpiexec -n 2`: tests/training/test_horovod.py, with the
other two-process checks in one launch).

setup.sh runs as a copy in a temporary folder (with requirements.txt and setup.py beside it), so its virtualenv is
a temporary one; no test installs or builds anything.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env, run_script

TINY = ['--image_size', '8', '--batch', '4', '--n_levels', '2', '--depth', '1', '--width', '8']
GPU_LINE = 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-00000000-0000-0000-0000-000000000000)'


def pinned_tensorflow():
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        return re.search(r'^tensorflow==(\S+)$', f.read(), re.M)[1]


def executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n' + text)
    path.chmod(0o755)


def fake_driver(bin_dir, gpus=GPU_LINE, version='550.54.15'):
    """An nvidia-smi answering `-L` with `gpus` and the driver-version query with `version`."""
    executable(bin_dir / 'nvidia-smi', f'if [ "$1" = -L ]; then echo "{gpus}"; else echo "{version}"; fi\n')


def fake_cuda(home, release='12.5'):
    """A CUDA toolkit folder: an nvcc reporting `release`, cuda_runtime.h and the static runtime."""
    executable(home / 'bin' / 'nvcc', f'echo "Cuda compilation tools, release {release}, V{release}.82"\n')
    (home / 'include').mkdir()
    (home / 'include' / 'cuda_runtime.h').touch()
    (home / 'lib64').mkdir()
    (home / 'lib64' / 'libcudart_static.a').touch()
    return home


def fake_nccl(home):
    """An NCCL folder: include/nccl.h and lib/libnccl.so."""
    for name in ('include/nccl.h', 'lib/libnccl.so'):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).touch()
    return home


@pytest.fixture
def machine(tmp_path):
    """A copy of the repository's setup files, a folder for fake commands, and the environment to run them in:
    no nvidia-smi on PATH, no CUDA or NCCL variables, PYTHON this interpreter."""
    repo = tmp_path / 'repo'
    (repo / 'scripts').mkdir(parents=True)
    for name in ('setup.sh', 'horovod-0.28.1.patch'):
        shutil.copy(os.path.join(ROOT, 'scripts', name), repo / 'scripts')
    for name in ('requirements.txt', 'setup.py'):
        shutil.copy(os.path.join(ROOT, name), repo)
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    path = [d for d in os.environ['PATH'].split(os.pathsep) if not os.path.exists(os.path.join(d, 'nvidia-smi'))]
    variables = {k: v for k, v in os.environ.items() if not k.startswith(('EMERGING_', 'HOROVOD_', 'NCCL_', 'CUDA_'))}
    variables.update(PATH=os.pathsep.join([str(fake_bin)] + path), PYTHON=sys.executable)
    return repo, fake_bin, variables


def setup_sh(repo, variables, *args):
    result = subprocess.run(['bash', str(repo / 'scripts' / 'setup.sh'), *args], env=variables, capture_output=True,
                            text=True, timeout=120)
    assert not (repo / '.venv').exists(), 'setup.sh created a virtualenv'
    return result


def failure(result):
    assert result.returncode != 0, result.stdout + result.stderr
    assert 'would run: env HOROVOD_' not in result.stdout
    return result.stderr


def test_gpu_mode_without_a_driver_stops_first(machine):
    repo, _, variables = machine
    variables['PYTHON'] = '/bin/false'  # were the driver check not first, the script would stop at Python instead
    stderr = failure(setup_sh(repo, variables, '--gpu'))
    assert stderr == 'setup.sh: ERROR: no NVIDIA driver: nvidia-smi not found (install the NVIDIA driver, 525 or ' \
                     'newer)\n'


MISSING_PIECES = {
    'no GPU': 'no NVIDIA driver: nvidia-smi lists no GPU',
    'old driver': 'NVIDIA driver 470.82.01 is too old',
    'no toolkit': 'no CUDA 12 toolkit (nvcc, cuda_runtime.h, libcudart_static.a), which Horovod needs to build its '
                  'GPU kernels: no bin/nvcc in',
    'CUDA 13': 'no CUDA 12 toolkit',
    'no NCCL': 'no NCCL: ',
}


@pytest.mark.parametrize('case', MISSING_PIECES)
def test_gpu_mode_names_the_missing_piece(machine, tmp_path, case):
    repo, fake_bin, variables = machine
    fake_driver(fake_bin, gpus='No devices were found' if case == 'no GPU' else GPU_LINE,
                version='470.82.01' if case == 'old driver' else '550.54.15')
    cuda = tmp_path / 'cuda'
    if case == 'no toolkit':
        cuda.mkdir()
    else:
        fake_cuda(cuda, '13.0' if case == 'CUDA 13' else '12.5')
    (tmp_path / 'empty').mkdir()
    variables.update(HOROVOD_CUDA_HOME=str(cuda), NCCL_HOME=str(tmp_path / 'empty'), EMERGING_SETUP_DRY_RUN='1')
    stderr = failure(setup_sh(repo, variables, '--gpu'))
    assert stderr.startswith('setup.sh: ERROR: ' + MISSING_PIECES[case]), stderr
    if case == 'CUDA 13':
        assert f'kernels: {cuda} is CUDA 13.0. Install one' in stderr


def test_gpu_dry_run_prints_the_cuda_install_and_the_nccl_build(machine, tmp_path):
    repo, fake_bin, variables = machine
    fake_driver(fake_bin)
    cuda, nccl = fake_cuda(tmp_path / 'cuda'), fake_nccl(tmp_path / 'nccl')
    variables.update(HOROVOD_CUDA_HOME=str(cuda), NCCL_HOME=str(nccl))
    result = setup_sh(repo, variables, '--gpu', '--dry-run')
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f'NVIDIA driver 550.54.15: 1 GPU(s)\nsetup.sh:   {GPU_LINE}' in out
    assert f'CUDA toolkit 12.5: {cuda}' in out and f'NCCL: {nccl} (NCCL_HOME)' in out
    pip = f'{repo}/.venv/bin/python -m pip install -q'
    assert f"would run: {pip} --upgrade pip wheel 'setuptools<81' uv==0.13.10" in out
    uv = f'{repo}/.venv/bin/uv pip install -q --native-tls --compile-bytecode --python {repo}/.venv/bin/python'
    assert f'would run: {uv} -r requirements.txt\n' in out
    assert f"would run: {uv} 'tensorflow[and-cuda]=={pinned_tensorflow()}'" in out
    build = re.search(r'^setup\.sh: would run: env (.*)$', out, re.M)[1]
    for part in ('HOROVOD_WITH_TENSORFLOW=1', 'HOROVOD_WITH_MPI=1', 'HOROVOD_WITH_GLOO=1',
                 'HOROVOD_GPU_OPERATIONS=NCCL', f'HOROVOD_CUDA_HOME={cuda}', f'PATH={cuda}/bin:',
                 f'HOROVOD_NCCL_HOME={nccl}', f'{repo}/.venv/horovod-build/horovod-0.28.1'):
        assert part in build, part
    assert out.endswith('setup.sh: dry run: nothing was installed or built\n')


def test_gpu_dry_run_takes_nccl_from_tensorflows_wheel(machine, tmp_path):
    """EMERGING_GPU=1 is --gpu; without NCCL_HOME the NCCL is the nvidia-nccl-cu12 wheel tensorflow[and-cuda]
    brings, given libnccl.so beside its libnccl.so.2 for Horovod's build, which links it as a shared library."""
    repo, fake_bin, variables = machine
    fake_driver(fake_bin)
    variables.update(HOROVOD_CUDA_HOME=str(fake_cuda(tmp_path / 'cuda')), EMERGING_GPU='1',
                     EMERGING_SETUP_DRY_RUN='1')
    result = setup_sh(repo, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = f'{repo}/.venv/lib/python3.11/site-packages/nvidia/nccl'
    assert f'NCCL: the nvidia-nccl-cu12 wheel of tensorflow[and-cuda] ({wheel})' in result.stdout
    assert f'would run: ln -s libnccl.so.2 {wheel}/lib/libnccl.so\n' in result.stdout
    build = re.search(r'^setup\.sh: would run: env (.*)$', result.stdout, re.M)[1]
    for part in ('HOROVOD_GPU_OPERATIONS=NCCL', f'HOROVOD_NCCL_INCLUDE={wheel}/include',
                 f'HOROVOD_NCCL_LIB={wheel}/lib', 'HOROVOD_NCCL_LINK=SHARED'):
        assert part in build, part


def test_cpu_dry_run_builds_without_nccl_and_keeps_setuptools_below_81(machine):
    repo, _, variables = machine
    result = setup_sh(repo, variables, '--dry-run')
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--upgrade pip wheel 'setuptools<81'" in result.stdout
    assert 'and-cuda' not in result.stdout and 'NCCL' not in result.stdout
    source = f'{repo}/.venv/horovod-build/horovod-0.28.1'
    lines = [line for line in result.stdout.splitlines() if 'horovod' in line.lower()]
    # Horovod's source distribution downloaded, unpacked, patched by the project's patch, built, removed
    assert re.fullmatch(r'setup\.sh: would run: \S+ -m pip download -q --no-deps --no-binary :all: '
                        rf'--no-build-isolation -d {repo}/\.venv/horovod-build horovod==0\.28\.1', lines[-5]), lines
    assert lines[-4] == f'setup.sh: would run: tar xzf {source}.tar.gz -C {repo}/.venv/horovod-build'
    assert lines[-3] == f'setup.sh: would run: patch -s -p1 -d {source} -i {repo}/scripts/horovod-0.28.1.patch'
    assert re.fullmatch(r'setup\.sh: would run: env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1 '
                        r'HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS=-j\d+ \S+ -m pip install .* '
                        rf'--no-deps {source}', lines[-2]), lines
    assert lines[-1] == f'setup.sh: would run: rm -rf {repo}/.venv/horovod-build'
    assert 'unknown argument --cpu' in failure(setup_sh(repo, variables, '--cpu'))


def test_check_gpu_help_and_bad_flags_answer_without_tensorflow():
    code = ('import runpy, sys\n'
            'sys.argv = ["check_gpu.py", *sys.argv[1:]]\n'
            'try:\n'
            f'    runpy.run_path({os.path.join(ROOT, "scripts", "check_gpu.py")!r}, run_name="__main__")\n'
            'except SystemExit as exit:\n'
            '    print(exit.code, "tensorflow" in sys.modules)\n')
    for args, expected in ((['--help'], '0 False'), (['--image_size', '12'], '2 False')):
        result = subprocess.run([sys.executable, '-c', code, *args], cwd=ROOT, env=env(), capture_output=True,
                                text=True, timeout=120)
        assert result.stdout.strip().splitlines()[-1] == expected, result.stdout + result.stderr
    assert 'check_gpu.py: error: --image_size 12 is not divisible by 2^n_levels = 8' in result.stderr


@pytest.mark.slow
def test_check_gpu_without_a_gpu_stops_before_building_anything():
    result = run_script('check_gpu.py', TINY, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ''
    assert result.stderr.strip().splitlines()[-1] == (
        "check_gpu.py: error: rank 0: no GPU visible to TensorFlow: CUDA_VISIBLE_DEVICES='' hides every GPU; "
        '--allow_cpu runs the check on the CPU')
    assert 'Traceback' not in result.stderr


def step_lines(out, rank, processes):
    """Checks the lines of one rank: Horovod's process line, the build line, the timing line (returns its loss).
    tests/training/test_horovod.py checks the two ranks of its mpiexec launch with it."""
    assert f'rank {rank}: Horovod: process {rank} of {processes}; TensorFlow ' in out
    assert re.search(rf'^rank {rank}: Horovod 0\.28\.1 built with (NCCL [\d.]+|no NCCL), (no )?CUDA, MPI, Gloo; '
                     r'controller MPI$', out, re.M), out
    s = '' if processes == 1 else 'es'
    timing = re.search(rf'^rank {rank}: CPU:0 train step \d+\.\d ms \(batch 4, 8x8x3, {processes} process{s}, '
                       r'float32\); loss (\d+\.\d+)$', out, re.M)
    assert timing, out
    return float(timing[1])


@pytest.mark.slow
def test_check_gpu_allow_cpu_runs_the_step_on_the_cpu():
    out = run_script('check_gpu.py', [*TINY, '--allow_cpu']).stdout
    assert "rank 0: no GPU visible to TensorFlow: CUDA_VISIBLE_DEVICES='' hides every GPU; running on CPU:0" in out
    step_lines(out, 0, 1)
