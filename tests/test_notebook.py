"""examples/quickstart.ipynb: stored without outputs, and run end to end in a Jupyter kernel of this interpreter."""
import json
import math
import os
import re
import sys

import nbformat
import pytest

from tests.helpers import ROOT, env

NOTEBOOK = os.path.join(ROOT, 'examples', 'quickstart.ipynb')
# the cells that draw a picture, by cell id
PICTURE_CELLS = ('test_images', 'samples', 'interpolation', 'manipulation', 'training_curves', 'residual_flow',
                 'bnaf')
CELL_TIMEOUT = 600  # seconds; the whole notebook takes about two minutes on 2 CPU cores
# appended to the run: which interpreter and which package the kernel used
WHERE_CELL_ID = 'test_where'
WHERE_SOURCE = 'import sys\n\nimport emerging\n\nprint(sys.executable)\nprint(emerging.__file__)'


def read_notebook():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    return notebook


def test_stored_without_outputs():
    notebook = read_notebook()
    code = [cell for cell in notebook.cells if cell.cell_type == 'code']
    assert code, 'no code cells'
    for cell in code:
        assert cell.outputs == [], f'cell {cell.id} is stored with outputs'
        assert cell.execution_count is None, f'cell {cell.id} is stored with an execution count'
    assert set(PICTURE_CELLS) <= {cell.id for cell in code}


def kernel_manager(tmp_path):
    """A kernel manager whose only kernel spec, python3, runs ipykernel in this interpreter (the installed
    python3 spec starts whatever `python` is first on PATH)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = tmp_path / 'kernels' / 'python3'
    spec_dir.mkdir(parents=True)
    spec = {'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
            'display_name': 'Python 3 (this interpreter)', 'language': 'python'}
    (spec_dir / 'kernel.json').write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / 'kernels')])
    assert specs.get_kernel_spec('python3').argv[0] == sys.executable
    return AsyncKernelManager(kernel_name='python3', kernel_spec_manager=specs,
                              connection_file=str(tmp_path / 'connection.json'))


def printed(cell):
    return ''.join(output.get('text', '') for output in cell.outputs if output.output_type == 'stream')


def number(pattern, text):
    match = re.search(pattern, text)
    assert match, f'{pattern!r} not in:\n{text}'
    return float(match.group(1))


@pytest.mark.slow
def test_runs_end_to_end(tmp_path):
    from nbclient import NotebookClient

    notebook = read_notebook()
    where = nbformat.v4.new_code_cell(WHERE_SOURCE)
    where.id = WHERE_CELL_ID
    notebook.cells.append(where)
    cwd, scratch = tmp_path / 'cwd', tmp_path / 'scratch'
    cwd.mkdir()
    scratch.mkdir()
    # the repository on the kernel's path (its cwd is elsewhere); its temporary folders under tmp_path
    kernel_env = dict(env(), TMPDIR=str(scratch))
    client = NotebookClient(notebook, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT, kernel_name='python3')
    client.execute(cwd=str(cwd), env=kernel_env)

    cells = {cell.id: cell for cell in notebook.cells if cell.cell_type == 'code'}
    for cell_id, cell in cells.items():
        errors = [output for output in cell.outputs if output.output_type == 'error']
        assert not errors, f'cell {cell_id}: {errors}'
    for cell_id in PICTURE_CELLS:
        assert any('image/png' in output.get('data', {}) for output in cells[cell_id].outputs), \
            f'cell {cell_id} drew no picture'

    executable, package = printed(cells[WHERE_CELL_ID]).split()
    assert executable == sys.executable
    assert package == os.path.join(ROOT, 'emerging', '__init__.py')

    assert 3.0 < number(r'test bits/dim \(300 test images\): ([\d.]+)', printed(cells['test_images'])) < 3.7
    assert number(r'dz_7\.npy: (\S+)', printed(cells['manipulation'])) < 1e-4
    text = printed(cells['distribution'])
    assert 'event shape: (8, 8, 3) - batch shape: ()' in text
    assert 'distribution.sample([2, 3]).shape: (2, 3, 8, 8, 3)' in text
    assert 'log_prob shape: (2, 100)' in text
    real = number(r'log_prob of real images: (\S+),', text)
    noise = number(r'of uniform noise images: (\S+)', text)
    assert math.isfinite(real) and real > noise
    text = printed(cells['round_trip'])
    assert number(r'max abs error (\S+)', text) < 1e-3
    assert 'decode(encode(x)) == x for all 300 test images: True' in text
    text = printed(cells['training_curves'])
    first = number(r'test bits/dim: ([\d.]+) after epoch 1', text)
    assert number(r', ([\d.]+) after epoch 9', text) < first
    for cell_id, dataset in (('residual_flow', 'moons'), ('bnaf', '8gaussians')):
        text = printed(cells[cell_id])
        nll = number(rf'{dataset}: test NLL ([\d.]+) nats', text)
        entropy = number(r'\(entropy ([\d.]+)\)', text)
        assert entropy - 0.05 < nll < entropy + 1., text

    # nothing written beside the kernel: the notebook writes into its temporary folder only
    assert not any(cwd.iterdir())
    assert [path.name for path in scratch.iterdir() if path.name.startswith('emerging_quickstart_')]
