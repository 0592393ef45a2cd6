"""One process at a time in a run folder: an advisory lock on {folder}/.lock.

A run holds `fcntl.flock` on the lock file while it runs; the file holds the
holder's pid and host, for the message that refuses a second run.  The kernel
drops a flock when its process dies (exit, crash, `kill -9`), so a lock file
left by a dead process holds no lock and the next run takes it over.  A run
removes the file when it releases the lock; since another process may have
opened the file just before, a lock is only held once the locked file is still
the one at the path (the same inode), otherwise it is taken again on the new
file.  flock works between processes of one machine and, on most network file
systems (NFSv4, Lustre, GPFS with locking enabled), across machines.
"""
from __future__ import annotations

import fcntl
import os
import socket
from typing import Optional

from emerging.errors import InputError

LOCK_FILE = '.lock'


def _holder(path: str) -> str:
    """What the lock file says about its holder ('pid 123 on host'), or that it says nothing readable."""
    try:
        with open(path, 'rb') as f:
            text = f.read(200).decode('utf-8', 'replace').split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f'pid {text[0]} on {text[1]}'
    return 'a process that has not written its pid yet'


class RunLock:
    """The lock of one run folder, held from `acquire` to `release` (or the process's end).

    Args:
      folder: the run folder (it must exist).
      flag: the flag that named the folder ('--logdir'), for the message.
    """

    def __init__(self, folder: str, flag: str = '--logdir'):
        self.folder, self.flag = folder, flag
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd: Optional[int] = None

    def acquire(self) -> 'RunLock':
        """Take the lock, or refuse.

        Returns:
          self.

        Raises:
          InputError: naming the folder and the process that holds it.
        """
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(f'{self.flag} {self.folder} is in use by another run ({_holder(self.path)}; lock '
                                 f'file {self.path}): wait for it to end, or choose another folder') from None
            if self._still_at_path(fd):
                os.ftruncate(fd, 0)
                os.write(fd, f'{os.getpid()} {socket.gethostname()}\n'.encode())
                self._fd = fd
            else:  # its holder removed the file as we opened it: lock the file at the path now
                os.close(fd)
        return self

    def _still_at_path(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and drop the lock (nothing when not held)."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass  # the folder went away (or was emptied by hand); the lock still ends with the descriptor
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> 'RunLock':
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
