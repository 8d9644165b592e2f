"""A Delta table's version: from a local table's transaction log without Spark (`delta_version`), or
through Spark for a table on any storage (`table_version`); a table read as of a version."""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def delta_version(location: str) -> int | None:
    """The latest version of a local Delta table, or None when there is no table there or the location is
    remote (an object store needs Spark or a Delta client to tell)."""
    if "://" in location and not location.startswith("file:"):
        return None
    log_dir = Path(location.removeprefix("file:")) / "_delta_log"
    versions = [int(p.name.split(".")[0]) for p in log_dir.glob("*.json") if p.name.split(".")[0].isdigit()]
    return max(versions) if versions else None


def table_version(spark: "SparkSession", location: str) -> int | None:
    """The latest version of the Delta table at `location`, or None when there is no table."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    if not DeltaTable.isDeltaTable(spark, location):
        return None
    return int(DeltaTable.forPath(spark, location).history(1).first()["version"])  # type: ignore[index]


def read_version(spark: "SparkSession", location: str, version: int) -> "DataFrame":
    """The Delta table at `location` as it was at `version`."""
    return spark.read.format("delta").option("versionAsOf", version).load(location)
