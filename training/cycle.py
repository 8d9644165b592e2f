"""One training cycle: gold table (pinned version) -> both models -> MLflow -> gated promotion -> recommendations.

A cycle
1. reads the current version of the gold `track_features` table and skips in seconds when the last
   finished candidate run (read back from MLflow) saw fewer than `min_new_rows` fewer new or changed rows;
2. for each task (popularity regression, favourite classifier) with a usable target: trains the
   notebook's baseline and our tuned pipeline on the same split, scores both and the current champion
   on the same holdout, logs everything to the task's experiment and registers the candidate;
3. moves `champion` to the candidate only when it beats the champion by the margin, else marks it
   `challenger`; the decision and its reason are tags of the candidate run;
4. ranks the non-favourite tracks with the favourite champion into the `recommendations` table.

A stop request (SIGTERM) cancels the running Spark jobs; the run is then marked KILLED and no alias moves.
"""

import json
import logging
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.contract import GOLD, RECOMMENDATIONS
from pipeline_runtime.delta_log import delta_table_id, delta_version, no_local_table, table_id, table_version
from training import plots, registry
from training.acceptance import Acceptance, refresh_acceptance
from training.data import (
    FAVOURITE,
    GENRE_FEATURES,
    IDENTITY_FEATURES,
    NOTEBOOK_FEATURES,
    NOTEBOOK_SCALED,
    POPULARITY,
    TRACK_FEATURES,
    FeatureSet,
    TaskData,
    choose_features,
    complete_rows,
    coverage_expressions,
    holdout_flag,
    model_input,
    read_gold,
    with_class_weights,
)
from training.evaluation import GATE_METRIC, evaluate_predictions
from training.explain import CONTRIBUTION_UNITS, CONTRIBUTIONS_FILE, contributions, summarise
from training.models import (
    Task,
    baseline_pipeline,
    candidate_fitter,
    decide_promotion,
    importances,
    slot_names,
    tuning_grid,
)
from training.progress import Steps
from training.recommend import champion_recommendations, write_recommendations
from training.reference import MODEL as REFERENCE_MODEL
from training.reference import reference_scores
from training.selection import (
    ChampionScore,
    Stopped,
    champion_metrics,
    evaluate,
    score_column,
    scores,
    tune,
)
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TASKS: dict[str, tuple[Task, str]] = {
    "popularity": ("regression", POPULARITY),
    "favourite": ("classification", FAVOURITE),
}
MIN_CLASS_ROWS = 20
CHECKED_FILE = "training-checked.json"  # in the state folder: the gold version a cycle found too little new in


@dataclass
class ModelReport:
    task: str
    skipped: str | None = None
    features: tuple[str, ...] = ()
    missing: dict[str, str] = field(default_factory=dict)
    baseline: dict[str, float] | None = None
    reference: dict[str, float] | None = None
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    best: str = ""
    version: str | None = None
    promoted: bool = False
    reason: str = ""
    run_id: str | None = None


@dataclass
class CycleReport:
    gold_version: int | None = None
    rows: int = 0
    new_rows: int | None = None
    skipped: str | None = None
    models: list[ModelReport] = field(default_factory=list)
    recommendations: int = 0
    acceptance: list[Acceptance] = field(default_factory=list)  # every published list's, oldest first
    seconds: float = 0.0


def missing_gold(location: str) -> str:
    return f"the gold table {location} does not exist yet: run the streaming job first"


def changed_rows(gold: "DataFrame", since: datetime | None) -> int:
    """Rows new or changed after `since` (the gold job stamps `updated_at` on every row it writes)."""
    if since is None:
        return int(gold.count())
    return int(gold.where(F.col("updated_at") > F.lit(since)).count())


# --- one task ---


