"""MLflow: the experiments and registered models of the two tasks, the aliases, and what was last trained.

Aliases, not stages (deprecated): `champion` is the model version in use, `challenger` the latest
candidate that did not beat it. Each candidate run records the gold table version and row count it
saw; the trainer reads them back to decide whether a new cycle has anything new to learn from.
"""

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline_runtime.errors import SetupError, first_line
from pipeline_runtime.mlflow_setup import ensure_experiment
from pipeline_runtime.settings import MlflowSettings
from pipeline_runtime.spark import hadoop_fs

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# task -> (experiment, registered model)
NAMES = {
    "popularity": ("spotify-popularity", "spotify-popularity"),
    "favourite": ("spotify-favourite", "spotify-favourite"),
}
TAG_ROLE = "role"
TAG_VERSION = "gold.version"
TAG_ROWS = "gold.rows"
TAG_TABLE = "gold.table"
TAG_TABLE_ID = "gold.table_id"  # Delta's id of the table: a gold table created anew starts again at version 0
TAG_UPDATED = "gold.max_updated_at"
TAG_DECISION = "promotion.decision"
TAG_REASON = "promotion.reason"
TAG_LOGGED_MODEL = "logged_model_id"  # the MLflow 3 LoggedModel the run's metrics are linked to
TAG_LABEL = "favourite_label"  # what made a track a favourite (TRAINING_FAVOURITE_LABEL), on every run


@dataclass(frozen=True)
class TrainedMark:
    """The gold table as the last finished candidate run saw it."""

    version: int
    max_updated_at: datetime | None
    table_id: str | None = None  # None for runs logged before the id was recorded

    def same_table(self, table_id: str | None) -> bool:
        """Whether the table of id `table_id` (None: unknown) is the one this mark was made on; a mark without
        an id (a run logged before ids were recorded) is taken to be on any table."""
        return self.table_id is None or self.table_id == table_id


def experiment_id(settings: MlflowSettings, task: str) -> str:
    return ensure_experiment(settings, NAMES[task][0])


def model_name(task: str) -> str:
    return NAMES[task][1]


def last_trained(client: "MlflowClient", experiment_ids: list[str]) -> TrainedMark | None:
    """The newest finished candidate run of any task, or None before the first one."""
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.{TAG_ROLE} = 'candidate' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    tags = runs[0].data.tags
    updated = tags.get(TAG_UPDATED)
    return TrainedMark(
        version=int(tags[TAG_VERSION]),
        max_updated_at=datetime.fromisoformat(updated) if updated else None,
        table_id=tags.get(TAG_TABLE_ID) or None,
    )


def version_by_alias(client: "MlflowClient", name: str, alias: str) -> "ModelVersion | None":
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such model or alias yet
        return None


def logged_model_problem(model_uri: str) -> str | None:
    """Why the Spark model logged at `model_uri` could not be loaded back (no MLmodel file, no `sparkml`
    metadata or stages), else None: checked before the model is registered, so a failed save never leaves a
    registered version without data."""
    from mlflow.artifacts import list_artifacts  # noqa: PLC0415

    try:
        files = {item.path.rsplit("/", 1)[-1] for item in list_artifacts(artifact_uri=model_uri)}
        parts = {item.path.rsplit("/", 1)[-1] for item in list_artifacts(artifact_uri=f"{model_uri}/sparkml")}
    except Exception as exc:  # noqa: BLE001 - any store error means the same: the model cannot be read back
        return f"the model logged at {model_uri} cannot be read back ({first_line(exc, 200)})"
    missing = sorted({"MLmodel"} - files) + sorted(f"sparkml/{p}" for p in {"metadata", "stages"} - parts)
    if not missing:
        return None
    return (
        f"the model logged at {model_uri} has no {', '.join(missing)}: MLflow's Spark flavour saves it through "
        "MLFLOW_DFS_TMP on the executors, so on a Spark cluster point MLFLOW_DFS_TMP (and the MLflow artifact "
        "store) at storage every node shares; it was not registered"
    )


def model_load_root(master: str, dfs_tmp: str | None) -> str | None:
    """Where a model goes for Spark to load it from, so that every executor can read it: MLFLOW_DFS_TMP (storage
    every node shares) on a cluster master; None on a local master, or without MLFLOW_DFS_TMP, where MLflow's own
    download folder (on the driver's disk) serves."""
    if master.startswith("local") or not dfs_tmp:
        return None
    return dfs_tmp.rstrip("/")


