"""The one place a SparkSession is built: master, Delta, the Kafka connector's jars, small-machine defaults.

Jars come from `jars/spark/` (filled by `make jars` from jvm/spark/pom.xml) through `spark.jars`, so a
session never touches the network. Without that folder Spark resolves the same artifacts from Maven
Central through `spark.jars.packages` (what a user with internet and no Maven has).
"""

import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline_runtime.errors import SetupError
from pipeline_runtime.java import check_java
from pipeline_runtime.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Keep in step with jvm/spark/pom.xml (a unit test compares them).
SPARK_PACKAGES = (
    "io.delta:delta-spark_4.2_2.13:4.4.0",
    "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",
)
MANIFEST = "MANIFEST.txt"
LOG4J2_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
# The driver JVM's class-data archive in JARS_DIR, built by `python -m pipeline_runtime class-archive`.
CLASS_ARCHIVE = "spark-classes.jsa"
CODEGEN_FACTORY_MODE = "spark.sql.codegen.factoryMode"
QUIET_CLASS_SHARING = "-Xlog:cds=off,cds+dynamic=off"  # the JVM's class-sharing warnings, off when recording or mapping
IVY_SETTINGS = Path(__file__).with_name("ivysettings.xml")
# A local driver's garbage collector. On any machine of 2 cores the JVM picks G1, made for big heaps and short pauses;
# a local driver of a gigabyte or two does batch work, where the throughput collector costs less CPU (measured with
# one shuffle partition: a 100-event silver micro-batch 6.4 -> 6.0 s and 116 -> 107 JVM CPU-s over 8 batches, a
# training cycle 141 -> 133 JVM CPU-s). A collector named in SPARK_DRIVER_JAVA_OPTIONS replaces it.
LOCAL_DRIVER_GC = "-XX:+UseParallelGC"
_GC_OPTION = re.compile(r"-XX:[+-]Use\w+GC")
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d+\.\d+[^/]*)\.jar$")


def artifact_name(jar_file_name: str) -> str:
    """'spark-sql-kafka-0-10_2.13-4.2.0.jar' -> 'spark-sql-kafka-0-10_2.13'."""
    match = _JAR_NAME.match(jar_file_name)
    return match.group("artifact") if match else jar_file_name.removesuffix(".jar")


def select_extra_jars(listed: list[str], bundled: set[str]) -> list[str]:
    """The listed jars Spark does not ship itself: a second, older copy of a bundled library
    (jackson, hadoop, slf4j ...) on the classpath only risks conflicts."""
    return [name for name in listed if artifact_name(name) not in bundled]


def bundled_artifacts() -> set[str]:
    import pyspark  # noqa: PLC0415 - only needed when a session is built

    jars = Path(pyspark.__file__).parent / "jars"
    return {artifact_name(p.name) for p in jars.glob("*.jar")}


def resolve_spark_jars(jars_dir: Path, jar_set: str = "spark") -> list[Path] | None:
    """The local jar files of a jar set (`jars/spark/`, `jars/s3a/`) for `spark.jars`, or None when its folder does
    not exist at all.

    A folder that exists but is partial (an interrupted `make jars`, a deleted file) is an error:
    running with half a classpath fails later with a far less helpful message.
    """
    folder = jars_dir / jar_set
    if not folder.exists():
        return None
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise SetupError(f"{folder} is incomplete (no {MANIFEST}; `make jars` did not finish): run `make jars`.")
    listed = [line.strip() for line in manifest.read_text().splitlines() if line.strip()]
    missing = [name for name in listed if not (folder / name).is_file()]
    if missing or not listed:
        shown = ", ".join(missing[:3]) or "every jar"
        raise SetupError(f"{folder} is incomplete (missing {shown}): run `make jars` to fetch them again.")
    return [folder / name for name in select_extra_jars(listed, bundled_artifacts())]


def configured_dfs_tmp(settings: SparkSettings) -> str | None:
    """MLFLOW_DFS_TMP as the trainer's settings or the environment give it (None: MLflow's own default)."""
    return getattr(settings, "mlflow_dfs_tmp", None) or os.environ.get("MLFLOW_DFS_TMP")


