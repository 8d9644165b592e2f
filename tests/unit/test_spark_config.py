"""How the Spark session is configured: jars from jars/spark, the fallback, Delta, small-machine defaults."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline_runtime.errors import SetupError
from pipeline_runtime.settings import SparkSettings
from pipeline_runtime.spark import (
    CLASS_ARCHIVE,
    CODEGEN_FACTORY_MODE,
    LOCAL_DRIVER_GC,
    MANIFEST,
    SPARK_PACKAGES,
    artifact_name,
    build_spark_session,
    class_archive,
    driver_local_locations,
    require_shared_locations,
    resolve_spark_jars,
    s3a_conf,
    s3a_locations,
    select_extra_jars,
    spark_conf,
    uncapped_on_a_cluster,
)
from tests.support.processes import ROOT, clean_env, run_module
from training.settings import TrainingSettings

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@pytest.mark.parametrize(
    ("jar", "artifact"),
    [
        ("spark-sql-kafka-0-10_2.13-4.2.0.jar", "spark-sql-kafka-0-10_2.13"),
        ("delta-spark_4.2_2.13-4.4.0.jar", "delta-spark_4.2_2.13"),
        ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
        ("javax.annotation-api-1.3.2.jar", "javax.annotation-api"),
        ("jsr305-3.0.0.jar", "jsr305"),
        ("kafka-clients-3.9.2.jar", "kafka-clients"),
    ],
)
def test_artifact_name(jar: str, artifact: str) -> None:
    assert artifact_name(jar) == artifact


def test_jars_spark_ships_are_left_out() -> None:
    listed = ["delta-spark_4.2_2.13-4.4.0.jar", "jackson-core-2.13.5.jar", "kafka-clients-3.9.2.jar"]
    assert select_extra_jars(listed, {"jackson-core", "spark-core_2.13"}) == [
        "delta-spark_4.2_2.13-4.4.0.jar",
        "kafka-clients-3.9.2.jar",
    ]


def test_pom_and_fallback_packages_agree() -> None:
    pom = ET.parse(ROOT / "jvm" / "spark" / "pom.xml").getroot()
    props = {el.tag.split("}")[1]: el.text for el in pom.find("m:properties", POM_NS) or []}

    def expand(text: str) -> str:
        for key, value in props.items():
            text = text.replace("${" + key + "}", value or "")
        return text

    coordinates = {
        ":".join(expand(dep.findtext(f"m:{part}", "", POM_NS)) for part in ("groupId", "artifactId", "version"))
        for dep in pom.iterfind("m:dependencies/m:dependency", POM_NS)
    }
    assert coordinates == set(SPARK_PACKAGES)


def test_missing_jar_folder_falls_back_to_packages(tmp_path: Path) -> None:
    assert resolve_spark_jars(tmp_path) is None
    conf = spark_conf(SparkSettings(_env_file=None, data_dir=tmp_path), "app", None)
    assert conf["spark.jars.packages"] == ",".join(SPARK_PACKAGES)
    assert "spark.jars" not in conf


def test_driver_java_options_are_added_to_the_projects_own(tmp_path: Path) -> None:
    plain = spark_conf(SparkSettings(_env_file=None, data_dir=tmp_path), "app", None)["spark.driver.extraJavaOptions"]
    settings = SparkSettings(
        _env_file=None, data_dir=tmp_path, spark_driver_java_options=" -XX:TieredStopAtLevel=1  -Xss2m"
    )
    options = spark_conf(settings, "app", None)["spark.driver.extraJavaOptions"]
    assert options == f"{plain} -XX:TieredStopAtLevel=1 -Xss2m" and "-Dlog4j2.configurationFile=" in plain


def test_a_local_driver_collects_garbage_for_throughput_unless_told_otherwise(tmp_path: Path) -> None:
    def options(**values: str) -> list[str]:
        settings = SparkSettings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[arg-type]
        return spark_conf(settings, "app", None)["spark.driver.extraJavaOptions"].split()

    assert LOCAL_DRIVER_GC == "-XX:+UseParallelGC"
    assert options(spark_master="local[2]").count(LOCAL_DRIVER_GC) == 1
    assert options(spark_master="local[2]", spark_driver_java_options="-XX:+UseG1GC -Xss2m")[-2:] == [
        "-XX:+UseG1GC",
        "-Xss2m",
    ]
    assert LOCAL_DRIVER_GC not in options(spark_master="local[2]", spark_driver_java_options="-XX:+UseZGC")
    assert LOCAL_DRIVER_GC not in options(spark_master="spark://master:7077", spark_shared_filesystem="true")


def test_the_driver_starts_from_the_class_archive_when_there_is_one_and_it_is_allowed(tmp_path: Path) -> None:
    settings = SparkSettings(_env_file=None, data_dir=tmp_path, jars_dir=tmp_path, spark_driver_java_options="-Xss2m")
    assert class_archive(settings) is None  # `make setup` has not made one
    (tmp_path / CLASS_ARCHIVE).write_bytes(b"archive")
    archive = class_archive(settings)
    assert archive == tmp_path / CLASS_ARCHIVE
    assert class_archive(settings.model_copy(update={"spark_class_archive": False})) is None
    options = spark_conf(settings, "app", None, archive)["spark.driver.extraJavaOptions"].split()
    shared = [f"-XX:SharedArchiveFile={archive.resolve()}", "-Xshare:auto", "-Xlog:cds=off,cds+dynamic=off"]
    assert options[2:] == [*shared, LOCAL_DRIVER_GC, "-Xss2m"]  # after log4j2's and Derby's, before the user's own
    assert not set(shared) & set(spark_conf(settings, "app", None)["spark.driver.extraJavaOptions"].split())


def test_the_doctor_says_whether_the_class_archive_was_made(tmp_path: Path) -> None:
    from pipeline_runtime.__main__ import class_archive_state

    assert "not made" in class_archive_state(tmp_path) and "make class-archive" in class_archive_state(tmp_path)
    (tmp_path / CLASS_ARCHIVE).write_bytes(bytes(3 * 2**20))
    assert class_archive_state(tmp_path) == f"{tmp_path / CLASS_ARCHIVE} (3 MB): Spark's driver starts from it"


def test_partial_jar_folder_is_an_error(tmp_path: Path) -> None:
    spark_dir = tmp_path / "spark"
    spark_dir.mkdir()
    (spark_dir / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"")
    with pytest.raises(SetupError, match=r"incomplete \(no MANIFEST.txt.*run `make jars`"):
        resolve_spark_jars(tmp_path)
    (spark_dir / MANIFEST).write_text("delta-spark_4.2_2.13-4.4.0.jar\nkafka-clients-3.9.2.jar\n")
    with pytest.raises(SetupError, match=r"incomplete \(missing kafka-clients-3.9.2.jar\): run `make jars`"):
        resolve_spark_jars(tmp_path)


def test_session_settings(tmp_path: Path) -> None:
    settings = SparkSettings(
        _env_file=None,
        data_dir=tmp_path,
        spark_master="local[2]",
        spark_shuffle_partitions=3,
        spark_ui_enabled=False,
        spark_conf={"spark.sql.shuffle.partitions": "5", "spark.hadoop.fs.s3a.path.style.access": "true"},
    )
    conf = spark_conf(settings, "app", [tmp_path / "a.jar", tmp_path / "b.jar"])
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert conf["spark.ui.enabled"] == "false"
    assert conf[CODEGEN_FACTORY_MODE] == "NO_CODEGEN", "small batches: no Java generated per task"
    assert (
        spark_conf(settings.model_copy(update={"spark_conf": {CODEGEN_FACTORY_MODE: "FALLBACK"}}), "a", None)[
            CODEGEN_FACTORY_MODE
        ]
        == "FALLBACK"
    )
    assert conf["spark.jars"] == f"{tmp_path / 'a.jar'},{tmp_path / 'b.jar'}"
    assert "spark.jars.packages" not in conf
    # SPARK_CONF has the last word.
    assert conf["spark.sql.shuffle.partitions"] == "5"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    cluster = spark_conf(settings.model_copy(update={"spark_master": "spark://m:7077"}), "app", None)
    assert "spark.driver.host" not in cluster


def test_a_cluster_master_refuses_locations_only_the_driver_has(tmp_path: Path) -> None:
    def settings(**values: object) -> SparkSettings:
        return SparkSettings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]

    assert driver_local_locations(settings(spark_master="local[2]"), checkpoints=True) == []
    cluster = settings(spark_master="spark://10.0.0.5:7077")
    assert [name for name, _ in driver_local_locations(cluster, checkpoints=True)] == [
        "TABLES_LOCATION",
        "CHECKPOINTS_LOCATION",
    ]
    with pytest.raises(SetupError) as refused:
        require_shared_locations(cluster)
    message = str(refused.value)
    assert f"TABLES_LOCATION is unset, so {(tmp_path / 'data' / 'tables').resolve()} under DATA_DIR" in message
    assert "SPARK_SHARED_FILESYSTEM=true" in message and "CHECKPOINTS_LOCATION is" not in message

    shared = settings(
        spark_master="spark://10.0.0.5:7077", tables_location="s3a://bucket/tables", checkpoints_location="file:/x"
    )
    assert driver_local_locations(shared, checkpoints=True) == [("CHECKPOINTS_LOCATION", "file:/x")]
    require_shared_locations(shared)  # the trainer needs no checkpoints
    mounted = settings(spark_master="yarn", spark_shared_filesystem=True)
    assert driver_local_locations(mounted, checkpoints=True) == []


def test_a_cluster_trainer_needs_mlflows_dfs_temp_folder_on_shared_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's Spark flavour saves a model through MLFLOW_DFS_TMP on the executors (and loads it back through it):
    unset on a cluster, a model would be logged without its data."""
    monkeypatch.delenv("MLFLOW_DFS_TMP", raising=False)

    def settings(**values: object) -> TrainingSettings:
        return TrainingSettings(_env_file=None, data_dir=tmp_path, tables_location="s3a://b/t", **values)  # type: ignore[arg-type]

    cluster = settings(spark_master="spark://10.0.0.5:7077")
    require_shared_locations(cluster)  # the streaming job's check: no models there
    with pytest.raises(SetupError) as refused:
        require_shared_locations(cluster, models=True)
    assert "MLFLOW_DFS_TMP is unset, so /tmp/mlflow (MLflow's default)" in str(refused.value)
    assert "Point MLFLOW_DFS_TMP at storage every node shares" in str(refused.value)
    require_shared_locations(settings(spark_master="spark://m:7077", mlflow_dfs_tmp="s3a://b/mlflow-tmp"), models=True)
    require_shared_locations(settings(spark_master="local[2]"), models=True)
    monkeypatch.setenv("MLFLOW_DFS_TMP", "hdfs://nn/tmp/mlflow")  # MLflow's own variable, set outside the settings
    require_shared_locations(cluster, models=True)


