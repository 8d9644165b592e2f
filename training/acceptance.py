"""How often the recommendations land: of every list the producer put into the user's playlist (the `publications`
table), the tracks the user went on to play, save or add to a favourite playlist within
TRAINING_ACCEPTANCE_WINDOW_DAYS of its publication.

The trainer recomputes it at the start of every cycle that opens gold with Spark (a play or a save changes gold too,
so a cycle skipped for too few new rows still counts it) from silver (`silver_plays`; `silver_playlist_history` for
saves and favourite-playlist adds), rewrites the `acceptance` table (one row per published list) and logs each
published model version's rate so far as the metric `acceptance_rate` on its MLflow model (the run that trained it,
linked to its LoggedModel), next to the offline metrics. This is the figure that says whether the models are any
good for this listener.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.contract import ACCEPTANCE, PUBLICATIONS, SAVED_TRACKS, SILVER_HISTORY, SILVER_PLAYS
from pipeline_runtime.delta_log import table_exists
from training import registry
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SCHEMA = (
    "published_at TIMESTAMP, window_ends_at TIMESTAMP, complete BOOLEAN, model_name STRING, model_version STRING, "
    "tracks INT, played INT, saved INT, accepted INT, rate DOUBLE"
)
METRIC = "acceptance_rate"  # on each published model version's run, linked to its LoggedModel
COUNT_METRIC = "acceptance_tracks"  # the published tracks the rate is of


@dataclass(frozen=True)
class Publication:
    published_at: datetime
    model_name: str
    model_version: str
    track_ids: tuple[str, ...]


@dataclass(frozen=True)
class Landing:
    """The user played the track, or saved it / added it to a favourite playlist (`saved`), at `at`."""

    track_id: str
    at: datetime
    saved: bool


@dataclass(frozen=True)
class Acceptance:
    """One published list: how many of its tracks landed within the window."""

    published_at: datetime
    window_ends_at: datetime
    complete: bool  # the window is over: the figures are final
    model_name: str
    model_version: str
    tracks: int
    played: int
    saved: int
    accepted: int  # played or saved (or both)

    @property
    def rate(self) -> float:
        return self.accepted / self.tracks if self.tracks else 0.0

    @property
    def window_days(self) -> float:
        return (self.window_ends_at - self.published_at) / timedelta(days=1)

    @property
    def model(self) -> str:
        return f"{self.model_name} v{self.model_version}" if self.model_name else "no champion"


def acceptance(
    publications: Iterable[Publication], landings: Iterable[Landing], window: timedelta, now: datetime
) -> list[Acceptance]:
    """Per published list (oldest first): its distinct tracks played, saved, and either, from its publication to
    the end of the window (or now)."""
    by_track: dict[str, list[Landing]] = defaultdict(list)
    for landing in landings:
        by_track[landing.track_id].append(landing)
    rows = []
    for publication in sorted(publications, key=lambda p: p.published_at):
        start, end = publication.published_at, publication.published_at + window
        tracks = set(publication.track_ids)

        def landed(track: str, saved: bool, start: datetime = start, end: datetime = end) -> bool:
            return any(start <= x.at < end and x.saved == saved for x in by_track.get(track, ()))

        played = {t for t in tracks if landed(t, saved=False)}
        saved = {t for t in tracks if landed(t, saved=True)}
        rows.append(
            Acceptance(
                start,
                end,
                now >= end,
                publication.model_name,
                publication.model_version,
                len(tracks),
                len(played),
                len(saved),
                len(played | saved),
            )
        )
    return rows


def rates_per_model(rows: Iterable[Acceptance]) -> dict[tuple[str, str], tuple[float, int]]:
    """Per model version (name, version): accepted over published tracks across its lists, and that track count."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        total = totals[(row.model_name, row.model_version)]
        total[0] += row.accepted
        total[1] += row.tracks
    return {key: (accepted / tracks if tracks else 0.0, tracks) for key, (accepted, tracks) in totals.items()}


def describe(rows: list[Acceptance]) -> str | None:
    """One line on the latest published list and each model's rate so far; None before anything was published."""
    if not rows:
        return None
    latest = rows[-1]
    state = "final" if latest.complete else f"window open until {latest.window_ends_at:%Y-%m-%d %H:%M} UTC"
    rates = rates_per_model(rows)
    models = ", ".join(f"{name} v{version} {rate:.0%} of {tracks}" for (name, version), (rate, tracks) in rates.items())
    return (
        f"recommendations landed: {latest.accepted} of the {latest.tracks} tracks of the latest list ({latest.model}, "
        f"{latest.played} played, {latest.saved} saved within {latest.window_days:g} days; {state}); "
        f"per model: {models}"
    )