def prepare_task(data: "DataFrame", name: str, settings: TrainingSettings) -> TaskData | str:
    """Split and feature choice of one task, or the reason it cannot be trained on this data."""
    task, label = TASKS[name]
    labelled = data.where(F.col(label).isNotNull())
    candidates = [*TRACK_FEATURES, *((POPULARITY,) if task == "classification" else ())]
    summary = data.agg(
        F.count("*").alias("total"),
        F.count(F.col(label)).alias("rows"),
        F.sum(F.col(label)).alias("positives"),
        F.avg(F.when(F.col(label).isNotNull(), (F.size("genres") > 0).cast("double"))).alias("genres"),
        *(
            F.avg(F.when(F.col(label).isNotNull(), (F.size(key) > 0).cast("double"))).alias(f"identity_{name}")
            for name, key in IDENTITY_FEATURES.items()
        ),
        *coverage_expressions(candidates, among=F.col(label).isNotNull()),
    ).first()
    assert summary is not None  # noqa: S101 - an aggregate always has a row
    rows = int(summary["rows"])
    total = int(summary["total"])
    if task == "regression" and rows < settings.min_rows:
        why = (
            "a 2026 development-mode Spotify app gets no popularity fields, so the popularity model is skipped"
            if rows == 0
            else "the popularity model waits for more"
        )
        return f"only {rows} of {total} tracks have a popularity (needs {settings.min_rows}): {why}"
    if task == "classification":
        positives = int(summary["positives"] or 0)
        if min(positives, rows - positives) < MIN_CLASS_ROWS or rows < settings.min_rows:
            return (
                f"{positives} favourites among {rows} tracks (needs {MIN_CLASS_ROWS} favourites and "
                f"{MIN_CLASS_ROWS} others, {settings.min_rows} tracks in all): name favourite playlists in "
                "PRODUCER_FAVOURITE_PLAYLISTS or save tracks in Spotify"
            )
    coverage = {name: float(summary[name] or 0.0) for name in candidates}
    numeric, missing = choose_features(coverage, candidates, settings.min_feature_coverage, settings.exclude_features)
    genres_share = float(summary["genres"] or 0.0)
    genres = genres_share >= settings.min_feature_coverage and not set(GENRE_FEATURES) & set(settings.exclude_features)
    if not genres:
        missing["genres"] = f"{genres_share:.0%} of tracks have genres (need {settings.min_feature_coverage:.0%})"
    identity = []
    for feature in IDENTITY_FEATURES:
        keyed = float(summary[f"identity_{feature}"] or 0.0)
        if feature in settings.exclude_features:
            missing[feature] = "excluded by TRAINING_EXCLUDE_FEATURES"
        elif keyed < settings.min_feature_coverage:
            missing[feature] = f"{keyed:.0%} of tracks have one (need {settings.min_feature_coverage:.0%})"
        else:
            identity.append(feature)
    if not numeric and not genres and not identity:
        return "no feature has enough values to train on"
    baseline_features, _ = choose_features(coverage, NOTEBOOK_FEATURES, settings.min_feature_coverage)
    is_holdout = holdout_flag(settings.seed, settings.holdout_fraction)
    train = labelled.where(~is_holdout)
    # The holdout is the same rows for baseline, candidate and champion: those the baseline can score.
    holdout = labelled.where(is_holdout & complete_rows(labelled, baseline_features))
    share = None
    if task == "classification":
        share = float(train.agg(F.avg(label)).first()[0] or 0.0)  # type: ignore[index]
        train = with_class_weights(train, label, share)
    return TaskData(
        train=train,
        holdout=holdout,
        features=FeatureSet(numeric, genres, tuple(identity)),
        baseline_features=baseline_features,
        missing=missing,
        train_rows=int(train.count()),
        holdout_rows=int(holdout.count()),
        positive_share=share,
    )


def log_figures(
    mlflow: Any,
    task: Task,
    names: list[str],
    weights: list[float],
    labels: np.ndarray,
    predicted: np.ndarray,
    threshold: float,
) -> None:
    mlflow.log_figure(plots.importance_figure(names, weights, "feature importance"), "plots/feature_importance.png")
    if task == "regression":
        mlflow.log_figure(plots.regression_figure(labels, predicted, "popularity"), "plots/predicted_vs_actual.png")
    else:
        mlflow.log_figure(plots.roc_pr_figure(labels, predicted, "favourites"), "plots/roc_pr.png")
        mlflow.log_figure(plots.confusion_figure(labels, predicted, threshold, "favourites"), "plots/confusion.png")


