"""MLflow's standard evaluation of each model on the cycle's holdout (MLflow 3 conventions).

Our code scores the holdout once (`training.selection.scores`) and hands the predictions to
`mlflow.models.evaluate` as a static dataset: MLflow 3.17 deprecates evaluating a model object here, and cuts
a Spark DataFrame to 10,000 rows. The candidate, the champion (on the candidate's holdout), the notebook's
baseline and the reference model each get MLflow's standard metrics and artifacts on their own run, linked
to the logged model where there is one. With labels alone MLflow cannot rank, so for the favourite model its
`roc_auc` and `precision_recall_auc` come from the score column as extra metrics (MLflow's own names for
them when it has probabilities). The promotion gate compares these results with
`mlflow.validate_evaluation_results` (`training.models.decide_promotion`).
"""

import warnings
from typing import Any

import numpy as np

from training.models import Task

MODEL_TYPE: dict[Task, str] = {"regression": "regressor", "classification": "classifier"}
EVALUATION_DATASET = "holdout_predictions"  # the dataset input MLflow's evaluation logs on the run
# The gate's metric in MLflow's evaluation results: the same numbers as training.models.PRIMARY_METRIC's.
GATE_METRIC: dict[Task, str] = {"regression": "root_mean_squared_error", "classification": "precision_recall_auc"}


def evaluation_data(task: Task, labels: np.ndarray, scores: np.ndarray, threshold: float) -> Any:
    """The static dataset MLflow evaluates: the label, the prediction (a class at the model's own threshold,
    for the favourite model) and the score."""
    import pandas as pd  # noqa: PLC0415

    if task == "regression":
        return pd.DataFrame({"label": labels, "prediction": scores})
    return pd.DataFrame({"label": labels.astype(int), "prediction": (scores >= threshold).astype(int), "score": scores})


def ranking_metrics() -> list[Any]:
    """AUC-ROC and AUC-PR from the score column, as MLflow extra metrics."""
    from mlflow.metrics import MetricValue  # noqa: PLC0415
    from mlflow.models import make_metric  # noqa: PLC0415
    from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: PLC0415

    def metric(name: str, compute: Any) -> Any:
        def eval_fn(predictions: Any, targets: Any, score: Any) -> MetricValue:
            with warnings.catch_warnings():  # MLflow first tries each metric on a small sample, maybe one class
                warnings.simplefilter("ignore")
                try:
                    value = float(compute(targets, score))
                except ValueError:  # one class only
                    value = float("nan")
            return MetricValue(aggregate_results={name: value})

        return make_metric(eval_fn=eval_fn, greater_is_better=True, name=name)  # type: ignore[no-untyped-call]

    return [metric("roc_auc", roc_auc_score), metric("precision_recall_auc", average_precision_score)]


def evaluate_predictions(
    task: Task, labels: np.ndarray, scores: np.ndarray, threshold: float, model_id: str | None = None
) -> Any:
    """`mlflow.models.evaluate` of precomputed predictions into the active run (linked to `model_id`): its
    EvaluationResult (`.metrics`)."""
    import mlflow  # noqa: PLC0415
    from mlflow.data.pandas_dataset import from_pandas  # noqa: PLC0415

    classifier = task == "classification"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # integer columns in the inferred schema: by design
        data = from_pandas(
            evaluation_data(task, labels, scores, threshold),
            name=EVALUATION_DATASET,
            targets="label",
            predictions="prediction",
        )
        return mlflow.models.evaluate(  # type: ignore[no-untyped-call]
            data=data,
            model_type=MODEL_TYPE[task],
            evaluators=["default"],
            extra_metrics=ranking_metrics() if classifier else None,
            evaluator_config={
                "default": {"log_model_explainability": False, **({"pos_label": 1} if classifier else {})}
            },
            model_id=model_id,
        )
