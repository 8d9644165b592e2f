"""`make up` / `make status` / `make down`: the services supervised in the background, a crash restarted."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pipeline.supervisor import pid_alive, port_open
from pipeline_runtime.broker import free_port
from tests.support.kafka import read_topic
from tests.support.processes import local_env, run_module

SERVICES = ("broker", "sandbox", "producer", "streaming", "trainer")


def supervisor_env(data_dir: Path) -> dict[str, str]:
    return local_env(
        data_dir,
        PIPELINE_SANDBOX_PORT=str(free_port()),
        PIPELINE_SANDBOX_TRACKS="300",
        PIPELINE_STOP_TIMEOUT_SECONDS="30",
        STREAMING_TRIGGER_INTERVAL="5 seconds",
        PRODUCER_POLL_INTERVAL_SECONDS="10",
        TRAINING_INTERVAL_SECONDS="5",  # a cycle soon after gold has its first rows
        TRAINING_MIN_ROWS="50",
        TRAINING_EXCLUDE_FEATURES="artists,album",  # supervision, not the models: a shorter cycle
    )


def services(data_dir: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    state = json.loads((data_dir / "state" / "supervisor.json").read_text())
    return dict(state["services"])


def wait_for(condition, timeout: float, what: str, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}" + (
            f"; the end of {log.name}:\n{log.read_text()[-3000:]}" if log and log.exists() else ""
        )
        time.sleep(1)


def test_up_restarts_a_crashed_service_and_down_stops_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = supervisor_env(data_dir)
    try:
        started = run_module("pipeline", "up", env=env, cwd=tmp_path, timeout=400)
        assert started.returncode == 0, started.stdout + started.stderr
        for name in SERVICES:
            assert f"│ {name} " in started.stdout
        assert "up: supervisor pid" in started.stdout
        first = services(data_dir)
        assert set(first) == set(SERVICES)
        assert all(pid_alive(s["pid"]) and s["state"] == "running" for s in first.values()), first

        again = run_module("pipeline", "up", env=env, cwd=tmp_path)
        assert again.returncode == 0 and "already up" in again.stdout

        # A crash: the supervisor restarts the producer.
        crashed = first["producer"]["pid"]
        os.kill(crashed, signal.SIGKILL)

        def restarted() -> bool:
            producer = services(data_dir)["producer"]
            return bool(producer["restarts"] == 1 and pid_alive(producer["pid"]))

        wait_for(restarted, 60, "the producer's restart")
        producer = services(data_dir)["producer"]
        assert producer["pid"] != crashed and producer["last_exit"] == -signal.SIGKILL
        shown = run_module("pipeline", "status", env=env, cwd=tmp_path)
        assert shown.returncode == 0
        assert any(line.startswith("│ producer") and "│ 1 " in line for line in shown.stdout.splitlines()), shown.stdout

        # The supervised pipeline works: gold fills and the trainer promotes a champion. Three JVMs (streaming,
        # trainer, and the other pytest worker's) share 2 cores here: a CI run once needed more than 400 s.
        trainer_log = data_dir / "logs" / "trainer.log"
        wait_for(lambda: "champion" in trainer_log.read_text(), 700, "a trained champion", trainer_log)
        for name in SERVICES:
            assert (data_dir / "logs" / f"{name}.log").stat().st_size > 0
    finally:
        stopped = run_module("pipeline", "down", env=env, cwd=tmp_path, timeout=300)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    last = services(data_dir)
    assert all(s["state"] == "stopped" for s in last.values()), last
    assert not any(pid_alive(s["pid"]) for s in first.values())
    after = run_module("pipeline", "status", env=env, cwd=tmp_path)
    assert after.returncode == 3 and "not running" in after.stdout
    assert "SIGTERM received" in (data_dir / "logs" / "streaming.log").read_text()


def test_sandbox_producer_reads_the_sandbox_catalogue_and_publishes(bootstrap_servers: str, tmp_path: Path) -> None:
    """compose's producer-sandbox: the producer pointed at a sandbox in another process (another container)."""
    data_dir = tmp_path / "data"
    port = free_port()
    topic = f"tracks-{uuid.uuid4().hex[:8]}"
    env = local_env(
        data_dir,
        PIPELINE_SANDBOX_PORT=str(port),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        KAFKA_TOPIC_TRACKS=topic,
        PRODUCER_POLL_INTERVAL_SECONDS="3600",
    )
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producers",
            "sandbox",
            "--port",
            str(port),
            "--tracks",
            "200",
            "--artists",
            "20",
            "--albums",
            "40",
            "--generation",
            "extended",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log_file = tmp_path / "producer.log"
    producer = None
    try:
        wait_for(lambda: port_open(port), 60, "the sandbox")
        with log_file.open("w") as log:
            producer = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "sandbox-producer"],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "poll:" in log_file.read_text(), 120, "the first poll")
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(60) == 0, log_file.read_text()
    finally:
        for process in (producer, sandbox):
            if process is not None and process.poll() is None:
                process.kill()
    catalogue = json.loads((data_dir / "sandbox" / "catalogue.json").read_text())
    members = {t for p in catalogue["playlists"].values() for t in p["track_ids"]}
    published = {event["payload"]["track_id"] for event in read_topic(bootstrap_servers, topic)}
    assert published == members, "every track of the sandbox's playlists, from the catalogue it saved"