def log_contributions(mlflow: Any, task: Task, model: Any, holdout: "DataFrame") -> None:
    """What makes a song popular (or a favourite) to this model: SHAP values on a sample of the holdout,
    summarised per feature (`contributions.json`) and charted."""
    explained = contributions(model, holdout)
    units = CONTRIBUTION_UNITS[task]
    summary = summarise(explained, task)
    mlflow.log_dict(
        {"units": units, "base": explained.base, "tracks": len(explained.values), "top": summary},
        CONTRIBUTIONS_FILE,
    )
    title = "what moves the " + ("popularity" if task == "regression" else "favourite score")
    mlflow.log_figure(plots.contributions_figure(summary, title, units), "plots/contributions.png")


def pip_requirements(family: str) -> list[str]:
    """What the logged Spark model needs to load and score: pyspark, and XGBoost when its trees are a stage."""
    import pyspark  # noqa: PLC0415

    requirements = [f"pyspark=={pyspark.__version__}"]
    if family == "xgboost":
        from importlib.metadata import version  # noqa: PLC0415

        requirements.append(f"xgboost-cpu=={version('xgboost-cpu')}")
    return requirements


def gold_tags(
    location: str, table: str | None, version: int, rows: int, max_updated: datetime | None
) -> dict[str, str]:
    return {
        registry.TAG_TABLE: location,
        registry.TAG_TABLE_ID: table or "",
        registry.TAG_VERSION: str(version),
        registry.TAG_ROWS: str(rows),
        registry.TAG_UPDATED: max_updated.isoformat() if max_updated else "",
    }


def gold_dataset(gold: dict[str, str]) -> Any:
    """The pinned gold version as MLflow's dataset input of every run and metric of the cycle. MLflow's
    SparkDataset profiles itself with an approximate count of its rows (a scan of the whole table through Python
    workers: 4 s at 100,000 tracks) each time it is logged, a dozen times a cycle; the cycle has counted the
    pinned version's rows already (`TAG_ROWS`), exactly, and that is its profile."""
    from mlflow.data.spark_dataset import SparkDataset, load_delta  # noqa: PLC0415

    rows = int(gold[registry.TAG_ROWS])

    class Counted(SparkDataset):
        @property
        def profile(self) -> Any:
            return {"approx_count": rows}

    loaded = load_delta(path=gold[registry.TAG_TABLE], version=gold[registry.TAG_VERSION], name=GOLD)
    return Counted(df=loaded.df, source=loaded.source, name=loaded.name, digest=loaded.digest)


def log_yardstick(
    experiment: str,
    role: str,
    tags: dict[str, str],
    source: Any,
    params: dict[str, Any],
    metrics: dict[str, float],
    predictions: tuple[Task, np.ndarray, np.ndarray],
) -> None:
    """A model we compare ours with, as its own run: what it is, its metrics on the cycle's holdout (ours,
    linked to the gold version it learnt from, and MLflow's standard evaluation of the same predictions)."""
    import mlflow  # noqa: PLC0415

    run_name = {"baseline": "notebook baseline", "reference": "reference model"}[role]
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags={**tags, registry.TAG_ROLE: role}):
        mlflow.log_input(source, context="training")
        mlflow.log_params(params)
        mlflow.log_metrics(metrics, dataset=source)
        evaluate_predictions(*predictions, 0.5)


