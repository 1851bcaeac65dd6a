"""One evaluation process per run directory.

Two `hr-jax eval` processes writing the same `--out` would both run every sample and interleave their
rows. `RunLock` takes an exclusive `flock` on `<run_dir>/.lock` for the whole run and writes who holds it
(pid, host, start time, command) into the file. The kernel drops a `flock` when its holder dies, however
it dies (SIGKILL included), so a lock file left by a killed run is stale by construction: the next run
takes it over and says so. (`flock` is per machine: on a network file system shared by several hosts it
may not exclude a run on another host.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from types import TracebackType

LOCK_FILE = ".lock"


class RunDirLocked(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """Context manager: exclusive use of `run_dir` (see the module docstring)."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise RunDirLocked(
                f"{os.path.dirname(self.path)} is in use by another hr-jax eval ({holder}); wait for it to "
                f"finish or pass another --out"
            ) from None
        previous = os.pread(fd, 4096, 0)
        if previous.strip():
            print(f"[hr_jax.eval] taking over a stale lock ({_describe(previous)})", file=sys.stderr)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: the run ended cleanly
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode())
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, UnicodeDecodeError):
        return "holder unknown"
