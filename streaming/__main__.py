"""Command line of the streaming service.

python -m streaming check    show the effective settings, check that Kafka answers and that Spark
                             starts with the Delta and Kafka data sources
"""

import argparse
import sys

from pipeline_runtime.broker import require_kafka
from pipeline_runtime.cli import console, print_settings, run_cli
from pipeline_runtime.errors import SetupError
from pipeline_runtime.logs import configure_logging
from pipeline_runtime.spark import build_spark_session, has_data_source
from streaming.settings import StreamingSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streaming",
        description="Spark Structured Streaming from the Kafka topics into Delta tables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "check", help="show the effective settings; check Kafka and that Spark starts with Delta and Kafka"
    )
    return parser


def check(settings: StreamingSettings) -> int:
    print_settings(settings, "streaming settings")
    brokers = require_kafka(settings.kafka_bootstrap_servers)
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
    build_parser().parse_args(argv)

    def body() -> int:
        settings = StreamingSettings()
        configure_logging(settings.log_level)
        return check(settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
