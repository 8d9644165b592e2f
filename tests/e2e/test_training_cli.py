"""`python -m training` as users run it on the store the session's demo trained: recommend, report, the MLflow UI,
a skipped run, `recommend --like` (the lock, SIGTERM and missing pieces: test_training_cli_stops.py)."""

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import requests

from pipeline_runtime.broker import free_port
from pipeline_runtime.contract import GOLD
from pipeline_runtime.delta_log import delta_version
from pipeline_runtime.settings import join_location
from producers.sandbox.catalogue import load_catalogue
from tests.support.demo import DemoRun
from tests.support.processes import run_module
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
    assert page.count('<img class="chart"') >= 12
    assert "What makes a song popular, to this model" in page and "What makes a song a favourite" in page

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
    # The demo's listener changed a few gold rows after its training cycle, and its second cycle counted them
    # (too few to train): gold has not moved since, so this run skips without counting them again.
    assert f"skipped: gold is still at version {gold_version}, where the last cycle found " in again.stdout
    assert "session 'training'" not in again.stdout + again.stderr, "the skip needed no Spark session"


def test_more_like_a_track_or_a_playlist_on_the_trained_store(demo_run: DemoRun, spark: "SparkSession") -> None:
    """`recommend --like`: the CLI for a track (and a reference that is neither, in one line), then a favourite
    playlist in process on the session's Spark: nearest first, never the seed or a favourite, mostly the seed's
    genres or artists."""
    import mlflow
    import mlflow.spark

    from pipeline_runtime.contract import SILVER_MEMBERS
    from tests.support.training import training_settings
    from training.data import one_row_per_track
    from training.similar import parse_seed, similar_tracks

    data_dir, env, cwd = demo_run.data_dir, demo_run.env, demo_run.cwd
    catalogue = load_catalogue(data_dir / "sandbox")
    seed = sorted(catalogue.favourites)[0]
    url = f"https://open.spotify.com/track/{seed}"
    shown = run_module("training", "recommend", "--like", url, "--top", "5", env=env, cwd=cwd)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"5 tracks like track {seed} (spotify-favourite v1" in shown.stdout
    listed = re.findall(r"^│ (\d+) +│", shown.stdout, re.MULTILINE)
    assert listed == ["1", "2", "3", "4", "5"]
    wrong = run_module("training", "recommend", "--like", "spotify:album:nothing", env=env, cwd=cwd)
    assert wrong.returncode == 2 and "not a Spotify track or playlist id, URI or URL" in wrong.stdout
    assert "Traceback" not in wrong.stdout + wrong.stderr

    before = mlflow.get_tracking_uri()
    try:
        settings = training_settings(data_dir)
        model = mlflow.spark.load_model(f"models:/{registry.model_name('favourite')}@{registry.CHAMPION}")
        gold = one_row_per_track(spark.read.format("delta").load(settings.table_uri(GOLD)))
        members = spark.read.format("delta").load(settings.table_uri(SILVER_MEMBERS))
        playlist = catalogue.favourite_playlist_ids[0]
        seeds, rows = similar_tracks(model, gold, members, parse_seed(f"spotify:playlist:{playlist}"), 20)
        _, alike = similar_tracks(model, gold, members, parse_seed(seed), 20)
    finally:
        mlflow.set_tracking_uri(before)
    assert set(seeds) == set(catalogue.playlists[playlist]["track_ids"]) & set(catalogue.tracks)
    found = [row["track_id"] for row in rows]
    assert len(found) == 20 and not set(found) & (set(seeds) | catalogue.favourites), "neither seeds nor favourites"
    distances = [row["distance"] for row in rows]
    assert distances == sorted(distances), "nearest first"

    def genres(track: str) -> set[str]:
        return {g for a in catalogue.tracks[track]["artist_ids"] for g in catalogue.artists[a]["genres"]}

    others = [t for t in catalogue.tracks if t not in catalogue.favourites]
    base_rate = sum(bool(genres(t) & genres(seed)) for t in others) / len(others)
    near_rate = sum(bool(genres(row["track_id"]) & genres(seed)) for row in alike) / len(alike)
    assert near_rate > min(0.95, 1.5 * base_rate), (near_rate, base_rate, [row["because"] for row in alike])
    assert all(row["track_id"] != seed for row in alike)
