"""Settings of the training service (env prefix `TRAINING_`; MLflow keeps its own MLFLOW_TRACKING_URI)."""

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import CsvList, MlflowSettings, SparkSettings, local_cores

Tuning = Literal["quick", "full"]
ThresholdObjective = Literal["f1", "precision"]
FavouriteLabel = Literal["playlists", "listening", "either"]


class TrainingSettings(SparkSettings, MlflowSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINING_")

    service_spark_conf: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("TRAINING_SPARK_CONF"),
        description="This service's own Spark settings as JSON, on top of SPARK_CONF, e.g. "
        '{"spark.cores.max": "2", "spark.executor.memory": "4g"}'
        + " (on a standalone cluster an application takes every core unless capped).",
    )
    shuffle_partitions: int | None = Field(
        None,
        ge=1,
        description="Shuffle partitions (and default parallelism) of the trainer's Spark session. Unset: one per "
        "core of a local master (local[N]: N; local[*]: this machine's), SPARK_SHUFFLE_PARTITIONS on a cluster. "
        "A cycle runs a thousand small Spark jobs, and a task per core costs least: at 100,000 tracks on 2 cores "
        "a cycle took 176 s with 4 partitions, 161 s with 2 and 160 s with 1.",
    )

    interval_seconds: float = Field(3600.0, gt=0, description="Seconds between two training cycles.")
    seed: int = Field(1, description="Seed of every random step (splits, models).")
    holdout_fraction: float = Field(
        0.4, gt=0, lt=1, description="Share of tracks held out for evaluation (0.4: the notebook's 60/40 split)."
    )
    min_rows: int = Field(200, ge=20, description="Fewest labelled tracks a model is trained on.")
    min_new_rows: int = Field(
        100, ge=0, description="A cycle trains only when this many gold rows are new or changed since the last run."
    )
    promotion_margin: float = Field(
        0.01,
        ge=0,
        description="The candidate becomes champion when it beats the champion's RMSE (popularity) or AUC-PR "
        "(favourites) on the current holdout by this relative margin.",
    )
    tuning: Tuning = Field("full", description="Hyper-parameter grid: `full`, or `quick` for tests and demos.")
    min_feature_coverage: float = Field(
        0.5, gt=0, le=1, description="A feature is used when at least this share of the tracks has a value."
    )
    exclude_features: CsvList = Field(
        default_factory=list, description="Features never used, comma-separated or JSON, e.g. artist_followers_log."
    )
    favourite_label: FavouriteLabel = Field(
        "playlists",
        description="What makes a track a favourite (the favourite model's label): `playlists` (in a favourite "
        "playlist, or saved with PRODUCER_SAVED_TRACKS_ARE_FAVOURITES), `listening` (played at least "
        "TRAINING_FAVOURITE_MIN_PLAYS times, or in one of the user's top lists), or `either`. Recorded on every "
        "MLflow run.",
    )
    favourite_min_plays: int = Field(
        3, ge=1, description="Plays that make a track a favourite with TRAINING_FAVOURITE_LABEL=listening or either."
    )
    precision_at_k: int = Field(50, ge=1, description="k of the favourite model's precision@k.")
    threshold_objective: ThresholdObjective = Field(
        "f1",
        description="How the favourite model's threshold is chosen on validation: `f1` (the F1-best one), or "
        "`precision` (the best recall with precision at least TRAINING_MIN_PRECISION: fewer poor recommendations).",
    )
    min_precision: float = Field(
        0.7, gt=0, le=1, description="The precision the `precision` threshold objective must reach on validation."
    )
    max_per_artist: int = Field(
        3,
        ge=0,
        description="At most this many tracks of one (primary) artist in the recommendations, for discovery; "
        "0: no limit.",
    )
    recommendations: int = Field(
        1000, ge=1, description="Rows kept in the recommendations table (the best-scored non-favourites)."
    )
    acceptance_window_days: float = Field(
        14,
        gt=0,
        description="A published recommendation counts as accepted when the user plays, saves or adds it to a "
        "favourite playlist within this many days of its publication (the `acceptance` table, the "
        "`acceptance_rate` metric).",
    )

    @property
    def session_shuffle_partitions(self) -> int:
        if self.shuffle_partitions is not None:
            return self.shuffle_partitions
        return local_cores(self.spark_master) or self.spark_shuffle_partitions

    @property
    def label_description(self) -> str:
        """The favourite label as recorded on the MLflow runs."""
        listening = f"{self.favourite_min_plays}+ plays or a top track"
        return {
            "playlists": "playlists (favourite playlists and saved tracks)",
            "listening": f"listening ({listening})",
            "either": f"either (favourite playlists, saved tracks, or {listening})",
        }[self.favourite_label]