@pytest.mark.parametrize(("module", "args"), [("streaming", ["run"]), ("training", ["run", "--once"])])
def test_the_services_refuse_driver_local_tables_on_a_cluster_at_once(
    module: str, args: list[str], tmp_path: Path
) -> None:
    env = clean_env(DATA_DIR=str(tmp_path / "data"), SPARK_MASTER="spark://127.0.0.1:7077")
    result = run_module(module, *args, env=env, cwd=tmp_path, timeout=60)
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in output, output
    assert "SPARK_MASTER is a cluster (spark://127.0.0.1:7077) but TABLES_LOCATION is unset" in lines[0]
    assert ("CHECKPOINTS_LOCATION is unset" in lines[0]) == (module == "streaming")


def test_each_service_adds_its_own_spark_settings_on_top_of_the_shared_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streaming.settings import StreamingSettings
    from training.settings import TrainingSettings

    monkeypatch.setenv("SPARK_MASTER", "spark://m:7077")
    monkeypatch.setenv("SPARK_CONF", '{"spark.cores.max": "8", "spark.executor.memory": "2g"}')
    monkeypatch.setenv("STREAMING_SPARK_CONF", '{"spark.cores.max": "2"}')
    monkeypatch.setenv("TRAINING_SPARK_CONF", '{"spark.executor.memory": "6g"}')
    streaming = spark_conf(StreamingSettings(_env_file=None, data_dir=tmp_path), "streaming", None)
    training = spark_conf(TrainingSettings(_env_file=None, data_dir=tmp_path), "training", None)
    assert (streaming["spark.cores.max"], streaming["spark.executor.memory"]) == ("2", "2g")
    assert (training["spark.cores.max"], training["spark.executor.memory"]) == ("8", "6g")
    assert not uncapped_on_a_cluster(streaming) and not uncapped_on_a_cluster(training)
    monkeypatch.delenv("SPARK_CONF")
    monkeypatch.delenv("STREAMING_SPARK_CONF")
    assert uncapped_on_a_cluster(spark_conf(StreamingSettings(_env_file=None, data_dir=tmp_path), "streaming", None))
    monkeypatch.setenv("SPARK_MASTER", "local[2]")
    assert not uncapped_on_a_cluster(spark_conf(StreamingSettings(_env_file=None, data_dir=tmp_path), "s", None))