def s3a_locations(settings: SparkSettings) -> list[str]:
    """The table, checkpoint and MLflow DFS temp locations on `s3a://`: Spark needs Hadoop's s3a connector
    (the `jars/s3a` set) to reach them."""
    roots = (settings.table_uri(""), settings.checkpoint_uri(""), configured_dfs_tmp(settings) or "")
    return [root for root in roots if urlsplit(root).scheme == "s3a"]


def s3a_conf(conf: dict[str, str], environ: dict[str, str]) -> dict[str, str]:
    """Hadoop settings for `s3a://` locations, each unless SPARK_CONF sets it itself.

    * The S3-compatible server AWS_ENDPOINT_URL names (the variable delta-rs and the AWS tools read) becomes
      `fs.s3a.endpoint`, with the path-style URLs such servers (MinIO, moto, Ceph) want: one set of variables
      reaches the store from Spark and from delta-rs alike.
    * `copyFromLocalFile` (how a model reaches MLFLOW_DFS_TMP) through the generic output stream instead of the AWS
      SDK's transfer manager: its asynchronous client, on the netty 4.2 that Spark ships rather than the 4.1 the
      SDK modules are built for, took the server's `100 Continue` for the answer and retried a finished upload
      for minutes (`S3Exception: Status Code: 100`, seen against moto's server)."""
    added = {"spark.hadoop.fs.s3a.optimized.copy.from.local.enabled": "false"}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint and "spark.hadoop.fs.s3a.endpoint" not in conf:
        added.update({"spark.hadoop.fs.s3a.endpoint": endpoint, "spark.hadoop.fs.s3a.path.style.access": "true"})
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if region:
            added["spark.hadoop.fs.s3a.endpoint.region"] = region
    return {key: value for key, value in added.items() if key not in conf}


def class_archive_options(archive: Path | None) -> list[str]:
    """The driver JVM's options to map the class-data archive (`pipeline_runtime.class_archive`): Spark's,
    Delta's and Kafka's classes come parsed and verified from it instead of their jars. `-Xshare:auto` and the
    silenced `cds` log: an archive that does not match this JVM or classpath is skipped without a word."""
    if archive is None:
        return []
    return [f"-XX:SharedArchiveFile={archive.resolve()}", "-Xshare:auto", QUIET_CLASS_SHARING]


def driver_gc_options(settings: SparkSettings) -> list[str]:
    """`LOCAL_DRIVER_GC` for a local master, unless the user's own driver options choose a collector (the JVM refuses
    two); on a cluster the driver keeps the JVM's choice."""
    own = settings.spark_driver_java_options.split()
    if not settings.spark_master.startswith("local") or any(_GC_OPTION.fullmatch(option) for option in own):
        return []
    return [LOCAL_DRIVER_GC]


