"""Settings of the streaming service (env prefix `STREAMING_`; shared names such as SPARK_MASTER unprefixed)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import KafkaSettings, SparkSettings


class StreamingSettings(KafkaSettings, SparkSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMING_")

    trigger_interval: str = Field("30 seconds", description="Processing-time trigger of the long-running job.")
    max_offsets_per_trigger: int = Field(100_000, gt=0, description="Upper bound of records in one micro-batch.")
