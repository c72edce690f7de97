"""A non-blocking exclusive ``flock`` on a file, held until released or the process ends:
how one process of several on one SQLite database is elected for a job that must run once
(the routing dispatcher, an adapter's statement consumer). PostgreSQL uses advisory locks."""

from __future__ import annotations

import fcntl
import os


class FileLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        """True when this process holds the lock (now or already); False when another does."""
        if self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


__all__ = ["FileLock"]
