"""MLflow defaults: SQLite tracking plus a local artifact folder under the data dir.

`MLFLOW_TRACKING_URI` (a tracking server, `databricks`, another database) overrides the default;
then the server decides where artifacts go.
"""

import logging
import os
from pathlib import Path

from pipeline_runtime.errors import SetupError
from pipeline_runtime.settings import MlflowSettings, ensure_writable_dir

log = logging.getLogger(__name__)


def default_tracking_uri(mlflow_dir: Path) -> str:
    return f"sqlite:///{(mlflow_dir / 'mlflow.db').resolve()}"


def tracking_uri(settings: MlflowSettings) -> str:
    return settings.mlflow_tracking_uri or default_tracking_uri(settings.mlflow_dir)


def artifact_location(settings: MlflowSettings) -> str | None:
    """Local artifact folder for new experiments, or None to let a configured server decide."""
    if settings.mlflow_tracking_uri:
        return None
    return (settings.mlflow_dir / "artifacts").resolve().as_uri()


def configure_mlflow(settings: MlflowSettings) -> str:
    """Point the mlflow client at the configured store; returns the tracking URI."""
    import mlflow  # noqa: PLC0415 - heavy import, only for the services that track

    if not settings.mlflow_tracking_uri:
        ensure_writable_dir(settings.mlflow_dir, "MLflow folder")
    if settings.mlflow_dfs_tmp:  # MLflow's Spark flavour reads it from the environment (a .env value too)
        os.environ["MLFLOW_DFS_TMP"] = settings.mlflow_dfs_tmp
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    log.info("MLflow tracking at %s", uri)
    return uri


def ensure_experiment(settings: MlflowSettings, name: str) -> str:
    """The id of experiment `name`, created with the local artifact folder when it is new."""
    import mlflow  # noqa: PLC0415

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=artifact_location(settings)))


def require_mlflow(settings: MlflowSettings) -> str:
    """Configure MLflow and prove the store answers; SetupError with the fix otherwise."""
    import mlflow  # noqa: PLC0415

    uri = configure_mlflow(settings)
    try:
        mlflow.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any store failure is reported as one line
        raise SetupError(
            f"The MLflow tracking store at {uri} did not answer ({type(exc).__name__}): "
            "check MLFLOW_TRACKING_URI or unset it for the local SQLite store."
        ) from None
    return uri
