"""The streaming job on the real stack: Kafka -> bronze -> quarantine/silver/gold, exactly once."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from pipeline_runtime.contract import GOLD_SCHEMA, TIME_RANGES, ddl_columns
from pipeline_runtime.delta_log import table_version
from pipeline_runtime.errors import SetupError
from pipeline_runtime.kafka_admin import ensure_topics
from pipeline_runtime.settings import TOPIC_SETTINGS
from producers.events import artist_payload, make_event, membership_payload, track_payload
from producers.sandbox.server import SandboxServer
from producers.service import open_producer
from streaming.job import (
    INGEST,
    REBUILT_TABLES,
    BronzeWriter,
    MergeWriter,
    committed_batches,
    ensure_tables,
    maintain_tables,
    rebuild,
    remove_location,
    reset_unstarted_checkpoint,
    run_job,
)
from streaming.progress import read_progress
from streaming.settings import StreamingSettings
from tests.support.kafka import publish_raw
from tests.support.processes import clean_env, run_module
from tests.support.spotify import sandbox_login, sandbox_settings
from tests.support.streaming import catch_up, streaming_settings, table


def test_producer_events_reach_gold_with_nothing_quarantined(
    spark: SparkSession, sandbox_factory: Callable[..., SandboxServer], bootstrap_servers: str, tmp_path: Path
) -> None:
    server = sandbox_factory("extended")
    catalogue = server.state.catalogue
    settings = streaming_settings(tmp_path, bootstrap_servers)
    producer_settings = sandbox_settings(
        server,
        tmp_path / "producer",
        kafka_bootstrap_servers=bootstrap_servers,
        include_saved_tracks=False,
        publish_playlist=False,
        **{name: getattr(settings, name) for name in TOPIC_SETTINGS.values()},
    )
    sandbox_login(producer_settings)  # the user's listening history too
    with open_producer(producer_settings) as producer:
        report = producer.poller.poll_once()
    published = sum(report.events.values())
    listener = server.state.listener
    plays = Counter(p.track_id for p in listener.recent())
    now_ms = int(time.time() * 1000)
    ranks: dict[str, int] = {}
    for time_range in TIME_RANGES:
        for rank, track in enumerate(listener.top_tracks(time_range, now_ms), 1):
            ranks[track] = min(rank, ranks.get(track, rank))

    started = time.monotonic()
    catch_up(spark, settings)
    took = time.monotonic() - started
    tracks = {t for p in catalogue.playlists.values() for t in p["track_ids"]} | set(plays) | set(ranks)
    favourites = {t for pid in catalogue.favourite_playlist_ids for t in catalogue.playlists[pid]["track_ids"]}
    assert table(spark, settings, "bronze").count() == published
    assert table(spark, settings, "quarantine").count() == 0, "the contract: producer events all parse"
    assert table(spark, settings, "silver_tracks").count() == len(tracks)
    assert table(spark, settings, "silver_artists").count() == report.events["artist"]
    assert table(spark, settings, "silver_plays").count() == sum(plays.values()) == report.events["play"] == 50
    assert table(spark, settings, "silver_top_tracks").count() == report.events["top_track"] == 150
    gold = {r.track_id: r for r in table(spark, settings, "track_features").collect()}
    assert set(gold) == tracks
    assert {t for t, r in gold.items() if r.is_favourite} == favourites
    # The listening history in gold: plays in Spotify's window per track, the best rank in any top list.
    assert {t: r.play_count for t, r in gold.items() if r.play_count} == dict(plays)
    assert {t: r.top_rank for t, r in gold.items() if r.top_rank is not None} == ranks
    sample = gold[next(iter(tracks))]
    assert sample.popularity == catalogue.tracks[sample.track_id]["popularity"]
    assert sample.features_provider == "spotify" and sample.genres
    assert sample.artist_popularity == catalogue.artists[sample.primary_artist_id]["popularity"]
    print(f"\ncatch-up of {published} events through bronze, silver and gold: {took:.1f}s")

    # Progress: one line per micro-batch and query (by default the one ingest query from Kafka, and gold), with the
    # figures tail shows.
    lines = read_progress(settings.progress_file)
    assert {line["query"] for line in lines} == {INGEST, "gold"}
    ingest = [line for line in lines if line["query"] == INGEST]
    assert sum(line["input_rows"] for line in ingest) == published
    assert ingest[-1]["delta_versions"]["silver_tracks"] >= 1 and ingest[-1]["delta_versions"]["bronze"] >= 1
    assert ingest[-1]["quarantined"] == 0 and set(ingest[-1]["layer_seconds"]) == {"bronze", "silver"}
    gold_lines = [line for line in lines if line["query"] == "gold"]
    assert gold_lines[-1]["delta_versions"]["track_features"] >= 1 and gold_lines[-1]["layer_seconds"]["gold"] > 0
    assert all(line["lag"] == 0 for line in ingest)
    env = clean_env(DATA_DIR=str(settings.data_dir))
    raw = run_module("streaming", "tail", "--json", env=env, cwd=tmp_path)
    assert [json.loads(x)["batch_id"] for x in raw.stdout.splitlines()] == [line["batch_id"] for line in lines]
    shown = run_module("streaming", "tail", env=env, cwd=tmp_path)
    assert shown.returncode == 0 and "bronze" in shown.stdout and f"{published:,}" in shown.stdout

    # Nothing new: no table changes. Upkeep keeps the contents.
    versions = {
        name: spark.sql(f"DESCRIBE HISTORY delta.`{settings.table(name)}` LIMIT 1").first()[0]
        for name in ("bronze", "silver_tracks", "track_features")
    }
    catch_up(spark, settings)
    assert versions == {
        name: spark.sql(f"DESCRIBE HISTORY delta.`{settings.table(name)}` LIMIT 1").first()[0] for name in versions
    }
    maintain_tables(spark, settings)
    assert table(spark, settings, "track_features").count() == len(tracks)
    assert table(spark, settings, "bronze").count() == published


def test_late_out_of_order_duplicate_and_poison_records(
    spark: SparkSession, bootstrap_servers: str, tmp_path: Path
) -> None:
    # Bronze and silver as two queries (STREAMING_FUSED_INGEST=false): the silver writes are the ingest query's, and
    # a silver checkpoint of its own can be removed by hand (below).
    settings = streaming_settings(tmp_path, bootstrap_servers, fused_ingest=False)
    ensure_topics(bootstrap_servers, settings.topics)
    track = {"id": "T" * 22, "name": "v2", "artists": [{"id": "A" * 22, "name": "A"}], "album": {}, "popularity": 50}

    def track_event(name: str, day: int) -> bytes:
        return make_event(
            "track", "T" * 22, track_payload({**track, "name": name}), "test", f"2026-01-{day:02d}T00:00:00.000Z"
        ).to_bytes()

    membership = membership_payload("P" * 22, "Favs", "T" * 22, "added", "s1", True)
    member = make_event("playlist_membership", "P" * 22, membership, "test").to_bytes()
    too_popular = make_event("track", "U" * 22, track_payload({**track, "id": "U" * 22, "popularity": 140}), "test")
    poison = [b"{not json", b"\xc3\x28 bad utf-8", json.dumps({"schema_version": 9}).encode(), too_popular.to_bytes()]
    publish_raw(
        bootstrap_servers,
        [
            (settings.topic_tracks, track_event("v2", 2)),
            (settings.topic_tracks, poison[0]),
            (settings.topic_tracks, track_event("v1", 1)),  # out of order: older, later in the stream
            (settings.topic_playlist_membership, member),
            (settings.topic_playlist_membership, member),  # a retry
            (settings.topic_tracks, poison[1]),
            (settings.topic_artists, poison[2]),
            (settings.topic_tracks, poison[3]),
        ],
    )
    catch_up(spark, settings)
    assert [r.name for r in table(spark, settings, "silver_tracks").collect()] == ["v2"]
    assert table(spark, settings, "silver_playlist_history").count() == 1, "a retried event lands once"
    quarantine = table(spark, settings, "quarantine").orderBy("offset").collect()
    assert sorted(r.reason for r in quarantine) == [
        "expectation popularity_0_100 failed: payload.popularity is 140, expected 0 to 100",
        "invalid UTF-8",
        "not JSON",
        "unknown schema_version 9",
    ]
    assert {bytes(r.value) for r in quarantine} == set(poison), "the raw bytes are kept"
    # The silver batches' expectations and superseded rows, in the progress log `tail` shows.
    silver = [line for line in read_progress(settings.progress_file) if line["query"] == "silver"]
    assert sum_facts(silver, "expectations") == {"popularity_0_100": 1, "duration_positive": 0}
    assert sum_facts(silver, "superseded") == {"silver_tracks": 1, "silver_playlist_members": 1}

    publish_raw(bootstrap_servers, [(settings.topic_tracks, track_event("v3", 3))])
    catch_up(spark, settings)
    assert [r.name for r in table(spark, settings, "track_features").collect()] == ["v3"]
    gold = table(spark, settings, "track_features").first()
    assert gold is not None and gold.is_favourite and gold.artist_popularity is None

    # A late track event (older than v3) and the artist's first event, in one batch: the track stays v3, so its
    # change feed is empty, and gold follows the change feed from the artist to its tracks.
    artist = {"id": "A" * 22, "name": "A", "genres": ["pop"], "popularity": 77, "followers": {"total": 5}}
    publish_raw(
        bootstrap_servers,
        [
            (settings.topic_tracks, track_event("v0-late", 1)),
            (settings.topic_artists, make_event("artist", "A" * 22, artist_payload(artist), "test").to_bytes()),
        ],
    )
    catch_up(spark, settings)
    assert [r.name for r in table(spark, settings, "silver_tracks").collect()] == ["v3"]
    gold = table(spark, settings, "track_features").first()
    assert gold is not None and (gold.name, gold.artist_popularity, gold.genres) == ("v3", 77, ["pop"])
    assert table(spark, settings, "bronze").count() == 11

    # A rebuild from bronze gives the tables the live job wrote (the job is stopped: catch_up has returned).
    live = derived_contents(spark, settings)
    assert rebuild(spark, settings, threading.Event()) == {name: len(rows) for name, rows in live.items()}
    assert derived_contents(spark, settings) == live
    # A silver checkpoint removed by hand (to reprocess bronze) is a new query: its batch ids count from 0 again,
    # and none of its writes is taken for one the tables already committed (the idempotent-write id names the
    # checkpoint's query id).
    remove_location(spark, settings.checkpoint_uri("silver"))
    DeltaTable.forPath(spark, settings.table("silver_tracks")).delete()
    catch_up(spark, settings)
    assert [r.name for r in table(spark, settings, "silver_tracks").collect()] == ["v3"]
    # From the last bronze version on: only what it holds (the late track and the artist), the rest as if it had
    # never arrived.
    latest = table_version(spark, settings.table("bronze"))
    rows = rebuild(spark, settings, threading.Event(), latest)
    assert rows == {name: int(name in ("silver_artists", "silver_tracks", "track_features")) for name in live}
    gold = table(spark, settings, "track_features").first()
    assert gold is not None and (gold.name, gold.artist_popularity) == ("v0-late", 77)


def derived_contents(spark: SparkSession, settings: StreamingSettings) -> dict[str, list[str]]:
    """Every row of the tables a rebuild re-computes, without the times they were written."""
    contents = {}
    for name in REBUILT_TABLES:
        frame = table(spark, settings, name)
        frame = frame.select(*sorted(c for c in frame.columns if c not in ("updated_at", "quarantined_at")))
        contents[name] = sorted(str(row) for row in frame.collect())
    return contents


def sum_facts(lines: list[dict[str, Any]], key: str) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for line in lines:
        totals.update(line[key])
    return {name: totals[name] for name in totals}


def test_a_gold_checkpoint_whose_first_batch_died_starts_afresh(spark: SparkSession, tmp_path: Path) -> None:
    """Spark 4.2 cannot start a query from a checkpoint whose batch 0 never committed: the gold one (gold is
    re-built from silver) is removed; one with a committed batch is left alone."""
    died = tmp_path / "died"
    (died / "offsets").mkdir(parents=True)
    (died / "offsets" / "0").write_text("v1\n")
    (died / "commits").mkdir()
    assert reset_unstarted_checkpoint(spark, str(died)) and not died.exists()

    running = tmp_path / "running"
    for part in ("offsets", "commits"):
        (running / part).mkdir(parents=True)
        (running / part / "0").write_text("v1\n")
    assert not reset_unstarted_checkpoint(spark, str(running)) and (running / "commits" / "0").exists()
    assert not reset_unstarted_checkpoint(spark, str(tmp_path / "never"))


@pytest.mark.parametrize("fused_ingest", [False, True], ids=["two-queries", "ingest-query"])
def test_a_stop_during_set_up_starts_no_query(spark: SparkSession, tmp_path: Path, fused_ingest: bool) -> None:
    """A stop that comes while the tables are set up (Ctrl-C in `make demo` seconds after Spark started) ends the
    job there: no query is started only to wait for its first batch (a cold one took 16-26 s here)."""
    settings = streaming_settings(tmp_path, "127.0.0.1:9", fused_ingest=fused_ingest)  # no broker is asked
    stop = threading.Event()
    stop.set()
    for available_now in (True, False):
        started = time.monotonic()
        assert run_job(settings, available_now, stop, spark) == 0
        assert time.monotonic() - started < 60
        assert not spark.streams.active
        assert not (settings.data_dir / "checkpoints").exists(), "a query was started"
    assert DeltaTable.isDeltaTable(spark, settings.table("bronze")), "the tables were set up"


def test_tables_of_an_earlier_version_get_the_columns_and_tables_added_since(
    spark: SparkSession, bootstrap_servers: str, tmp_path: Path
) -> None:
    """A gold table written before the listening columns keeps its rows and gains the columns (null in old rows);
    the silver tables it lacks are created; a second start changes nothing; bronze's properties are brought up to
    date."""
    settings = streaming_settings(tmp_path, bootstrap_servers)
    old_gold = ", ".join(c for c in ddl_columns(GOLD_SCHEMA) if c.split()[0] not in ("play_count", "top_rank"))
    spark.createDataFrame([{"track_id": "T" * 22, "name": "old"}], old_gold).write.format("delta").save(
        settings.table("track_features")
    )
    ensure_tables(spark, settings)
    gold = table(spark, settings, "track_features")
    assert set(gold.columns) == {c.split()[0] for c in ddl_columns(GOLD_SCHEMA)}
    assert [(r.track_id, r.name, r.play_count, r.top_rank) for r in gold.collect()] == [("T" * 22, "old", None, None)]
    assert (
        table(spark, settings, "silver_plays").count() == 0 and table(spark, settings, "silver_top_tracks").count() == 0
    )
    version = table_version(spark, settings.table("track_features"))
    ensure_tables(spark, settings)
    assert table_version(spark, settings.table("track_features")) == version
    bronze = settings.table("bronze")  # one of an earlier version: column statistics on, which cost its appends
    spark.sql(f"ALTER TABLE delta.`{bronze}` SET TBLPROPERTIES ('delta.dataSkippingNumIndexedCols' = '32')")
    ensure_tables(spark, settings)

    def properties_of(name: str) -> dict[str, str]:
        return {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{settings.table(name)}`").collect()}

    assert properties_of("bronze")["delta.dataSkippingNumIndexedCols"] == "0"
    # Each MERGE target keeps statistics of its keys only: the old gold table gains the property, a new table has it.
    assert properties_of("track_features")["delta.dataSkippingStatsColumns"] == "track_id"
    assert properties_of("silver_plays")["delta.dataSkippingStatsColumns"] == "track_id,played_at"
    plays = table(spark, settings, "silver_plays")
    spark.createDataFrame(
        [("T" * 22, datetime(2026, 12, 7, tzinfo=UTC), "E1", datetime(2026, 12, 7, tzinfo=UTC))],
        "track_id STRING, played_at TIMESTAMP, event_id STRING, observed_at TIMESTAMP",
    ).write.format("delta").mode("append").option("mergeSchema", "false").save(settings.table("silver_plays"))
    assert plays.count() == 1
    added = [
        json.loads(json.loads(line)["add"]["stats"])
        for path in sorted(Path(settings.table("silver_plays"), "_delta_log").glob("*.json"))
        for line in path.read_text().splitlines()
        if '"add"' in line
    ]
    assert [sorted(stats["minValues"]) for stats in added] == [["played_at", "track_id"]]
    assert added[0]["numRecords"] == 1


def test_a_batch_is_appended_once_whether_it_is_new_a_replay_or_run_again_after_it_raised(
    spark: SparkSession, tmp_path: Path
) -> None:
    """MergeWriter.append without Spark's streaming around it: a batch that follows the one the writer finished is
    appended without Delta's idempotent-write options (they cost a rebuild of the table's state); the first batch
    of a run, or one run again after it raised, is looked up first, and a replay of any batch appends nothing."""
    settings = streaming_settings(tmp_path, "localhost:9")  # no Kafka: the writer is called directly
    location = settings.table("bronze")
    spark.sql(f"CREATE TABLE delta.`{location}` (id BIGINT) USING DELTA")

    def batch(writer: MergeWriter, batch_id: int, fail: bool = False) -> None:
        rows = spark.range(batch_id * 10, batch_id * 10 + 10)
        with pytest.raises(RuntimeError) if fail else nullcontext(), writer.running(batch_id):
            writer.append(spark, rows, "bronze", batch_id)
            if fail:
                raise RuntimeError("the batch failed after its append")

    def commits() -> list[dict[str, Any]]:
        log = Path(location, "_delta_log")
        return [
            {k: v for line in p.read_text().splitlines() for k, v in json.loads(line).items()}
            for p in sorted(log.glob("*.json"))
        ]

    def ids() -> list[int]:
        return sorted(row.id for row in spark.read.format("delta").load(location).collect())

    first = MergeWriter(settings, "ingest")
    first.query_id = "run"  # the checkpoint's id, which a query started by Spark would have
    batch(first, 0)  # the first batch of a run: it may be a replay
    batch(first, 1)  # follows the one just finished: new
    batch(first, 2, fail=True)  # appended, then the batch raised: Spark runs it again
    batch(first, 2)
    batch(first, 3)
    again = MergeWriter(settings, "ingest")  # a restart: Spark runs the last uncommitted batch again
    again.query_id = "run"
    batch(again, 3)
    batch(again, 4)
    assert ids() == list(range(50)), "each batch's rows once"
    appends = [c for c in commits() if c["commitInfo"]["operation"] == "WRITE"]
    assert [c["commitInfo"]["userMetadata"] for c in appends] == [f"ingest-run:bronze#{n}" for n in range(5)]
    assert ["txn" in c for c in appends] == [True, False, False, False, False], "Delta's options only when looked up"
    other = MergeWriter(settings, "ingest")  # a new checkpoint (another id): its batch 0 is not the old one's
    other.query_id = "new"
    batch(other, 0)
    assert len(ids()) == 60
    # The bronze query's writer uses the query's id, as Delta's streaming sink did before it: a batch the sink
    # committed (here 7) that Spark runs again after an upgrade is not appended twice.
    spark.range(100, 105).write.format("delta").mode("append").option("txnAppId", "q").option("txnVersion", 7).save(
        location
    )
    sink = BronzeWriter(settings, "bronze")
    sink.query_id = "q"
    batch(sink, 7)
    batch(sink, 8)
    assert len(ids()) == 75 and commits()[-1]["commitInfo"]["userMetadata"] == "q#8"


def test_one_ingest_query_takes_over_from_bronze_and_silver_and_writes_each_record_once(
    spark: SparkSession, bootstrap_servers: str, tmp_path: Path
) -> None:
    """The one ingest query (the default) on a job that ran bronze and silver as two queries
    (STREAMING_FUSED_INGEST=false, or a version before the default changed): they finish first, the one query goes on
    from bronze's offsets (not Kafka's earliest), a batch replayed after a crash adds nothing to bronze, and the two
    queries are refused afterwards."""
    layered = streaming_settings(tmp_path, bootstrap_servers, fused_ingest=False)
    fused = layered.model_copy(update={"fused_ingest": True})
    ensure_topics(bootstrap_servers, layered.topics)
    track = {"artists": [{"id": "A" * 22, "name": "A"}], "album": {}, "popularity": 50}

    def tracks(*names: str) -> list[tuple[str, bytes]]:
        return [
            (
                layered.topic_tracks,
                make_event(
                    "track", name * 22, track_payload({**track, "id": name * 22, "name": name}), "test"
                ).to_bytes(),
            )
            for name in names
        ]

    publish_raw(bootstrap_servers, tracks("a", "b"))
    catch_up(spark, layered)
    publish_raw(bootstrap_servers, tracks("c"))  # still for the two queries: the one query's first start runs them
    catch_up(spark, fused)
    assert table(spark, layered, "bronze").count() == 3
    publish_raw(bootstrap_servers, [*tracks("d", "e"), (layered.topic_tracks, b"{not json")])
    catch_up(spark, fused)
    bronze = table(spark, layered, "bronze")
    assert bronze.count() == bronze.select("partition", "offset").distinct().count() == 6, "each record once"
    assert sorted(r.name for r in table(spark, layered, "silver_tracks").collect()) == ["a", "b", "c", "d", "e"]
    assert sorted(r.track_id[0] for r in table(spark, layered, "track_features").collect()) == list("abcde")
    assert [r.reason for r in table(spark, layered, "quarantine").collect()] == ["not JSON"]
    ingest = [line for line in read_progress(layered.progress_file) if line["query"] == INGEST]
    assert sum(line["input_rows"] for line in ingest) == 3, "the one query read only what came after bronze's end"
    [batch] = [line for line in ingest if line["input_rows"]]
    assert batch["rows_written"] == {"silver_tracks": 2} and batch["quarantined"] == 1
    assert set(batch["layer_seconds"]) == {"bronze", "silver"} and "bronze" in batch["delta_versions"]

    # A crash after the batch's writes, before Spark committed it: the batch runs again and changes nothing.
    checkpoint = fused.checkpoint_uri(INGEST)
    last = committed_batches(spark, checkpoint)[-1]
    for name in (str(last), f".{last}.crc"):  # as if the process died before Spark wrote them
        Path(checkpoint, "commits", name).unlink()
    catch_up(spark, fused)
    assert committed_batches(spark, checkpoint)[-1] == last
    assert table(spark, layered, "bronze").count() == 6 and table(spark, layered, "quarantine").count() == 1
    assert table(spark, layered, "silver_tracks").count() == 5

    with pytest.raises(SetupError, match="STREAMING_FUSED_INGEST=true"):
        catch_up(spark, layered)
