"""A Delta table's version and id: from a local table's transaction log without Spark (`delta_version`,
`delta_table_id`), or through Spark for a table on any storage (`table_version`, `table_id`); a table read
as of a version.

A table's version alone does not say which table: a table removed and created again at the same location
(`python -m streaming rebuild`) starts again from version 0, so "the same version" needs "the same id" too.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def local_commits(location: str) -> dict[int, Path]:
    """A local Delta table's commit files by version (none for a remote location or no table)."""
    if "://" in location and not location.startswith("file:"):
        return {}
    log_dir = Path(location.removeprefix("file:")) / "_delta_log"
    return {int(p.name.split(".")[0]): p for p in log_dir.glob("*.json") if p.name.split(".")[0].isdigit()}


def delta_version(location: str) -> int | None:
    """The latest version of a local Delta table, or None when there is no table there or the location is
    remote (an object store needs Spark or a Delta client to tell)."""
    return max(local_commits(location), default=None)


def delta_table_id(location: str) -> str | None:
    """The id Delta gave the local table at `location` when it created it, from the newest commit that sets
    the table's metadata. None when the location is remote, holds no table, or the commits that set it were
    cleaned up after a checkpoint (`table_id` reads it through Spark then)."""
    commits = local_commits(location)
    for version in sorted(commits, reverse=True):
        for line in commits[version].read_text().splitlines():
            action = json.loads(line) if '"metaData"' in line else {}
            if "metaData" in action:
                return str(action["metaData"]["id"])
    return None


def table_version(spark: "SparkSession", location: str) -> int | None:
    """The latest version of the Delta table at `location`, or None when there is no table."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    if not DeltaTable.isDeltaTable(spark, location):
        return None
    return int(DeltaTable.forPath(spark, location).history(1).first()["version"])  # type: ignore[index]


def table_id(spark: "SparkSession", location: str) -> str | None:
    """The id of the Delta table at `location` (see `delta_table_id`), or None when there is no table."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    if not DeltaTable.isDeltaTable(spark, location):
        return None
    return str(DeltaTable.forPath(spark, location).detail().first()["id"])  # type: ignore[index]


def read_version(spark: "SparkSession", location: str, version: int) -> "DataFrame":
    """The Delta table at `location` as it was at `version`."""
    return spark.read.format("delta").option("versionAsOf", version).load(location)
