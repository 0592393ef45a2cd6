"""Packaging: the version, the public names, and a light `import emerging`."""
import os
import subprocess
import sys

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
