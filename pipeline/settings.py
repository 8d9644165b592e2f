"""Settings of the demo and the supervisor (env prefix `PIPELINE_`); each service keeps its own settings."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import KafkaSettings, MlflowSettings, SparkSettings


class PipelineSettings(KafkaSettings, SparkSettings, MlflowSettings):
    model_config = SettingsConfigDict(env_prefix="PIPELINE_")

    local_broker: bool = Field(
        True, description="Start the local Kafka broker; false when KAFKA_BOOTSTRAP_SERVERS is a cluster of yours."
    )
    sandbox_generation: Literal["extended", "development"] = Field(
        "extended",
        description="Which Spotify API the offline sandbox imitates when no credentials are set: extended (the "
        "pre-2026 API: popularity and audio features, so both models train) or development (a 2026 app).",
    )
    sandbox_host: str = Field("127.0.0.1", description="Where the producer reaches the sandbox (compose: `sandbox`).")
    sandbox_port: int = Field(8900, ge=0, le=65535, description="Port of the sandbox run by `make up` (127.0.0.1).")
    sandbox_seed: int = Field(42, description="Seed of the sandbox's generated catalogue.")
    sandbox_tracks: int = Field(2000, ge=100, description="Tracks in the sandbox's catalogue.")
    stop_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="`make down`: SIGTERM, then SIGKILL after this, per service; the streaming job gets at least "
        "twice STREAMING_STOP_TIMEOUT_SECONDS + 30 s (it finishes its batches and gold's catch-up first).",
    )
    restart_backoff_max_seconds: float = Field(
        300.0, gt=0, description="Longest pause before a crashed service restarts."
    )
    mlflow_ui_host: str = Field(
        "127.0.0.1", description="Address `make mlflow-ui` binds: 127.0.0.1 (this machine only), 0.0.0.0 (every one)."
    )
    mlflow_ui_port: int = Field(5000, ge=1, le=65535, description="Port of `make mlflow-ui`.")
    mlflow_ui_workers: int = Field(
        1,
        ge=1,
        description="Server processes of `make mlflow-ui` (MLflow's own default is 4, each a few seconds of CPU to "
        "start: one serves one person; raise it for a UI many people share).",
    )
