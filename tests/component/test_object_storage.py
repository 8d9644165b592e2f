"""Tables and checkpoints on object storage: the streaming job with TABLES_LOCATION and CHECKPOINTS_LOCATION on
`s3a://`, against an S3-compatible server (moto's), through Hadoop's s3a connector (the `jars/s3a` set)."""

from collections import Counter
from pathlib import Path

import boto3

from pipeline_runtime.contract import BRONZE, GOLD, SILVER_ENTITY_TABLES, SILVER_HISTORY
from pipeline_runtime.delta_log import open_delta_rs
from pipeline_runtime.kafka_admin import ensure_topics
from tests.support.kafka import publish_raw
from tests.support.processes import run_module
from tests.support.streaming import catch_up_records, streaming_env, streaming_settings

TRACKS = 40  # a track, its audio features, a membership, a later version of 4 in 5, an artist per 5: 160 events


def rows(location: str, *columns: str) -> list[tuple[object, ...]]:
    table = open_delta_rs(location)
    assert table is not None, f"no Delta table at {location}"
    data = table.to_pyarrow_table(columns=list(columns)).to_pylist()
    return [tuple(row[c] for c in columns) for row in data]


def test_streaming_keeps_its_tables_and_checkpoints_on_s3_and_resumes_from_them(
    bootstrap_servers: str, s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    settings = streaming_settings(
        tmp_path,
        bootstrap_servers,
        tables_location=f"s3a://{s3_bucket}/tables",
        checkpoints_location=f"s3a://{s3_bucket}/checkpoints",
    )
    # The AWS_* variables s3_bucket set (key, secret, region, AWS_ENDPOINT_URL) are all Spark is given: the same
    # ones delta-rs reads.
    env = streaming_env(
        settings,
        TABLES_LOCATION=settings.tables_location or "",
        CHECKPOINTS_LOCATION=settings.checkpoints_location or "",
    )
    ensure_topics(bootstrap_servers, settings.topics)
    records = catch_up_records(settings, TRACKS)
    first, second = records[: len(records) // 2], records[len(records) // 2 :]

    publish_raw(bootstrap_servers, first)
    run = run_module("streaming", "run", "--available-now", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(rows(settings.table(BRONZE), "offset")) == len(first)

    # A second run resumes from the checkpoint on S3: it takes only what came since, and writes nothing twice.
    publish_raw(bootstrap_servers, second)
    run = run_module("streaming", "run", "--available-now", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    bronze = rows(settings.table(BRONZE), "topic", "partition", "offset")
    assert len(bronze) == len(records) == len(set(bronze))

    tracks = rows(settings.table(SILVER_ENTITY_TABLES["track"]), "track_id", "name")
    assert len(tracks) == TRACKS == len({track_id for track_id, _ in tracks})
    renamed = sum(name.endswith("(remastered)") for _, name in tracks)  # type: ignore[union-attr]
    assert renamed == TRACKS - TRACKS // 5  # the later version won
    assert len(rows(settings.table(SILVER_ENTITY_TABLES["artist"]), "artist_id")) == TRACKS // 5
    assert len(rows(settings.table(SILVER_HISTORY), "event_id")) == TRACKS
    gold = Counter(track_id for (track_id,) in rows(settings.table(GOLD), "track_id"))
    assert len(gold) == TRACKS and max(gold.values()) == 1

    # Everything is in the bucket, nothing on the local disk but the job's own logs and state.
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
    keys = [listed["Key"] for page in pages for listed in page["Contents"]]
    assert any(key.startswith("checkpoints/bronze/commits/") for key in keys)
    assert any(key.startswith("checkpoints/silver/offsets/") for key in keys)
    assert any(key.startswith(f"tables/{GOLD}/_delta_log/") for key in keys)
    assert not (settings.data_dir / "tables").exists()
    assert not (settings.data_dir / "checkpoints").exists()
    print(f"\ns3a: {len(records)} events in 2 runs, {len(bronze)} bronze rows, {len(keys)} objects in the bucket")