def spark_conf(
    settings: SparkSettings,
    app_name: str,
    jars: list[Path] | None,
    archive: Path | None = None,
    extra_jars: tuple[Path, ...] = (),
) -> dict[str, str]:
    """Everything the session is built with, as plain strings (pure, so it can be checked in tests);
    `archive`: the class-data archive the driver's JVM starts from (see `class_archive_options`); `extra_jars`: an
    optional jar set's (the s3a connector's) on top of the project's."""
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(settings.session_shuffle_partitions),
        "spark.default.parallelism": str(settings.session_shuffle_partitions),
        # Delta rebuilds a table's state from its log with 50 partitions by default: on a small machine
        # that is most of the cost of a small MERGE.
        "spark.databricks.delta.snapshotPartitions": str(settings.session_shuffle_partitions),
        # Projections outside whole-stage codegen (Delta's log actions, file writers, shuffle keys) evaluated as
        # they are instead of generating Java for each task: our batches are small, and generating that code took
        # a third of the JVM's CPU in a 100-event silver micro-batch (10 -> 6.4 s without it; a training cycle
        # -12 %; a 200k-event catch-up unchanged). Whole-stage codegen is untouched. "FALLBACK" in SPARK_CONF
        # restores Spark's default.
        CODEGEN_FACTORY_MODE: "NO_CODEGEN",
        "spark.ui.enabled": str(settings.spark_ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str((settings.data_dir / "spark-warehouse").resolve()),
        "spark.driver.extraJavaOptions": " ".join(
            (
                f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
                f"-Dderby.system.home={(settings.data_dir / 'derby').resolve()}",
                *class_archive_options(archive),
                *driver_gc_options(settings),
                *settings.spark_driver_java_options.split(),
            )
        ),
    }
    if settings.spark_master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        # VACUUM lists a table's files with this many tasks (10,000 by default): minutes of task overhead
        # per table on a few local cores.
        conf["spark.sql.sources.parallelPartitionDiscovery.parallelism"] = str(4 * settings.session_shuffle_partitions)
    if not settings.spark_ui_enabled:
        # Without a UI nobody reads the status store, yet by default it keeps 100,000 tasks and 1,000 jobs,
        # stages and SQL executions on the driver's heap: a long-running job's heap fills with them.
        conf.update(
            {
                "spark.ui.retainedJobs": "50",
                "spark.ui.retainedStages": "50",
                "spark.ui.retainedTasks": "1000",
                "spark.sql.ui.retainedExecutions": "50",
                "spark.ui.dagGraph.retainedRootRDDs": "50",
            }
        )
    if jars is None:
        conf["spark.jars.packages"] = ",".join(SPARK_PACKAGES)
        conf["spark.jars.ivySettings"] = str(IVY_SETTINGS)
    ours = [str(p.resolve()) for p in (*(jars or ()), *extra_jars)]
    if ours:
        conf["spark.jars"] = ",".join(ours)
    own = {**settings.spark_conf, **getattr(settings, "service_spark_conf", {})}
    # A service's own settings on top (STREAMING_SPARK_CONF, TRAINING_SPARK_CONF: their `service_spark_conf`).
    # Jars or packages the user names come in addition to the project's: replacing them would drop Delta and Kafka.
    for key in ("spark.jars", "spark.jars.packages"):
        if own.get(key) and conf.get(key):
            own[key] = f"{conf[key]},{own[key]}"
    conf.update(own)
    return conf


MLFLOW_DFS_TMP_DEFAULT = "/tmp/mlflow"  # noqa: S108 - MLflow's own default (mlflow.environment_variables)


def uncapped_on_a_cluster(conf: dict[str, str]) -> bool:
    """A standalone cluster gives an application every core unless `spark.cores.max` caps it: the streaming job
    and the trainer then cannot both run (the second waits for resources forever)."""
    return conf["spark.master"].startswith("spark://") and "spark.cores.max" not in conf


def driver_local_locations(settings: SparkSettings, checkpoints: bool, models: bool = False) -> list[tuple[str, str]]:
    """(setting, location) of the table (and checkpoint) roots that, with a cluster master, only the driver's
    disk would hold: a path or file: URI, unless SPARK_SHARED_FILESYSTEM says every node mounts it. With `models`,
    MLflow's DFS temp folder too: MLflow's Spark flavour saves a model there on the executors and copies it to the
    artifact store from the driver (and back to load it), whatever the tracking server."""
    if settings.spark_master.startswith("local") or settings.spark_shared_filesystem:
        return []
    under = "under DATA_DIR"
    roots = [("TABLES_LOCATION", settings.tables_location, settings.table_uri(""), under)]
    if checkpoints:
        roots.append(("CHECKPOINTS_LOCATION", settings.checkpoints_location, settings.checkpoint_uri(""), under))
    if models:
        configured = configured_dfs_tmp(settings)
        roots.append(("MLFLOW_DFS_TMP", configured, configured or MLFLOW_DFS_TMP_DEFAULT, "(MLflow's default)"))
    return [
        (name, configured or f"unset, so {resolved.rstrip('/')} {default}")
        for name, configured, resolved, default in roots
        if urlsplit(resolved).scheme in ("", "file")
    ]


def require_shared_locations(settings: SparkSettings, checkpoints: bool = False, models: bool = False) -> None:
    """SetupError at start, before any JVM, when a cluster's workers could not reach the tables, checkpoints or
    (`models`) MLflow's DFS temp folder: they would fail mid-run with a missing file instead, or leave a model
    logged without its data."""
    local = driver_local_locations(settings, checkpoints, models)
    if local:
        said = "; ".join(f"{name} is {where}" for name, where in local)
        settings_named = " and ".join(name for name, _ in local)
        raise SetupError(
            f"SPARK_MASTER is a cluster ({settings.spark_master}) but {said}: a path on this machine that the "
            f"workers cannot read. Point {settings_named} at storage every node shares "
            "(s3a://, hdfs://, abfss://, gs://), or set SPARK_SHARED_FILESYSTEM=true if every node mounts that "
            "path."
        )


