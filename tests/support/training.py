"""The trainer in tests: gold tables written directly, the trainer's environment, a trained pair's results."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_runtime.settings import join_location
from producers.sandbox.catalogue import CatalogueSize
from tests.support.processes import TEST_SHUFFLE_PARTITIONS, TEST_SPARK_MASTER, local_env

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import SparkSession

    from training.settings import TrainingSettings


def write_gold(spark: "SparkSession", location: str, rows: list[dict], mode: str = "append") -> None:  # type: ignore[type-arg]
    """Rows of `producers.sandbox.catalogue.gold_rows` into a `track_features` Delta table, stamped now."""
    from pyspark.sql import functions as F  # noqa: N812

    from pipeline_runtime.contract import GOLD_SCHEMA

    frame = spark.createDataFrame([{**row, "updated_at": None} for row in rows], schema=GOLD_SCHEMA)
    frame.withColumn("updated_at", F.current_timestamp()).write.format("delta").mode(mode).save(location)


SMALL = CatalogueSize(tracks=800, artists=80, albums=200, playlists=8, favourite_playlists=2)


def trainer_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    return local_env(data_dir, **overrides)


def training_settings(data_dir: Path, **overrides: Any) -> "TrainingSettings":
    """In-process trainer settings on `data_dir` (the session's Spark does the work), with MLflow's tracking URI
    set to that data dir's own SQLite store, as `python -m training` would; the caller restores the URI."""
    from pipeline_runtime.mlflow_setup import require_mlflow
    from tests.support.processes import JARS_DIR
    from training.settings import TrainingSettings

    settings = TrainingSettings(
        _env_file=None,
        data_dir=data_dir,
        jars_dir=JARS_DIR,
        spark_master=TEST_SPARK_MASTER,
        spark_shuffle_partitions=TEST_SHUFFLE_PARTITIONS,
        shuffle_partitions=TEST_SHUFFLE_PARTITIONS,
        spark_ui_enabled=False,
        tuning="quick",
        mlflow_tracking_uri=None,  # not the MLFLOW_TRACKING_URI that mlflow.set_tracking_uri exported
        **overrides,
    )
    require_mlflow(settings)
    return settings


def gold_location(data_dir: Path) -> str:
    return join_location(None, data_dir / "tables", "track_features")


@dataclass
class TrainerPair:
    data_dir: Path
    gold_rows: list[dict[str, Any]]  # the catalogue's gold rows; the first PAIR_ROWS are in the table
    pids: list[int]
    codes: list[int]
    outputs: list[str]  # each trainer's stdout and stderr together
    secrets: set[str]  # in both trainers' environment, at LOG_LEVEL=DEBUG


PAIR_ROWS = 600


def candidate_runs(client: "MlflowClient", task: str) -> list[Any]:
    """The task's candidate runs, oldest first."""
    from training import registry

    experiment = client.get_experiment_by_name(registry.NAMES[task][0])
    assert experiment is not None
    return client.search_runs(
        [experiment.experiment_id], f"tags.{registry.TAG_ROLE} = 'candidate'", order_by=["attributes.start_time ASC"]
    )


def alias_version(client: "MlflowClient", task: str, alias: str) -> str | None:
    """The version the task's model `alias` points at, or None."""
    from training import registry

    version = registry.version_by_alias(client, registry.model_name(task), alias)
    return None if version is None else str(version.version)
