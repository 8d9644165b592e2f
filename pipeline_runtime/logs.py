"""Logging set-up shared by every entry point: one call from each `main()`."""

import logging

from rich.console import Console
from rich.logging import RichHandler

NOISY_LOGGERS = ("urllib3", "alembic", "git", "mlflow.spark")
# spotipy logs request headers (tokens, client secrets) at DEBUG and every HTTP error at ERROR; the
# producer reports each condition itself, once, in words a user understands. py4j logs the traceback of
# an exception in a Python callback (a foreachBatch function) that Spark then raises again as the
# query's error, which the streaming job reports.
SILENCED_LOGGERS = ("spotipy", "py4j")


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr through rich, so the CLIs' stdout stays for their own output."""
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level.upper(), format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SILENCED_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
