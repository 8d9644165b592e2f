"""The e2e tier's shared run: one `python -m pipeline demo` per session, read by every test that only
inspects what a full run leaves behind (its summary, tables, MLflow store, report), so the most expensive
command runs once instead of once per test."""

import time

import pytest

from tests.support.demo import DemoRun, demo_env
from tests.support.processes import run_module


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    folder = tmp_path_factory.mktemp("demo")
    env = demo_env(folder / "data")
    started = time.monotonic()
    result = run_module("pipeline", "demo", env=env, cwd=folder, timeout=900)
    run = DemoRun(folder / "data", folder, env, result, time.monotonic() - started)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return run