# --- I/O ---


def utc(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def read_publications(spark: "SparkSession", settings: TrainingSettings) -> list[Publication]:
    """Every published list; none when the producer never published one."""
    location = settings.table_uri(PUBLICATIONS)
    if not table_exists(spark, location):
        return []
    columns: list[Column | str] = [
        F.unix_micros("published_at").alias("at"),
        "model_name",
        "model_version",
        "track_ids",
    ]
    rows = spark.read.format("delta").load(location).select(*columns).collect()
    return [
        Publication(utc(row["at"]), row["model_name"] or "", row["model_version"] or "", tuple(row["track_ids"] or ()))
        for row in rows
    ]


def read_landings(
    spark: "SparkSession", settings: TrainingSettings, track_ids: set[str], since: datetime
) -> list[Landing]:
    """The plays, saves and favourite-playlist adds of these tracks since `since`, from silver."""
    ids, after = sorted(track_ids), F.lit(since)  # an aware datetime: pyspark converts it to UTC, whatever TZ is
    frames: list[DataFrame] = []
    plays, history = settings.table_uri(SILVER_PLAYS), settings.table_uri(SILVER_HISTORY)
    if table_exists(spark, plays):
        played = (
            spark.read.format("delta").load(plays).where(F.col("track_id").isin(ids) & (F.col("played_at") >= after))
        )
        frames.append(played.select("track_id", F.unix_micros("played_at").alias("at"), F.lit(False).alias("saved")))
    if table_exists(spark, history):
        kept = F.col("is_favourite_playlist") | (F.col("playlist_id") == SAVED_TRACKS)
        added = (
            spark.read.format("delta")
            .load(history)
            .where((F.col("action") == "added") & kept & F.col("track_id").isin(ids) & (F.col("observed_at") >= after))
        )
        frames.append(added.select("track_id", F.unix_micros("observed_at").alias("at"), F.lit(True).alias("saved")))
    if not frames:
        return []
    union = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    return [Landing(row["track_id"], utc(row["at"]), bool(row["saved"])) for row in union.collect()]


def write_acceptance(spark: "SparkSession", settings: TrainingSettings, rows: list[Acceptance]) -> None:
    data = [  # aware datetimes: pyspark stores them as the instants they are, whatever the process's TZ
        (
            r.published_at,
            r.window_ends_at,
            r.complete,
            r.model_name,
            r.model_version,
            r.tracks,
            r.played,
            r.saved,
            r.accepted,
            r.rate,
        )
        for r in rows
    ]
    frame = spark.createDataFrame(data, SCHEMA)
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(settings.table_uri(ACCEPTANCE))


def log_rates(client: "MlflowClient", rates: dict[tuple[str, str], tuple[float, int]]) -> None:
    """Each model version's rate on the run that trained it, linked to its LoggedModel; only when it changed."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    for (name, version), (rate, tracks) in sorted(rates.items()):
        try:
            model_version = client.get_model_version(name, version)
        except MlflowException:
            log.debug("acceptance of %s v%s: no such registered model version", name, version)
            continue
        run_id = str(model_version.run_id)
        run = client.get_run(run_id)
        if run.data.metrics.get(METRIC) == rate and run.data.metrics.get(COUNT_METRIC) == tracks:
            continue
        model_id = model_version.model_id or run.data.tags.get(registry.TAG_LOGGED_MODEL)
        client.log_metric(run_id, METRIC, rate, model_id=model_id)
        client.log_metric(run_id, COUNT_METRIC, float(tracks), model_id=model_id)


def refresh_acceptance(
    spark: "SparkSession", client: "MlflowClient", settings: TrainingSettings, now: datetime | None = None
) -> list[Acceptance]:
    """Recompute the acceptance of every published list into the `acceptance` table and the models' metrics;
    nothing when nothing was published."""
    publications = read_publications(spark, settings)
    if not publications:
        return []
    now = now or datetime.now(UTC)
    since = min(p.published_at for p in publications)
    track_ids = {t for p in publications for t in p.track_ids}
    window = timedelta(days=settings.acceptance_window_days)
    rows = acceptance(publications, read_landings(spark, settings, track_ids, since), window, now)
    write_acceptance(spark, settings, rows)
    log_rates(client, rates_per_model(rows))
    log.info("%s", describe(rows))
    return rows


def acceptance_rows(spark: "SparkSession", settings: TrainingSettings) -> list[dict[str, Any]]:
    """The acceptance table, newest list first (empty before anything was published)."""
    location = settings.table_uri(ACCEPTANCE)
    if not table_exists(spark, location):
        return []
    return [row.asDict() for row in spark.read.format("delta").load(location).orderBy(F.desc("published_at")).collect()]