def yardsticks(
    name: str,
    prepared: TaskData,
    settings: TrainingSettings,
    steps: Steps,
    experiment: str,
    source: Any,
    tags: dict[str, str],
) -> tuple[dict[str, float] | None, dict[str, float]]:
    """The notebook's baseline (when the data has audio features) and the reference model: fitted on the
    same training rows as ours, scored on the same holdout, each logged as its own run."""
    task, label = TASKS[name]
    k, common = settings.precision_at_k, {"seed": settings.seed, "holdout_fraction": settings.holdout_fraction}
    baseline = None
    if prepared.baseline_features:
        with steps.step(f"{name}: notebook baseline"):
            rows = prepared.train.where(complete_rows(prepared.train, prepared.baseline_features))
            model = baseline_pipeline(task, prepared.baseline_features, label, settings.seed).fit(rows)
            labels, predicted = scores(model, prepared.holdout, task, label)
            baseline = evaluate(task, labels, predicted, 0.5, k)
            params = {"model": "GBT (defaults)", "features": ",".join(prepared.baseline_features), **common}
            params["scaled"] = ",".join(NOTEBOOK_SCALED)
            log_yardstick(experiment, "baseline", tags, source, params, baseline, (task, labels, predicted))
    else:
        log.warning("%s: no audio features in the data, so the notebook's baseline (audio only) is skipped", name)
    with steps.step(f"{name}: reference model"):
        labels, predicted = reference_scores(
            task, prepared.train, prepared.holdout, prepared.features, label, settings.seed
        )
        reference = evaluate(task, labels, predicted, 0.5, k)  # 0.5: scikit-learn's own cut for predict
        params = {"model": REFERENCE_MODEL, "features": ",".join(prepared.features.numeric), **common}
        log_yardstick(experiment, "reference", tags, source, params, reference, (task, labels, predicted))
    return baseline, reference


def evaluate_champion(experiment: str, champion: ChampionScore, task: Task, tags: dict[str, str]) -> Any:
    """MLflow's evaluation of the champion's predictions on the candidate's holdout, as a run nested in the
    candidate's and linked to the champion's logged model: its EvaluationResult, or None without one."""
    import mlflow  # noqa: PLC0415

    if champion.labels is None or champion.scores is None:
        return None
    run_name = f"champion v{champion.version} on gold v{tags[registry.TAG_VERSION]}'s holdout"
    role = {registry.TAG_ROLE: "champion", "champion_version": str(champion.version)}
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, nested=True, tags={**tags, **role}):
        return evaluate_predictions(task, champion.labels, champion.scores, champion.threshold, champion.model_id)


