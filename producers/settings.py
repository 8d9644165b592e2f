"""Settings of the producer service (env prefix `PRODUCER_`; shared names such as DATA_DIR unprefixed).

Lists (`PRODUCER_PLAYLISTS`, `PRODUCER_SEARCH_QUERIES` ...) take a JSON list or comma-separated values.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.settings import CsvList, KafkaSettings, TablesSettings, shared

Provider = Literal["spotify", "reccobeats", "catalogue"]

# A loopback literal with a port: Spotify refuses `localhost` since 2025-11-27.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8888/callback"


class ProducerSettings(KafkaSettings, TablesSettings):
    model_config = SettingsConfigDict(env_prefix="PRODUCER_")

    # Spotify
    spotify_client_id: str | None = Field(
        None, validation_alias=shared("SPOTIFY_CLIENT_ID"), description="Spotify app's client id."
    )
    spotify_client_secret: SecretStr | None = Field(
        None, validation_alias=shared("SPOTIFY_CLIENT_SECRET"), description="Spotify app's client secret."
    )
    spotify_api_url: str = Field("https://api.spotify.com/v1/", validation_alias=shared("SPOTIFY_API_URL"))
    spotify_accounts_url: str = Field("https://accounts.spotify.com", validation_alias=shared("SPOTIFY_ACCOUNTS_URL"))
    reccobeats_api_url: str = Field("https://api.reccobeats.com/v1/", validation_alias=shared("RECCOBEATS_API_URL"))
    api_generation: Literal["auto", "extended", "development"] = Field(
        "auto", description="Which Web API the app gets: detected at start (auto), or fixed."
    )
    auth: Literal["auto", "client", "user"] = Field(
        "auto", description="user: the login's token; client: client credentials; auto: user if logged in."
    )
    redirect_uri: str = Field(DEFAULT_REDIRECT_URI, description="Redirect URI of the `login` command.")
    request_timeout_seconds: float = Field(10.0, gt=0)
    http_retries: int = Field(3, ge=0, description="Retries of 5xx answers and timeouts, with backoff.")

    # What to poll
    playlists: CsvList = Field(default_factory=list, description="Playlist ids, URIs or URLs to follow.")
    favourite_playlists: CsvList = Field(default_factory=list, description="Which playlists are favourites.")
    include_my_playlists: bool = Field(True, description="With a login: follow the user's own playlists.")
    include_saved_tracks: bool = Field(True, description="With a login: follow the user's saved tracks.")
    saved_tracks_are_favourites: bool = Field(True, description="Saved tracks count as favourites.")
    search_queries: CsvList = Field(
        default_factory=list,
        description='Searches: track searches with filters ("genre:jazz year:2024"), or album searches '
        '("tag:new", "tag:hipster": album filters only) whose albums\' tracks are published.',
    )
    search_max_results: int = Field(50, ge=1, le=1000, description="Tracks (albums for an album search) per search.")
    artists: CsvList = Field(default_factory=list, description="Artist ids whose catalogues to follow.")
    include_listening: bool = Field(
        True,
        description="With a login: publish what the user plays (recently played, each play once, from a cursor) "
        "and their top tracks (the three time ranges, with rank, once a day); `login` asks for the scopes.",
    )
    top_tracks_limit: int = Field(50, ge=1, le=50, description="Tracks per top list (Spotify lists 50 at most).")
    top_tracks_refresh_seconds: float = Field(
        86400.0, gt=0, description="How often the top lists are read again (they change slowly: once a day)."
    )

    # Enrichment
    audio_feature_providers: CsvList = Field(
        default_factory=lambda: ["spotify", "reccobeats", "catalogue"], description="Tried in this order."
    )
    catalogue_file: Path | None = Field(None, description="CSV/Parquet catalogue for the 'catalogue' provider.")
    artist_ttl_seconds: float = Field(7 * 86400.0, gt=0, description="How long artist details stay fresh.")

    # Kafka and the loop
    kafka_client: Literal["confluent-kafka", "kafka-python"] = Field(
        "confluent-kafka", description="Kafka client library that publishes the events."
    )
    topic_partitions: int = Field(3, ge=1, description="Partitions of topics the producer creates.")
    kafka_timeout_seconds: float = Field(10.0, gt=0, description="How long to wait for Kafka before giving up.")
    poll_interval_seconds: float = Field(300.0, gt=0, description="Seconds between two polls of Spotify.")

    # The champion's recommendations, back into Spotify (`python -m producers playlist`, and after each poll)
    publish_playlist: bool = Field(
        True,
        description="With a user login: after a poll that finds new recommendations (the trainer's table), put "
        "the top PRODUCER_PLAYLIST_SIZE in one playlist of the user's, replaced in place.",
    )
    playlist_name: str = Field("Recommended for you (spotify-pipeline)", min_length=1)
    playlist_description: str = Field(
        "The favourite model's champion picks, refreshed after every training cycle that changes them."
    )
    playlist_public: bool = Field(False, description="Create it public (needs the playlist-modify-public scope).")
    playlist_size: int = Field(50, ge=1, le=10000, description="How many recommendations go in the playlist.")

    @field_validator("audio_feature_providers")
    @classmethod
    def known_providers(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in ("spotify", "reccobeats", "catalogue")]
        if unknown:
            raise ValueError(f"unknown audio-feature providers {unknown}: use spotify, reccobeats, catalogue")
        return value

    @property
    def has_credentials(self) -> bool:
        """Both SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are set (the live API; else the sandbox)."""
        return bool(self.spotify_client_id and self.spotify_client_secret)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "producer.sqlite"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "spotify-token.json"
