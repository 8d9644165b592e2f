"""The fault tier: every test records the figures it checked (events sent, rows found, duplicates,
quarantined, restarts...) with the `figures` fixture; they are printed as they are recorded and again,
all together, at the end of the run, passed or not.

Run alone with `make test-faults` (pytest -m faults); `make test` runs them too.
"""

from collections.abc import Callable

import pytest

RECORDED: list[tuple[str, str]] = []


def format_figures(values: dict[str, object]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value:,}" if isinstance(value, int) and not isinstance(value, bool)
                     else f"{name.replace('_', ' ')} {value}" for name, value in values.items())  # fmt: skip


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """figures(what="...", events_sent=100000, duplicates=0): one line of what this test checked."""

    def record(what: str = "", **values: object) -> None:
        name = request.node.name + (f" [{what}]" if what else "")
        line = format_figures(values)
        RECORDED.append((name, line))
        print(f"\n{name}: {line}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECORDED:
        return
    terminalreporter.section("fault tolerance and security: what each test checked")
    for name, line in RECORDED:
        terminalreporter.write_line(f"{name}: {line}")