def train_task(  # noqa: PLR0915 - the steps of one model, in order
    spark: "SparkSession",
    client: "MlflowClient",
    name: str,
    data: "DataFrame",
    settings: TrainingSettings,
    gold: dict[str, str],
    source: Any,
    steps: Steps,
    stop: threading.Event,
) -> ModelReport:
    """One task's cycle; `source` is the pinned gold version as MLflow's dataset (`gold_dataset`)."""
    import mlflow  # noqa: PLC0415
    import mlflow.spark  # noqa: PLC0415
    from mlflow.models import infer_signature  # noqa: PLC0415

    task, label = TASKS[name]
    report = ModelReport(task=name)
    prepared = prepare_task(data, name, settings)
    if isinstance(prepared, str):
        report.skipped = prepared
        log.warning("%s model skipped: %s", name, prepared)
        return report
    report.features, report.missing = tuple(prepared.features.columns), prepared.missing
    if prepared.missing:
        log.info("%s model: features left out: %s", name, "; ".join(f"{k} ({v})" for k, v in prepared.missing.items()))
    experiment = registry.experiment_id(settings, name)
    model_name = registry.model_name(name)
    k = settings.precision_at_k
    common_tags = {**gold, "task": name, "tuning": settings.tuning, registry.TAG_LABEL: settings.label_description}

    report.baseline, report.reference = yardsticks(name, prepared, settings, steps, experiment, source, common_tags)

    tuned = tune(task, prepared, label, settings, steps, stop)
    best, threshold, tuning = tuned.candidate, tuned.threshold, tuned.table
    if tuned.features != prepared.features:  # the identity encodings did not pay on validation
        prepared = replace(prepared, features=tuned.features)
        report.features = tuple(prepared.features.columns)
    report.best = best.label
    run = mlflow.start_run(
        experiment_id=experiment,
        run_name=f"candidate gold v{gold[registry.TAG_VERSION]}",
        tags={**common_tags, registry.TAG_ROLE: "candidate"},
    )
    report.run_id = run.info.run_id
    try:
        with steps.step(f"{name}: fit {best.label} on all training rows"):
            with candidate_fitter(task, prepared.features, label, settings.seed, prepared.train) as fit:
                model = fit(best)
            labels, predicted = scores(model, prepared.holdout, task, label)
            report.candidate = evaluate(task, labels, predicted, threshold, k)
        if stop.is_set():
            raise Stopped
        with steps.step(f"{name}: log to MLflow and register"):
            mlflow.log_input(source, context="training")
            mlflow.log_params(
                {
                    "family": best.family,
                    "candidate": best.label,  # the grid point as the tuning table names it (the report shows it)
                    **best.params,
                    "features": ",".join(prepared.features.numeric),
                    "genres_encoded": prepared.features.genres,
                    "target_encoded": ",".join(prepared.features.identity),
                    "seed": settings.seed,
                    "tuning": settings.tuning,
                    "holdout_fraction": settings.holdout_fraction,
                    "train_rows": prepared.train_rows,
                    "holdout_rows": prepared.holdout_rows,
                    "class_weights": task == "classification",
                    **(
                        {"threshold_objective": settings.threshold_objective, "min_precision": settings.min_precision}
                        if task == "classification"
                        else {}
                    ),
                }
            )
            if report.baseline:
                mlflow.log_metrics({f"baseline_{key}": value for key, value in report.baseline.items()})
            if report.reference:
                mlflow.log_metrics({f"reference_{key}": value for key, value in report.reference.items()})
            mlflow.log_dict(
                {
                    "used": prepared.features.columns,
                    "left_out": prepared.missing,
                    "baseline": list(prepared.baseline_features),
                },
                "feature_set.json",
            )
            mlflow.log_dict({"grid": tuning, "chosen": best.label}, "tuning.json")
            names, weights = slot_names(model), importances(model)
            mlflow.log_dict(dict(zip(names, weights, strict=True)), "feature_importance.json")
            log_figures(mlflow, task, names, weights, labels, predicted, threshold)
            log_contributions(mlflow, task, model, prepared.holdout)
            example = prepared.holdout.select(*prepared.features.columns).limit(5)
            output = model.transform(example).select(score_column(task).alias("score")).toPandas()
            inputs = example.toPandas()
            with registry.saving_through_shared_storage():
                info = mlflow.spark.log_model(
                    model,
                    "model",
                    signature=infer_signature(inputs, output),
                    input_example=inputs,
                    pip_requirements=pip_requirements(best.family),
                )
            # Linked to the logged model and the gold version it learnt from (MLflow 3), then MLflow's own
            # evaluation of the same holdout predictions.
            model_id = registry.logged_model_id(info, model_name, run.info.run_id)
            mlflow.log_metrics(report.candidate, model_id=model_id, dataset=source)
            evaluated = evaluate_predictions(task, labels, predicted, threshold, model_id)
            report.version = registry.register_checked(info.model_uri, model_name)
        with steps.step(f"{name}: score the champion on the same holdout"):
            champion = champion_metrics(client, task, model_name, label, prepared.holdout, k)
            champion_version, report.champion, problem = champion.version, champion.metrics, champion.problem
            champion_evaluated = evaluate_champion(experiment, champion, task, common_tags)
        if stop.is_set():
            raise Stopped
        if problem:  # the candidate was read back before it was registered: it replaces what cannot serve
            report.promoted, report.reason = True, f"{problem}: replaced by v{report.version}, which loads"
            log.warning("%s: %s", model_name, report.reason)
            mlflow.set_tag("champion.problem", problem)
        else:
            gate = GATE_METRIC[task]  # MLflow's evaluations of both on the same holdout, through its validation
            report.promoted, report.reason = decide_promotion(
                task,
                evaluated.metrics[gate],
                champion_evaluated.metrics[gate] if champion_evaluated else None,
                settings.promotion_margin,
                champion_version,
            )
        if report.champion:
            mlflow.log_metrics({f"champion_{key}": value for key, value in report.champion.items()})
        alias = registry.CHAMPION if report.promoted else registry.CHALLENGER
        registry.set_alias(client, model_name, alias, report.version)
        mlflow.set_tags(
            {
                registry.TAG_DECISION: alias,
                registry.TAG_REASON: report.reason,
                "champion_before": champion_version or "none",
            }
        )
        log.info("%s v%s -> %s: %s", model_name, report.version, alias, report.reason)
    except Stopped:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("KILLED" if stop.is_set() else "FAILED")  # a stop cancels Spark jobs: they fail
        raise
    mlflow.end_run("FINISHED")
    return report


