"""`python -m training` stopping as users see it: a missing gold table or champion, a second trainer (the lock), and
SIGTERM mid-cycle. On stores of their own: a module apart from the demo's shared run (test_training_cli.py), so
pytest-xdist can run these beside it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow import MlflowClient

from pipeline_runtime.lock import ProcessLock
from producers.sandbox.catalogue import generate_catalogue, gold_rows
from tests.support.processes import run_module, wait_for_log
from tests.support.training import SMALL, gold_location, trainer_env, write_gold
from training import registry

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_missing_gold_missing_champion_and_a_second_trainer(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = trainer_env(data_dir)

    nothing = run_module("training", "run", "--once", env=env, cwd=tmp_path)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "skipped: the gold table" in nothing.stdout and "does not exist yet: run the streaming job" in nothing.stdout
    assert "session 'training'" not in nothing.stdout + nothing.stderr, "no gold folder: said without a Spark session"

    no_model = run_module("training", "recommend", env=env, cwd=tmp_path)
    assert no_model.returncode == 2
    assert "error: no spotify-favourite model is champion yet: run `python -m training run --once`" in (
        " ".join(no_model.stdout.split())
    )
    assert "Traceback" not in no_model.stdout + no_model.stderr

    with ProcessLock(data_dir / "state" / "training.lock", "trainer"):
        second = run_module("training", "run", "--once", env=env, cwd=tmp_path)
    assert second.returncode == 2
    assert f"another trainer is already running (pid {os.getpid()}" in " ".join(second.stdout.split())


def test_sigterm_abandons_the_cycle_and_leaves_the_aliases_alone(spark: "SparkSession", tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_gold(spark, gold_location(data_dir), gold_rows(generate_catalogue(12, SMALL), "extended"))
    log_file = tmp_path / "trainer.log"
    with log_file.open("w") as log:
        trainer = subprocess.Popen(
            [sys.executable, "-m", "training", "run", "--interval", "3600"],
            env=trainer_env(data_dir, TRAINING_TUNING="full"),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_log(trainer, log_file, "popularity: tune", 180)  # the trainer reached tuning
        sent = time.monotonic()
        trainer.send_signal(signal.SIGTERM)
        assert trainer.wait(timeout=90) == 0, log_file.read_text()
        print(f"\nstopped {time.monotonic() - sent:.1f} s after SIGTERM")
    finally:
        if trainer.poll() is None:
            trainer.kill()
    output = log_file.read_text()
    assert "SIGTERM received" in output and "stopped" in output
    client = MlflowClient(f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name(registry.NAMES["popularity"][0])
    assert experiment is not None
    finished = client.search_runs(
        [experiment.experiment_id], f"tags.{registry.TAG_ROLE} = 'candidate' and attributes.status = 'FINISHED'"
    )
    assert finished == []
    assert client.search_model_versions(f"name = '{registry.model_name('popularity')}'") == []
