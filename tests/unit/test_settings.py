"""Settings: one DATA_DIR for all services, prefixes per service, secrets masked, clear errors."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline_runtime.cli import describe_validation_error, run_cli
from pipeline_runtime.errors import SetupError
from pipeline_runtime.settings import ensure_writable_dir, local_cores, settings_rows
from pipeline_runtime.spark import spark_conf
from producers.settings import ProducerSettings
from streaming.settings import StreamingSettings
from training.settings import TrainingSettings


def test_shared_variables_reach_every_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("SPARK_MASTER", "spark://spark-master:7077")
    producer = ProducerSettings(_env_file=None)
    streaming = StreamingSettings(_env_file=None)
    training = TrainingSettings(_env_file=None)
    assert producer.data_dir == streaming.data_dir == training.data_dir == tmp_path
    assert producer.kafka_bootstrap_servers == streaming.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert streaming.spark_master == training.spark_master == "spark://spark-master:7077"
    assert training.mlflow_dir == tmp_path / "mlflow"


def test_local_cores_of_a_master() -> None:
    assert [local_cores(m) for m in ("local", "local[3]", "local[3,2]", " local[1] ")] == [1, 3, 3, 1]
    assert local_cores("local[*]") == local_cores("local[*,4]") == len(os.sched_getaffinity(0))
    clusters = ("spark://m:7077", "yarn", "k8s://https://h:443", "local-cluster[2,1,1024]")
    assert [local_cores(m) for m in clusters] == [None] * len(clusters)


def test_the_trainer_runs_a_shuffle_partition_per_local_core(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cycle's thousand small jobs cost least with a task per core: the trainer's own default, while the
    streaming job keeps SPARK_SHUFFLE_PARTITIONS; TRAINING_SHUFFLE_PARTITIONS overrides both."""
    for name in ("SPARK_SHUFFLE_PARTITIONS", "TRAINING_SHUFFLE_PARTITIONS", "SPARK_CONF", "TRAINING_SPARK_CONF"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK_MASTER", "local[3]")

    def partitions(settings: StreamingSettings | TrainingSettings) -> tuple[int, str, str]:
        conf = spark_conf(settings, "app", None)
        shuffle, parallelism = conf["spark.sql.shuffle.partitions"], conf["spark.default.parallelism"]
        return settings.session_shuffle_partitions, shuffle, parallelism

    assert partitions(TrainingSettings(_env_file=None, data_dir=tmp_path)) == (3, "3", "3")
    assert partitions(StreamingSettings(_env_file=None, data_dir=tmp_path)) == (4, "4", "4")
    monkeypatch.setenv("TRAINING_SHUFFLE_PARTITIONS", "1")
    assert partitions(TrainingSettings(_env_file=None, data_dir=tmp_path)) == (1, "1", "1")
    assert partitions(StreamingSettings(_env_file=None, data_dir=tmp_path)) == (4, "4", "4")
    monkeypatch.delenv("TRAINING_SHUFFLE_PARTITIONS")
    monkeypatch.setenv("SPARK_MASTER", "spark://master:7077")  # on a cluster: SPARK_SHUFFLE_PARTITIONS
    monkeypatch.setenv("SPARK_SHUFFLE_PARTITIONS", "24")
    assert partitions(TrainingSettings(_env_file=None, data_dir=tmp_path)) == (24, "24", "24")


def test_prefixed_variables_belong_to_one_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMING_TRIGGER_INTERVAL", "5 seconds")
    monkeypatch.setenv("TRAINING_SEED", "7")
    monkeypatch.setenv("PRODUCER_KAFKA_CLIENT", "kafka-python")
    assert StreamingSettings(_env_file=None).trigger_interval == "5 seconds"
    assert TrainingSettings(_env_file=None).seed == 7
    assert ProducerSettings(_env_file=None).kafka_client == "kafka-python"


def test_defaults_are_local(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_DIR", "SPARK_MASTER", "KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    settings = StreamingSettings(_env_file=None)
    assert settings.data_dir == Path("data")
    assert settings.spark_master == "local[*]"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.table_uri("bronze") == str(Path("data/tables/bronze").resolve())
    assert settings.checkpoint_uri("bronze") == str(Path("data/checkpoints/bronze").resolve())
    assert TrainingSettings(_env_file=None).mlflow_tracking_uri is None


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPARK_SHUFFLE_PARTITIONS", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("SPARK_SHUFFLE_PARTITIONS=3\nSTREAMING_MAX_OFFSETS_PER_TRIGGER=500\n")
    settings = StreamingSettings(_env_file=env_file)
    assert (settings.spark_shuffle_partitions, settings.max_offsets_per_trigger) == (3, 500)


def test_object_storage_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLES_LOCATION", "s3a://bucket/spotify/tables/")
    monkeypatch.setenv("CHECKPOINTS_LOCATION", "s3a://bucket/spotify/checkpoints")
    monkeypatch.setenv("SPARK_CONF", '{"spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000"}')
    settings = StreamingSettings(_env_file=None)
    assert settings.table_uri("silver_tracks") == "s3a://bucket/spotify/tables/silver_tracks"
    assert settings.checkpoint_uri("bronze") == "s3a://bucket/spotify/checkpoints/bronze"
    assert settings.spark_conf == {"spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000"}


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "s3cr3t-value")
    settings = ProducerSettings(_env_file=None)
    assert settings.spotify_client_secret is not None
    assert settings.spotify_client_secret.get_secret_value() == "s3cr3t-value"
    shown = repr(settings) + str(settings) + repr(settings_rows(settings))
    assert "s3cr3t-value" not in shown
    assert ("spotify_client_secret", "**********") in settings_rows(settings)


def test_invalid_setting_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPARK_SHUFFLE_PARTITIONS", "many")
    with pytest.raises(ValidationError) as caught:
        StreamingSettings(_env_file=None)
    message = describe_validation_error(caught.value)
    assert "SPARK_SHUFFLE_PARTITIONS" in message and "integer" in message and "\n" not in message

    assert run_cli(lambda: StreamingSettings(_env_file=None) and 0) == 2
    out = capsys.readouterr().out
    assert "error: invalid settings" in out and "Traceback" not in out


def test_unwritable_data_dir_is_a_setup_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SetupError, match=r"is not writable .*DATA_DIR"):
        ensure_writable_dir(blocker / "data")
    assert ensure_writable_dir(tmp_path / "new" / "data").is_dir()


