"""Command line of the producer service.

python -m producers check    show the effective settings (secrets masked) and check that Kafka answers
"""

import argparse
import sys

from pipeline_runtime.broker import require_kafka
from pipeline_runtime.cli import console, print_settings, run_cli
from pipeline_runtime.logs import configure_logging
from producers.settings import ProducerSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producers",
        description="Polls the Spotify Web API and publishes track events to Kafka.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("check", help="show the effective settings (secrets masked) and check that Kafka answers")
    return parser


def check(settings: ProducerSettings) -> int:
    print_settings(settings, "producer settings")
    brokers = require_kafka(settings.kafka_bootstrap_servers)
    console.print(f"✓ Kafka at {settings.kafka_bootstrap_servers} answers ({brokers} broker(s))")
    return 0


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)

    def body() -> int:
        settings = ProducerSettings()
        configure_logging(settings.log_level)
        return check(settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
