"""Packaging: the version, the public names, a light `import emerging`, the wheel."""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import emerging
import emerging.flows
from tests.helpers import ROOT, env


def test_public_names_resolve():
    assert emerging.__version__.count('.') == 2
    for name in emerging.__all__:
        assert getattr(emerging, name) is not None, name
    for name in emerging.flows.__all__:
        assert getattr(emerging.flows, name) is not None, name
    assert set(emerging.__all__) <= set(dir(emerging))


def test_import_does_not_start_tensorflow():
    code = 'import sys, emerging; assert "tensorflow" not in sys.modules, "tensorflow imported"'
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_license_and_citation_ship_with_the_version():
    with open(os.path.join(ROOT, 'CITATION.cff')) as f:
        citation = f.read()
    assert f'version: {emerging.__version__}' in citation and 'Emerging Convolutions' in citation
    with open(os.path.join(ROOT, 'LICENSE')) as f:
        assert f.readline().strip() == 'MIT License'


@pytest.mark.slow
def test_command_line_entry_points():
    """`python -m emerging` and the installed console script `emerging`, every subcommand with --help."""
    from emerging.cli.command import SUBCOMMANDS
    result = subprocess.run([sys.executable, '-m', 'emerging', '--help'], cwd=ROOT, env=env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and all(name in result.stdout for name in SUBCOMMANDS), result.stderr
    for name in SUBCOMMANDS:
        result = subprocess.run([sys.executable, '-m', 'emerging', name, '--help'], cwd=ROOT, env=env(),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and f'usage: emerging {name}' in result.stdout, result.stderr
    script = os.path.join(os.path.dirname(sys.executable), 'emerging')
    result = subprocess.run([script, '--version'], env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == f'emerging {emerging.__version__}', result.stderr
    wrong = subprocess.run([sys.executable, '-m', 'emerging', 'sample', '--logdir', ROOT, '--out', 'x.gif'],
                           cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and '--out' in wrong.stderr


@pytest.mark.slow
def test_the_wheel_installs_only_the_package_with_its_pretrained_model(tmp_path):
    """`pip wheel` of the project holds the package `emerging` (the pretrained model and its manipulation
    records included) and its console script, nothing else (train.py and scripts/ stay in the repository);
    installed into a fresh virtualenv it evaluates the pretrained model from another folder."""
    source = tmp_path / 'source'
    shutil.copytree(os.path.join(ROOT, 'emerging'), source / 'emerging',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    shutil.copy(os.path.join(ROOT, 'setup.py'), source)
    built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                            str(tmp_path), str(source)], env=env(), capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel, = glob.glob(str(tmp_path / 'emerging-*.whl'))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(f'emerging-{emerging.__version__}.dist-info/entry_points.txt').decode()
    assert {name.split('/')[0] for name in names} == {'emerging', f'emerging-{emerging.__version__}.dist-info'}
    pretrained = 'emerging/runs/pretrained/digits/'
    for name in ('config.json', 'train.txt', 'model_best_loss.ckpt.index', 'manipulation/dz_7.npy',
                 'manipulation/dz_7.json'):
        assert pretrained + name in names, name
    assert 'emerging = emerging.cli.command:main' in entry_points

    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=300)
    site = glob.glob(str(venv / 'lib' / 'python*' / 'site-packages'))[0]
    with open(os.path.join(site, 'project_dependencies.pth'), 'w') as f:  # this venv's TensorFlow & co.
        f.write(next(p for p in sys.path if p.endswith('site-packages')) + '\n')
    installed = subprocess.run([sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'), 'install',
                                '-q', '--no-deps', wheel], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    clean = {k: v for k, v in env().items() if k != 'PYTHONPATH'}
    result = subprocess.run([str(venv / 'bin' / 'emerging'), 'evaluate', '--pretrained', 'digits'], cwd=tmp_path,
                            env=clean, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith('test bits_x: 3.3')
    assert os.path.join(site, 'emerging') in subprocess.run(
        [str(venv / 'bin' / 'python'), '-c', 'import emerging; print(emerging.__file__)'], cwd=tmp_path, env=clean,
        capture_output=True, text=True, timeout=300).stdout
