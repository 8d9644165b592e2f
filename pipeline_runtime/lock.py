"""One process at a time: an exclusive `flock` on a file under the data dir (released when the process dies)."""

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from pipeline_runtime.errors import SetupError


class ProcessLock:
    """`with ProcessLock(path, "trainer"):` runs the body only when no other process holds the lock;
    otherwise raises SetupError naming the holder's pid. The kernel drops the lock when its holder
    exits, even on SIGKILL, so a crashed process never leaves a stale lock behind."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._handle: IO[str] | None = None

    def __enter__(self) -> "ProcessLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise SetupError(
                f"another {self.what} is already running (pid {holder}, lock {self.path}): "
                f"let it finish or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
