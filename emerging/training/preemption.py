"""Stopping a run cleanly: SIGTERM and SIGINT, and checkpoints every few minutes.

Clusters stop jobs with SIGTERM and a grace period before SIGKILL (SLURM's
`--signal`, Kubernetes' `terminationGracePeriodSeconds`, preemptible
VMs); a user stops one with Ctrl-C (SIGINT).  While a `StopSignals` is
entered, these two signals only set a flag.  The training loop calls
`poll()` at every step boundary (training and validation steps alike); it
returns whether to stop and whether a time-based save is due, the same on
every process: under Horovod the flags of all processes are summed, so every
rank stops, or saves, at the same step even when only one was signalled.
The loop then writes a checkpoint of the exact position and raises
`Stopped`, whose exit code is 128 + the signal (143 for SIGTERM, 130 for
SIGINT).  A second signal of a kind already received is no longer held back:
it does what it would have done without this class (a hurried user's second
Ctrl-C interrupts at once).
"""
import signal
import threading
import time

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """The run stopped on a signal after writing a checkpoint to resume from.

    Args:
      signum: the signal (SIGTERM or SIGINT).
      checkpoint: the prefix of the checkpoint written.
      where: the position in words ('epoch 3, after step 12 of 47').
    """

    def __init__(self, signum: int, checkpoint: str, where: str):
        self.signum, self.checkpoint, self.where = signum, checkpoint, where
        super().__init__(f'stopped by {signal.Signals(signum).name} at {where}; checkpoint written: {checkpoint}')

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it."""
        return 128 + self.signum


class StopSignals:
    """Holds SIGTERM and SIGINT back as stop requests while entered (see the module docstring).

    Args:
      dist: the `Distributed` of this process (its `agree` sums the flags over processes).
      save_every_seconds: a time-based save is due this long after the last one (0: never).
    """

    def __init__(self, dist, save_every_seconds: float = 0.):
        self.dist, self.save_every_seconds = dist, float(save_every_seconds)
        self.received = {signum: False for signum in SIGNALS}
        self._previous = {}
        self._last_save = time.monotonic()
        #: the signal the last `poll` agreed to stop on, or None
        self.stop_signal = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._hold)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False

    def _hold(self, signum, frame):
        if self.received[signum]:
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signum)
            return
        self.received[signum] = True

    def poll(self) -> tuple:
        """(the signal to stop on or None, whether a time-based save is due), agreed by every process.

        Returns:
          (signum or None, bool).
        """
        due = bool(self.save_every_seconds) and time.monotonic() - self._last_save >= self.save_every_seconds
        counts = self.dist.agree([int(self.received[signal.SIGTERM]), int(self.received[signal.SIGINT]), int(due)],
                                 name='stop_poll')
        self.stop_signal = signal.SIGTERM if counts[0] else signal.SIGINT if counts[1] else None
        return self.stop_signal, bool(counts[2])

    def saved(self):
        """Start the time to the next time-based save from now."""
        self._last_save = time.monotonic()
