"""A Delta table's version and id without Spark (`delta_version`, `delta_table_id`: a local table's transaction
log read directly, a table on object storage through delta-rs), or through Spark (`table_version`, `table_id`); a
table read as of a version.

delta-rs finds an object store's credentials and endpoint in the environment, as Hadoop's s3a connector does:
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and for an S3-compatible server `AWS_ENDPOINT_URL`
(with `AWS_ALLOW_HTTP=true` for plain HTTP).

A table's version alone does not say which table: a table removed and created again at the same location
(`python -m streaming rebuild`) starts again from version 0, so "the same version" needs "the same id" too.
"""

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


log = logging.getLogger(__name__)


def is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file:")


def delta_rs_uri(location: str) -> str:
    """delta-rs names Hadoop's s3a:// store s3://; paths and other URIs as they are."""
    return "s3://" + location.removeprefix("s3a://") if location.startswith("s3a://") else location


def open_delta_rs(location: str) -> Any | None:
    """The Delta table at `location` (a path, or a URI as Spark names it) opened with delta-rs, which reads only
    its log; None when there is no table there."""
    from deltalake import DeltaTable  # noqa: PLC0415 - only where a table is read without Spark
    from deltalake.exceptions import TableNotFoundError  # noqa: PLC0415

    try:
        return DeltaTable(delta_rs_uri(location))
    except TableNotFoundError:
        return None


def remote_table(location: str) -> Any | None:
    """The Delta table on object storage (delta-rs: its log only), or None when there is none there or the store
    cannot be read without Spark (the caller then asks Spark, which says what is wrong)."""
    from deltalake.exceptions import DeltaError  # noqa: PLC0415

    try:
        return open_delta_rs(location)
    except (DeltaError, OSError) as exc:
        log.debug("delta-rs cannot read %s (%s): Spark will", location, exc)
        return None


def local_commits(location: str) -> dict[int, Path]:
    """A local Delta table's commit files by version (none for a remote location or no table)."""
    if is_remote(location):
        return {}
    log_dir = Path(location.removeprefix("file:")) / "_delta_log"
    return {int(p.name.split(".")[0]): p for p in log_dir.glob("*.json") if p.name.split(".")[0].isdigit()}


def no_local_table(location: str) -> bool:
    """True when `location` is a local folder without a Delta log: no table there, known without Spark. False for a
    remote location (delta-rs may not read its store: Spark says) or wherever a log folder exists."""
    return not is_remote(location) and not (Path(location.removeprefix("file:")) / "_delta_log").is_dir()


def delta_version(location: str, remote: bool = False) -> int | None:
    """The latest version of the Delta table at `location` from a local table's log, or None when there is no
    table there. A remote table's through delta-rs when `remote` (a few requests to the store: not for every
    micro-batch), else None too; None as well for a store delta-rs cannot read."""
    if is_remote(location):
        if not remote:
            return None
        table = remote_table(location)
        return None if table is None else int(table.version())
    return max(local_commits(location), default=None)


def delta_table_id(location: str, remote: bool = False) -> str | None:
    """The id Delta gave the table at `location` when it created it: a local table's from the newest commit that
    sets its metadata, a remote one's through delta-rs when `remote`. None when the location holds no table, is
    remote without `remote`, or (locally) the commits that set it were cleaned up after a checkpoint (`table_id`
    reads it through Spark then)."""
    if is_remote(location):
        table = remote_table(location) if remote else None
        return None if table is None else str(table.metadata().id)
    commits = local_commits(location)
    for version in sorted(commits, reverse=True):
        for line in commits[version].read_text().splitlines():
            action = json.loads(line) if '"metaData"' in line else {}
            if "metaData" in action:
                return str(action["metaData"]["id"])
    return None


def table_exists(spark: "SparkSession", location: str) -> bool:
    """Whether `location` holds a Delta table (its log only: no Spark job)."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    return bool(DeltaTable.isDeltaTable(spark, location))


def table_version(spark: "SparkSession", location: str) -> int | None:
    """The latest version of the Delta table at `location`, or None when there is no table: a local table's from
    its log (`delta_version`), a remote one's through Spark (its history: a Spark job, 3.5 s in a fresh JVM)."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    if not is_remote(location):
        return delta_version(location)
    if not table_exists(spark, location):
        return None
    return int(DeltaTable.forPath(spark, location).history(1).first()["version"])  # type: ignore[index]


def table_id(spark: "SparkSession", location: str) -> str | None:
    """The id of the Delta table at `location` (see `delta_table_id`), or None when there is no table: a local
    table's from its log, else through Spark (DESCRIBE DETAIL: a Spark job, 4.8 s in a fresh JVM)."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    local = delta_table_id(location)  # None for a remote table, or when the log no longer tells
    if local is not None:
        return local
    if not table_exists(spark, location):
        return None
    return str(DeltaTable.forPath(spark, location).detail().first()["id"])  # type: ignore[index]


def read_version(spark: "SparkSession", location: str, version: int) -> "DataFrame":
    """The Delta table at `location` as it was at `version`."""
    return spark.read.format("delta").option("versionAsOf", version).load(location)
