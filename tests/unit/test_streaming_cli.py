"""`python -m streaming rebuild` refuses before touching anything: while the job runs, and unconfirmed."""

import io
import os
from pathlib import Path

import pytest

from pipeline_runtime.cli import EXIT_SETUP
from pipeline_runtime.lock import ProcessLock
from streaming.__main__ import JOB_LOCK, main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_rebuild_refuses_while_the_job_holds_its_lock(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ProcessLock(data_dir / "state" / JOB_LOCK, "streaming job"):  # as `python -m streaming run` holds it
        assert main(["rebuild", "--yes"]) == EXIT_SETUP
    out = " ".join(capsys.readouterr().out.split())
    assert f"another streaming job is already running (pid {os.getpid()}" in out
    assert not (data_dir / "tables").exists()


def test_rebuild_without_a_terminal_asks_for_yes(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["rebuild"]) == EXIT_SETUP
    out = " ".join(capsys.readouterr().out.split())
    assert "a rebuild removes quarantine, silver_tracks" in out and "pass --yes to confirm" in out
