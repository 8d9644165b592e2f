"""Settings of the producer service (env prefix `PRODUCER_`; shared names such as DATA_DIR unprefixed)."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import KafkaSettings, shared


class ProducerSettings(KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="PRODUCER_")

    spotify_client_id: str | None = Field(
        None, validation_alias=shared("SPOTIFY_CLIENT_ID"), description="Spotify app's client id."
    )
    spotify_client_secret: SecretStr | None = Field(
        None, validation_alias=shared("SPOTIFY_CLIENT_SECRET"), description="Spotify app's client secret."
    )
    kafka_client: Literal["confluent-kafka", "kafka-python"] = Field(
        "confluent-kafka", description="Kafka client library that publishes the events."
    )
    poll_interval_seconds: float = Field(300.0, gt=0, description="Seconds between two polls of Spotify.")
