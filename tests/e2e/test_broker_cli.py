"""The real local Kafka broker: clients of both libraries, the CLI life cycle, restarts, failures."""

import json
import signal
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker, accepts_connections
from pipeline_runtime.kafka_admin import ensure_topics
from tests.support.kafka import consume_all
from tests.support.processes import JARS_DIR, clean_env, run_module


def test_cli_life_cycle_and_restart_keeps_data(tmp_path: Path) -> None:
    env = clean_env(DATA_DIR=str(tmp_path / "data"), LOCAL_KAFKA_PORT="0")
    broker_dir = tmp_path / "data" / "kafka"
    assert run_module("pipeline_runtime", "broker", "status", env=env, cwd=tmp_path).returncode == 3

    started = run_module("pipeline_runtime", "broker", "start", env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((broker_dir / "broker.json").read_text())
    bootstrap = f"127.0.0.1:{state['port']}"
    assert f"running at {bootstrap}" in started.stdout
    status = run_module("pipeline_runtime", "broker", "status", env=env, cwd=tmp_path)
    assert status.returncode == 0 and f"running at {bootstrap} (pid {state['pid']})" in status.stdout

    twice = run_module("pipeline_runtime", "broker", "start", env=env, cwd=tmp_path)
    assert twice.returncode == 2
    assert "already running" in twice.stdout and "Traceback" not in twice.stdout + twice.stderr

    ensure_topics(bootstrap, ["kept"])
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(100):
        producer.produce("kept", value=str(i).encode())
    assert producer.flush(30) == 0

    stopped = run_module("pipeline_runtime", "broker", "stop", env=env, cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not accepts_connections(state["port"])
    assert not (broker_dir / "broker.json").exists()
    assert run_module("pipeline_runtime", "broker", "status", env=env, cwd=tmp_path).returncode == 3
    logs = run_module("pipeline_runtime", "broker", "logs", "--lines", "200", env=env, cwd=tmp_path)
    assert "Kafka Server started" in logs.stdout or "started (kafka.server" in logs.stdout

    # Same data dir again: the same cluster, the messages are still there.
    broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=tmp_path / "data", jars_dir=JARS_DIR, port=0))
    running = broker.start()
    try:
        values = consume_all(running.bootstrap_servers, "kept", 100)
        assert sorted(int(v) for v in values) == list(range(100))
    finally:
        assert broker.stop()


def test_broker_run_in_the_foreground_stops_on_sigterm(tmp_path: Path) -> None:
    env = clean_env(DATA_DIR=str(tmp_path / "data"), LOCAL_KAFKA_PORT="0")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_runtime", "broker", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        while line and "running at" not in line:
            line = process.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        assert accepts_connections(port)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 0 and "Kafka broker stopped." in output
    assert not accepts_connections(port)
