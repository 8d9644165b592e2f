"""The HTML report: one self-contained page (charts embedded as PNG) that opens from disk.

`python -m training report` (and the demo) writes DATA_DIR/report/index.html from the gold table, the
recommendations table and the MLflow registry: the data at a glance, both models against the
notebook's method, feature importance, ROC/PR curves and the recommendation list. The charts of the
models are the champion runs' own logged plots; the data charts are drawn here with matplotlib.
"""

import base64
import html
import io
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from pipeline_runtime.contract import GOLD, MEASURED_AUDIO_FEATURES
from pipeline_runtime.settings import ensure_writable_dir
from training.acceptance import acceptance_rows
from training.settings import TrainingSettings
from training.summary import ModelSummary, model_summaries, recommendation_rows

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

AUDIO = MEASURED_AUDIO_FEATURES
NUMERIC = ("popularity", "artist_popularity", "release_year", "duration_ms", *AUDIO)
SAMPLE_ROWS = 50_000
GREEN, GREY, BLUE = "#1db954", "#535353", "#2d46b9"
MODEL_PLOTS = {
    "popularity": (
        ("plots/contributions.png", "what moves the popularity (mean |SHAP value| per feature)"),
        ("plots/feature_importance.png", "feature importance"),
        ("plots/predicted_vs_actual.png", "predicted vs actual, and residuals"),
    ),
    "favourite": (
        ("plots/contributions.png", "what moves the favourite score (mean |SHAP value| per feature)"),
        ("plots/feature_importance.png", "feature importance"),
        ("plots/roc_pr.png", "ROC and PR curves"),
        ("plots/confusion.png", "confusion matrix at the chosen threshold"),
    ),
}


def png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return base64.b64encode(buffer.getvalue()).decode()


def image(data: str, alt: str) -> str:
    return (
        f'<figure><img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>'
        f"{html.escape(alt)}</figcaption></figure>"
    )


# --- data charts (pure: pandas in, figure out) ---


def class_balance_figure(tracks: "pd.DataFrame") -> Figure:
    counts = tracks["is_favourite"].fillna(False).astype(bool).value_counts()
    figure = Figure(figsize=(4.5, 3.2), layout="constrained")
    axes = figure.subplots()
    values = [int(counts.get(False, 0)), int(counts.get(True, 0))]
    axes.bar(["other", "favourite"], values, color=[GREY, GREEN])
    for x, value in enumerate(values):
        axes.text(x, value, f"{value:,}", ha="center", va="bottom")
    axes.set_title("class balance")
    return figure


def distributions_figure(tracks: "pd.DataFrame") -> Figure:
    columns = [c for c in AUDIO if tracks[c].notna().any()]
    rows = max(1, (len(columns) + 2) // 3)
    figure = Figure(figsize=(11, 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, 3)).ravel()
    favourite = tracks["is_favourite"].fillna(False).astype(bool)
    for ax, column in zip(axes, columns, strict=False):
        values = tracks[column]
        bins = np.linspace(float(values.min()), float(values.max()), 30) if values.notna().any() else 10
        ax.hist(values[~favourite].dropna(), bins=bins, color=GREY, alpha=0.6, density=True, label="other")
        ax.hist(values[favourite].dropna(), bins=bins, color=GREEN, alpha=0.6, density=True, label="favourite")
        ax.set_title(column)
    for ax in axes[len(columns) :]:
        ax.set_visible(False)
    if columns:
        axes[0].legend()
    figure.suptitle("audio feature distributions: favourites vs the rest")
    return figure


def correlation_figure(tracks: "pd.DataFrame") -> Figure | None:
    """The numeric features' correlations; None when fewer than two of them vary (nothing to correlate)."""
    columns = [c for c in NUMERIC if tracks[c].notna().sum() > 1 and tracks[c].nunique() > 1]
    if len(columns) < 2:
        return None
    matrix = tracks[columns].astype(float).corr().to_numpy()
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.subplots()
    shown = axes.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    axes.set_xticks(range(len(columns)), columns, rotation=60, ha="right")
    axes.set_yticks(range(len(columns)), columns)
    for (row, column), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            axes.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=7)
    figure.colorbar(shown, ax=axes, shrink=0.8)
    axes.set_title("correlations")
    return figure