def test_jars_named_in_spark_conf_come_in_addition_to_the_projects(tmp_path: Path) -> None:
    """spark.jars in SPARK_CONF used to replace the project's jars, and Delta and Kafka were gone."""
    settings = SparkSettings(_env_file=None, data_dir=tmp_path, spark_conf={"spark.jars": "/opt/extra.jar"})
    conf = spark_conf(settings, "app", [tmp_path / "delta.jar"], extra_jars=(tmp_path / "s3a.jar",))
    assert conf["spark.jars"] == f"{tmp_path / 'delta.jar'},{tmp_path / 's3a.jar'},/opt/extra.jar"
    packages = spark_conf(settings.model_copy(update={"spark_conf": {"spark.jars.packages": "g:a:1"}}), "app", None)[
        "spark.jars.packages"
    ]
    assert packages.endswith(",g:a:1") and "io.delta:delta-spark" in packages


def test_s3a_locations_need_the_s3a_jar_set_and_reach_the_endpoint_delta_rs_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_DFS_TMP", raising=False)
    local = SparkSettings(_env_file=None, data_dir=tmp_path)
    assert s3a_locations(local) == []
    on_s3 = SparkSettings(_env_file=None, data_dir=tmp_path, checkpoints_location="s3a://b/checkpoints")
    assert s3a_locations(on_s3) == ["s3a://b/checkpoints/"]
    monkeypatch.setenv("MLFLOW_DFS_TMP", "s3a://b/mlflow-tmp")
    assert s3a_locations(local) == ["s3a://b/mlflow-tmp"]

    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"}
    plain_copy = {"spark.hadoop.fs.s3a.optimized.copy.from.local.enabled": "false"}
    assert s3a_conf({}, environ) == {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        **plain_copy,
    }
    own = {"spark.hadoop.fs.s3a.endpoint": "https://s3.example.com"}
    assert s3a_conf(own, environ) == plain_copy, "SPARK_CONF's endpoint wins"
    assert s3a_conf({}, {"AWS_REGION": "eu-west-1"}) == plain_copy, "AWS itself: the SDK finds the endpoint"
    assert s3a_conf({**plain_copy, "spark.hadoop.fs.s3a.optimized.copy.from.local.enabled": "true"}, {}) == {}

    monkeypatch.setenv("JARS_DIR", str(tmp_path / "jars"))
    (tmp_path / "jars").mkdir()
    with pytest.raises(SetupError, match=r"s3a://b/checkpoints/ is on s3a:// but Hadoop's s3a connector .*make jars"):
        build_spark_session(on_s3.model_copy(update={"jars_dir": tmp_path / "jars"}), "app")