def class_archive(settings: SparkSettings) -> Path | None:
    """The class-data archive `make setup` built, when there is one and SPARK_CLASS_ARCHIVE allows it."""
    archive = settings.jars_dir / CLASS_ARCHIVE
    return archive if settings.spark_class_archive and archive.is_file() else None


def build_spark_session(settings: SparkSettings, app_name: str) -> "SparkSession":
    """A SparkSession with Delta and the Kafka source/sink, configured from settings."""
    require_shared_locations(settings)
    check_java(settings.java_home)
    if settings.java_home and "JAVA_HOME" not in os.environ:
        os.environ["JAVA_HOME"] = str(settings.java_home)  # the JVM launcher reads it from the environment
    if settings.spark_master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Python workers (XGBoost's training task) run this interpreter, with this environment's packages, not
        # whatever `python3` is first on PATH (pyspark reads only the environment). A cluster's executors use
        # their own PYSPARK_PYTHON, which needs the project's requirements too.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    jars = resolve_spark_jars(settings.jars_dir)
    s3a = s3a_locations(settings)
    s3a_jars = resolve_spark_jars(settings.jars_dir, "s3a") if s3a else []
    if s3a_jars is None:
        raise SetupError(
            f"{s3a[0]} is on s3a:// but Hadoop's s3a connector is not installed ({settings.jars_dir / 's3a'} is "
            "missing): run `make jars`"
        )
    if jars is None:
        log.warning(
            "%s not found: Spark will download Delta and the Kafka connector from Maven Central at start-up "
            "(run `make jars` to work offline)",
            settings.jars_dir / "spark",
        )
    from pyspark.sql import SparkSession  # noqa: PLC0415 - importing pyspark is slow; only here

    conf = spark_conf(settings, app_name, jars, class_archive(settings), tuple(s3a_jars))
    if s3a:
        conf.update(s3a_conf(conf, dict(os.environ)))
    if uncapped_on_a_cluster(conf):
        log.warning(
            "%s takes every core of the cluster %s: another service's application will wait for resources; cap "
            'it with STREAMING_SPARK_CONF / TRAINING_SPARK_CONF = {"spark.cores.max": "N"}',
            app_name,
            settings.spark_master,
        )
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    # PySpark replaces the SIGINT handler with its own (cancel all jobs, raise KeyboardInterrupt inside
    # whatever py4j call is running); the services' own stop handler, which stops them between steps, is
    # put back once the session is up.
    sigint = signal.getsignal(signal.SIGINT)
    spark = builder.getOrCreate()
    if threading.current_thread() is threading.main_thread() and sigint is not None:
        signal.signal(signal.SIGINT, sigint)
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session %r on %s", spark.version, app_name, settings.spark_master)
    return spark


def has_data_source(spark: "SparkSession", name: str) -> bool:
    """Whether Spark can load data source `name` ('delta', 'kafka') with the jars it started with."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - no public API answers this without reading data
    if jvm is None:
        return False
    try:
        jvm.org.apache.spark.sql.execution.datasources.DataSource.lookupDataSource(
            name,
            spark._jsparkSession.sessionState().conf(),  # noqa: SLF001
        )
    except Exception:  # noqa: BLE001 - py4j raises Py4JJavaError for DATA_SOURCE_NOT_FOUND
        return False
    return True


def hadoop_fs(spark: "SparkSession", location: str) -> tuple[Any, Any, Any]:
    """Hadoop's FileSystem of `location`, its Path and the Path class, so an object-store location is handled as a
    local one (no public PySpark API)."""
    sc = spark.sparkContext
    hadoop_path = sc._jvm.org.apache.hadoop.fs.Path  # type: ignore[union-attr]  # noqa: SLF001
    path = hadoop_path(location)
    return path.getFileSystem(sc._jsc.hadoopConfiguration()), path, hadoop_path  # noqa: SLF001