def popularity_by_genre_figure(tracks: "pd.DataFrame", top: int = 12) -> Figure | None:
    known = tracks.dropna(subset=["popularity"])
    if known.empty:
        return None
    genre = known["genres"].map(lambda g: g[0] if g is not None and len(g) else "unknown")
    order = genre.value_counts().index[:top]
    figure = Figure(figsize=(11, 4), layout="constrained")
    axes = figure.subplots()
    axes.boxplot(
        [known["popularity"][genre == g] for g in order],
        tick_labels=list(order),
        patch_artist=True,
        boxprops={"facecolor": GREEN, "alpha": 0.5},
    )
    axes.set_ylabel("popularity")
    axes.set_title(f"popularity by primary genre (the {len(order)} most common)")
    axes.tick_params(axis="x", rotation=30)
    return figure


def metrics_figure(summary: ModelSummary) -> Figure:
    names = [m for m, (baseline, _) in summary.metrics.items() if baseline is not None]
    figure = Figure(figsize=(6, 3.2), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(names))
    axes.bar(x - 0.27, [summary.metrics[m][0] or 0 for m in names], 0.27, color=GREY, label="notebook baseline")
    axes.bar(x, [summary.reference.get(m, 0) for m in names], 0.27, color=BLUE, label="reference (scikit-learn)")
    axes.bar(x + 0.27, [summary.metrics[m][1] for m in names], 0.27, color=GREEN, label=f"ours (v{summary.version})")
    axes.set_xticks(x, names)
    axes.legend()
    axes.set_title(f"{summary.task}: the same holdout")
    return figure


# --- the page ---

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 1.5rem; color: #191414; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 3px solid #1db954; padding-bottom: 0.2rem; margin-top: 2.2rem; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { background: #f4f4f4; border-radius: 8px; padding: 0.8rem 1.2rem; min-width: 9rem; }
.card b { display: block; font-size: 1.6rem; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; } img.chart { max-width: 100%; }
figcaption { color: #535353; font-size: 0.85rem; }
table { border-collapse: collapse; margin: 0.5rem 0; } td, th { padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #535353; }
"""
RENDER_CHECK = """
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("img.chart")];
  const drawn = charts.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.charts = drawn + "/" + charts.length;
});
"""


def cards(items: list[tuple[str, str]]) -> str:
    inner = "".join(f'<div class="card"><b>{html.escape(v)}</b>{html.escape(k)}</div>' for k, v in items)
    return f'<div class="cards">{inner}</div>'


def metrics_table(summary: ModelSummary) -> str:
    def cell(value: float | None) -> str:
        return f"<td class='num'>{'-' if value is None else f'{value:.3f}'}</td>"

    rows = "".join(
        f"<tr><td>{html.escape(m)}</td>{cell(b)}{cell(summary.reference.get(m))}"
        f"<td class='num'><b>{o:.3f}</b></td></tr>"
        for m, (b, o) in summary.metrics.items()
    )
    head = "<tr><th>metric</th><th>notebook baseline</th><th>reference (scikit-learn)</th><th>ours</th></tr>"
    return f"<table>{head}{rows}</table>"


def model_section(summary: ModelSummary, artifacts: dict[str, str]) -> str:
    title = {"popularity": "Popularity regression", "favourite": "Favourite classifier"}[summary.task]
    if summary.version is None:
        return f"<h3>{title}</h3><p class='muted'>{html.escape(summary.note)}</p>"
    params = summary.params
    chosen = params.get("candidate") or params.get("family", "?")  # runs before `candidate` was logged: the family
    decision = summary.tags.get("promotion.reason", "")
    parts = [
        f"<h3>{title}: champion v{html.escape(summary.version)}</h3>",
        f"<p>{html.escape(chosen)}; trained on gold version {html.escape(summary.tags.get('gold.version', '?'))} "
        f"({html.escape(params.get('train_rows', '?'))} tracks, holdout {html.escape(params.get('holdout_rows', '?'))})"
        f"; promoted because: {html.escape(decision)}</p>",
        metrics_table(summary),
        image(png(metrics_figure(summary)), f"{summary.task}: ours against the notebook's method"),
        contributions_table(summary),
    ]
    parts += [image(data, caption) for caption, data in artifacts.items()]
    return "".join(parts)


def contributions_table(summary: ModelSummary) -> str:
    """What moves the champion's score most, feature by feature (its SHAP values on held-out tracks)."""
    if not summary.contributions:
        return ""
    question = "What makes a song popular" if summary.task == "popularity" else "What makes a song a favourite"
    body = "".join(
        f"<tr><td>{html.escape(row['meaning'])}</td><td class='num'>{row['mean_abs_contribution']:.3f}</td>"
        f"<td>{html.escape(row['direction'])}</td></tr>"
        for row in summary.contributions
    )
    return (
        f"<h4>{question}, to this model</h4><p class='muted'>Each feature's average share of the score "
        f"(mean |SHAP value|, in {html.escape(summary.contribution_units)}) on held-out tracks, and how a higher "
        f"value moves it.</p><table><tr><th>feature</th><th>mean |contribution|</th><th>direction</th></tr>"
        f"{body}</table>"
    )


