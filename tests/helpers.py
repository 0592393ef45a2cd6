"""Running the programs the way a user does: train.py, the scripts and the `emerging` command in subprocesses;
a program's main in this process where no fresh process is asserted (`run_main`)."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--n_levels', '2', '--depth', '2', '--width', '16', '--no_progress', '--gradient_checkpointing', '0']
DIGITS = ['--problem', 'digits', '--image_size', '8', '--anchor_size', '8', '--n_batch_train', '32',
          '--n_batch_init', '64', '--n_train', '64']


def mpiexec_command(n):
    """The start of an `mpiexec -n N` command line passing this environment on (as root: allowed)."""
    mpiexec = shutil.which('mpiexec')
    assert mpiexec, 'mpiexec not found: run scripts/setup.sh'
    command = [mpiexec, '-n', str(n)]
    if os.geteuid() == 0:
        command += ['--allow-run-as-root']
    return command + ['--oversubscribe', '-x', 'PYTHONPATH', '-x', 'TF_CPP_MIN_LOG_LEVEL', '-x',
                      'CUDA_VISIBLE_DEVICES']


def read_log(path):
    """A train.txt / test.txt: (the hyperparameter line, the epoch lines)."""
    with open(path) as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    return lines[0], lines[1:]


def env():
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1')
    e['PYTHONPATH'] = ROOT + os.pathsep + e.get('PYTHONPATH', '')
    return e


def train(args, timeout=600, check=True):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), *args], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'train.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}')
    return result


def run_script(script, args, timeout=600, check=True):
    """`python scripts/SCRIPT ARGS` in a subprocess; with `check`, a failure is an AssertionError showing its output."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', script), *args], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def emerging_cli(args, timeout=600, check=True):
    """`python -m emerging ARGS` in a subprocess, as a user runs the command line."""
    result = subprocess.run([sys.executable, '-m', 'emerging', *args], cwd=ROOT, env=env(), capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'emerging {args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}')
    return result


def script_error_imports(script, args):
    """Runs scripts/SCRIPT with ARGS, expecting exit code 2; returns (stderr, whether TensorFlow was imported)."""
    code = ('import runpy, sys\n'
            f'sys.argv = [{script!r}, *{list(args)!r}]\n'
            'try:\n'
            f'    runpy.run_path({os.path.join(ROOT, "scripts", script)!r}, run_name="__main__")\n'
            'except SystemExit as exit:\n'
            '    assert exit.code == 2, exit.code\n'
            'else:\n'
            '    raise AssertionError("no error")\n'
            'print("tensorflow" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr, result.stdout.strip() == 'True'


class StubDistributed:
    """Stands in for emerging.distributed.Distributed as process `rank` of `size`, without Horovod."""

    def __init__(self, rank=0, size=1):
        self.rank, self.size = rank, size

    @property
    def is_chief(self):
        return self.rank == 0

    def broadcast_variables(self, variables, root_rank=0):
        pass

    def agree(self, counts, name):
        return list(counts)

    def barrier(self, name):
        pass


@contextlib.contextmanager
def global_state_kept():
    """What a program's run sets for the whole process, put back after it: TensorFlow's global seed (build_flow
    seeds it), its graph optimiser switched off (train_resflow_toy's first lines) and matplotlib's backend (the
    figures choose Agg)."""
    tf = sys.modules.get('tensorflow')
    seed = tf.compat.v1.get_seed(None)[0] if tf else None
    meta_optimizer_off = tf.config.optimizer.get_experimental_options().get('disable_meta_optimizer', False) \
        if tf else False
    backend = sys.modules['matplotlib'].get_backend() if 'matplotlib' in sys.modules else None
    try:
        yield
    finally:
        tf = sys.modules.get('tensorflow')
        if tf:
            tf.random.set_seed(seed)
            tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': meta_optimizer_off})
        if backend is not None and sys.modules['matplotlib'].get_backend() != backend:
            sys.modules['matplotlib'].use(backend)


def run_main(main, args, check=True):
    """`main(ARGS)` as a script's `sys.exit(main())` runs it, in this process (TensorFlow loads once per test
    process, not once per run): a CompletedProcess of its exit code (argparse's errors exit 2) and what it printed;
    with `check`, a failure is an AssertionError showing its output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), global_state_kept():
        try:
            code = main(list(args))
        except SystemExit as exit:
            code = exit.code
    result = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result
