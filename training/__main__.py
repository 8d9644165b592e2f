"""Command line of the training service.

python -m training run [--once | --interval SECONDS]   train when the gold table has new data (a loop by default)
python -m training recommend [--top N] [--like TRACK|PLAYLIST]
                                                         the champion's top non-favourites (or those like a seed)
python -m training report                                write DATA_DIR/report/index.html (tables + registry)
python -m training check                                 the effective settings; MLflow answers; Spark starts
"""

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pipeline_runtime.cli import console, install_stop_handlers, print_settings, run_cli
from pipeline_runtime.errors import SetupError, first_line
from pipeline_runtime.lock import ProcessLock
from pipeline_runtime.logs import configure_logging
from pipeline_runtime.mlflow_setup import require_mlflow
from pipeline_runtime.spark import build_spark_session, has_data_source, require_shared_locations
from training import registry
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from training.cycle import CycleReport
    from training.similar import Seed

# pyspark.ml, numpy and MLflow load inside the commands that use them: `--help` answers at once.

log = logging.getLogger("training")
EXIT_FAILED = 1


def positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Rebuilds the popularity and favourite models from the gold Delta table, tracks them in "
        "MLflow and promotes a new model only when it beats the champion.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="train whenever the gold table has enough new rows (every TRAINING_INTERVAL_SECONDS)",
        description="Each cycle checks the gold table's version and trains only when it has at least "
        "TRAINING_MIN_NEW_ROWS new or changed rows since the last trained version. One trainer at a time.",
    )
    when = run.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one cycle, then exit")
    when.add_argument(
        "--interval", type=positive_seconds, metavar="SECONDS", help="seconds between cycles (default: settings)"
    )
    recommend = commands.add_parser("recommend", help="print the champion's top tracks that are not favourites yet")
    recommend.add_argument("--top", type=int, default=10, metavar="N", help="how many tracks (default 10)")
    recommend.add_argument(
        "--like",
        metavar="TRACK|PLAYLIST",
        help="more like this: the non-favourites nearest to a track or a playlist's tracks (id, URI or URL) where "
        "the favourite champion looks, with what they share",
    )
    commands.add_parser("report", help="write DATA_DIR/report/index.html from the tables and the MLflow registry")
    commands.add_parser("check", help="show the effective settings; check the MLflow store and that Spark starts")
    return parser


def print_cycle(report: "CycleReport") -> None:
    from training.acceptance import describe  # noqa: PLC0415
    from training.cycle import TASKS, describe_metrics  # noqa: PLC0415

    landed = describe(report.acceptance)
    if landed:
        console.print(landed, highlight=False)
    if report.skipped:
        console.print(f"[yellow]skipped:[/] {report.skipped}", highlight=False)
        return
    table = Table(title=f"training cycle on gold version {report.gold_version} ({report.rows} tracks)")
    for column in ("model", "notebook baseline", "reference", "ours (candidate)", "champion before", "decision"):
        table.add_column(column, overflow="fold")
    for model in report.models:
        task = TASKS[model.task][0]
        if model.skipped:
            table.add_row(model.task, "-", "-", f"skipped: {model.skipped}", "-", "-")
            continue
        decision = f"v{model.version} → {'champion' if model.promoted else 'challenger'}: {model.reason}"
        table.add_row(
            model.task,
            describe_metrics(model.baseline, task),
            describe_metrics(model.reference, task),
            f"{model.best}\n{describe_metrics(model.candidate, task)}",
            describe_metrics(model.champion, task),
            decision,
        )
    console.print(table)
    console.print(f"{report.recommendations} recommendations written; cycle took {report.seconds:.0f} s")


def run(settings: TrainingSettings, once: bool, interval: float) -> int:
    from training.cycle import cancel_on_stop, run_cycle, skip_without_spark  # noqa: PLC0415
    from training.selection import Stopped  # noqa: PLC0415

    stop = install_stop_handlers(log, "the trainer (a run in progress is abandoned; aliases stay as they are)")
    require_shared_locations(settings, models=True)
    with ProcessLock(settings.state_dir / "training.lock", "trainer"):  # first: two trainers never share a store
        require_mlflow(settings)
        spark: SparkSession | None = None  # started by the first cycle that needs it
        status = 0
        try:
            while not stop.is_set():
                try:
                    report = skip_without_spark(settings)
                    if report is None:
                        if spark is None:
                            spark = build_spark_session(settings, "training")
                            cancel_on_stop(spark, stop)
                        report = run_cycle(spark, settings, stop)
                    print_cycle(report)
                    status = 0
                except Stopped:
                    break
                except Exception as exc:
                    if stop.is_set():
                        break
                    if once:
                        log.exception("the training cycle failed")
                        first = first_line(exc)
                        raise SetupError(f"the training cycle failed: {first} (full error in the log above)") from None
                    log.exception("the training cycle failed (%s); the next one starts in %.0f s", exc, interval)
                    status = EXIT_FAILED
                if once:
                    break
                if spark is not None and not settings.spark_master.startswith("local"):
                    # A cluster's cores and memory go back to the other applications (the streaming job) until the
                    # next cycle, which starts a new session; a local session is kept (its JVM is this machine's).
                    spark.stop()
                    spark = None
                    log.info("Spark session stopped: its executors are free until the next cycle")
                log.info("next cycle in %.0f s", interval)
                stop.wait(interval)
        finally:
            if spark is not None:
                spark.stop()
    if stop.is_set():
        console.print("stopped")
    return status


