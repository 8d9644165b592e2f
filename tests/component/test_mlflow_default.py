"""MLflow on its default store: SQLite and an artifact folder under the data dir; the env var overrides it."""

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline_runtime.mlflow_setup import configure_mlflow, ensure_experiment, tracking_uri
from training.settings import TrainingSettings


def test_default_store_lives_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = TrainingSettings(_env_file=None, data_dir=tmp_path / "data")
    uri = configure_mlflow(settings)
    assert uri == f"sqlite:///{(tmp_path / 'data' / 'mlflow' / 'mlflow.db').resolve()}"

    experiment_id = ensure_experiment(settings, "smoke-experiment")
    assert ensure_experiment(settings, "smoke-experiment") == experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("model", "gbt")
        mlflow.log_metric("rmse", 18.8)
        report = tmp_path / "report.txt"
        report.write_text("feature importance")
        mlflow.log_artifact(str(report))

    client = MlflowClient(uri)
    stored = client.get_run(run.info.run_id)
    assert stored.data.metrics == {"rmse": 18.8}
    assert stored.data.params == {"model": "gbt"}
    artifact = tmp_path / "data" / "mlflow" / "artifacts" / run.info.run_id / "artifacts" / "report.txt"
    assert artifact.read_text() == "feature importance"
    assert (tmp_path / "data" / "mlflow" / "mlflow.db").is_file()


def test_tracking_uri_variable_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    settings = TrainingSettings(_env_file=None, data_dir=tmp_path / "data")
    assert tracking_uri(settings) == elsewhere
    assert configure_mlflow(settings) == elsewhere
    ensure_experiment(settings, "override")
    assert MlflowClient(elsewhere).get_experiment_by_name("override") is not None
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / "data" / "mlflow").exists()
