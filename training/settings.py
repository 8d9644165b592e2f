"""Settings of the training service (env prefix `TRAINING_`; MLflow keeps its own MLFLOW_TRACKING_URI)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import MlflowSettings, SparkSettings


class TrainingSettings(SparkSettings, MlflowSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINING_")

    interval_seconds: float = Field(3600.0, gt=0, description="Seconds between two training cycles.")
    seed: int = Field(1, description="Seed of every random step (splits, models).")
