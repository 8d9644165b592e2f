"""What the registry and the tables say now: each champion's metrics next to its baseline and the reference
model's, the top recommendations.

Read by the demo's summary and the HTML report; nothing here trains or writes.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline_runtime.delta_log import table_exists
from training import registry
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Metrics shown per task, in order; the primary one first.
SHOWN = {
    "popularity": ("rmse", "mae", "r2"),
    "favourite": ("auc_pr", "auc_roc", "precision", "recall", "f1", "precision_at_k"),
}


@dataclass
class ModelSummary:
    task: str
    version: str | None = None
    note: str = ""
    run_id: str | None = None
    metrics: dict[str, tuple[float | None, float]] = field(default_factory=dict)  # metric -> (baseline, ours)
    reference: dict[str, float] = field(default_factory=dict)  # metric -> the reference model's, same holdout
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # what moves the champion's score: the top features by mean |SHAP value| (training.explain.summarise)
    contributions: list[dict[str, Any]] = field(default_factory=list)
    contribution_units: str = ""


def model_summaries(settings: TrainingSettings) -> list[ModelSummary]:
    """The champion of each task with its run's holdout metrics and the baseline's on the same holdout."""
    from mlflow import MlflowClient  # noqa: PLC0415

    from pipeline_runtime.mlflow_setup import configure_mlflow  # noqa: PLC0415

    configure_mlflow(settings)
    client = MlflowClient()
    summaries = []
    for task, shown in SHOWN.items():
        summary = ModelSummary(task)
        champion = registry.version_by_alias(client, registry.model_name(task), registry.CHAMPION)
        if champion is None:
            summary.note = "no champion yet"
            summaries.append(summary)
            continue
        run = client.get_run(str(champion.run_id))
        metrics = run.data.metrics
        summary.version, summary.run_id = str(champion.version), run.info.run_id
        summary.params, summary.tags = dict(run.data.params), dict(run.data.tags)
        summary.metrics = {name: (metrics.get(f"baseline_{name}"), metrics[name]) for name in shown if name in metrics}
        summary.reference = {name: metrics[f"reference_{name}"] for name in shown if f"reference_{name}" in metrics}
        logged = logged_contributions(summary.run_id)
        summary.contributions, summary.contribution_units = logged.get("top", []), logged.get("units", "")
        summaries.append(summary)
    return summaries


def logged_contributions(run_id: str) -> dict[str, Any]:
    """The contributions a run logged (`training.explain.CONTRIBUTIONS_FILE`); empty for runs logged before
    they were, or when the artifact store cannot be read."""
    import mlflow  # noqa: PLC0415

    from training.explain import CONTRIBUTIONS_FILE  # noqa: PLC0415

    try:
        logged: dict[str, Any] = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONTRIBUTIONS_FILE}")
    except Exception:  # noqa: BLE001 - an older run or an unreachable store: the report goes on without them
        return {}
    return logged


def recommendation_rows(spark: "SparkSession", settings: TrainingSettings, top: int) -> list[dict[str, Any]]:
    """The first `top` rows of the recommendations table (empty before the first cycle)."""
    location = settings.table_uri("recommendations")
    if not table_exists(spark, location):
        return []
    rows = spark.read.format("delta").load(location).where(f"rank <= {int(top)}").orderBy("rank").collect()
    return [row.asDict() for row in rows]
