"""Command line of the training service.

python -m training check    show the effective settings, check the MLflow store and that Spark starts
"""

import argparse
import sys

from pipeline_runtime.cli import console, print_settings, run_cli
from pipeline_runtime.errors import SetupError
from pipeline_runtime.logs import configure_logging
from pipeline_runtime.mlflow_setup import configure_mlflow
from pipeline_runtime.spark import build_spark_session, has_data_source
from training.settings import TrainingSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Rebuilds the models from the Delta tables and tracks them in MLflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("check", help="show the effective settings; check the MLflow store and that Spark starts")
    return parser


def check(settings: TrainingSettings) -> int:
    import mlflow  # noqa: PLC0415 - heavy import

    print_settings(settings, "training settings")
    uri = configure_mlflow(settings)
    try:
        experiments = mlflow.search_experiments(max_results=100)
    except Exception as exc:  # noqa: BLE001 - any store failure is reported as one line
        raise SetupError(
            f"The MLflow tracking store at {uri} did not answer ({type(exc).__name__}): "
            "check MLFLOW_TRACKING_URI or unset it for the local SQLite store."
        ) from None
    console.print(f"✓ MLflow tracking at {uri} ({len(experiments)} experiment(s))")
    spark = build_spark_session(settings, "training-check")
    try:
        if not has_data_source(spark, "delta"):
            raise SetupError("Spark lacks the Delta data source: run `make jars`.")
        console.print(f"✓ Spark {spark.version} on {settings.spark_master} with Delta")
    finally:
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)

    def body() -> int:
        settings = TrainingSettings()
        configure_logging(settings.log_level)
        return check(settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
