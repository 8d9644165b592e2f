"""Running the project's commands as a user does: the environment, `python -m ...` in a subprocess."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JARS_DIR = Path(os.environ.get("JARS_DIR", ROOT / "jars")).resolve()
# Spark in every test: 2 cores and one shuffle partition. A test's data is small: a second partition only doubled the
# tasks (a training cycle of 1,950 tracks: 3,700 tasks and 166 JVM CPU-s with two, 1,700 and 148 with one).
TEST_SPARK_MASTER = "local[2]"
TEST_SHUFFLE_PARTITIONS = 1
# The Spark driver of a command a test runs lives a minute or two: the JIT's first tier (C1) alone compiles far less
# and starts sooner. Pinned to one core, as a test runs beside another, the crash and SIGTERM tests took 265 -> 225 s
# and a demo 220 -> 201 s. The session's own Spark (the tests/conftest.py fixture, alive for the whole run) keeps both
# tiers: there C1 alone was slower (the streaming and training component tests 398 -> 485 s). C1 alone gets the JVM's
# 48 MB code cache, which the poison test's job filled in 50 s ("CodeCache is full. Compiler has been disabled"): the
# tiered default's 240 MB.
TEST_DRIVER_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a CLI run in a test: this one, less the pipeline's own settings."""
    prefixes = (
        "DATA_",
        "KAFKA_",
        "LOCAL_KAFKA_",
        "SPARK_",
        "MLFLOW_",
        "SMOKE_",
        "PRODUCER_",
        "STREAMING_",
        "TRAINING_",
        "SPOTIFY_",
        "TABLES_",
        "CHECKPOINTS_",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(
        {
            "JARS_DIR": str(JARS_DIR),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
            "SPARK_DRIVER_JAVA_OPTIONS": TEST_DRIVER_JAVA_OPTIONS,
        }
    )
    env.update(overrides)
    return env


def local_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a CLI run on a small local stack: its own data dir, a free broker port,
    Spark on 2 cores with 1g, the quick tuning grid."""
    settings = {
        "DATA_DIR": str(data_dir),
        "LOCAL_KAFKA_PORT": "0",
        "SPARK_MASTER": TEST_SPARK_MASTER,
        "SPARK_SHUFFLE_PARTITIONS": str(TEST_SHUFFLE_PARTITIONS),
        "TRAINING_SHUFFLE_PARTITIONS": str(TEST_SHUFFLE_PARTITIONS),
        "SPARK_UI_ENABLED": "false",
        "SPARK_DRIVER_MEMORY": "1g",
        "TRAINING_TUNING": "quick",
    }
    return clean_env(**{**settings, **overrides})


def run_module(
    module: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> "subprocess.CompletedProcess[str]":
    """`python -m module args...` in `cwd` (where no .env lies), output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_module(module: str, *args: str, env: dict[str, str], cwd: Path) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def read_until(process: "subprocess.Popen[str]", pattern: str, timeout: float = 60) -> tuple[str, str]:
    """Lines of output until one matches `pattern`: (everything read, the match)."""
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return "".join(seen), match.group(0)
    raise AssertionError(f"{pattern!r} not seen in:\n{''.join(seen)}")


def start_group(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> "subprocess.Popen[bytes]":
    """`python -m ...` in a process group of its own, so a kill takes its JVM along."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_log(process: "subprocess.Popen[Any]", log: Path, text: str, timeout: float) -> None:
    """Until `log` holds `text`; fails with the log's tail if the process ends first or time is up."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, f"it exited ({process.returncode}) before {text!r}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} after {timeout:.0f}s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


def kill_group(process: "subprocess.Popen[bytes]") -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