def recommendations_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='muted'>No recommendations yet: the favourite model has no champion.</p>"
    body = "".join(
        f"<tr><td class='num'>{r['rank']}</td><td>{html.escape(r['name'] or r['track_id'])}</td>"
        f"<td>{html.escape(', '.join(r['artist_names']))}</td><td>{html.escape(', '.join(r['genres']))}</td>"
        f"<td class='num'>{r['score']:.3f}</td><td>{html.escape(r['because'])}</td></tr>"
        for r in rows
    )
    return (
        "<table><tr><th>#</th><th>track</th><th>artists</th><th>genres</th><th>score</th><th>because</th></tr>"
        f"{body}</table>"
    )


def acceptance_table(rows: Sequence[dict[str, Any]]) -> str:
    """How often the published lists landed (training.acceptance), newest first."""
    if not rows:
        return (
            "<p class='muted'>Nothing published yet: the producer puts the recommendations into a playlist of yours "
            "with a user login (PRODUCER_PUBLISH_PLAYLIST), then counts which of them you play or save.</p>"
        )

    def row(r: dict[str, Any]) -> str:
        model = html.escape(f"{r['model_name']} v{r['model_version']}")
        window = "final" if r["complete"] else f"open until {r['window_ends_at']:%Y-%m-%d %H:%M}"
        counts = "".join(f"<td class='num'>{r[name]}</td>" for name in ("tracks", "played", "saved", "accepted"))
        return (
            f"<tr><td>{r['published_at']:%Y-%m-%d %H:%M}</td><td>{model}</td>{counts}"
            f"<td class='num'>{r['rate']:.0%}</td><td>{window}</td></tr>"
        )

    body = "".join(row(r) for r in rows)
    window_days = (rows[0]["window_ends_at"] - rows[0]["published_at"]) / timedelta(days=1)
    return (
        f"<p class='muted'>Each list put into your playlist: its tracks you played, saved or added to a favourite "
        f"playlist within {window_days:g} days (TRAINING_ACCEPTANCE_WINDOW_DAYS).</p>"
        "<table><tr><th>published (UTC)</th><th>model</th><th>tracks</th><th>played</th><th>saved</th>"
        f"<th>accepted</th><th>rate</th><th>window</th></tr>{body}</table>"
    )


def champion_plots(summary: ModelSummary) -> dict[str, str]:
    """caption -> base64 PNG of the plots the champion's run logged."""
    import mlflow  # noqa: PLC0415

    plots: dict[str, str] = {}
    if summary.run_id is None:
        return plots
    for path, caption in MODEL_PLOTS[summary.task]:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=summary.run_id, artifact_path=path)
        except Exception as exc:  # noqa: BLE001 - a missing plot leaves a gap, not a failed report
            log.warning("plot %s of run %s is not available: %s", path, summary.run_id, exc)
            continue
        plots[caption] = base64.b64encode(Path(local).read_bytes()).decode()
    return plots


