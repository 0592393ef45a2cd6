"""StopSignals: SIGTERM / SIGINT become a stop request at the next poll, agreed over processes; a second one of
the same kind is no longer held back; time-based saves come due; handlers are restored on exit."""
import os
import signal
import time

import pytest

from emerging.training.preemption import Stopped, StopSignals
from tests.helpers import StubDistributed


def signal_handled(stops, signum):
    """Send `signum` to this process and return once its handler ran: Python runs a handler in the main thread at
    its next check, which can come a few statements later when another thread (TensorFlow's) took the signal."""
    os.kill(os.getpid(), signum)
    deadline = time.monotonic() + 10
    while not stops.received[signum] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert stops.received[signum]


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
        signal_handled(stops, signum)
        assert stops.poll() == (signum, False) and stops.stop_signal == signum
    assert signal.getsignal(signum) is before


def test_a_second_sigint_interrupts_at_once():
    with StopSignals(StubDistributed()) as stops:
        signal_handled(stops, signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)  # the handler's KeyboardInterrupt ends the sleep as soon as it runs


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
