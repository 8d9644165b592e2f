"""What every entry point shares: one-line errors instead of tracebacks, and the settings table."""

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError
from rich.console import Console
from rich.table import Table

from pipeline_runtime.errors import SetupError
from pipeline_runtime.settings import settings_rows

console = Console()
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130


def describe_validation_error(exc: ValidationError) -> str:
    """'DATA_DIR: Input should be ...' for each bad setting, on one line."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or exc.title
        problems.append(f"{where}: {error['msg']}")
    return f"invalid settings ({exc.title}): " + "; ".join(problems) + " (fix the variable in the environment or .env)"


def run_cli(body: Callable[[], int]) -> int:
    """Run a command body; SetupError, bad settings and Ctrl-C end with one line and an exit code."""
    try:
        return body()
    except SetupError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_SETUP
    except ValidationError as exc:
        console.print(f"[bold red]error:[/] {describe_validation_error(exc)}", highlight=False, soft_wrap=True)
        return EXIT_SETUP
    except SettingsError as exc:  # a value pydantic-settings could not decode (a list that is not JSON, say)
        console.print(
            f"[bold red]error:[/] invalid settings: {exc} (fix the variable in the environment or .env)",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_SETUP
    except KeyboardInterrupt:
        console.print("interrupted")
        return EXIT_INTERRUPTED


def install_stop_handlers(log: logging.Logger, when: str) -> threading.Event:
    """SIGTERM and Ctrl-C set the returned event; the service stops at its next safe point (`when`).

    Python runs a signal handler in the main thread between two of its steps, maybe while that thread holds a
    lock: the event's own inside `stop.wait()` (a plain lock, so `stop.set()` there would wait for ever: a
    `broker run` hung so after SIGTERM), or a log handler's. The handler only starts a thread that says so and
    sets the event once the main thread lets go."""
    stop = threading.Event()

    def announce(signum: int) -> None:
        log.info("%s received: stopping %s", signal.Signals(signum).name, when)
        stop.set()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=announce, args=(signum,), name="stop-request", daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def print_settings(settings: BaseSettings, title: str) -> None:
    table = Table(title=title)
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    for name, value in settings_rows(settings):
        table.add_row(name, value)
    console.print(table)