def read_tracks(spark: "SparkSession", settings: TrainingSettings, location: str, version: int) -> "pd.DataFrame":
    """A sample of at most SAMPLE_ROWS gold rows at `version`, one per track, labelled as the trainer labels them
    (TRAINING_FAVOURITE_LABEL), as pandas."""
    from training.data import read_gold  # noqa: PLC0415

    gold = read_gold(spark, settings, location, version)
    total = gold.count()
    if total > SAMPLE_ROWS:
        gold = gold.sample(fraction=SAMPLE_ROWS / total, seed=1)
    columns = ["track_id", "is_favourite", "genres", "primary_artist_id", *NUMERIC]
    return gold.select(*columns).toPandas()


def render(
    tracks: "pd.DataFrame",
    version: int,
    summaries: list[ModelSummary],
    artifacts: dict[str, dict[str, str]],
    recommendations: list[dict[str, Any]],
    generated: datetime,
    label: str,
    acceptance: Sequence[dict[str, Any]] = (),
) -> str:
    """The whole page (pure: data in, HTML out); `label` says what makes a track a favourite."""
    favourites = int(tracks["is_favourite"].fillna(False).astype(bool).sum())
    at_a_glance = cards(
        [
            ("tracks", f"{len(tracks):,}"),
            ("artists", f"{tracks['primary_artist_id'].nunique():,}"),
            ("favourites", f"{favourites:,} ({favourites / max(1, len(tracks)):.0%})"),
            ("with popularity", f"{tracks['popularity'].notna().mean():.0%}"),
            ("with audio features", f"{tracks['energy'].notna().mean():.0%}"),
            ("gold version", str(version)),
        ]
    )
    charts = [image(png(class_balance_figure(tracks)), "favourites and the rest")]
    if tracks["energy"].notna().any():
        charts.append(image(png(distributions_figure(tracks)), "audio feature distributions"))
    correlations = correlation_figure(tracks)
    if correlations is not None:
        charts.append(image(png(correlations), "correlations between the numeric features"))
    by_genre = popularity_by_genre_figure(tracks)
    if by_genre is not None:
        charts.append(image(png(by_genre), "popularity by primary genre"))
    models = "".join(model_section(s, artifacts.get(s.task, {})) for s in summaries)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>What makes songs popular - pipeline report</title>
<style>{STYLE}</style></head>
<body data-charts="pending">
<h1>What makes songs popular, and what you might like</h1>
<p class="muted">Generated {generated:%Y-%m-%d %H:%M} UTC from gold version {version} and the MLflow registry.</p>
<h2>The data at a glance</h2>
<p class="muted">Favourites: {html.escape(label)} (TRAINING_FAVOURITE_LABEL).</p>
{at_a_glance}
<div>{"".join(charts)}</div>
<h2>Models against the notebook's method</h2>
<p class="muted">The notebook's method (12 audio features, default GBT) and ours, on the same held-out tracks.</p>
{models}
<h2>Recommendations</h2>
<p class="muted">Tracks that are not favourites yet, ranked by the favourite champion.</p>
{recommendations_table(recommendations)}
<h2>How often the recommendations land</h2>
{acceptance_table(acceptance)}
<script>{RENDER_CHECK}</script>
</body></html>
"""


def write_report(spark: "SparkSession", settings: TrainingSettings, top: int = 20) -> Path:
    """Write DATA_DIR/report/index.html; returns its path."""
    from pipeline_runtime.delta_log import table_version  # noqa: PLC0415
    from pipeline_runtime.errors import SetupError  # noqa: PLC0415

    location = settings.table_uri(GOLD)
    version = table_version(spark, location)
    if version is None:
        raise SetupError(f"the gold table {location} does not exist: run the streaming job first")
    tracks = read_tracks(spark, settings, location, version)
    summaries = model_summaries(settings)
    artifacts = {s.task: champion_plots(s) for s in summaries}
    page = render(
        tracks,
        version,
        summaries,
        artifacts,
        recommendation_rows(spark, settings, top),
        datetime.now(UTC),
        settings.label_description,
        acceptance_rows(spark, settings),
    )
    folder = ensure_writable_dir(settings.data_dir / "report", "report folder")
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    log.info("report written to %s (%d kB)", path, len(page) // 1024)
    return path
