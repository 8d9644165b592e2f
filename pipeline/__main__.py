"""Command line of the whole pipeline.

python -m pipeline demo [--catalogue-file PATH]   every stage once on this machine, a summary and the HTML report
python -m pipeline up [--services LIST]          start the services, supervised, in the background (make up)
python -m pipeline status                         each service's state, pid, restarts (make status)
python -m pipeline down                           stop them: SIGTERM, then SIGKILL after a timeout (make down)
python -m pipeline supervise [--services LIST]   the supervisor in the foreground
python -m pipeline mlflow-ui                      the MLflow UI of the tracking store on 127.0.0.1
"""

import argparse
import logging
import sys
from pathlib import Path

from pipeline.settings import PipelineSettings
from pipeline.supervisor import SERVICES
from pipeline_runtime.cli import install_stop_handlers, run_cli
from pipeline_runtime.logs import configure_logging

log = logging.getLogger("pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="The whole Spotify -> Kafka -> Spark -> Delta -> MLflow pipeline at once.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run every stage once on this machine, then print a summary and write the HTML report",
        description="Starts the local Kafka broker and (without SPOTIFY_CLIENT_ID/SECRET) the offline Spotify "
        "sandbox, polls once, lets the streaming job catch up, trains once, writes DATA_DIR/report/index.html "
        "and stops what it started, also on Ctrl-C.",
    )
    demo.add_argument("--catalogue-file", type=Path, metavar="PATH", help="also backfill this CSV/Parquet catalogue")
    for name, text in (
        ("up", "start the services, supervised, in the background"),
        ("supervise", "run the supervisor in the foreground (for systemd and the like)"),
    ):
        command = commands.add_parser(name, help=text, description=text + ". Logs go to DATA_DIR/logs/.")
        command.add_argument(
            "--services",
            type=service_list,
            default=list(SERVICES),
            metavar="LIST",
            help=f"comma-separated subset of {','.join(SERVICES)} (default: all)",
        )
    commands.add_parser("status", help="each service's state, pid, restarts and log")
    commands.add_parser("mlflow-ui", help="serve the MLflow UI of the tracking store on 127.0.0.1")
    commands.add_parser("sandbox-producer", help="the producer, pointed at a sandbox running elsewhere (compose)")
    commands.add_parser("down", help="stop the services: SIGTERM, then SIGKILL after PIPELINE_STOP_TIMEOUT_SECONDS")
    return parser


def service_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown service(s) {', '.join(unknown)}: choose from {', '.join(SERVICES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        settings = PipelineSettings()
        configure_logging(settings.log_level)
        if args.command == "demo":
            from pipeline.demo import demo  # noqa: PLC0415 - pulls in Spark, Kafka and MLflow

            return demo(settings, args.catalogue_file, install_stop_handlers(log, "the demo"))
        from pipeline import control  # noqa: PLC0415

        if args.command in ("supervise", "up"):
            if args.command == "up":
                return control.up(settings, args.services)
            return control.supervise(settings, args.services, install_stop_handlers(log, "the services"))
        commands = {
            "down": control.down,
            "status": control.status,
            "mlflow-ui": control.mlflow_ui,
            "sandbox-producer": control.sandbox_producer,
        }
        return commands[args.command](settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
