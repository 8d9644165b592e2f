"""Figures logged with each model (matplotlib's object API: no global pyplot state, no display needed)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn import metrics as skm

TOP_FEATURES = 20


def importance_figure(names: Sequence[str], values: Sequence[float], title: str) -> Figure:
    order = np.argsort(values)[::-1][:TOP_FEATURES][::-1]
    figure = Figure(figsize=(7, 0.3 * len(order) + 1.2), layout="constrained")
    axes = figure.subplots()
    axes.barh([names[i] for i in order], [values[i] for i in order], color="#1db954")
    axes.set_title(title)
    axes.set_xlabel("importance")
    return figure


DIRECTION_COLOURS = {"higher raises the score": "#1db954", "higher lowers the score": "#e05d44"}


def contributions_figure(summary: list[dict[str, Any]], title: str, units: str) -> Figure:
    """Mean |SHAP value| of the top features (`training.explain.summarise`), coloured by how each moves
    the score: green when a higher value raises it, red when it lowers it, grey when mixed."""
    rows = summary[::-1]
    figure = Figure(figsize=(8, 0.35 * len(rows) + 1.4), layout="constrained")
    axes = figure.subplots()
    colours = [DIRECTION_COLOURS.get(row["direction"], "#999999") for row in rows]
    axes.barh([row["meaning"] for row in rows], [row["mean_abs_contribution"] for row in rows], color=colours)
    axes.set_title(title)
    axes.set_xlabel(f"mean |contribution| ({units}); green: higher raises it, red: higher lowers it")
    return figure


def regression_figure(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    scatter, residuals = figure.subplots(1, 2)
    scatter.scatter(actual, predicted, s=6, alpha=0.4, color="#1db954")
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    scatter.plot([low, high], [low, high], color="#333333", linewidth=1)
    scatter.set(xlabel="actual popularity", ylabel="predicted popularity", title=f"{title}: predicted vs actual")
    residuals.scatter(predicted, actual - predicted, s=6, alpha=0.4, color="#535353")
    residuals.axhline(0, color="#333333", linewidth=1)
    residuals.set(xlabel="predicted popularity", ylabel="actual - predicted", title="residuals")
    return figure


def roc_pr_figure(labels: np.ndarray, scores: np.ndarray, title: str) -> Figure:
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    roc, pr = figure.subplots(1, 2)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    roc.plot(fpr, tpr, color="#1db954", label=f"AUC {skm.roc_auc_score(labels, scores):.3f}")
    roc.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    roc.legend(loc="lower right")
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    pr.plot(recall, precision, color="#1db954", label=f"AP {skm.average_precision_score(labels, scores):.3f}")
    pr.axhline(float(labels.mean()), color="#999999", linestyle="--", linewidth=1, label="base rate")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    pr.legend(loc="upper right")
    return figure


def confusion_figure(labels: np.ndarray, scores: np.ndarray, threshold: float, title: str) -> Figure:
    matrix = skm.confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1])
    figure = Figure(figsize=(4.5, 4), layout="constrained")
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Greens")
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour)
    axes.set_xticks([0, 1], ["other", "favourite"])
    axes.set_yticks([0, 1], ["other", "favourite"])
    axes.set(xlabel="predicted", ylabel="actual", title=f"{title} (threshold {threshold:.2f})")
    return figure
