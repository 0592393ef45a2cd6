"""Packaging: the version, the public names, a light `import emerging`, the wheel."""
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
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
    """`python -m emerging` and the installed console script `emerging` as processes: the listing of every
    subcommand, the version, and a returned exit code 2 passed on (each subcommand's --help: tests/cli/test_help.py)."""
    from emerging.cli.command import PROGRAMS, SUBCOMMANDS
    result = subprocess.run([sys.executable, '-m', 'emerging', '--help'], cwd=ROOT, env=env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and all(name in result.stdout for name in [*PROGRAMS, *SUBCOMMANDS]), result.stderr
    script = os.path.join(os.path.dirname(sys.executable), 'emerging')
    result = subprocess.run([script, '--version'], env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == f'emerging {emerging.__version__}', result.stderr
    # main's returned 2 (not argparse's own exit), before TensorFlow loads
    wrong = subprocess.run([sys.executable, '-m', 'emerging', 'train-resflow', '--data', 'svhn'], cwd=ROOT, env=env(),
                           capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and '--data svhn' in wrong.stderr


# `emerging ARGS` for every ARGS of the JSON list on stdin, in order, through the main of the emerging it imports,
# each with its output captured; prints JSON {"package": that emerging's folder, "answers": [{code, out, err}]}
EMERGING_IN_ONE_PROCESS = """
import contextlib, io, json, os, sys
import emerging
from emerging.cli.command import main
answers = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    answers.append({'code': code, 'out': out.getvalue(), 'err': err.getvalue()})
print(json.dumps({'package': os.path.dirname(emerging.__file__), 'answers': answers}))
"""


def build_wheel(tmp_path):
    """`pip wheel` of the package alone (the repository's emerging/ and setup.py): its path."""
    source = tmp_path / 'source'
    shutil.copytree(os.path.join(ROOT, 'emerging'), source / 'emerging',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    shutil.copy(os.path.join(ROOT, 'setup.py'), source)
    built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                            str(tmp_path), str(source)], env=env(), capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel, = glob.glob(str(tmp_path / 'emerging-*.whl'))
    return wheel


def install_in_fresh_venv(wheel, venv):
    """A virtualenv holding the wheel's package, with this environment's dependencies (TensorFlow & co.) on its
    path but not the repository; its site-packages folder."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=300)
    site = glob.glob(str(venv / 'lib' / 'python*' / 'site-packages'))[0]
    with open(os.path.join(site, 'project_dependencies.pth'), 'w') as f:
        f.write(next(p for p in sys.path if p.endswith('site-packages')) + '\n')
    installed = subprocess.run([sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'), 'install',
                                '-q', '--no-deps', wheel], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    return site


def package_files(folder):
    """{relative path: (size, mtime)} of every file of an installed package but Python's byte-code caches."""
    listing = {}
    for directory, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if f != '__pycache__']
        for name in files:
            path = os.path.join(directory, name)
            listing[os.path.relpath(path, folder)] = (os.path.getsize(path), os.path.getmtime(path))
    return listing


@pytest.mark.slow
def test_the_wheel_installs_only_the_package_with_its_pretrained_model(tmp_path):
    """`pip wheel` of the project holds the package `emerging` (the pretrained model and its manipulation
    records included) and its console script, nothing else (train.py and scripts/ are in the package as
    `emerging` subcommands); installed into a fresh virtualenv, its console script lists every program and
    evaluates the pretrained model; every program answers --help and runs once on tiny settings from another
    folder through the installed package (in one process), and nothing is written into the package."""
    from emerging.cli.command import PROGRAMS, SUBCOMMANDS
    from tests.data import tabular_files

    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(f'emerging-{emerging.__version__}.dist-info/entry_points.txt').decode()
        metadata = archive.read(f'emerging-{emerging.__version__}.dist-info/METADATA').decode()
    assert {name.split('/')[0] for name in names} == {'emerging', f'emerging-{emerging.__version__}.dist-info'}
    pretrained = 'emerging/runs/pretrained/digits/'
    for name in ('config.json', 'train.txt', 'test.txt', 'model_best_loss.ckpt.index',
                 'model_best_loss.ckpt.data-00000-of-00001', 'manipulation/dz_7.npy', 'manipulation/dz_7.json'):
        assert pretrained + name in names, name
    assert 'emerging = emerging.cli.command:main' in entry_points
    with open(os.path.join(ROOT, 'requirements.txt')) as f:  # every runtime requirement is installed with it
        wanted = {line.split('==')[0].split('>=')[0].strip().lower() for line in f
                  if line.strip() and not line.startswith('#')}
    required = {line.split(':', 1)[1].strip().split(';')[0].replace(' ', '').lower()
                for line in metadata.splitlines() if line.startswith('Requires-Dist:') and 'extra ==' not in line}
    test_only = {'pytest', 'pytest-xdist', 'hypothesis', 'ruff', 'nbclient', 'nbformat', 'ipykernel'}
    assert {r.split('==')[0].split('>=')[0].split('<')[0] for r in required} == wanted - test_only

    site = install_in_fresh_venv(wheel, tmp_path / 'venv')
    package = os.path.join(site, 'emerging')
    before = package_files(package)
    clean = {k: v for k, v in env().items() if k != 'PYTHONPATH'}
    clean['XDG_CACHE_HOME'] = str(tmp_path / 'cache')
    work = tmp_path / 'work'
    work.mkdir()

    def emerging_command(*args, timeout=600):
        result = subprocess.run([str(tmp_path / 'venv' / 'bin' / 'emerging'), *args], cwd=work, env=clean,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f'emerging {" ".join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
        return result.stdout

    listed = emerging_command('--help')
    for name in [*PROGRAMS, *SUBCOMMANDS]:
        assert name in listed, name
    assert emerging_command('evaluate', '--pretrained', 'digits').strip().splitlines()[-1].startswith(
        'test bits_x: 3.3')

    # the rest through the installed package's main in one process (the console script runs the same main, as the
    # two calls above show): TensorFlow starts once rather than once per program
    tabular_files.write_all(str(work / 'tabular_data'))
    np.save(work / 'images.npy', np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8))
    helps = [[name, '--help'] for name in [*PROGRAMS, *SUBCOMMANDS]]
    runs = [
        # another dz than the shipped one: cached
        ['manipulate', '--pretrained', 'digits', '--attributes', '7', '--n_examples', '200', '--test_index', '3',
         '--out', 'manipulation.png'],
        ['train', '--problem', 'digits', '--image_size', '8', '--anchor_size', '8', '--n_batch_train', '32',
         '--n_batch_init', '64', '--n_train', '64', '--n_levels', '2', '--depth', '1', '--width', '8', '--epochs', '2',
         '--no_progress', '--logdir', 'glow'],
        ['plot', 'glow', '--out', 'plots'],
        # without the fully connected end blocks, half the time (tests/cli/test_train_resflow.py trains them)
        ['train-resflow', '--data', 'digits', '--nblocks', '1', '--idim', '8', '--fc-end', 'False', '--batchsize', '64',
         '--nepochs', '1', '--no-progress', '--save', 'resflow'],
        ['toy', '--train', '--dataset', '8gaussians', '--flow', 'maf', '--n_steps', '10', '--log_interval', '10',
         '--output_dir', 'toy', '--no_progress'],
        ['resflow-toy', '--data', '8gaussians', '--nblocks', '1', '--dims', '8-8', '--niters', '10', '--viz_freq', '10',
         '--val_freq', '10', '--save', 'resflow_toy', '--no_progress'],
        ['tabular', '--dataset', 'miniboone', '--data_dir', 'tabular_data', '--flow', 'maf', '--epochs', '1',
         '--output_dir', 'tabular', '--no_progress'],
        ['write-tfrecords', '--images', 'images.npy', '--out', 'records', '--size', '8'],
        ['check-gpu', '--allow_cpu', '--image_size', '8', '--n_levels', '1', '--depth', '1', '--width', '8', '--batch',
         '4'],
    ]
    result = subprocess.run([str(tmp_path / 'venv' / 'bin' / 'python'), '-c', EMERGING_IN_ONE_PROCESS], cwd=work,
                            env=clean, input=json.dumps([*helps, *runs]), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-5000:]
    reply = json.loads(result.stdout.splitlines()[-1])
    assert os.path.realpath(reply['package']) == os.path.realpath(package)  # the installed one, not the repository's
    for (name, _), answer in zip(helps, reply['answers']):
        assert answer['code'] == 0 and f'usage: emerging {name}' in answer['out'], (name, answer)
    for argv, answer in zip(runs, reply['answers'][len(helps):]):
        assert answer['code'] == 0, f'emerging {" ".join(argv)}:\n{answer["out"][-2000:]}\n{answer["err"][-3000:]}'
    check_gpu = reply['answers'][-1]['out']

    assert glob.glob(str(tmp_path / 'cache' / 'emerging' / '**' / 'dz_7.npy'), recursive=True)
    assert os.path.exists(work / 'glow' / 'test.txt')
    assert os.path.exists(work / 'plots' / 'bits_x.png')
    assert os.path.exists(work / 'resflow' / 'config.json')
    assert os.path.exists(work / 'toy' / 'step_10.png')
    assert os.path.exists(work / 'resflow_toy' / 'figs' / '0010.png')
    assert glob.glob(str(work / 'records' / '**' / '*.tfrecords'), recursive=True)
    assert 'train step' in check_gpu

    assert package_files(package) == before  # nothing written into the installed package
    assert os.path.join(site, 'emerging') in subprocess.run(
        [str(tmp_path / 'venv' / 'bin' / 'python'), '-c', 'import emerging; print(emerging.__file__)'], cwd=work,
        env=clean, capture_output=True, text=True, timeout=300).stdout