def no_champion(name: str) -> SetupError:
    return SetupError(f"no {name} model is champion yet: run `python -m training run --once` first")


def pinned_gold(spark: "SparkSession", settings: TrainingSettings) -> "tuple[int, DataFrame]":
    """The gold table's latest version and its rows at that version, one per track, labelled as the trainer does."""
    from pipeline_runtime.contract import GOLD  # noqa: PLC0415
    from pipeline_runtime.delta_log import table_version  # noqa: PLC0415
    from training.data import read_gold  # noqa: PLC0415

    location = settings.table_uri(GOLD)
    version = table_version(spark, location)
    if version is None:
        raise SetupError(f"the gold table {location} does not exist: run the streaming job first")
    return version, read_gold(spark, settings, location, version)


def print_tracks(title: str, rows: list[dict[str, Any]], measure: str) -> None:
    """Ranked tracks as a table: rank, name, artists, genres, `measure` (score or distance), why."""
    table = Table(title=title)
    for column in ("#", "track", "artists", "genres", measure, "because"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["rank"]),
            row["name"] or row["track_id"],
            ", ".join(row["artist_names"]),
            ", ".join(row["genres"]),
            f"{row[measure]:.3f}",
            row["because"],
        )
    console.print(table)


def recommend(settings: TrainingSettings, top: int) -> int:
    from mlflow import MlflowClient  # noqa: PLC0415

    from training.recommend import champion_recommendations  # noqa: PLC0415

    require_shared_locations(settings, models=True)
    require_mlflow(settings)
    client = MlflowClient()
    name = registry.model_name("favourite")
    if registry.version_by_alias(client, name, registry.CHAMPION) is None:
        raise no_champion(name)
    spark = build_spark_session(settings, "training-recommend")
    try:
        version, gold = pinned_gold(spark, settings)
        ranked = champion_recommendations(client, gold, version, top, settings.max_per_artist)
    finally:
        spark.stop()
    if ranked is None:
        raise no_champion(name)
    champion, rows = ranked
    print_tracks(f"top {len(rows)} tracks for you ({name} v{champion}, gold version {version})", rows, "score")
    return 0


def more_like(settings: TrainingSettings, seed: "Seed", top: int) -> int:
    """`recommend --like`: the champion's nearest non-favourites to a track or a playlist's tracks."""
    from mlflow import MlflowClient  # noqa: PLC0415

    from pipeline_runtime.contract import SILVER_MEMBERS  # noqa: PLC0415
    from pipeline_runtime.delta_log import read_version, table_version  # noqa: PLC0415
    from training.recommend import load_champion  # noqa: PLC0415
    from training.similar import similar_tracks  # noqa: PLC0415

    require_shared_locations(settings, models=True)
    require_mlflow(settings)
    name = registry.model_name("favourite")
    champion = registry.version_by_alias(MlflowClient(), name, registry.CHAMPION)
    if champion is None:
        raise no_champion(name)
    spark = build_spark_session(settings, "training-more-like")
    try:
        version, gold = pinned_gold(spark, settings)
        members_location = settings.table_uri(SILVER_MEMBERS)
        members_version = table_version(spark, members_location)
        members = None if members_version is None else read_version(spark, members_location, members_version)
        model = load_champion(name, str(champion.version))
        seeds, rows = similar_tracks(model, gold, members, seed, top)
    finally:
        spark.stop()
    what = f"track {seeds[0]}" if len(seeds) == 1 else f"the {len(seeds)} tracks of playlist {seed.spotify_id}"
    title = f"{len(rows)} tracks like {what} ({name} v{champion.version}, gold version {version})"
    print_tracks(title, rows, "distance")
    return 0


def report(settings: TrainingSettings) -> int:
    from training.report import write_report  # noqa: PLC0415

    require_mlflow(settings)
    spark = build_spark_session(settings, "training-report")
    try:
        path = write_report(spark, settings)
    finally:
        spark.stop()
    console.print(f"report written to {path} (open it in a browser: file://{path.resolve()})", highlight=False)
    return 0


def check(settings: TrainingSettings) -> int:
    import mlflow  # noqa: PLC0415

    print_settings(settings, "training settings")
    uri = require_mlflow(settings)
    console.print(f"✓ MLflow tracking at {uri} ({len(mlflow.search_experiments(max_results=100))} experiment(s))")
    spark = build_spark_session(settings, "training-check")
    try:
        if not has_data_source(spark, "delta"):
            raise SetupError("Spark lacks the Delta data source: run `make jars`.")
        console.print(f"✓ Spark {spark.version} on {settings.spark_master} with Delta")
    finally:
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        settings = TrainingSettings()
        configure_logging(settings.log_level)
        if args.command == "run":
            return run(settings, args.once, args.interval or settings.interval_seconds)
        if args.command == "recommend":
            if args.top < 1:
                raise SetupError("--top must be at least 1")
            if args.like:
                from training.similar import parse_seed  # noqa: PLC0415

                return more_like(settings, parse_seed(args.like), args.top)
            return recommend(settings, args.top)
        if args.command == "report":
            return report(settings)
        return check(settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
