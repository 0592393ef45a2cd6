"""The package's import structure: the arrows between its folders point one way, no module imports itself
back through others (imports inside functions included), every module imports in a fresh process, and the
TensorFlow-free modules (configurations, choice tables, flag parsers, the command lines) stay free of it."""
import ast
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, env

PACKAGE = os.path.join(ROOT, 'emerging')
# what each part may import from the rest of the package (the root package: __version__ and lazy names)
ALLOWED = {
    'emerging': {'emerging.exports', 'emerging.quiet'},
    'emerging.__main__': {'emerging.cli'},
    'emerging.choices': set(),
    'emerging.errors': set(),
    'emerging.pickles': {'emerging.errors'},
    'emerging.exports': set(),
    'emerging.quiet': set(),
    'emerging.averaging': set(),
    'emerging.data': {'emerging.exports', 'emerging.choices', 'emerging.errors', 'emerging.pickles'},
    'emerging.flows': {'emerging.choices', 'emerging.errors'},
    'emerging.vector': {'emerging.choices', 'emerging.errors', 'emerging.averaging', 'emerging.flows'},
    'emerging.models': {'emerging.exports', 'emerging.choices', 'emerging.errors', 'emerging.flows'},
    'emerging.runs': {'emerging', 'emerging.exports', 'emerging.choices', 'emerging.errors', 'emerging.pickles',
                      'emerging.averaging', 'emerging.flows', 'emerging.models'},
    'emerging.training': {'emerging.exports', 'emerging.choices', 'emerging.errors', 'emerging.averaging',
                          'emerging.runs'},
    'emerging.cli': {'emerging', 'emerging.quiet', 'emerging.choices', 'emerging.errors', 'emerging.pickles',
                     'emerging.averaging', 'emerging.data', 'emerging.models', 'emerging.runs', 'emerging.training',
                     'emerging.vector'},
}
# modules that must import without TensorFlow (the command lines parse and check their flags before it loads)
TENSORFLOW_FREE = [
    'emerging', 'emerging.choices', 'emerging.errors', 'emerging.exports', 'emerging.data', 'emerging.data.problems',
    'emerging.data.toy2d', 'emerging.data.tabular', 'emerging.data.npy', 'emerging.models', 'emerging.models.config',
    'emerging.models.registry', 'emerging.training', 'emerging.training.config', 'emerging.runs',
    'emerging.runs.folder', 'emerging.runs.load', 'emerging.cli', 'emerging.cli.command', 'emerging.cli.common',
    'emerging.cli.train', 'emerging.cli.train_resflow', 'emerging.cli.launch', 'emerging.cli.toy',
    'emerging.cli.tabular', 'emerging.cli.plot_logs', 'emerging.cli.write_tfrecords',
    'emerging.cli.package_pretrained', 'emerging.cli.public_bnaf', 'emerging.runs.torch_files', 'emerging.quiet',
    'emerging.cli.resflow_toy', 'emerging.cli.compare_families', 'emerging.cli.check_gpu', 'emerging.pickles']


def modules():
    """{module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                found[module.removesuffix('.__init__')] = path
    return found


def import_graph():
    """{module: the package's modules it imports}, from every import statement (inside functions too)."""
    known = modules()

    def owner(name):
        while name and name not in known:
            name = name.rpartition('.')[0]
        return name

    graph = {}
    for module, path in known.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {owner(alias.name) for alias in node.names if alias.name.startswith('emerging')}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('emerging'):
                for alias in node.names:
                    submodule = f'{node.module}.{alias.name}'
                    targets.add(submodule if submodule in known else owner(node.module))
        graph[module] = targets - {module}
    return graph


def part(module):
    """The folder (or top-level module) a module belongs to: emerging.flows.nets.conv -> emerging.flows."""
    return '.'.join(module.split('.')[:2])


def test_folders_import_only_what_they_may():
    wrong = sorted(f'{module} imports {target}' for module, targets in import_graph().items() for target in targets
                   if part(target) != part(module) and part(target) not in ALLOWED[part(module)])
    assert not wrong, '\n'.join(wrong)
    assert set(map(part, modules())) == set(ALLOWED), 'a new folder needs its row in ALLOWED'


def test_no_import_cycle():
    graph = import_graph()
    state, cycles = {}, []

    def visit(module, path):
        state[module] = 'open'
        for target in sorted(graph[module]):
            if state.get(target) == 'open':
                cycles.append(' -> '.join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, '\n'.join(cycles)


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_process():
    names = sorted(m for m in modules() if not m.endswith('__main__'))
    code = ('import importlib, sys\n'
            f'for name in {names!r}:\n'
            '    importlib.import_module(name)\n'
            'print("imported", len(sys.modules))\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and 'imported' in result.stdout, result.stderr[-3000:]


def test_tensorflow_free_modules_do_not_import_it():
    code = ('import importlib, sys\n'
            f'for name in {TENSORFLOW_FREE!r}:\n'
            '    importlib.import_module(name)\n'
            '    assert "tensorflow" not in sys.modules, name\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize('setting, keras', [(None, 'tf_keras'), ('0', 'keras')])
def test_import_emerging_makes_tf_keras_keras_2_unless_the_user_chose(setting, keras):
    """`import emerging` before TensorFlow: tf.keras is tf_keras and Keras 3 is not imported; a user's own
    TF_USE_LEGACY_KERAS wins."""
    code = ('import sys, emerging, tensorflow as tf\n'
            'print(tf.keras.Sequential.__module__.split(".")[0], "keras" in sys.modules)')
    variables = {k: v for k, v in env().items() if k != 'TF_USE_LEGACY_KERAS'}
    if setting is not None:
        variables['TF_USE_LEGACY_KERAS'] = setting
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=variables, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [keras, str(keras == 'keras')], result.stdout
