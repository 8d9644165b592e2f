"""`python -m pipeline demo` in tests: its environment, and the cells of the summary tables it prints."""

from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

from tests.support.processes import local_env

DEMO_TRACKS = 600


@dataclass
class DemoRun:
    """One `python -m pipeline demo` on a fresh data dir: what it printed and where it left everything
    (tables, MLflow store, report, logs), for the tests that only read its results."""

    data_dir: Path
    cwd: Path
    env: dict[str, str]
    result: "CompletedProcess[str]"
    seconds: float

    @property
    def output(self) -> str:
        return self.result.stdout


def demo_env(data_dir: Path) -> dict[str, str]:
    return local_env(data_dir, PIPELINE_SANDBOX_TRACKS=str(DEMO_TRACKS))


def table_value(output: str, name: str, column: int) -> str:
    """A cell of a rich table row that starts with `name`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == name:
            return cells[column]
    raise AssertionError(f"no row {name!r} in:\n{output}")


def table_number(output: str, name: str, column: int) -> int:
    return int(table_value(output, name, column).replace(",", ""))