def test_list_settings_take_commas_or_json_and_a_bad_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINING_EXCLUDE_FEATURES", "artist_followers_log, genres")
    assert TrainingSettings(_env_file=None).exclude_features == ["artist_followers_log", "genres"]
    monkeypatch.setenv("TRAINING_EXCLUDE_FEATURES", '["genres"]')
    assert TrainingSettings(_env_file=None).exclude_features == ["genres"]
    monkeypatch.setenv("TRAINING_EXCLUDE_FEATURES", '["genres"')
    assert run_cli(lambda: TrainingSettings(_env_file=None) and 0) == 2
    out = capsys.readouterr().out
    assert "error: invalid settings" in out and "exclude_features" in out and "Traceback" not in out


def test_down_gives_the_streaming_job_time_to_finish_its_batches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipeline.control import stop_budget
    from pipeline.settings import PipelineSettings
    from pipeline.supervisor import Service, Supervisor, streaming_stop_timeout

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    settings = PipelineSettings(_env_file=None)
    # On SIGTERM the job takes up to STREAMING_STOP_TIMEOUT_SECONDS (120) for its batches and gold's catch-up:
    # a SIGKILL after PIPELINE_STOP_TIMEOUT_SECONDS (60) would cut that short.
    assert settings.stop_timeout_seconds == 60 and streaming_stop_timeout(settings) == 150
    monkeypatch.setenv("STREAMING_STOP_TIMEOUT_SECONDS", "10")
    assert streaming_stop_timeout(settings) == 60, "never less than PIPELINE_STOP_TIMEOUT_SECONDS"
    monkeypatch.setenv("STREAMING_STOP_TIMEOUT_SECONDS", "not a number")
    assert streaming_stop_timeout(settings) == 60, "the job itself says what is wrong"

    services = [Service("producer", ["p"]), Service("streaming", ["s"], stop_timeout=150.0)]
    states = Supervisor(settings, services).states
    assert {name: state.stop_timeout for name, state in states.items()} == {"producer": 60.0, "streaming": 150.0}
    running = [{"pid": 1, "stop_timeout": 60.0}, {"pid": 2, "stop_timeout": 150.0}]
    assert stop_budget(running, 60.0) == 225.0
    assert stop_budget([{"pid": 1}], 60.0) == 75.0, "a state file written before stop timeouts were recorded"
    assert stop_budget([], 60.0) == 75.0