# --- recommendations ---


def refresh_recommendations(
    spark: "SparkSession", client: "MlflowClient", settings: TrainingSettings, gold: "DataFrame", version: int
) -> int:
    """Rank the non-favourites with the favourite champion into the recommendations table; rows written."""
    ranked = champion_recommendations(client, gold, version, settings.recommendations, settings.max_per_artist)
    if ranked is None:
        log.info("no favourite champion yet: the recommendations table is not written")
        return 0
    _, rows = ranked
    write_recommendations(spark, rows, settings.table_uri(RECOMMENDATIONS))
    return len(rows)


# --- the cycle ---


@dataclass(frozen=True)
class CheckedMark:
    """A gold version a cycle counted too few new rows in (against the version trained on): the same count
    again until gold moves, so the next cycle can skip without Spark."""

    version: int
    table_id: str | None
    trained_version: int
    new_rows: int


def checked_file(settings: TrainingSettings) -> Path:
    return settings.state_dir / CHECKED_FILE


def remember_checked(settings: TrainingSettings, mark: CheckedMark) -> None:
    """Written atomically (a temp file, then a rename); a lost mark only costs the next cycle a Spark session."""
    path = checked_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(asdict(mark)))
    os.replace(temp, path)


def last_checked(settings: TrainingSettings) -> CheckedMark | None:
    try:
        return CheckedMark(**json.loads(checked_file(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def skip_without_spark(settings: TrainingSettings) -> CycleReport | None:
    """The skip that needs no Spark session: no gold table yet in a local folder, gold still at the version (and the
    table) the last run trained on, or at one the last cycle counted too few new rows in (its Delta log, read
    directly or for a table on object storage with delta-rs, against MLflow). None when a cycle needs Spark to
    decide (or to run).

    A skip cycle then costs a second or two and no JVM, instead of a Spark session's start-up: the
    trainer waiting for new data stays small."""
    from mlflow import MlflowClient  # noqa: PLC0415

    location = settings.table_uri(GOLD)
    version = delta_version(location, remote=True)
    if version is None:  # no table, or a store delta-rs cannot read (run_cycle tells which)
        return CycleReport(skipped=missing_gold(location)) if no_local_table(location) else None
    last = last_trained(MlflowClient(), settings)
    if last is None:
        return None
    if last.version != version:
        return checked_skip(settings, last, version, location)
    reason = skip_reason(last, version, delta_table_id(location, remote=True))
    return CycleReport(gold_version=version, skipped=reason) if reason else None


def checked_skip(
    settings: TrainingSettings, last: registry.TrainedMark, version: int, location: str
) -> CycleReport | None:
    """The skip when the last cycle already counted too few new rows in this very gold version (same table, same
    version trained on, and still fewer than TRAINING_MIN_NEW_ROWS); None when a cycle must count again."""
    checked = last_checked(settings)
    if checked is None or (checked.version, checked.trained_version) != (version, last.version):
        return None
    if checked.new_rows >= settings.min_new_rows or checked.table_id != delta_table_id(location, remote=True):
        return None
    reason = (
        f"gold is still at version {version}, where the last cycle found {checked.new_rows} new or changed rows "
        f"since gold version {last.version} (a cycle needs TRAINING_MIN_NEW_ROWS={settings.min_new_rows})"
    )
    return CycleReport(gold_version=version, skipped=reason)


def last_trained(client: "MlflowClient", settings: TrainingSettings) -> registry.TrainedMark | None:
    return registry.last_trained(client, [registry.experiment_id(settings, task) for task in TASKS])


def skip_reason(last: registry.TrainedMark | None, version: int, table: str | None) -> str | None:
    """Why a cycle has nothing to learn: the last run trained on this very version of this very table (a gold
    table rebuilt since starts again at version 0 with a new id: its version 3 is not the old one's)."""
    if last is not None and last.version == version and last.same_table(table):
        return f"gold is still at version {version}, which the last run trained on"
    return None


def run_cycle(spark: "SparkSession", settings: TrainingSettings, stop: threading.Event) -> CycleReport:
    """One cycle (see the module docstring). Raises Stopped when a stop was requested mid-way."""
    from mlflow import MlflowClient  # noqa: PLC0415

    started = time.monotonic()
    report = CycleReport()
    location = settings.table_uri(GOLD)
    version = table_version(spark, location)
    if version is None:
        report.skipped = missing_gold(location)
        return report
    report.gold_version = version
    gold_id = table_id(spark, location)
    client = MlflowClient()
    report.acceptance = refresh_acceptance(spark, client, settings)  # a skipped cycle too: plays keep coming
    last = last_trained(client, settings)
    report.skipped = skip_reason(last, version, gold_id)
    if report.skipped:
        return report
    if last is not None and not last.same_table(gold_id):
        log.info(
            "gold is a new table since the last run (Delta table id %s, was %s): every row is new",
            gold_id,
            last.table_id,
        )
        last = None
    gold = read_gold(spark, settings, location, version).cache()
    try:
        report.rows = int(gold.count())
        if report.rows < settings.min_rows:
            report.skipped = (
                f"the gold table has {report.rows} tracks at version {version} "
                f"(a model needs TRAINING_MIN_ROWS={settings.min_rows}): let the producer and the streaming job run"
            )
            return report
        report.new_rows = changed_rows(gold, last.max_updated_at if last else None)
        if last is not None and report.new_rows < settings.min_new_rows:
            report.skipped = (
                f"{report.new_rows} new or changed rows since gold version {last.version} "
                f"(a cycle needs TRAINING_MIN_NEW_ROWS={settings.min_new_rows})"
            )
            remember_checked(settings, CheckedMark(version, gold_id, last.version, report.new_rows))
            return report
        max_updated = gold.agg(F.max("updated_at")).first()[0]  # type: ignore[index]
        tags = gold_tags(location, gold_id, version, report.rows, max_updated)
        data = model_input(gold).cache()
        with Steps.show() as steps, warnings.catch_warnings():
            # MLflow's hint about integer columns in a dataset's schema concerns pandas inputs, not Delta tables.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
            steps.begin(total=len(TASKS) * (len(tuning_grid(settings.tuning)) + 7) + 1)
            source = gold_dataset(tags)
            for name in TASKS:
                if stop.is_set():  # between two tasks: the next one is not started
                    raise Stopped
                report.models.append(train_task(spark, client, name, data, settings, tags, source, steps, stop))
            if stop.is_set():
                raise Stopped
            with steps.step("recommendations"):
                report.recommendations = refresh_recommendations(spark, client, settings, gold, version)
        data.unpersist()
    finally:
        gold.unpersist()
        report.seconds = time.monotonic() - started
    return report


def cancel_on_stop(spark: "SparkSession", stop: threading.Event) -> threading.Thread:
    """A watcher that cancels the running Spark jobs as soon as a stop is requested (a fit can take minutes)."""

    def watch() -> None:
        stop.wait()
        log.info("cancelling the running Spark jobs")
        spark.sparkContext.cancelAllJobs()

    watcher = threading.Thread(target=watch, name="cancel-on-stop", daemon=True)
    watcher.start()
    return watcher


def describe_metrics(metrics: dict[str, float] | None, task: Task) -> str:
    if not metrics:
        return "-"
    keys = ("rmse", "mae", "r2") if task == "regression" else ("auc_roc", "auc_pr", "f1", "precision_at_k")
    return " ".join(f"{key} {metrics[key]:.3f}" for key in keys if key in metrics)
