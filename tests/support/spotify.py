"""The Spotify sandbox in tests: producer settings and environments pointed at it, its fault and stats
endpoints, and a producer process whose output is read line by line."""

import re
import signal
import threading
import time
import uuid
from pathlib import Path

import requests

from pipeline_runtime.settings import TOPIC_SETTINGS, topic_names
from producers.sandbox.server import SandboxServer
from producers.settings import ProducerSettings
from tests.support.processes import clean_env, start_module

SMALL_CATALOGUE = {"tracks": 300, "artists": 40, "albums": 60, "playlists": 6, "favourite_playlists": 2}


def sandbox_settings(server: SandboxServer, data_dir: Path, **overrides: object) -> ProducerSettings:
    """Producer settings pointed at a sandbox, with topics of their own and short retries."""
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "data_dir": data_dir,
        **topic_names(f"test-{suffix}"),
        "topic_partitions": 2,
        "http_retries": 2,
        "request_timeout_seconds": 5,
    }
    return server.producer_settings(_env_file=None, **{**values, **overrides})


def sandbox_login(settings: ProducerSettings) -> None:
    """Log in the sandbox user the way a browser would: follow /authorize, exchange the code (PKCE)."""
    from producers.sandbox.login import log_in_sandbox_user

    log_in_sandbox_user(settings)


def sandbox_stats(server: SandboxServer, reset: bool = False) -> dict[str, int]:
    counts: dict[str, int] = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"]
    counts.pop("_sandbox", None)
    if reset:
        requests.post(f"{server.url}/_sandbox/stats/reset", timeout=10)
    return counts


def set_faults(server: SandboxServer, **faults: object) -> None:
    requests.post(f"{server.url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()


def producer_env(server: SandboxServer, data_dir: Path, bootstrap_servers: str, **extra: str) -> dict[str, str]:
    """The environment of `python -m producers` pointed at a sandbox (every playlist, the favourites)."""
    local = {"DATA_DIR": str(data_dir), "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "PRODUCER_TOPIC_PARTITIONS": "1"}
    return clean_env(**{**server.env(), **local, **extra})


TOPICS = tuple(f"KAFKA_{name.upper()}" for name in TOPIC_SETTINGS.values())  # the topics' variables


def fault_env(server: SandboxServer, data_dir: Path, bootstrap_servers: str, **extra: str) -> dict[str, str]:
    """The producer's environment with topics of its own and lines wide enough that no log line wraps."""
    suffix = uuid.uuid4().hex[:8]
    topics = {name: f"{name.lower().removeprefix('kafka_topic_')}-{suffix}" for name in TOPICS}
    return producer_env(server, data_dir, bootstrap_servers, COLUMNS="1000", **topics, **extra)


def change_playlist(server: SandboxServer, playlist_id: str, add: list[str], remove: list[str]) -> None:
    requests.post(
        f"{server.url}/_sandbox/playlists/{playlist_id}", json={"add": add, "remove": remove}, timeout=10
    ).raise_for_status()


class ProducerProcess:
    """`python -m producers run ...` with its output (logs included) collected line by line in a thread,
    so waiting for a line never blocks past its timeout."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.process = start_module("producers", "run", *args, env=env, cwd=cwd)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, after: int = 0, timeout: float = 120) -> int:
        """Wait for a line matching `pattern` among the lines from index `after` on: the index after it."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(after, len(self.lines)):
                if re.search(pattern, self.lines[index]):
                    return index + 1
            self.assert_alive(f"before {pattern!r}")
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout:.0f}s:\n{self.output[-4000:]}"
            time.sleep(0.1)

    def assert_alive(self, when: str = "") -> None:
        assert self.process.poll() is None, f"exited with {self.process.returncode} {when}:\n{self.output[-4000:]}"

    def count(self, pattern: str) -> int:
        return sum(bool(re.search(pattern, line)) for line in self.lines)

    def terminate(self) -> float:
        """SIGTERM; the seconds until it exited with 0."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        took = time.monotonic() - sent
        self.reader.join(10)
        assert code == 0, self.output[-4000:]
        assert "producer stopped" in self.output
        return took

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
