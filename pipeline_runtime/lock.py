"""One process at a time: an exclusive `flock` on a file under the data dir (released when the process dies)."""

import fcntl
import os
from contextlib import suppress
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
        if not self.path.exists():
            self.path.touch()
        # Held on a read-only descriptor: a file open for writing for the whole run would keep its file system
        # from being remounted read-only (EBUSY); flock needs no write access.
        handle = self.path.open("r")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise SetupError(
                f"another {self.what} is already running (pid {holder}, lock {self.path}): "
                f"let it finish or stop it first"
            ) from None
        self._write_holder(str(os.getpid()))
        self._handle = handle
        return self

    def _write_holder(self, text: str) -> None:
        """The pid only names the holder in the refusal: on a full or read-only disk the lock holds without it."""
        with suppress(OSError), self.path.open("w") as out:
            out.write(text)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._write_holder("")
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
