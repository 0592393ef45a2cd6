"""StopSignals: SIGTERM / SIGINT become a stop request at the next poll, agreed over processes; a second one of
the same kind is no longer held back; time-based saves come due; handlers are restored on exit."""
import contextlib
import gc
import signal
import threading
import time

import pytest

from emerging.training.preemption import Stopped, StopSignals
from tests.helpers import StubDistributed


def signal_this_thread(signum):
    """Send `signum` to this (the main) thread, its handler run before this returns.  Sent to the process, the signal
    may be taken by another thread (TensorFlow's) and its handler run whenever the main thread next checks.  The
    garbage collector is paused meanwhile: a collection runs the Python code of its callbacks (Hypothesis registers
    one), and a pending handler would run inside that callback, its KeyboardInterrupt swallowed."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        signal.pthread_kill(threading.get_ident(), signum)
    finally:
        if was_enabled:
            gc.enable()


class TwoProcesses(StubDistributed):
    """Process 0 of 2 whose partner's counts are given."""

    def __init__(self, partner):
        super().__init__(0, 2)
        self.partner = partner

    def agree(self, counts, name):
        return [a + b for a, b in zip(counts, self.partner)]


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_becomes_a_stop_request(signum):
    before = signal.getsignal(signum)
    with StopSignals(StubDistributed()) as stops:
        assert stops.poll() == (None, False)
        signal_this_thread(signum)
        assert stops.poll() == (signum, False) and stops.stop_signal == signum
    assert signal.getsignal(signum) is before


@contextlib.contextmanager
def handler_before(signum, handler):
    """`handler` as the signal's handler until the block ends, whatever an earlier test in this process left there."""
    before = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, before)


def test_a_second_sigint_interrupts_at_once():
    """Python's own SIGINT handler (a fresh interpreter's) before: the second Ctrl-C is a KeyboardInterrupt."""
    with handler_before(signal.SIGINT, signal.default_int_handler), StopSignals(StubDistributed()) as stops:
        signal_this_thread(signal.SIGINT)
        assert stops.received[signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            signal_this_thread(signal.SIGINT)


def test_a_second_signal_goes_to_the_handler_there_was_before():
    calls = []

    def record(signum, frame):
        calls.append(signum)

    with handler_before(signal.SIGTERM, record):
        with StopSignals(StubDistributed()) as stops:
            signal_this_thread(signal.SIGTERM)
            assert stops.received[signal.SIGTERM] and calls == []
            signal_this_thread(signal.SIGTERM)
            assert calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is record


def test_every_process_stops_when_one_was_signalled():
    with StopSignals(TwoProcesses(partner=[1, 0, 0])) as stops:
        assert stops.poll() == (signal.SIGTERM, False)
    with StopSignals(TwoProcesses(partner=[0, 0, 1])) as stops:
        assert stops.poll() == (None, True)


def test_time_based_saves_come_due():
    with StopSignals(StubDistributed(), save_every_seconds=0.2) as stops:
        assert stops.poll() == (None, False)
        time.sleep(0.25)
        assert stops.poll() == (None, True)
        stops.saved()
        assert stops.poll() == (None, False)


def test_exit_codes():
    assert Stopped(signal.SIGTERM, 'ckpt', 'epoch 1').exit_code == 143
    assert Stopped(signal.SIGINT, 'ckpt', 'epoch 1').exit_code == 130
    assert 'stopped by SIGTERM at epoch 1; checkpoint written: ckpt' in str(Stopped(signal.SIGTERM, 'ckpt', 'epoch 1'))
