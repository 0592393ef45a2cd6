"""Packaging: the version, the public names, and a light `import emerging`."""
import os
import subprocess
import sys

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
