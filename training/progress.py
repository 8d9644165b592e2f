"""Progress of a training cycle: a bar in a terminal, a log line per step everywhere."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline_runtime.cli import console

log = logging.getLogger("training.cycle")


@dataclass
class Steps:
    """Progress of a cycle: a bar in a terminal, a log line per step everywhere."""

    progress: Progress
    task_id: Any = None

    @classmethod
    @contextmanager
    def show(cls) -> Iterator["Steps"]:
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        with progress:
            yield cls(progress)

    def begin(self, total: int) -> None:
        self.task_id = self.progress.add_task("training", total=total)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        log.info("%s ...", description)
        if self.task_id is not None:
            self.progress.update(self.task_id, description=description)
        started = time.monotonic()
        yield
        log.info("%s: done in %.1f s", description, time.monotonic() - started)
        if self.task_id is not None:
            self.progress.advance(self.task_id)
