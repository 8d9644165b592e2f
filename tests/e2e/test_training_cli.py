"""`python -m training` as users run it: recommend, report, the MLflow UI, a skipped run, the lock, SIGTERM,
missing pieces."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from mlflow import MlflowClient

from pipeline_runtime.broker import free_port
from pipeline_runtime.contract import GOLD
from pipeline_runtime.delta_log import delta_version
from pipeline_runtime.lock import ProcessLock
from pipeline_runtime.settings import join_location
from producers.sandbox.catalogue import generate_catalogue, gold_rows, load_catalogue
from tests.support.demo import DemoRun
from tests.support.processes import run_module
from tests.support.training import SMALL, gold_location, trainer_env, write_gold
from training import registry

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_recommend_report_ui_and_skip_on_a_trained_store(demo_run: DemoRun) -> None:
    """`recommend`, `report`, the MLflow UI and a skipped `run --once` on the store the session's demo trained
    (`run --once` that trains is tests/faults/test_trainer_faults.py's, on a store of its own)."""
    data_dir, env, cwd = demo_run.data_dir, demo_run.env, demo_run.cwd
    catalogue = load_catalogue(data_dir / "sandbox")
    gold_version = delta_version(join_location(None, data_dir / "tables", GOLD))

    shown = run_module("training", "recommend", "--top", "5", env=env, cwd=cwd)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"top 5 tracks for you (spotify-favourite v1, gold version {gold_version})" in shown.stdout
    ranks = re.findall(r"^│ (\d+) +│", shown.stdout, re.MULTILINE)
    assert ranks == ["1", "2", "3", "4", "5"]
    other_names = {t["name"] for tid, t in catalogue.tracks.items() if tid not in catalogue.favourites}
    shown_names = {line.split("│")[2].strip() for line in shown.stdout.splitlines() if re.match(r"^│ \d+ +│", line)}
    assert shown_names and shown_names <= other_names

    report = run_module("training", "report", env=env, cwd=cwd)
    assert report.returncode == 0, report.stdout + report.stderr
    page = (data_dir / "report" / "index.html").read_text()
    assert "Favourite classifier: champion v1" in page and "Popularity regression: champion v1" in page
    assert page.count('<img class="chart"') >= 10

    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "mlflow-ui"],
        env={**env, "PIPELINE_MLFLOW_UI_PORT": str(port)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    search = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/registered-models/search"
    try:
        deadline, answer = time.monotonic() + 90, None
        while answer is None and time.monotonic() < deadline:
            assert ui.poll() is None, ui.stdout.read().decode() if ui.stdout else ""
            try:
                answer = requests.get(search, timeout=5)
            except requests.ConnectionError:
                time.sleep(1)
        assert answer is not None and answer.status_code == 200
        names = {m["name"] for m in answer.json()["registered_models"]}
        assert names == {"spotify-popularity", "spotify-favourite"}
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(30)

    again = run_module("training", "run", "--once", env=env, cwd=cwd)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"skipped: gold is still at version {gold_version}, which the last run trained on" in again.stdout
    assert "session 'training'" not in again.stdout + again.stderr, "the skip needed no Spark session"


def test_missing_gold_missing_champion_and_a_second_trainer(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = trainer_env(data_dir)

    nothing = run_module("training", "run", "--once", env=env, cwd=tmp_path)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "skipped: the gold table" in nothing.stdout and "does not exist yet: run the streaming job" in nothing.stdout

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
        deadline = time.monotonic() + 180
        while "popularity: tune" not in log_file.read_text() and time.monotonic() < deadline:
            assert trainer.poll() is None, log_file.read_text()
            time.sleep(0.5)
        assert "popularity: tune" in log_file.read_text(), "the trainer never reached tuning"
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
