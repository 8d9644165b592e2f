"""The layering the README states, read from every import in the code (those inside functions too):
the service packages depend on `pipeline_runtime`, never on each other; `pipeline_runtime` depends on
none of them; only `pipeline` (and the benchmarks) tie them together."""

import ast

import pytest

from tests.support.processes import ROOT

SERVICES = ("producers", "streaming", "training")
# What each package may not import (its own top-level package name is always allowed).
FORBIDDEN = {
    "producers": {"streaming", "training", "pipeline", "benchmarks"},
    "streaming": {"producers", "training", "pipeline", "benchmarks"},
    "training": {"producers", "streaming", "pipeline", "benchmarks"},
    "pipeline_runtime": {"producers", "streaming", "training", "pipeline", "benchmarks"},
}


def imported_packages(source: str) -> set[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    return [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, imported in sorted(imported_packages(path.read_text()))
        if imported in forbidden
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_layers_hold(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_imports_inside_functions() -> None:
    source = "import os\n\ndef f():\n    from training.cycle import run_cycle\n    import streaming.job\n"
    assert imported_packages(source) == {(1, "os"), (4, "training"), (5, "streaming")}
