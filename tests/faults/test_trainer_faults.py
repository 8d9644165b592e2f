"""Trainer faults: two trainers started together (the winner is also the suite's `python -m training run --once`
on a fresh store), one SIGKILLed mid-training, a worse candidate, an empty and a missing gold table. The
champion alias moves only when a finished candidate beats it."""

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline_runtime.errors import SetupError
from tests.support.processes import local_env, run_module, wait_for_log
from tests.support.training import PAIR_ROWS, TrainerPair, gold_location, training_settings, write_gold
from training import registry
from training.cycle import run_cycle
from training.recommend import champion_recommendations

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def champions(client: MlflowClient) -> dict[str, str | None]:
    found = {}
    for task in registry.NAMES:
        version = registry.version_by_alias(client, registry.model_name(task), registry.CHAMPION)
        found[task] = None if version is None else str(version.version)
    return found


def versions(client: MlflowClient) -> int:
    return sum(len(client.search_model_versions(f"name = '{registry.model_name(t)}'")) for t in registry.NAMES)


def latest_candidate(client: MlflowClient, task: str) -> Any:
    experiment = client.get_experiment_by_name(registry.NAMES[task][0])
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.{registry.TAG_ROLE} = 'candidate' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0]


def start(env: dict[str, str], cwd: Path, log: Path, *args: str) -> "subprocess.Popen[bytes]":
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "training", "run", *args],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_the_champion_moves_only_for_a_finished_better_candidate(
    spark: "SparkSession", trainer_pair: TrainerPair, tmp_path: Path, figures: Callable[..., None]
) -> None:
    data_dir = trainer_pair.data_dir
    location = gold_location(data_dir)
    rows = trainer_pair.gold_rows
    env = local_env(data_dir)
    client = MlflowClient(f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}")

    # Two trainers started together on a fresh data dir: one trains, the other says who holds the lock.
    codes, outputs = trainer_pair.codes, [" ".join(output.split()) for output in trainer_pair.outputs]
    winner = codes.index(0)
    loser = 1 - winner
    assert sorted(codes) == [0, 2], outputs
    assert f"training cycle on gold version 0 ({PAIR_ROWS} tracks)" in outputs[winner]
    assert outputs[winner].count("v1 → champion: no champion yet") == 2, outputs[winner]
    assert "recommendations written" in outputs[winner]
    assert f"another trainer is already running (pid {trainer_pair.pids[winner]}" in outputs[loser], outputs[loser]
    assert "Traceback" not in outputs[loser]
    assert champions(client) == {"popularity": "1", "favourite": "1"}
    figures(what="two trainers", started=2, trained=1, refused=1, champion_versions="v1, v1")

    # New rows, and the trainer is SIGKILLed while it tunes: nothing it had started counts.
    write_gold(spark, location, rows[PAIR_ROWS:])
    log = tmp_path / "killed.log"
    trainer = start(local_env(data_dir, TRAINING_TUNING="full"), tmp_path, log)
    wait_for_log(trainer, log, "popularity: tune", 300)
    os.killpg(trainer.pid, signal.SIGKILL)
    trainer.wait(30)
    after_kill = champions(client)
    assert after_kill == {"popularity": "1", "favourite": "1"}, "a killed cycle never moves the champion"
    registered_after_kill = versions(client)

    # The favourite champion's files are lost (as with a store the cluster's nodes do not share): recommend
    # says so in one line, and the next cycle reports it broken and replaces it with a candidate that loads.
    favourite_v1 = client.get_model_version_by_alias(registry.model_name("favourite"), registry.CHAMPION)
    shutil.rmtree(Path(urlparse(client.get_run(str(favourite_v1.run_id)).info.artifact_uri).path) / "model" / "sparkml")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        with pytest.raises(SetupError, match=r"the favourite champion \(spotify-favourite v1\) cannot be loaded"):
            champion_recommendations(client, spark.read.format("delta").load(location), 1, 5)
    finally:
        mlflow.set_tracking_uri(before)

    # The next cycle's candidate lacks the best features: worse. (In process, on the session's Spark: the cycle
    # is what is tested here; the CLI runs below show the dead trainer's lock does not block the next one.)
    settings = training_settings(
        data_dir, exclude_features=["artist_popularity", "artist_followers_log", "genres", "artists", "album"]
    )
    try:
        crippled = run_cycle(spark, settings, threading.Event())
    finally:
        mlflow.set_tracking_uri(before)
    assert crippled.skipped is None and (crippled.gold_version, crippled.rows) == (1, 800)
    popularity = client.get_model_version_by_alias(registry.model_name("popularity"), registry.CHALLENGER)
    assert champions(client)["popularity"] == "1" and popularity.version != "1", "the worse one is challenger"
    # The decision, its reason and the champion's score on the same holdout are on the candidate's run.
    last = latest_candidate(client, "popularity")
    assert last.data.tags[registry.TAG_DECISION] == "challenger"
    assert "does not beat the champion by the margin: rmse" in last.data.tags[registry.TAG_REASON]
    assert last.data.metrics["champion_rmse"] < last.data.metrics["rmse"]
    # MLflow evaluated the champion on the same holdout too: a run nested in the candidate's, linked to the
    # champion's logged model; the gate compared both evaluations through mlflow.validate_evaluation_results.
    (checked,) = client.search_runs(
        [last.info.experiment_id],
        f"tags.{registry.TAG_ROLE} = 'champion' and tags.mlflow.parentRunId = '{last.info.run_id}'",
    )
    assert checked.data.tags["champion_version"] == "1"
    assert checked.data.metrics["root_mean_squared_error"] == pytest.approx(last.data.metrics["champion_rmse"])
    # The broken favourite champion was reported and replaced by the candidate, which was read back first.
    favourite = latest_candidate(client, "favourite")
    assert favourite.data.tags[registry.TAG_DECISION] == "champion"
    reason = favourite.data.tags[registry.TAG_REASON]
    assert reason.startswith("champion v1 is broken: it cannot be loaded") and "which loads" in reason, reason
    assert "champion.problem" in favourite.data.tags and "champion_auc_pr" not in favourite.data.metrics
    assert "is broken" in crippled.models[1].reason
    champion_after_worse = champions(client)
    assert champion_after_worse["favourite"] not in (None, "1")
    figures(
        what="killed mid-tuning, then a worse candidate",
        kills=1,
        versions_registered_by_the_killed_run=registered_after_kill - 2,
        popularity_champion=f"v{champion_after_worse['popularity']}",
        popularity_challenger=f"v{popularity.version}",
        broken_favourite_champion=f"v1 (files removed): reported, replaced by v{champion_after_worse['favourite']}",
    )

    # An empty gold table (recreated by hand, say), then none at all: skipped, nothing moves.
    # (The first in process: the CLI's skip line is tests/e2e/test_training_cli.py's.)
    write_gold(spark, location, [], mode="overwrite")
    try:
        empty = run_cycle(spark, training_settings(data_dir), threading.Event())
    finally:
        mlflow.set_tracking_uri(before)
    assert empty.skipped is not None and empty.skipped.startswith("the gold table has 0 tracks at version 2")
    (data_dir / "tables" / "track_features").rename(tmp_path / "gold-moved-away")
    missing = run_module("training", "run", "--once", env=env, cwd=tmp_path, timeout=300)
    assert missing.returncode == 0 and "does not exist yet: run the streaming job" in missing.stdout, missing.stdout
    assert champions(client) == champion_after_worse
    figures(what="empty and missing gold", cycles=2, skipped=2, champion_changes=0)
