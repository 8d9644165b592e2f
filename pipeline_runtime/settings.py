"""Settings building blocks shared by the services.

Each service has one pydantic-settings class with its own env prefix (`PRODUCER_`, `STREAMING_`,
`TRAINING_`) built from the mixins below. Values every service must agree on are read from one
un-prefixed variable, so that one `DATA_DIR` or `KAFKA_BOOTSTRAP_SERVERS` in `.env` serves all:
those fields carry a `validation_alias`, which pydantic-settings reads instead of the prefixed name.
"""

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline_runtime.errors import SetupError

ENV_FILE = ".env"


def split_list(value: Any) -> Any:
    """A list setting's text: a JSON list, or comma-separated values."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# A list of strings from a JSON list or comma-separated values (`a,b` or `["a", "b"]`).
CsvList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]

_LOCAL_MASTER = re.compile(r"local(?:\[(?P<cores>\*|\d+)(?:,\d+)?\])?")


def local_cores(master: str) -> int | None:
    """The cores a local Spark master runs tasks on (`local`: 1, `local[N]`: N, `local[*]`: the cores this
    process may use), or None for a cluster master."""
    found = _LOCAL_MASTER.fullmatch(master.strip())
    if found is None:
        return None
    cores = found["cores"]
    if cores is None:
        return 1
    if cores == "*":
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        return max(1, len(usable))
    return max(1, int(cores))


def shared(name: str) -> AliasChoices:
    """The alias of a setting that is read from the un-prefixed variable `name` in every service."""
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    """What every service shares: where data lives and where the installed jars are."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(
        Path("data"),
        validation_alias=shared("DATA_DIR"),
        description="Root for tables, checkpoints, broker data, MLflow, state and logs.",
    )
    jars_dir: Path = Field(
        Path("jars"),
        validation_alias=shared("JARS_DIR"),
        description="Where `make jars` put the JVM jars (spark/ and kafka/ below it).",
    )
    java_home: Path | None = Field(
        None, validation_alias=shared("JAVA_HOME"), description="Java 17+ install; else `java` on PATH."
    )
    log_level: str = Field("INFO", validation_alias=shared("LOG_LEVEL"))

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"


class KafkaSettings(ServiceSettings):
    """How the services reach Kafka and which topics carry which entity."""

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=shared("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of the Kafka cluster.",
    )
    topic_tracks: str = Field("spotify.tracks", validation_alias=shared("KAFKA_TOPIC_TRACKS"))
    topic_artists: str = Field("spotify.artists", validation_alias=shared("KAFKA_TOPIC_ARTISTS"))
    topic_audio_features: str = Field("spotify.audio_features", validation_alias=shared("KAFKA_TOPIC_AUDIO_FEATURES"))
    topic_playlist_membership: str = Field(
        "spotify.playlist_membership", validation_alias=shared("KAFKA_TOPIC_PLAYLIST_MEMBERSHIP")
    )
    topic_plays: str = Field("spotify.plays", validation_alias=shared("KAFKA_TOPIC_PLAYS"))
    topic_top_tracks: str = Field("spotify.top_tracks", validation_alias=shared("KAFKA_TOPIC_TOP_TRACKS"))
    kafka_replication_factor: int | None = Field(
        None,
        ge=1,
        validation_alias=shared("KAFKA_REPLICATION_FACTOR"),
        description="Replicas of the topics the services create; unset: the cluster's default.replication.factor.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=shared("KAFKA_SECURITY_PROTOCOL"), description="How clients talk to Kafka."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", validation_alias=shared("KAFKA_SASL_MECHANISM"), description="With SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=shared("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=shared("KAFKA_SASL_PASSWORD"))
    kafka_ssl_ca_location: Path | None = Field(
        None,
        validation_alias=shared("KAFKA_SSL_CA_LOCATION"),
        description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); unset: the system's.",
    )
    kafka_client_properties: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=shared("KAFKA_CLIENT_PROPERTIES"),
        description="More client properties as JSON, by their Kafka names (given to confluent-kafka, to Spark's "
        'Kafka source with the kafka. prefix, and to kafka-python with _ for .), e.g. {"client.rack": "a"}.',
    )

    @property
    def topic_for(self) -> dict[str, str]:
        """The topic of each event type (docs/events.md)."""
        return {event_type: getattr(self, name) for event_type, name in TOPIC_SETTINGS.items()}

    @property
    def topics(self) -> list[str]:
        return list(self.topic_for.values())

    def topic_env(self) -> dict[str, str]:
        """These topics as the environment of another service (KAFKA_TOPIC_TRACKS=...)."""
        return {f"KAFKA_{name.upper()}": getattr(self, name) for name in TOPIC_SETTINGS.values()}


# The setting that names each event type's topic (KafkaSettings).
TOPIC_SETTINGS = {
    "track": "topic_tracks",
    "artist": "topic_artists",
    "audio_features": "topic_audio_features",
    "playlist_membership": "topic_playlist_membership",
    "play": "topic_plays",
    "top_track": "topic_top_tracks",
}


