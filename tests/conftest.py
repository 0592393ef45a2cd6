"""The suite's session fixtures and how it runs on several pytest-xdist workers (scripts/test.sh: `-n 2`).

* Tests marked `serial` (mpiexec runs, signals and kills, wall-time comparisons) run alone: each takes the
  "room" exclusively, every other test shares it, so while a serial test runs the other worker waits.  A
  turnstile lets a waiting serial test in before the next shared one.
* Under xdist each worker runs TensorFlow's ops on one thread (TF_NUM_INTRAOP_THREADS, read when TensorFlow
  starts, inherited by the processes tests start), so that two workers on two cores do not fight; a serial
  test's processes get the default back.
* A trained run that several tests read is built once for the whole run (`built_once`): the first worker
  to ask trains it under a file lock, the others wait and read it.
* With EMERGING_TEST_TIMES set to a file, each test's seconds (setup, call and teardown) are appended to it at
  the end of the run, one "seconds<TAB>test" line each: scripts/test.sh prints the slowest of its two runs.

scripts/test.sh runs the `serial` tests after the others, in one process, so that no worker waits for the room;
the room keeps them alone in any other `pytest -n` run.
"""
import contextlib
import fcntl
import os
import shutil

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
WORKER = os.environ.get('PYTEST_XDIST_WORKER')
if WORKER:
    os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')

import pytest  # noqa: E402

import emerging  # noqa: E402, F401  before any test module imports TensorFlow: the settings it starts with

TURNSTILE, ROOM = 'serial-turnstile.lock', 'serial-room.lock'
_seconds = {}


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.) + report.duration


def pytest_sessionfinish(session):
    path = os.environ.get('EMERGING_TEST_TIMES')
    if path and not hasattr(session.config, 'workerinput'):  # the xdist controller receives every report
        with open(path, 'a') as f:
            f.writelines(f'{seconds:.2f}\t{test}\n' for test, seconds in _seconds.items())


def _shared_root(tmp_path_factory):
    """The folder every worker of this run sees (each worker's own base temp folder lies inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if WORKER else base


@contextlib.contextmanager
def _flock(path, mode):
    with open(path, 'a') as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def room(tmp_path_factory, alone):
    """Hold the room: alone (exclusive, after passing the turnstile and keeping it) or shared."""
    root = _shared_root(tmp_path_factory)
    turnstile, shared = root / TURNSTILE, root / ROOM
    if alone:
        with _flock(turnstile, fcntl.LOCK_EX), _flock(shared, fcntl.LOCK_EX):
            yield
    else:
        with _flock(turnstile, fcntl.LOCK_EX):
            pass  # a serial test waiting for the room holds it: wait behind it
        with _flock(shared, fcntl.LOCK_SH):
            yield


@pytest.fixture(autouse=True)
def _serial_tests_run_alone(request, tmp_path_factory, monkeypatch):
    alone = request.node.get_closest_marker('serial') is not None
    if alone and WORKER:
        monkeypatch.delenv('TF_NUM_INTRAOP_THREADS', raising=False)
    with room(tmp_path_factory, alone):
        yield


def built_once(tmp_path_factory, name, build):
    """The folder `name`, made by `build(folder)` once for the whole run, also across xdist workers.

    Args:
      tmp_path_factory: pytest's.
      name: the folder's name (one per kind of run).
      build: fills the folder; an exception leaves it to the next asker to build again.

    Returns:
      The folder's path (str).
    """
    root = _shared_root(tmp_path_factory)
    folder, built = root / name, root / f'{name}.built'
    with _flock(root / f'{name}.lock', fcntl.LOCK_EX):
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            # beside no serial test; no turnstile: a test holding the room may be the one that asks
            with _flock(root / ROOM, fcntl.LOCK_SH):
                build(str(folder))
            built.touch()
    return str(folder)


@pytest.fixture(scope='session')
def trained_digits_run(tmp_path_factory):
    """A tiny digits run, trained once for the after-training tests: L=2, K=2, width 16, emerging
    convolutions, affine coupling, learned prior; a full validation (test.txt, best/)
    at epoch 2, checkpoints after epochs 2 and 3 (with Polyak averages)."""
    from tests.helpers import DIGITS, TINY, train

    def build(logdir):
        train([*DIGITS, *TINY, '--flow_permutation', '3', '--flow_coupling', '1', '--learnprior', '--epochs', '4',
               '--epochs_full_valid', '2', '--epochs_full_sample', '100', '--logdir', logdir])
    return built_once(tmp_path_factory, 'trained_digits', build)