def session_model_root() -> str | None:
    """`model_load_root` of the active Spark session's master and MLFLOW_DFS_TMP."""
    from pyspark.sql import SparkSession  # noqa: PLC0415

    spark = SparkSession.getActiveSession()
    master = str(spark.sparkContext.master) if spark else "local"
    return model_load_root(master, os.environ.get("MLFLOW_DFS_TMP"))


def load_champion_model(name: str) -> Any:
    """The Spark model of `name`'s champion, loaded where every executor can read it (`load_spark_model`)."""
    return load_spark_model(f"models:/{name}@{CHAMPION}", session_model_root())


def load_spark_model(uri: str, root: str | None) -> Any:
    """The Spark model logged at `uri`. MLflow's Spark flavour downloads it into a folder on the driver's own disk
    and has Spark load it from there, which executors on other machines cannot read (`FileNotFoundException` on a
    `sparkml/stages` file): with a `root` (`model_load_root`) the model is put there first, into a folder every
    node mounts or through Hadoop into a store (`s3a://`, `hdfs://`), and loaded from there."""
    import mlflow.spark  # noqa: PLC0415
    from pyspark.sql import SparkSession  # noqa: PLC0415

    spark = SparkSession.getActiveSession()
    if root is None or spark is None:
        return mlflow.spark.load_model(uri)
    if not urlsplit(root).scheme:  # a folder every node mounts
        folders = Path(root)
        remove_old_loads(folders)
        folder = folders / f"load-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        return mlflow.spark.load_model(uri, dst_path=str(folder))
    from pyspark.ml import PipelineModel  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        target = f"{root}/load-{uuid.uuid4().hex}"
        fs, destination, hadoop_path = hadoop_fs(spark, target)
        fs.copyFromLocalFile(False, True, hadoop_path(Path(local, "sparkml").as_uri()), destination)
    return PipelineModel.load(target)


@contextmanager
def saving_through_shared_storage() -> Iterator[None]:
    """While a Spark model is logged, Hadoop's default filesystem is the store of `session_model_root()` when that
    is a URI. MLflow's Spark flavour (3.x) has the executors save the model under MLFLOW_DFS_TMP, then copies it
    out with the *default* filesystem, which refuses a path of any other: `Wrong FS: s3a://.../mlflow-tmp/...,
    expected: file:///` (seen on a standalone cluster with MLFLOW_DFS_TMP on S3). Only the default changes, and only
    for the log: every path the pipeline gives Spark names its filesystem."""
    from pyspark.sql import SparkSession  # noqa: PLC0415

    spark = SparkSession.getActiveSession()
    parts = urlsplit(session_model_root() or "")
    if spark is None or not parts.scheme or parts.scheme == "file":
        yield
        return
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001
    before = conf.get("fs.defaultFS")
    conf.set("fs.defaultFS", f"{parts.scheme}://{parts.netloc}/")
    try:
        yield
    finally:
        conf.set("fs.defaultFS", before) if before else conf.unset("fs.defaultFS")


def remove_old_loads(folders: Path, older_than_seconds: float = 86_400.0) -> None:
    """Remove the copies earlier loads left in a shared folder (Spark may read a loaded model's files while it is
    in use, so a copy stays for a day)."""
    if not folders.is_dir():
        return
    cutoff = time.time() - older_than_seconds
    for folder in folders.glob("load-*"):
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def register_checked(model_uri: str, name: str) -> str:
    """Register the model logged at `model_uri` as a new version of `name` once it is known to load back."""
    import mlflow  # noqa: PLC0415

    unreadable = logged_model_problem(model_uri)
    if unreadable:
        raise SetupError(unreadable)
    return str(mlflow.register_model(model_uri, name).version)


def logged_model_id(info: Any, name: str, run_id: str) -> str:
    """The MLflow 3 LoggedModel of the model just logged in run `run_id`, to link metrics to: the one
    `log_model` made, or, as MLflow's Spark flavour (3.17) still saves plain run artifacts, an external
    LoggedModel that stands for them. Its id is the run's TAG_LOGGED_MODEL."""
    import mlflow  # noqa: PLC0415

    model_id = (
        info.model_id
        or mlflow.create_external_model(
            name=name, source_run_id=run_id, model_type="spark", tags={"model_uri": info.model_uri}
        ).model_id
    )
    mlflow.set_tag(TAG_LOGGED_MODEL, model_id)
    return str(model_id)


def set_alias(client: "MlflowClient", name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)
    log.info("%s v%s is now %s", name, version, alias)
