"""Settings of the streaming service (env prefix `STREAMING_`; shared names such as SPARK_MASTER unprefixed)."""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import KafkaSettings, SparkSettings


class StreamingSettings(KafkaSettings, SparkSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMING_")

    service_spark_conf: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("STREAMING_SPARK_CONF"),
        description="This service's own Spark settings as JSON, on top of SPARK_CONF, e.g. "
        '{"spark.cores.max": "2"}' + " (on a standalone cluster an application takes every core unless capped).",
    )

    trigger_interval: str = Field("30 seconds", description="Processing-time trigger of the long-running job.")
    gold_trigger_interval: str | None = Field(
        None,
        description="Trigger of the gold query, which re-builds the gold rows of changed silver rows on its own "
        "cadence; unset: the same as trigger_interval.",
    )
    fused_ingest: bool = Field(
        True,
        description="One query from Kafka to bronze and silver: each micro-batch appends its records to bronze "
        "(idempotently) and writes silver from them, which saves bronze's own trigger and batch on the way to silver. "
        "false: bronze and silver as two queries, silver reading bronze's new files. A job that ran the two queries "
        "finishes them first and goes on from bronze's offsets; once the one query ran, it cannot be turned off.",
    )
    max_offsets_per_trigger: int = Field(
        1_000_000,
        gt=0,
        description="Upper bound of Kafka records in one micro-batch (with the one ingest query, of silver's batch "
        "too): what a catch-up or a restart after downtime takes at once. Each batch pays silver's MERGEs once, so "
        "larger batches catch up faster; the batch's records are cached (a batch of a million ~450-byte events ran "
        "in a 2g driver).",
    )
    silver_max_files_per_trigger: int = Field(1000, gt=0, description="Bronze files one silver micro-batch reads.")
    max_event_bytes: int = Field(262_144, gt=0, description="Larger records are quarantined as oversize.")
    expectation_warn_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="A silver batch in which more of the events an expectation checks than this share fail it logs "
        "a warning (failing events go to quarantine either way).",
    )
    maintenance_interval_seconds: float = Field(
        6 * 3600.0, gt=0, description="How often the running job compacts (OPTIMIZE) and VACUUMs its tables."
    )
    vacuum_retention_hours: int = Field(168, ge=168, description="VACUUM keeps files this long (7 days at least).")
    stop_timeout_seconds: float = Field(120.0, gt=0, description="On SIGTERM, how long to wait for a batch to end.")
    progress_log: Path | None = Field(
        None, description="JSON-lines progress log; default DATA_DIR/logs/streaming-progress.jsonl"
    )

    @property
    def progress_file(self) -> Path:
        return self.progress_log or self.data_dir / "logs" / "streaming-progress.jsonl"

    def table(self, name: str) -> str:
        return self.table_uri(name)

    @property
    def topic_event_types(self) -> dict[str, str]:
        return {topic: event_type for event_type, topic in self.topic_for.items()}
