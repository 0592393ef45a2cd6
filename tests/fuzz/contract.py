"""The contract every reader of files keeps, and the mutations the fuzz tests apply to valid files.

A reader given any bytes either returns a valid result or raises `InputError`; never another exception, a
crash, a hang (`TIME_LIMIT` seconds) or an allocation past a bound (`MEMORY_LIMIT` bytes of Python and NumPy
memory at its peak, measured with tracemalloc, for inputs of a few KB).  The fuzz tests take a small valid file
of each kind, mutate it (bytes flipped or set to boundary values, cut short, extended, slices repeated or
dropped, large integers written over it) and check the contract on every result.

`FUZZ` is the budget: a fixed number of examples per reader, derandomized (the same examples on every run, so
CI is repeatable).  A mutated file that breaks the contract is written to `regressions/<kind>/<sha>.bin`;
committed there, it is replayed by `regression_files(kind)` on every later run.
"""
import hashlib
import os
import signal
import tracemalloc

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from emerging.errors import InputError

REGRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'regressions')
MEMORY_LIMIT = 256 * 2 ** 20
TIME_LIMIT = 30
FUZZ = settings(max_examples=int(os.environ.get('EMERGING_FUZZ_EXAMPLES', '150')), derandomize=True,
                deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

BOUNDARY_BYTES = (0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff)
LARGE_INTEGERS = (b'\xff\xff\xff\xff', b'\xff\xff\xff\x7f', b'\x00\x00\x00\x80', b'\xff' * 8,
                  b'\x00\x00\x00\x00\x00\x00\x00\x80', b'9' * 12, b'-1')


@st.composite
def mutated(draw, valid: bytes, max_edits: int = 4) -> bytes:
    """A strategy: `valid` with one to `max_edits` edits, each at a drawn position."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, max_edits))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(('flip', 'boundary', 'truncate', 'extend', 'repeat', 'drop', 'integer')))
        if edit == 'flip' and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == 'boundary' and data:
            data[at] = draw(st.sampled_from(BOUNDARY_BYTES))
        elif edit == 'truncate':
            del data[at:]
        elif edit == 'extend':
            data += draw(st.binary(min_size=1, max_size=64))
        elif edit == 'repeat':
            end = draw(st.integers(at, min(len(data), at + 64)))
            data[at:at] = data[at:end] * draw(st.integers(1, 4))
        elif edit == 'drop':
            del data[at:at + draw(st.integers(1, 16))]
        elif edit == 'integer':
            value = draw(st.sampled_from(LARGE_INTEGERS))
            data[at:at + len(value)] = value
    return bytes(data)


def _timed_out(signum, frame):
    raise TimeoutError(f'the reader ran past {TIME_LIMIT} s')


def holds(kind: str, data: bytes, read, *args, **kwargs):
    """Run `read(*args, **kwargs)` on a file holding `data` and check the contract.

    Args:
      kind: the file kind, the folder under `regressions/` a failing input is kept in.
      data: the file's bytes (kept when the contract fails).
      read: the reader.

    Returns:
      What the reader returned, or None when it raised `InputError`.

    Raises:
      AssertionError: naming the broken promise and the regression file written.
    """
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    tracemalloc.start()
    failure = None
    try:
        result = read(*args, **kwargs)
    except InputError:
        result = None
    except Exception as error:  # noqa: BLE001 - any other exception is what the contract forbids
        failure = f'{type(error).__name__}: {error}'[:2000]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if failure is None and peak > MEMORY_LIMIT:
        failure = f'peak memory {peak / 2 ** 20:.0f} MiB > {MEMORY_LIMIT / 2 ** 20:.0f} MiB'
    if failure is not None:
        kept = keep(kind, data)
        raise AssertionError(f'{kind} reader broke its contract ({failure}); the input is kept as {kept}')
    return result


def keep(kind: str, data: bytes) -> str:
    """Write a failing input to regressions/<kind>/<sha>.bin (replayed by `regression_files`); its path."""
    folder = os.path.join(REGRESSIONS, kind)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(data).hexdigest()[:16] + '.bin')
    with open(path, 'wb') as f:
        f.write(data)
    return path


def regression_files(kind: str) -> list:
    """The kept failing inputs of a kind (at least one), as bytes with their file names as ids, for parametrize."""
    import pytest
    folder = os.path.join(REGRESSIONS, kind)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    params = []
    for name in names:
        with open(os.path.join(folder, name), 'rb') as f:
            params.append(pytest.param(f.read(), id=name))
    assert params, f'{folder} holds no kept input: keep at least the known bad file of this kind there'
    return params
