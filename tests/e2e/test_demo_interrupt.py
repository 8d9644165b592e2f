"""Ctrl-C during `python -m pipeline demo`: it stops everything it started. A module apart from the demo's shared
run (test_demo.py), so pytest-xdist can run it beside that run."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from tests.support.demo import demo_env
from tests.support.processes import wait_for_log


def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log_file = tmp_path / "demo.log"
    with log_file.open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "demo"],
            env=demo_env(data_dir),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_log(demo, log_file, "✓ Spark session", 300)
        time.sleep(3)  # into the streaming phase
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=120) == 130, log_file.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
    output = log_file.read_text()
    assert "interrupted" in output and "Traceback" not in output
    assert LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=data_dir)).status() is None, "broker left running"
