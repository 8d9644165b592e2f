"""The pipeline on a Spark standalone cluster, with settings only: a master and two workers from pyspark's own
`spark-class` (one in a mount namespace of its own, where the driver's folder, DATA_DIR and TMPDIR, is empty: as on
a second machine), tables, checkpoints and MLflow's DFS temp folder on S3 (moto's server, through the `jars/s3a`
set), `mlflow server` as the tracking server a team runs. The producer publishes a sandbox catalogue; the streaming
job catches up on the cluster with its one ingest query (the default: Kafka to bronze and silver in one batch) and
a worker is SIGKILLed in the middle of that batch (its tasks are retried on the other: nothing lost, nothing twice);
a second run resumes from the checkpoints in the bucket; the trainer trains and promotes on the cluster, then frees
its executors until the next cycle, and `recommend` loads the champion there.
"""

import json
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import requests

from pipeline_runtime.broker import HOST, free_port
from pipeline_runtime.contract import BRONZE, GOLD, SILVER_ENTITY_TABLES, SILVER_HISTORY
from pipeline_runtime.delta_log import open_delta_rs
from producers.sandbox.server import SandboxServer
from tests.support import delivery
from tests.support.processes import kill_group, run_module, start_group, wait_for_log
from tests.support.spark_cluster import spark_cluster
from tests.support.spotify import change_playlist, fault_env

pytestmark = pytest.mark.cluster

# Each application's share of the two one-core workers; two executors on one host must not read each other's
# shuffle files from the host's disk (each worker has a work folder of its own).
CAPS = {"spark.cores.max": "2", "spark.executor.memory": "1g", "spark.shuffle.readHostLocalDisk": "false"}


def column(location: str, name: str) -> list[object]:
    table = open_delta_rs(location)
    assert table is not None, f"no Delta table at {location}"
    return table.to_pyarrow_table(columns=[name]).column(name).to_pylist()  # type: ignore[no-any-return]


