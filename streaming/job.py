"""The streaming job's I/O: Kafka -> bronze (foreachBatch), bronze -> quarantine + silver (foreachBatch),
silver's Change Data Feed -> gold (foreachBatch).

Three queries in one Spark application, each with its own checkpoint:

* `bronze`: Spark's Kafka source into the bronze Delta table (one append per batch, partitioned by ingest date).
  The checkpoint and the once-per-batch append (`MergeWriter.append`) make it exactly once.
* `silver`: a Delta stream of bronze; each micro-batch is parsed, bad records appended to quarantine,
  good ones MERGEd into the silver tables (latest `observed_at` wins).
* `gold`: the Change Data Feed of the silver tables, on its own trigger (STREAMING_GOLD_TRIGGER_INTERVAL):
  each micro-batch re-builds the gold rows of the tracks whose silver rows changed (an artist's change
  reaches its tracks), so gold is off the silver batch's critical path and a burst of silver batches
  costs one gold rebuild.

With STREAMING_FUSED_INGEST one query, `ingest`, takes bronze's and silver's place: Spark's Kafka source into a
foreachBatch that appends the batch to bronze, then writes quarantine and silver from the same rows.

A batch replayed after a crash writes nothing twice: each MERGE is idempotent by its own condition (a replayed
row is not newer than the one it wrote; an insert-only row is matched by its key), and the appends, to bronze and
quarantine, happen once per batch: each carries its batch's mark, and a batch that may be a replay is looked up
first and appended with Delta's idempotent-write options (`MergeWriter.append`). A silver batch runs its MERGEs
at once, one thread per table.
The gold query reads the silver tables' `_change_data`, which VACUUM removes after
STREAMING_VACUUM_RETENTION_HOURS: a gold query stopped for longer than that cannot resume (start it again with a
fresh gold checkpoint, which re-builds gold from the silver tables).
"""

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from pipeline_runtime.contract import (
    BRONZE,
    GOLD,
    GOLD_SCHEMA,
    QUARANTINE,
    SILVER_ENTITY_TABLES,
    SILVER_HISTORY,
    SILVER_MEMBERS,
    SILVER_PLAYS,
    SILVER_TABLES,
    SILVER_TOP_TRACKS,
    ddl_columns,
)
from pipeline_runtime.delta_log import delta_version, table_version
from pipeline_runtime.errors import SetupError, first_line, storage_fault
from pipeline_runtime.kafka_clients import java_client_config
from pipeline_runtime.spark import hadoop_fs
from streaming.progress import BATCH_FACTS, ProgressLog
from streaming.settings import StreamingSettings
from streaming.transforms import (
    EXPECTATIONS,
    KEYS,
    LATEST_WINS,
    PAYLOADS,
    entity_key,
    entity_rows,
    expectation_violations,
    failed_expectation,
    latest_per_key,
    member_rows,
    newer_condition,
    parse_events,
    quarantine_rows,
    silver_table,
    to_bronze,
    track_features,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery
    from pyspark.sql.streaming.readwriter import DataStreamWriter

log = logging.getLogger(__name__)

# A function that starts one of the job's queries: (session, settings, available_now) -> the running query.
QueryStart = Callable[["SparkSession", StreamingSettings, bool], "StreamingQuery"]

# Compaction runs on the job's own schedule (maintain_tables), not after every small write.
TABLE_PROPERTIES = {
    "delta.autoOptimize.optimizeWrite": "false",
    "delta.autoOptimize.autoCompact": "false",
}
# The gold query reads what changed in these tables from their Change Data Feed: the column that leads
# from each to the gold rows it affects.
GOLD_SOURCES = {
    SILVER_ENTITY_TABLES["track"]: "track_id",
    SILVER_ENTITY_TABLES["audio_features"]: "track_id",
    SILVER_MEMBERS: "track_id",
    SILVER_PLAYS: "track_id",
    SILVER_TOP_TRACKS: "track_id",
    SILVER_ENTITY_TABLES["artist"]: "artist_id",
}
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
# Bronze keeps no column statistics: its readers (the silver query, a rebuild) read it in commit order, not by
# value, and a query by day prunes its ingest_date partitions. Collecting them took 0.44 of the 1.0 s of a
# 100k-record append here (the binary key and value among them).
BRONZE_PROPERTIES = {"delta.dataSkippingNumIndexedCols": "0"}
# The columns each MERGE matches its table's rows by, and the only ones the table's files keep statistics of (what a
# lookup by key can skip files with). A MERGE rewrites every file it touches, and Delta computes the statistics of
# each rewritten row again: of all the columns, that was a third of a 100-row MERGE into 300k rows here (2.7-3.2 s
# -> 1.9-2.1 s with the keys' alone). Delta's MERGE itself skips no files by the source's keys.
MERGE_KEYS = {
    **{table: KEYS[event_type] for event_type, table in LATEST_WINS.items()},
    SILVER_MEMBERS: KEYS["playlist_membership"],
    SILVER_HISTORY: ["event_id"],
    SILVER_PLAYS: KEYS["play"],
    GOLD: ["track_id"],
}
INGEST = "ingest"  # the one query from Kafka to bronze and silver (STREAMING_FUSED_INGEST)


# The job's own upkeep (OPTIMIZE) rewrites the files a MERGE has read, and Delta then refuses the MERGE
# (DELTA_CONCURRENT_APPEND): a table's writes and its upkeep take turns.
TABLE_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def table_properties(name: str) -> dict[str, str]:
    own = CHANGE_FEED if name in GOLD_SOURCES else BRONZE_PROPERTIES if name == BRONZE else {}
    keys = {"delta.dataSkippingStatsColumns": ",".join(MERGE_KEYS[name])} if name in MERGE_KEYS else {}
    return {**TABLE_PROPERTIES, **own, **keys}


def ddl_type(spark_type: str) -> str:
    return spark_type.upper() if "<" not in spark_type else spark_type


def table_schemas() -> dict[str, str]:
    """DDL column lists of every table the job writes."""
    meta = "event_id STRING, source STRING, schema_version INT, observed_at TIMESTAMP"
    payload = {etype: ", ".join(f"{name} {ddl_type(t)}" for name, t, _ in fields) for etype, fields in PAYLOADS.items()}
    return {
        BRONZE: "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, kafka_timestamp TIMESTAMP, "
        "ingested_at TIMESTAMP, ingest_date DATE",
        QUARANTINE: "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, "
        "kafka_timestamp TIMESTAMP, reason STRING, quarantined_at TIMESTAMP",
        **{table: f"{payload[etype]}, {meta}" for etype, table in SILVER_ENTITY_TABLES.items()},
        SILVER_MEMBERS: "playlist_id STRING, track_id STRING, playlist_name STRING, is_member BOOLEAN, "
        "is_favourite_playlist BOOLEAN, last_action STRING, snapshot_id STRING, observed_at TIMESTAMP, event_id STRING",
        SILVER_HISTORY: f"{payload['playlist_membership']}, {meta}",
        SILVER_PLAYS: f"{payload['play']}, {meta}",
        SILVER_TOP_TRACKS: f"{payload['top_track']}, {meta}",
        GOLD: GOLD_SCHEMA,
    }


class QueryFailed(SetupError):
    """A streaming query died: one line here, the whole error in the log above it."""

    def __init__(self, name: str | None, error: object) -> None:
        first = first_line(error)
        log.error("the %s query failed:\n%s", name, error)
        super().__init__(
            f"the {name} streaming query failed: {first[:300]} (full error above; the checkpoint is intact, "
            "so a restart resumes where it stopped)"
        )


class StorageFailed(SetupError):
    """The tables or checkpoints refused a write (a full disk, a read-only mount): what and how to go on."""

    def __init__(self, settings: StreamingSettings, fault: str) -> None:
        places = [f"DATA_DIR ({settings.data_dir.resolve()})"]
        places += [
            f"{name} ({value})"
            for name, value in (
                ("TABLES_LOCATION", settings.tables_location),
                ("CHECKPOINTS_LOCATION", settings.checkpoints_location),
            )
            if value
        ]
        super().__init__(
            f"the streaming job could not write its tables or checkpoints: {fault}. Free space on "
            f"{' and '.join(places)} or make it writable, then start the job again: the checkpoints and the Delta "
            "logs are intact, so it resumes at the last committed batch and writes nothing twice"
        )


def query_failed(settings: StreamingSettings, name: str | None, error: object) -> SetupError:
    """A storage fault said as such (the whole error at DEBUG), anything else as QueryFailed."""
    fault = storage_fault(error)
    if fault is None:
        return QueryFailed(name, error)
    log.debug("the %s query failed:\n%s", name, error)
    return StorageFailed(settings, fault)


def ensure_tables(spark: "SparkSession", settings: StreamingSettings) -> None:
    """Create the Delta tables that do not exist yet (bronze partitioned by ingest date); bring a table of an
    earlier version up to date (its properties, the columns added since: null in its old rows)."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    for name, columns in table_schemas().items():
        location = settings.table(name)
        if DeltaTable.isDeltaTable(spark, location):
            existing = set(spark.read.format("delta").load(location).columns)
            added = [column for column in ddl_columns(columns) if column.split()[0] not in existing]
            if added:
                spark.sql(f"ALTER TABLE delta.`{location}` ADD COLUMNS ({', '.join(added)})")
                log.info("added the columns %s to %s", ", ".join(c.split()[0] for c in added), location)
            missing = missing_properties(spark, location, table_properties(name))
            if missing:
                spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ({sql_properties(missing)})")
                log.info("set %s on %s", ", ".join(f"{k}={v}" for k, v in missing.items()), location)
            continue
        partition = " PARTITIONED BY (ingest_date)" if name == BRONZE else ""
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS delta.`{location}` ({columns}) USING DELTA{partition} "
            f"TBLPROPERTIES ({sql_properties(table_properties(name))})"
        )
        log.info("created Delta table %s", location)


def sql_properties(properties: dict[str, str]) -> str:
    return ", ".join(f"'{key}' = '{value}'" for key, value in properties.items())


def missing_properties(spark: "SparkSession", location: str, wanted: dict[str, str]) -> dict[str, str]:
    """The properties of `wanted` a table of an earlier version lacks or has otherwise (the Change Data Feed gold
    reads, bronze's statistics), from its metadata (SHOW TBLPROPERTIES: its log only). DESCRIBE DETAIL runs a
    Spark job per table to size its files, which took 12 s of every streaming job's start on 6 tables."""
    rows = spark.sql(f"SHOW TBLPROPERTIES delta.`{location}`").collect()
    properties = {row["key"]: str(row["value"]).lower() for row in rows}
    return {key: value for key, value in wanted.items() if properties.get(key) != value.lower()}


def batch_mark(app_id: str, batch_id: int) -> str:
    """The user metadata of a batch's append: which query (its idempotent-write id) and which batch wrote it."""
    return f"{app_id}#{batch_id}"


def last_marked_batch(spark: "SparkSession", location: str, app_id: str, commits: int = 100) -> int | None:
    """The batch of `app_id` whose mark (`batch_mark`) the newest of the table's last `commits` commits carries;
    None when none does. The query is the table's only appender and the table upkeep adds a few commits between
    batches, so the mark of the batch a crash interrupted, if it committed, is among the newest."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    for row in DeltaTable.forPath(spark, location).history(commits).select("userMetadata").collect():
        owner, _, batch = (row["userMetadata"] or "").rpartition("#")
        if owner == app_id and batch.isdigit():
            return int(batch)
    return None


class MergeWriter:
    """A foreachBatch function that MERGEs into Delta tables, each MERGE idempotent by its condition."""

    def __init__(self, settings: StreamingSettings, query_name: str) -> None:
        self.settings = settings
        self.query_name = query_name
        self.merge_seconds: dict[str, float] = {}  # of the current batch, per table: where its time goes
        self.query_id: str | None = None
        self.completed: int | None = None  # the last batch this writer finished, in this process
        self.replay = True  # whether the current batch may have been written before (see `running`)

    def app_id(self, spark: "SparkSession", table: str) -> str:
        """The idempotent-write id of this query's writes to `table`: the query's name and the id Spark keeps in
        its checkpoint (`metadata`), the same across restarts. A new checkpoint (one removed by hand, to reprocess
        bronze) has a new id: with the name alone its batch ids, counted from 0 again, would be taken for batches
        the table already committed, and every write skipped until they passed the old ones."""
        return f"{self.query_name}-{self.checkpoint_id(spark)}:{table}"

    def checkpoint_id(self, spark: "SparkSession") -> str:
        """The query's id, from its checkpoint's `metadata` (read once)."""
        if self.query_id is None:
            metadata = spark.read.text(f"{self.settings.checkpoint_uri(self.query_name)}/metadata").first()
            self.query_id = json.loads(metadata[0])["id"] if metadata else "unknown"
        return self.query_id

    @contextmanager
    def running(self, batch_id: int) -> Iterator[None]:
        """Around one batch. Spark runs a batch again only after a failure: in a new run of the query, or in this
        one after the batch raised. So a batch that follows the one this writer just finished is new; any other
        (the first of a run, the one after a failure) may have been written before, and `replay` says so."""
        self.replay = self.completed != batch_id - 1
        self.completed = None  # until this batch finishes: a batch that raised is run again as a possible replay
        yield
        self.completed = batch_id

    def append(self, spark: "SparkSession", rows: "DataFrame", table: str, batch_id: int) -> None:
        """Append `rows` to `table` once per batch, even when Spark runs the batch again after a crash.

        Each append carries its batch's mark (`batch_mark`) as the commit's user metadata. A batch that may be a
        replay (`running`) is looked up in the table's last commits first, and appended with Delta's idempotent-
        write options too (a commit of an earlier version of the job has only those). A new batch is appended
        without them: Delta answers those options by rebuilding the table's whole state to find the application's
        last version, which was 0.47 of the 0.82 s of a 100-row append here. Options, not the session's settings,
        which every thread of the session (the other queries' writes) would see."""
        location = self.settings.table(table)
        app_id = self.app_id(spark, table)
        writer = rows.write.format("delta").mode("append").option("userMetadata", batch_mark(app_id, batch_id))
        if self.replay:
            last = last_marked_batch(spark, location, app_id)
            if last is not None and last >= batch_id:
                log.info(
                    "%s batch %d is in %s already (run again after a failure): not appended twice",
                    self.query_name,
                    batch_id,
                    table,
                )
                return
            writer = writer.option("txnAppId", app_id).option("txnVersion", batch_id)
        writer.save(location)

    def _merge(self, spark: "SparkSession", table: str, rows: "DataFrame", keys: list[str], newer: str | None) -> None:
        from delta.tables import DeltaTable  # noqa: PLC0415

        target = DeltaTable.forPath(spark, self.settings.table(table)).alias("t")
        condition = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        merge = target.merge(rows.alias("s"), condition)
        merge = merge.whenMatchedUpdateAll(condition=newer) if newer else merge
        started = time.monotonic()
        with TABLE_LOCKS[table]:
            merge.whenNotMatchedInsertAll().execute()
        self.merge_seconds[table] = round(time.monotonic() - started, 2)

    def _merge_all(self, spark: "SparkSession", merges: list[tuple[str, "DataFrame", list[str], str | None]]) -> None:
        """MERGE each (table, rows, keys, newer) at once, one thread per table: a small batch's MERGEs are mostly
        the driver's planning and commits, which leave cores idle when run one after another. Each MERGE is
        idempotent by its own condition (a replayed row is not newer; an insert-only row is matched), so a batch
        replayed after a crash changes nothing that was written."""
        if len(merges) <= 1:
            for table, rows, keys, newer in merges:
                self._merge(spark, table, rows, keys, newer)
            return
        with ThreadPoolExecutor(max_workers=len(merges), thread_name_prefix="merge") as pool:
            futures = [pool.submit(self._merge, spark, t, r, k, n) for t, r, k, n in merges]
            for future in futures:
                future.result()


class BronzeWriter(MergeWriter):
    """The foreachBatch function of the bronze query: the batch's Kafka records appended to bronze once per batch
    (`MergeWriter.append`). Delta's streaming sink, which it replaces, looked the query's last batch up in the
    table's state at every batch. Its idempotent-write id was the query's id, and so is this writer's: a batch the
    sink committed before an upgrade is not appended again when Spark runs it again."""

    def app_id(self, spark: "SparkSession", table: str) -> str:
        return self.checkpoint_id(spark)

    def __call__(self, batch: "DataFrame", batch_id: int) -> None:
        with self.running(batch_id):
            self.append(batch.sparkSession, batch, BRONZE, batch_id)


class SilverWriter(MergeWriter):
    """The foreachBatch function of the silver query."""

    def __call__(self, batch: "DataFrame", batch_id: int) -> None:
        with self.running(batch_id):
            self.write(batch, batch_id)

    def write(self, batch: "DataFrame", batch_id: int) -> None:
        """Quarantine and silver from a batch of Kafka records (bronze's rows, or the ingest query's batch)."""
        from pyspark.sql import functions as F  # noqa: N812, PLC0415

        spark = batch.sparkSession
        settings = self.settings
        started = time.monotonic()
        self.merge_seconds = {}
        # Cached without the VARIANT: what follows reads the typed payloads (and quarantine the record's bytes).
        parsed = parse_events(batch, settings.topic_event_types, settings.max_event_bytes).drop("doc").persist()
        try:
            facts: dict[str, Any] = {"rows_written": {}}
            summary = (
                parsed.groupBy(
                    "event_type", F.col("reason").isNull().alias("good"), failed_expectation().alias("expectation")
                )
                .agg(F.count("*").alias("count"), F.count_distinct(entity_key()).alias("keys"))
                .collect()
            )
            counts = {row["event_type"]: row["count"] for row in summary if row["good"]}
            quarantined = sum(row["count"] for row in summary if not row["good"])
            facts["expectations"] = self._check_expectations(summary, batch_id)
            facts["superseded"] = {
                silver_table(row["event_type"]): row["count"] - row["keys"]
                for row in summary
                if row["good"] and row["count"] > row["keys"]
            }
            bad = quarantine_rows(parsed)
            if quarantined:
                self.append(spark, bad, QUARANTINE, batch_id)
            facts["quarantined"] = quarantined

            merges: list[tuple[str, DataFrame, list[str], str | None]] = []
            for event_type, table in LATEST_WINS.items():
                count = counts.get(event_type, 0)
                if count:
                    rows = latest_per_key(entity_rows(parsed, event_type), MERGE_KEYS[table])
                    merges.append((table, rows, MERGE_KEYS[table], newer_condition()))
                    facts["rows_written"][table] = count
            count = counts.get("play", 0)
            if count:  # every play once: insert only (a re-sent play is the same track at the same moment)
                plays = entity_rows(parsed, "play").dropDuplicates(MERGE_KEYS[SILVER_PLAYS])
                merges.append((SILVER_PLAYS, plays, MERGE_KEYS[SILVER_PLAYS], None))
                facts["rows_written"][SILVER_PLAYS] = count
            count = counts.get("playlist_membership", 0)
            if count:
                memberships = entity_rows(parsed, "playlist_membership")
                history = memberships.dropDuplicates(MERGE_KEYS[SILVER_HISTORY])
                merges.append((SILVER_HISTORY, history, MERGE_KEYS[SILVER_HISTORY], None))
                merges.append((SILVER_MEMBERS, member_rows(memberships), MERGE_KEYS[SILVER_MEMBERS], newer_condition()))
                facts["rows_written"][SILVER_HISTORY] = count
            self._merge_all(spark, merges)
            facts["layer_seconds"] = {"silver": round(time.monotonic() - started, 3)}
            facts["merge_seconds"] = self.merge_seconds
            facts["delta_versions"] = {
                name: delta_version(settings.table(name))
                for name in (QUARANTINE, *LATEST_WINS.values(), SILVER_MEMBERS, SILVER_PLAYS)
            }
            BATCH_FACTS[(self.query_name, batch_id)] = facts
            log.info(
                "silver batch %d: %s, %d quarantined, in %.1fs",
                batch_id,
                facts["rows_written"],
                quarantined,
                time.monotonic() - started,
            )
        finally:
            parsed.unpersist()

    def _check_expectations(self, summary: list[Any], batch_id: int) -> dict[str, int]:
        """Violations per expectation of the batch's event types (0 included: it was checked); a warning for each
        one whose violations exceed STREAMING_EXPECTATION_WARN_SHARE of the events it checked."""
        violations = expectation_violations([row.asDict() for row in summary])
        events: dict[str, int] = defaultdict(int)
        for row in summary:
            events[row["event_type"]] += row["count"]
        for name, failed in violations.items():
            checked = sum(events[e.event_type] for e in EXPECTATIONS if e.name == name)
            if failed and failed > self.settings.expectation_warn_share * checked:
                log.warning(
                    "silver batch %d: %d of %d events failed expectation %s (quarantined with the reason; see "
                    "`python -m streaming tail` and the quarantine table): check what the producer sends",
                    batch_id,
                    failed,
                    checked,
                    name,
                )
        return violations


class IngestWriter(SilverWriter):
    """The foreachBatch function of the one query from Kafka (STREAMING_FUSED_INGEST): the batch's records are
    appended to bronze, then written to quarantine and silver as the silver query would. The bronze append is once per
    batch (`MergeWriter.append`), so a batch replayed after a crash adds nothing to bronze; the silver writes are
    idempotent as they are."""

    def __call__(self, batch: "DataFrame", batch_id: int) -> None:
        spark = batch.sparkSession
        records = batch.persist()  # read from Kafka once, for bronze and silver
        try:
            with self.running(batch_id):
                # Bronze first, then silver. Run side by side they took as long (a 100-event batch 5.2 s either
                # way): a small batch is the driver's work, which two threads do not share out on 2 cores.
                started = time.monotonic()
                self.append(spark, records, BRONZE, batch_id)
                bronze_seconds = round(time.monotonic() - started, 3)
                self.write(records, batch_id)
                facts = BATCH_FACTS[(self.query_name, batch_id)]  # the silver writer's, which the listener reports
                facts["layer_seconds"]["bronze"] = bronze_seconds
                facts["delta_versions"][BRONZE] = delta_version(self.settings.table(BRONZE))
        finally:
            records.unpersist()


class GoldWriter(MergeWriter):
    """The foreachBatch function of the gold query: a batch holds the keys (`track_id` or `artist_id`) of
    silver rows that changed; the gold rows of those tracks, and of the tracks of those artists, are re-built
    from the silver tables as they are now."""

    def __call__(self, batch: "DataFrame", batch_id: int) -> None:
        from pyspark.sql import functions as F  # noqa: N812, PLC0415

        spark = batch.sparkSession
        started = time.monotonic()
        self.merge_seconds = {}

        def read(name: str) -> "DataFrame":
            return spark.read.format("delta").load(self.settings.table(name))

        changed = batch.distinct().persist()
        affected: DataFrame | None = None
        try:
            artist_ids = changed.where(F.col("artist_id").isNotNull()).select("artist_id")
            tracks = read(SILVER_ENTITY_TABLES["track"])
            affected = (
                changed.where(F.col("track_id").isNotNull())
                .select("track_id")
                .unionByName(
                    tracks.join(artist_ids, F.get(F.col("artist_ids"), 0) == F.col("artist_id")).select("track_id")
                )
                .distinct()
                .persist()
            )
            # Computed once, and its size known to the planner: Spark then broadcasts the keys to each silver
            # table's scan when they are few, instead of shuffling every table to join them.
            affected.count()
            gold = track_features(
                tracks.join(affected, "track_id", "left_semi"),
                read(SILVER_ENTITY_TABLES["artist"]),
                read(SILVER_ENTITY_TABLES["audio_features"]).join(affected, "track_id", "left_semi"),
                read(SILVER_MEMBERS).join(affected, "track_id", "left_semi"),
                read(SILVER_PLAYS).join(affected, "track_id", "left_semi"),
                read(SILVER_TOP_TRACKS).join(affected, "track_id", "left_semi"),
            )
            gold = gold.select(*[F.col(c) for c in read(GOLD).columns])
            # No idempotent-write id: a gold row is re-built from silver as it is now, so writing a batch again
            # changes nothing, and a gold checkpoint started afresh (reset_unstarted_checkpoint) must not have
            # its batches skipped as already written.
            self._merge(spark, GOLD, gold, MERGE_KEYS[GOLD], "true")
        finally:
            changed.unpersist()
            if affected is not None:
                affected.unpersist()
        seconds = time.monotonic() - started
        BATCH_FACTS[(self.query_name, batch_id)] = {
            "layer_seconds": {"gold": round(seconds, 3)},
            "merge_seconds": self.merge_seconds,
            "delta_versions": {GOLD: delta_version(self.settings.table(GOLD))},
        }
        log.info("gold batch %d in %.1fs", batch_id, seconds)


def triggered(writer: "DataStreamWriter", available_now: bool, interval: str) -> "DataStreamWriter":
    """A query's trigger: availableNow (a catch-up), or every `interval` (the long-running job)."""
    return writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=interval)


def kafka_records(
    spark: "SparkSession", settings: StreamingSettings, starting_offsets: str = "earliest"
) -> "DataFrame":
    """The topics' records as bronze rows (Spark's Kafka source; a new checkpoint starts at `starting_offsets`)."""
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", ",".join(settings.topics))
        .option("startingOffsets", starting_offsets)
        .option("failOnDataLoss", "true")
        .option("maxOffsetsPerTrigger", settings.max_offsets_per_trigger)
        .options(**{f"kafka.{key}": value for key, value in java_client_config(settings).items()})
        .load()
    )
    return to_bronze(records)


def start_bronze(spark: "SparkSession", settings: StreamingSettings, available_now: bool) -> "StreamingQuery":
    writer = (
        kafka_records(spark, settings)
        .writeStream.queryName("bronze")
        .foreachBatch(BronzeWriter(settings, "bronze"))
        .option("checkpointLocation", settings.checkpoint_uri("bronze"))
    )
    writer = triggered(writer, available_now, settings.trigger_interval)
    return writer.start()


def start_ingest(spark: "SparkSession", settings: StreamingSettings, available_now: bool) -> "StreamingQuery":
    """The one query from Kafka to bronze and silver (STREAMING_FUSED_INGEST). A new checkpoint starts where the
    bronze query of a job that ran without it stopped (switch_to_fused ran that query to its end first)."""
    started = bool(committed_batches(spark, settings.checkpoint_uri(INGEST)))
    bronze_offsets = None if started else last_committed_offsets(spark, settings.checkpoint_uri("bronze"))
    writer = (
        kafka_records(spark, settings, bronze_offsets or "earliest")
        .writeStream.queryName(INGEST)
        .foreachBatch(IngestWriter(settings, INGEST))
        .option("checkpointLocation", settings.checkpoint_uri(INGEST))
    )
    writer = triggered(writer, available_now, settings.trigger_interval)
    return writer.start()


def start_silver(
    spark: "SparkSession", settings: StreamingSettings, available_now: bool, bronze_version: int | None = None
) -> "StreamingQuery":
    """The silver query; a fresh checkpoint starts at bronze's first version, or at `bronze_version` (rebuild)."""
    reader = spark.readStream.format("delta").option("maxFilesPerTrigger", settings.silver_max_files_per_trigger)
    if bronze_version is not None:
        reader = reader.option("startingVersion", bronze_version)
    bronze = reader.load(settings.table(BRONZE))
    writer = (
        bronze.writeStream.queryName("silver")
        .foreachBatch(SilverWriter(settings, "silver"))
        .option("checkpointLocation", settings.checkpoint_uri("silver"))
    )
    writer = triggered(writer, available_now, settings.trigger_interval)
    return writer.start()


def silver_changes(spark: "SparkSession", settings: StreamingSettings) -> "DataFrame":
    """The keys of the silver rows inserted or updated, from each gold source's Change Data Feed, as
    (`track_id`, `artist_id`) rows with one of the two set."""
    from pyspark.sql import functions as F  # noqa: N812, PLC0415

    feeds = []
    for table, column in GOLD_SOURCES.items():
        feed = (
            spark.readStream.format("delta")
            .option("readChangeFeed", "true")
            .option("maxFilesPerTrigger", settings.silver_max_files_per_trigger)
            .load(settings.table(table))
            .where(F.col("_change_type") != "update_preimage")
        )
        feeds.append(
            feed.select(
                *(
                    (F.col(key) if key == column else F.lit(None).cast("string")).alias(key)
                    for key in ("track_id", "artist_id")
                )
            )
        )
    changes = feeds[0]
    for feed in feeds[1:]:
        changes = changes.unionByName(feed)
    return changes


def committed_batches(spark: "SparkSession", location: str) -> list[int]:
    """The batch ids a streaming checkpoint committed, in order (none when there is no checkpoint there)."""
    fs, root, hadoop_path = hadoop_fs(spark, location)
    commits = hadoop_path(root, "commits")
    if not fs.exists(commits):
        return []
    return sorted(int(name) for status in fs.listStatus(commits) if (name := status.getPath().getName()).isdigit())


def last_committed_offsets(spark: "SparkSession", location: str) -> str | None:
    """The source offsets (Spark's JSON) of the last batch the one-source checkpoint at `location` committed."""
    batches = committed_batches(spark, location)
    if not batches:
        return None
    lines = [row[0] for row in spark.read.text(f"{location}/offsets/{batches[-1]}").collect()]
    return lines[2] if len(lines) > 2 else None  # "v1", the batch's metadata, then one line per source


def reset_unstarted_checkpoint(spark: "SparkSession", location: str) -> bool:
    """Remove a checkpoint with no committed batch; True when it did.

    A query whose very first batch never committed (it died writing its first offsets, on a full disk say)
    cannot start from that checkpoint again: Spark 4.2 refuses with STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY
    ("offsets should be empty on batch 0"). Only for the gold query, which re-builds gold rows from silver and
    so loses nothing by starting afresh (a bronze or silver checkpoint holds what was already written)."""
    fs, root, _ = hadoop_fs(spark, location)
    if not fs.exists(root) or committed_batches(spark, location):
        return False
    fs.delete(root, True)
    log.warning("the %s checkpoint had no committed batch (its first batch died): started afresh", location)
    return True


def switch_to_fused(spark: "SparkSession", settings: StreamingSettings, stop: threading.Event) -> bool:
    """Before the one ingest query's first batch, on a job that ran bronze and silver as two queries: run them to
    the end of what Kafka has now (start_ingest then goes on from bronze's last offsets). False when `stop` came
    first. A job that ran the ingest query refuses to run the two queries again (bronze would be written twice)."""
    if not settings.fused_ingest:
        if committed_batches(spark, settings.checkpoint_uri(INGEST)):
            raise SetupError(
                f"this job ran with STREAMING_FUSED_INGEST=true (checkpoint {settings.checkpoint_uri(INGEST)}): "
                "bronze and silver as two queries would read Kafka again from where they stopped before and write "
                "bronze twice. Keep STREAMING_FUSED_INGEST=true"
            )
        return True
    if committed_batches(spark, settings.checkpoint_uri(INGEST)) or not committed_batches(
        spark, settings.checkpoint_uri("bronze")
    ):
        return True
    log.info("STREAMING_FUSED_INGEST: the bronze and silver queries finish what Kafka has first")
    return run_in_turn(spark, settings, stop, (start_bronze, start_silver))


def start_gold(spark: "SparkSession", settings: StreamingSettings, available_now: bool) -> "StreamingQuery":
    reset_unstarted_checkpoint(spark, settings.checkpoint_uri("gold"))
    writer = (
        silver_changes(spark, settings)
        .writeStream.queryName("gold")
        .foreachBatch(GoldWriter(settings, "gold"))
        .option("checkpointLocation", settings.checkpoint_uri("gold"))
    )
    writer = triggered(writer, available_now, settings.gold_trigger_interval or settings.trigger_interval)
    return writer.start()


def maintain_tables(
    spark: "SparkSession", settings: StreamingSettings, stop: threading.Event | None = None
) -> dict[str, int]:
    """Compact small files (OPTIMIZE) and VACUUM with the configured retention; files removed per table.
    A stop request ends it between tables (the rest waits for the next round)."""
    from delta.tables import DeltaTable  # noqa: PLC0415

    removed: dict[str, int] = {}
    spark.conf.set("spark.databricks.delta.vacuum.logging.enabled", "true")  # VACUUM shows in DESCRIBE HISTORY
    for name in table_schemas():
        if stop is not None and stop.is_set():
            log.info("table upkeep interrupted by the stop request")
            return removed
        table = DeltaTable.forPath(spark, settings.table(name))
        with TABLE_LOCKS[name]:
            table.optimize().executeCompaction()
            removed[name] = table.vacuum(settings.vacuum_retention_hours).count()
    log.info("table upkeep done (OPTIMIZE, VACUUM %dh)", settings.vacuum_retention_hours)
    return removed


def stop_between_batches(query: "StreamingQuery", deadline: float) -> None:
    """Wait for the running micro-batch (if any) to finish, until `deadline` (time.monotonic()), then stop the
    query (a batch cut short is redone from the checkpoint when the job next starts)."""
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()


def finish(
    query: "StreamingQuery", settings: StreamingSettings, stop: threading.Event, deadline: float | None = None
) -> bool:
    """Wait for an availableNow query to end; False when `stop` or `deadline` (time.monotonic()) came first: the
    query then stops between batches, by `deadline`, or STREAMING_STOP_TIMEOUT_SECONDS after the stop request."""
    try:
        while not query.awaitTermination(1):
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                stop_between_batches(
                    query, deadline if deadline is not None else time.monotonic() + settings.stop_timeout_seconds
                )
                return False
    except Exception as exc:  # noqa: BLE001 - StreamingQueryException and py4j errors alike
        raise query_failed(settings, query.name, exc) from None
    return True


def ingest_queries(settings: StreamingSettings) -> tuple[QueryStart, ...]:
    """The start functions of the job's queries, in the order a catch-up runs them."""
    return (start_ingest, start_gold) if settings.fused_ingest else (start_bronze, start_silver, start_gold)


def catch_up(spark: "SparkSession", settings: StreamingSettings, stop: threading.Event) -> None:
    """availableNow: bronze and silver take what Kafka has now (one ingest query, or bronze then silver), gold what
    silver changed; then return."""
    run_in_turn(spark, settings, stop, ingest_queries(settings))


def run_in_turn(
    spark: "SparkSession", settings: StreamingSettings, stop: threading.Event, starts: tuple[QueryStart, ...]
) -> bool:
    """Each availableNow query of `starts` to its end, one after the other; False when `stop` came first. None is
    started after the stop (not even the first: a stop during set-up starts no query only to wait for its batch)."""
    return all(not stop.is_set() and finish(start(spark, settings, True), settings, stop) for start in starts)


def run_continuously(spark: "SparkSession", settings: StreamingSettings, stop: threading.Event) -> None:
    """The queries (ingest and gold; bronze, silver and gold without STREAMING_FUSED_INGEST) on their processing-time
    triggers, table upkeep on its schedule, until `stop`; then gold catches up with the last silver batches, so a
    stopped job leaves gold as silver says."""
    if stop.is_set():  # stopped while the tables were set up: no query to start and wait for
        return
    queries = [start(spark, settings, False) for start in ingest_queries(settings)]
    next_upkeep = time.monotonic() + settings.maintenance_interval_seconds
    while not stop.wait(2):
        for query in queries:
            if not query.isActive:
                raise query_failed(settings, query.name, query.exception())
        if time.monotonic() >= next_upkeep:
            maintain_tables(spark, settings, stop)
            next_upkeep = time.monotonic() + settings.maintenance_interval_seconds
    # One budget for the whole stop: the running batches end (the queries run theirs at the same time), then gold
    # catches up with what is left of STREAMING_STOP_TIMEOUT_SECONDS.
    deadline = time.monotonic() + settings.stop_timeout_seconds
    for query in queries:
        stop_between_batches(query, deadline)
    left = deadline - time.monotonic()
    if left <= 0:
        log.warning(
            "no time left of STREAMING_STOP_TIMEOUT_SECONDS (%.0f s) for gold to catch up: it does when the job "
            "next starts",
            settings.stop_timeout_seconds,
        )
        return
    log.info("gold catching up with silver before the job stops (%.0f s left)", left)
    finish(start_gold(spark, settings, True), settings, threading.Event(), deadline)  # `stop` is already set


# What a rebuild re-computes from bronze: the tables and the checkpoints of the queries that write them.
REBUILT_TABLES = (QUARANTINE, *SILVER_TABLES, GOLD)
REBUILT_CHECKPOINTS = ("silver", "gold")


def remove_location(spark: "SparkSession", location: str) -> bool:
    """Delete a table's or checkpoint's directory on any storage Hadoop reaches; True when there was one."""
    fs, path, _ = hadoop_fs(spark, location)
    return bool(fs.exists(path) and fs.delete(path, True))


def rebuild(
    spark: "SparkSession", settings: StreamingSettings, stop: threading.Event, bronze_version: int | None = None
) -> dict[str, int]:
    """Re-compute quarantine, silver and gold from bronze (all of it, or the versions from `bronze_version` on):
    the derived tables and the silver and gold checkpoints are removed, created anew and filled by the silver and
    gold queries as a catch-up. Bronze is never touched. Running it again gives the same tables (every table is
    created afresh, so no idempotent-write id of an earlier run is in its log to skip a write). The live job must
    be stopped (the CLI holds the job's lock). Returns the rows of each rebuilt table."""
    bronze = settings.table(BRONZE)
    latest = table_version(spark, bronze)
    if latest is None:
        raise SetupError(f"there is no bronze table at {bronze} to rebuild from: run `python -m streaming run` first")
    if bronze_version is not None and not 0 <= bronze_version <= latest:
        raise SetupError(f"--from-bronze-version {bronze_version} is not a version of bronze (0 to {latest})")
    for name in REBUILT_TABLES:
        if remove_location(spark, settings.table(name)):
            log.info("removed %s (re-built from bronze)", settings.table(name))
    for name in REBUILT_CHECKPOINTS:
        remove_location(spark, settings.checkpoint_uri(name))
    ensure_tables(spark, settings)
    log.info("re-building from bronze version %d to %d", bronze_version or 0, latest)
    if finish(start_silver(spark, settings, True, bronze_version), settings, stop):
        finish(start_gold(spark, settings, True), settings, stop)
    if stop.is_set():
        raise SetupError("the rebuild was stopped before it finished: run it again (it starts afresh)")
    return {name: spark.read.format("delta").load(settings.table(name)).count() for name in REBUILT_TABLES}


def run_job(
    settings: StreamingSettings, available_now: bool, stop: threading.Event, spark: "SparkSession | None" = None
) -> int:
    """Run the queries until `stop` is set (or, with available_now, until caught up). A session passed
    in (tests) is left running; one built here is stopped at the end."""
    from pipeline_runtime.spark import build_spark_session  # noqa: PLC0415

    own_session = spark is None
    if spark is None:
        spark = build_spark_session(settings, "streaming")
    progress = ProgressLog(settings.progress_file, settings.table(BRONZE))
    spark.streams.addListener(progress)
    try:
        ensure_tables(spark, settings)
        if switch_to_fused(spark, settings, stop):
            (catch_up if available_now else run_continuously)(spark, settings, stop)
        return 0
    except SetupError:
        raise
    except Exception as exc:  # creating a table or upkeep: a full disk is said as such, the rest as it was
        fault = storage_fault(exc)
        if fault is None:
            raise
        log.debug("a write failed:\n%s", exc)
        raise StorageFailed(settings, fault) from None
    finally:
        progress.flush(timeout=5)
        spark.streams.removeListener(progress)
        if own_session:
            stop_queries(spark)
            spark.stop()


def stop_queries(spark: "SparkSession") -> None:
    """Stop (and wait for) every query still running or still ending before the session goes: a query thread
    that ends after Spark stopped prints a JVM stack trace ("RpcEnv already stopped") after the one line the
    job ends with, as seen on a full disk when another query failed first."""
    for query in spark.streams.active:
        with suppress(Exception):  # it failed or ended meanwhile: nothing left to stop
            query.stop()