def topic_names(prefix: str) -> dict[str, Any]:
    """Every topic setting named `<prefix>.<kind>` (the defaults are `spotify.<kind>`): a run's own topics, as
    keyword arguments of a settings class."""
    return {name: f"{prefix}.{name.removeprefix('topic_')}" for name in TOPIC_SETTINGS.values()}


class TablesSettings(ServiceSettings):
    """Where the Delta tables live: the Spark services write them, the producer reads the recommendations."""

    tables_location: str | None = Field(
        None,
        validation_alias=shared("TABLES_LOCATION"),
        description="Root of the Delta tables (a path or URI such as s3a://bucket/tables); default DATA_DIR/tables.",
    )

    def table_uri(self, name: str) -> str:
        """Where table `name` lives: under TABLES_LOCATION, else under DATA_DIR/tables."""
        return join_location(self.tables_location, self.data_dir / "tables", name)


class SparkSettings(TablesSettings):
    """How a Spark session is built (see `pipeline_runtime.spark.build_spark_session`)."""

    spark_master: str = Field(
        "local[*]", validation_alias=shared("SPARK_MASTER"), description="local[*], spark://host:7077, ..."
    )
    spark_driver_memory: str = Field("2g", validation_alias=shared("SPARK_DRIVER_MEMORY"))
    spark_shuffle_partitions: int = Field(
        4, ge=1, validation_alias=shared("SPARK_SHUFFLE_PARTITIONS"), description="Small machine: few."
    )
    spark_ui_enabled: bool = Field(True, validation_alias=shared("SPARK_UI_ENABLED"))
    spark_driver_java_options: str = Field(
        "",
        validation_alias=shared("SPARK_DRIVER_JAVA_OPTIONS"),
        description="Extra JVM options of the Spark driver, added to the project's own (its log4j2 settings), "
        "e.g. -Djava.io.tmpdir=/scratch.",
    )
    spark_class_archive: bool = Field(
        True,
        validation_alias=shared("SPARK_CLASS_ARCHIVE"),
        description="Start the Spark driver's JVM from the class-data archive `make setup` builds "
        "(JARS_DIR/spark-classes.jsa): about 5 s less per start; false: never. An archive of another Java or "
        "classpath is ignored by the JVM.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=shared("SPARK_CONF"),
        description='Extra Spark settings as JSON, e.g. {"spark.hadoop.fs.s3a.endpoint": "..."}.',
    )
    checkpoints_location: str | None = Field(
        None,
        validation_alias=shared("CHECKPOINTS_LOCATION"),
        description="Root of the streaming checkpoints; default DATA_DIR/checkpoints.",
    )
    spark_shared_filesystem: bool = Field(
        False,
        validation_alias=shared("SPARK_SHARED_FILESYSTEM"),
        description="Local paths (DATA_DIR, a TABLES_LOCATION without a scheme) are on storage every Spark node "
        "mounts at the same path (NFS, ...), so a cluster master may use them.",
    )

    def checkpoint_uri(self, name: str) -> str:
        return join_location(self.checkpoints_location, self.data_dir / "checkpoints", name)

    @property
    def session_shuffle_partitions(self) -> int:
        """Shuffle partitions (and default parallelism) of this service's Spark session."""
        return self.spark_shuffle_partitions


class MlflowSettings(ServiceSettings):
    """Where MLflow tracks runs: `MLFLOW_TRACKING_URI`, else SQLite under the data dir."""

    mlflow_tracking_uri: str | None = Field(None, validation_alias=shared("MLFLOW_TRACKING_URI"))
    mlflow_dfs_tmp: str | None = Field(
        None,
        validation_alias=shared("MLFLOW_DFS_TMP"),
        description="Where MLflow's Spark flavour puts a model on its way to and from the executors (unset: "
        "MLflow's /tmp/mlflow). On a Spark cluster: storage every node shares, e.g. s3a://bucket/mlflow-tmp.",
    )


def join_location(configured: str | None, default: Path, name: str) -> str:
    """`configured`/`name` for a path or URI (s3a://, abfss://, dbfs:/ ...), else an absolute local path."""
    if configured:
        return f"{configured.rstrip('/')}/{name}"
    return str((default / name).resolve())


def settings_rows(settings: BaseSettings) -> list[tuple[str, str]]:
    """(name, value) for every field; secrets stay masked (SecretStr prints as '**********')."""
    return [(name, str(getattr(settings, name))) for name in type(settings).model_fields]


def ensure_writable_dir(path: Path, what: str = "data dir") -> Path:
    """Create `path` if needed and prove it takes a file; raise SetupError with the fix if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise SetupError(
            f"The {what} {path} is not writable ({reason}): point DATA_DIR at a folder you can write to, "
            f"or fix its permissions."
        ) from None
    return path