def keys_in(s3: object, bucket: str, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return {item["Key"].removeprefix(prefix) for item in listed.get("Contents", [])}


# In the suite: the streaming job on the cluster loses a worker mid-batch. `make test-soak` (and `-m soak`) runs the
# whole pipeline there too: a resumed run, the trainer, `recommend` (about 6 minutes alone, twice that next to the
# rest of the suite, past its 25-minute budget).
CLUSTER_RUNS = [
    pytest.param(False, id="streaming"),
    pytest.param(True, id="whole-pipeline", marks=[pytest.mark.soak]),
]


@pytest.mark.parametrize("whole", CLUSTER_RUNS)
def test_the_pipeline_on_a_standalone_cluster_with_a_worker_killed_mid_batch(
    whole: bool,
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    started = time.monotonic()
    server = sandbox_factory("extended", seed=5, tracks=600, artists=80, albums=150, playlists=6, favourite_playlists=2)
    lake = f"s3a://{s3_bucket}"
    driver = tmp_path / "driver"  # the driver's own disk: its data dir and temporary files
    (driver / "tmp").mkdir(parents=True)
    env = fault_env(
        server,
        driver / "data",
        bootstrap_servers,
        TMPDIR=str(driver / "tmp"),  # MLflow's downloads, the trainer's temporary folders
        TABLES_LOCATION=f"{lake}/tables",
        CHECKPOINTS_LOCATION=f"{lake}/checkpoints",
        MLFLOW_DFS_TMP=f"{lake}/mlflow-tmp",
        PYSPARK_PYTHON=sys.executable,  # the executors' Python, with the project's packages
        SPARK_UI_ENABLED="false",
        SPARK_DRIVER_MEMORY="1g",
        SPARK_SHUFFLE_PARTITIONS="1",  # a test's data is small: one partition, as in every other test
        TRAINING_SHUFFLE_PARTITIONS="1",
        STREAMING_SPARK_CONF=json.dumps(CAPS),
        TRAINING_SPARK_CONF=json.dumps(CAPS),
        TRAINING_TUNING="quick",
    )
    produced = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=300)
    assert produced.returncode == 0, produced.stderr[-3000:]
    accepted = delivery.accepted_event_ids(driver / "data" / "state" / "producer.sqlite")

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with spark_cluster(tmp_path / "spark", driver, workers=2, elsewhere=(1,)) as cluster:
        env["SPARK_MASTER"] = cluster.master_url
        log = tmp_path / "streaming.log"
        job = start_group(["streaming", "run", "--available-now"], env, tmp_path, log)
        try:
            # The ingest batch (bronze and silver) has begun once its offsets are written and not yet committed.
            deadline = time.monotonic() + 240
            while "0" not in keys_in(s3, s3_bucket, "checkpoints/ingest/offsets/"):
                assert job.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the ingest batch never began"
                time.sleep(0.2)
            time.sleep(1.0)  # its tasks are on the executors
            committed_before_kill = "0" in keys_in(s3, s3_bucket, "checkpoints/ingest/commits/")
            cluster.workers[0].kill()
            assert job.wait(300) == 0, log.read_text()[-3000:]
        finally:
            if job.poll() is None:
                kill_group(job)
        output = log.read_text()
        streamed = time.monotonic()

        offsets = column(f"{lake}/tables/{BRONZE}", "offset")
        history = column(f"{lake}/tables/{SILVER_HISTORY}", "event_id")
        tracks = column(f"{lake}/tables/{SILVER_ENTITY_TABLES['track']}", "track_id")
        gold = column(f"{lake}/tables/{GOLD}", "track_id")
        counts = delivery.catalogue_counts(server)
        assert len(offsets) == len(accepted) == sum(counts.values()), "every accepted event in bronze, once"
        assert len(history) == len(set(history)) == counts["playlist_membership"]
        assert len(tracks) == len(set(tracks)) == len(Counter(gold)) == len(gold)
        assert not committed_before_kill, "the worker was killed after the ingest batch, not during it"
        assert "Lost executor" in output, output[-3000:]  # Spark saw the executor go, and retried its tasks
        seen = {
            "workers": 2,
            "worker_killed": "during the ingest batch (bronze and silver)",
            "duplicates_in_history_tracks_gold": 0,
        }
        if not whole:
            figures(
                **seen,
                events_accepted=len(accepted),
                bronze_records=len(offsets),
                seconds_total=round(time.monotonic() - started),
            )
            return

        # A playlist changes; a second run resumes from the checkpoints in the bucket: it reads only what came
        # since, on two workers again, and writes nothing twice.
        cluster.start_worker(0, "1g", elsewhere=False)  # the lost machine replaced
        playlist_id = next(iter(server.state.catalogue.playlists))
        members = server.state.catalogue.playlists[playlist_id]["track_ids"]
        change_playlist(server, playlist_id, [t for t in server.state.catalogue.tracks if t not in members][:2], [])
        produced = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=300)
        assert produced.returncode == 0, produced.stderr[-3000:]
        resumed = run_module("streaming", "run", "--available-now", env=env, cwd=tmp_path, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        accepted = delivery.accepted_event_ids(driver / "data" / "state" / "producer.sqlite")
        new_offsets = column(f"{lake}/tables/{BRONZE}", "offset")
        new_history = column(f"{lake}/tables/{SILVER_HISTORY}", "event_id")
        assert len(new_offsets) == len(accepted) > len(offsets), "the new events in bronze, once"
        assert (
            len(new_history)
            == len(set(new_history))
            == len(history) + 2
            == delivery.catalogue_counts(server)["playlist_membership"]
        )
        resumed_at = time.monotonic()

        # The trainer and recommend on the same cluster, with `mlflow server` as the tracking server.
        port = free_port()
        mlflow_log = tmp_path / "mlflow.log"
        mlflow_server = start_group(
            [
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{tmp_path / 'mlflow.db'}",
                "--artifacts-destination",
                str(tmp_path / "mlflow-artifacts"),
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env,
            tmp_path,
            mlflow_log,
        )
        try:
            url = f"http://{HOST}:{port}"
            delivery.wait_for(lambda: health(url), "the tracking server", 120, mlflow_server, mlflow_log)
            env["MLFLOW_TRACKING_URI"] = url
            train_log = tmp_path / "training.log"
            trainer = start_group(["training", "run", "--interval", "3600"], env, tmp_path, train_log)
            try:
                wait_for_log(trainer, train_log, "cycle took", 600)
                trained_at = time.monotonic()
                # Between cycles the trainer holds no executor: the cluster's cores are free for the others.
                delivery.wait_for(
                    lambda: "training" not in running_apps(cluster.ui_url),
                    "the trainer's executors freed",
                    60,
                    trainer,
                    train_log,
                )
                trainer.send_signal(signal.SIGTERM)
                assert trainer.wait(60) == 0, train_log.read_text()[-3000:]
            finally:
                if trainer.poll() is None:
                    kill_group(trainer)
            trained_output = train_log.read_text()
            recommended = run_module("training", "recommend", "--top", "5", env=env, cwd=tmp_path, timeout=300)
            assert recommended.returncode == 0, recommended.stderr[-3000:]
        finally:
            kill_group(mlflow_server)
    assert trained_output.count(" is now champion") == 2, trained_output[-3000:]  # both models, on the cluster
    # The favourite champion, loaded on the cluster through MLFLOW_DFS_TMP, ranked them.
    assert "top 5 tracks for you (spotify-favourite v1" in recommended.stdout, recommended.stdout
    assert re.findall(r"^│ (\d+) +│", recommended.stdout, re.MULTILINE) == ["1", "2", "3", "4", "5"]
    figures(
        **seen,
        events_accepted=len(accepted),
        bronze_records=len(new_offsets),
        seconds_streaming=round(streamed - started),
        seconds_resumed_run=round(resumed_at - streamed),
        seconds_training=round(trained_at - resumed_at),
        seconds_total=round(time.monotonic() - started),
    )


def running_apps(ui_url: str) -> list[str]:
    """The names of the applications the master runs now."""
    return [app["name"] for app in requests.get(f"{ui_url}/json/", timeout=5).json()["activeapps"]]


def health(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False
