"""Command line of the streaming service.

python -m streaming run [--available-now]   Kafka -> bronze -> quarantine/silver/gold until stopped
python -m streaming tail [--follow] [--json] the progress log, as a live table or raw JSON lines
python -m streaming maintain                 OPTIMIZE and VACUUM every table once
python -m streaming rebuild [--from-bronze-version N] [--yes]
                                             quarantine, silver and gold re-computed from bronze
python -m streaming check                    settings, Kafka reachable, Spark with Delta and Kafka
"""

import argparse
import logging
import sys
import time

from rich.prompt import Confirm

from pipeline_runtime.cli import console, install_stop_handlers, print_settings, run_cli
from pipeline_runtime.errors import SetupError
from pipeline_runtime.kafka_admin import require_kafka
from pipeline_runtime.kafka_clients import librdkafka_config
from pipeline_runtime.lock import ProcessLock
from pipeline_runtime.logs import configure_logging
from pipeline_runtime.settings import ensure_writable_dir
from pipeline_runtime.spark import require_shared_locations
from streaming.settings import StreamingSettings

log = logging.getLogger("streaming")
JOB_LOCK = "streaming.lock"  # under DATA_DIR/state: `run` and `rebuild` never at the same time


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streaming", description="Spark Structured Streaming from the Kafka topics into Delta tables."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the streaming job until stopped (SIGTERM stops it between batches)",
        description="Kafka -> bronze (one append per batch) -> quarantine, silver and gold (foreachBatch + "
        "idempotent MERGE). Trigger: STREAMING_TRIGGER_INTERVAL; upkeep (OPTIMIZE, VACUUM) every "
        "STREAMING_MAINTENANCE_INTERVAL_SECONDS.",
    )
    run.add_argument("--available-now", action="store_true", help="process what is in Kafka now, then exit")
    tail = commands.add_parser("tail", help="show the progress log (works while the job runs elsewhere)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep the table live as batches arrive")
    tail.add_argument("--json", action="store_true", help="print the raw JSON lines (for scripts)")
    tail.add_argument("--lines", "-n", type=int, default=20, help="how many batches to show (default 20)")
    commands.add_parser("maintain", help="compact (OPTIMIZE) and VACUUM every table once")
    rebuild = commands.add_parser(
        "rebuild",
        help="re-compute quarantine, silver and gold from bronze (the job must be stopped)",
        description="Removes the quarantine, silver and gold tables and the silver and gold checkpoints, then fills "
        "them again from bronze with the job's own queries (after a parsing fix, or to recover). Bronze is never "
        "touched; running it again gives the same tables. Refuses while `run` holds the job's lock.",
    )
    rebuild.add_argument(
        "--from-bronze-version",
        type=int,
        metavar="N",
        help="only the bronze rows committed at version N and later (default: all of bronze)",
    )
    rebuild.add_argument("--yes", action="store_true", help="do not ask before removing the derived tables")
    commands.add_parser(
        "check", help="show the effective settings; check Kafka and that Spark starts with Delta and Kafka"
    )
    return parser


def tail_command(settings: StreamingSettings, follow: bool, as_json: bool, lines: int) -> int:
    import json  # noqa: PLC0415

    from streaming.progress import progress_table, read_progress  # noqa: PLC0415

    path = settings.progress_file
    if as_json:
        seen = 0
        while True:
            records = read_progress(path)
            start = seen if follow and seen else max(0, len(records) - lines)
            for record in records[start:]:
                print(json.dumps(record), flush=True)
            seen = len(records)
            if not follow:
                return 0
            time.sleep(1)
    if not follow:
        records = read_progress(path, lines)
        if not records:
            console.print(f"No progress yet in {path}: is `python -m streaming run` running with this DATA_DIR?")
            return 0
        console.print(progress_table(records, f"streaming progress ({path})"))
        return 0
    from rich.live import Live  # noqa: PLC0415

    with Live(progress_table(read_progress(path, lines), str(path)), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(1)
            live.update(progress_table(read_progress(path, lines), f"streaming progress ({path}) - Ctrl-C to stop"))


def rebuild_command(settings: StreamingSettings, bronze_version: int | None, yes: bool) -> int:
    from rich.table import Table  # noqa: PLC0415

    from pipeline_runtime.spark import build_spark_session  # noqa: PLC0415
    from streaming.job import REBUILT_TABLES, rebuild, stop_queries  # noqa: PLC0415
    from streaming.progress import ProgressLog  # noqa: PLC0415

    with ProcessLock(settings.state_dir / JOB_LOCK, "streaming job"):
        names = ", ".join(REBUILT_TABLES)
        if not yes and not sys.stdin.isatty():
            raise SetupError(f"a rebuild removes {names}: pass --yes to confirm (no terminal to ask on)")
        if not yes and not Confirm.ask(f"Remove {names} and re-compute them from bronze?", console=console):
            console.print("Nothing removed.")
            return 1
        require_shared_locations(settings, checkpoints=True)
        stop = install_stop_handlers(log, "between batches (run the rebuild again to finish it)")
        spark = build_spark_session(settings, "streaming-rebuild")
        spark.streams.addListener(ProgressLog(settings.progress_file, settings.table("bronze")))
        try:
            rows = rebuild(spark, settings, stop, bronze_version)
        finally:
            stop_queries(spark)
            spark.stop()
    table = Table(title="re-built from bronze" + (f" version {bronze_version} on" if bronze_version else ""))
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    return 0


def check_command(settings: StreamingSettings) -> int:
    from pipeline_runtime.spark import build_spark_session, has_data_source  # noqa: PLC0415

    print_settings(settings, "streaming settings")
    brokers = require_kafka(librdkafka_config(settings))
    console.print(f"✓ Kafka at {settings.kafka_bootstrap_servers} answers ({brokers} broker(s))")
    spark = build_spark_session(settings, "streaming-check")
    try:
        missing = [name for name in ("delta", "kafka") if not has_data_source(spark, name)]
        if missing:
            raise SetupError(f"Spark lacks the {' and '.join(missing)} data source: run `make jars`.")
        console.print(f"✓ Spark {spark.version} on {settings.spark_master} with Delta and Kafka")
    finally:
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        settings = StreamingSettings()
        configure_logging(settings.log_level)
        if args.command == "run":
            from streaming.job import run_job  # noqa: PLC0415

            require_shared_locations(settings, checkpoints=True)
            require_kafka(librdkafka_config(settings))
            ensure_writable_dir(settings.data_dir, "data dir")
            with ProcessLock(settings.state_dir / JOB_LOCK, "streaming job"):  # a rebuild waits for it to stop
                return run_job(settings, args.available_now, install_stop_handlers(log, "after the current batch"))
        if args.command == "tail":
            return tail_command(settings, args.follow, args.json, args.lines)
        if args.command == "rebuild":
            return rebuild_command(settings, args.from_bronze_version, args.yes)
        if args.command == "maintain":
            from pipeline_runtime.spark import build_spark_session  # noqa: PLC0415
            from streaming.job import ensure_tables, maintain_tables  # noqa: PLC0415

            spark = build_spark_session(settings, "streaming-maintain")
            try:
                ensure_tables(spark, settings)
                removed = maintain_tables(spark, settings)
            finally:
                spark.stop()
            console.print(f"✓ OPTIMIZE and VACUUM done; files removed: {sum(removed.values())}")
            return 0
        return check_command(settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
