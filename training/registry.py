"""MLflow: the experiments and registered models of the two tasks, the aliases, and what was last trained.

Aliases, not stages (deprecated): `champion` is the model version in use, `challenger` the latest
candidate that did not beat it. Each candidate run records the gold table version and row count it
saw; the trainer reads them back to decide whether a new cycle has anything new to learn from.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline_runtime.mlflow_setup import ensure_experiment
from pipeline_runtime.settings import MlflowSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# task -> (experiment, registered model)
NAMES = {
    "popularity": ("spotify-popularity", "spotify-popularity"),
    "favourite": ("spotify-favourite", "spotify-favourite"),
}
TAG_ROLE = "role"
TAG_VERSION = "gold.version"
TAG_ROWS = "gold.rows"
TAG_TABLE = "gold.table"
TAG_UPDATED = "gold.max_updated_at"
TAG_DECISION = "promotion.decision"
TAG_REASON = "promotion.reason"


@dataclass(frozen=True)
class TrainedMark:
    """The gold table as the last finished candidate run saw it."""

    version: int
    max_updated_at: datetime | None


def experiment_id(settings: MlflowSettings, task: str) -> str:
    return ensure_experiment(settings, NAMES[task][0])


def model_name(task: str) -> str:
    return NAMES[task][1]


def last_trained(client: "MlflowClient", experiment_ids: list[str]) -> TrainedMark | None:
    """The newest finished candidate run of any task, or None before the first one."""
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.{TAG_ROLE} = 'candidate' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    tags = runs[0].data.tags
    updated = tags.get(TAG_UPDATED)
    return TrainedMark(
        version=int(tags[TAG_VERSION]), max_updated_at=datetime.fromisoformat(updated) if updated else None
    )


def version_by_alias(client: "MlflowClient", name: str, alias: str) -> "ModelVersion | None":
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such model or alias yet
        return None


def set_alias(client: "MlflowClient", name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)
    log.info("%s v%s is now %s", name, version, alias)
