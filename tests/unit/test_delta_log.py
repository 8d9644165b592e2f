"""A local Delta table's version and id read from its transaction log without Spark, and the trainer's
"nothing new" decision that needs both: a table created anew starts again at version 0 with another id."""

import json
from pathlib import Path

from pipeline_runtime.delta_log import delta_table_id, delta_version, no_local_table
from training.cycle import skip_reason
from training.registry import TrainedMark


def commit(table: Path, version: int, *actions: dict) -> None:  # type: ignore[type-arg]
    log_dir = table / "_delta_log"
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{version:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))


def create(table: Path, table_id: str) -> None:
    commit(
        table,
        0,
        {"commitInfo": {"operation": "WRITE", "operationParameters": {"note": "metaData"}}},
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {"metaData": {"id": table_id, "format": {"provider": "parquet"}, "schemaString": "{}"}},
    )


def test_version_and_id_of_a_local_table(tmp_path: Path) -> None:
    table = tmp_path / "gold"
    assert (delta_version(str(table)), delta_table_id(str(table))) == (None, None)
    table.mkdir()  # a folder, no log: no table, as the trainer tells without Spark
    assert no_local_table(str(table)) and no_local_table(f"file:{table}")
    create(table, "first-id")
    assert not no_local_table(str(table))
    for version in (1, 2):
        commit(table, version, {"commitInfo": {"operation": "MERGE"}}, {"add": {"path": f"part-{version}.parquet"}})
    (table / "_delta_log" / "00000000000000000002.checkpoint.parquet").write_bytes(b"")
    assert (delta_version(str(table)), delta_table_id(str(table))) == (2, "first-id")
    assert (delta_version(f"file:{table}"), delta_table_id(f"file:{table}")) == (2, "first-id")
    # Removed and created again (a rebuild): version 0 again, another id.
    for path in (table / "_delta_log").iterdir():
        path.unlink()
    create(table, "second-id")
    assert (delta_version(str(table)), delta_table_id(str(table))) == (0, "second-id")
    # The commits that set the metadata cleaned up after a checkpoint: unknown without Spark.
    commit(table, 1, {"add": {"path": "part-1.parquet"}})
    (table / "_delta_log" / "00000000000000000000.json").unlink()
    assert (delta_version(str(table)), delta_table_id(str(table))) == (1, None)
    assert (delta_version("s3a://bucket/gold"), delta_table_id("s3a://bucket/gold")) == (None, None)
    assert not no_local_table("s3a://bucket/gold"), "a store only Spark may read: Spark says"


def test_the_same_version_of_another_table_is_not_what_the_last_run_trained_on() -> None:
    last = TrainedMark(version=3, max_updated_at=None, table_id="first-id")
    assert skip_reason(last, 3, "first-id") == "gold is still at version 3, which the last run trained on"
    assert skip_reason(last, 4, "first-id") is None
    assert skip_reason(last, 3, "second-id") is None, "a rebuilt gold table at the old version number"
    assert skip_reason(last, 3, None) is None, "an id that cannot be told is not taken for the same"
    assert skip_reason(None, 0, "first-id") is None
    older = TrainedMark(version=3, max_updated_at=None)  # logged before the id was recorded
    assert skip_reason(older, 3, "second-id") is not None and skip_reason(older, 2, "second-id") is None


def test_version_and_id_of_a_table_on_object_storage_without_spark(s3_bucket: str) -> None:
    """An s3a:// gold table (as Spark names it) read with delta-rs: the trainer's skip needs no JVM there either."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    location = f"s3a://{s3_bucket}/tables/track_features"
    assert (delta_version(location, remote=True), delta_table_id(location, remote=True)) == (None, None)
    for rows in ([1, 2], [3]):
        write_deltalake(f"s3://{s3_bucket}/tables/track_features", pa.table({"n": rows}), mode="append")
    created = DeltaTable(f"s3://{s3_bucket}/tables/track_features").metadata().id
    assert (delta_version(location, remote=True), delta_table_id(location, remote=True)) == (1, created)
    assert delta_version(location) is None, "not asked to go remote (the streaming job's per-batch facts)"
