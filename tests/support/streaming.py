"""The streaming job in tests: settings and environment on a test's own topics, reading its tables, a
catch-up in-process, and event streams of a chosen size."""

import threading
import uuid
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline_runtime.settings import topic_names
from producers.events import artist_payload, audio_features_payload, make_event, membership_payload, track_payload
from streaming.job import run_job
from streaming.settings import StreamingSettings
from tests.support.processes import JARS_DIR, TEST_SHUFFLE_PARTITIONS, TEST_SPARK_MASTER, clean_env


def catch_up_records(settings: StreamingSettings, tracks: int) -> list[tuple[str, bytes]]:
    """4 events per track (track, audio features, a membership, a later version of most tracks) and an
    artist per 5 tracks: 100k events for 25k tracks. Observation times are fixed, so two runs agree."""
    records: list[tuple[str, bytes]] = []
    artists = [f"A{i:021d}" for i in range(tracks // 5)]
    first, later = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z"
    for i, artist_id in enumerate(artists):
        artist = {
            "id": artist_id,
            "name": f"artist {i}",
            "genres": [f"g{i % 7}"],
            "popularity": i % 90,
            "followers": {"total": i * 10},
        }
        records.append(
            (settings.topic_artists, make_event("artist", artist_id, artist_payload(artist), "test", first).to_bytes())
        )
    updates = tracks - len(artists)
    for i in range(tracks):
        track_id = f"{i:022d}"
        track = {
            "id": track_id,
            "name": f"t{i}",
            "artists": [{"id": artists[i % len(artists)], "name": "a"}],
            "duration_ms": 1000 + i,
            "popularity": i % 100,
            "album": {"id": "B" * 22, "release_date": "2020"},
        }
        records.append(
            (settings.topic_tracks, make_event("track", track_id, track_payload(track), "test", first).to_bytes())
        )
        features = {"danceability": (i % 10) / 10, "energy": 0.5, "tempo": 100.0 + i % 50, "key": i % 12}
        records.append(
            (
                settings.topic_audio_features,
                make_event(
                    "audio_features", track_id, audio_features_payload(track_id, features, "spotify"), "test", first
                ).to_bytes(),
            )
        )
        member = membership_payload("P" * 22, "favs", track_id, "added", "s1", i % 5 == 0)
        records.append(
            (
                settings.topic_playlist_membership,
                make_event("playlist_membership", "P" * 22, member, "test", first).to_bytes(),
            )
        )
        if i < updates:  # a later version of the track, further down the same topic
            renamed = track_payload({**track, "name": f"t{i} (remastered)", "popularity": (i + 1) % 100})
            records.append((settings.topic_tracks, make_event("track", track_id, renamed, "test", later).to_bytes()))
    return records


def streaming_settings(tmp_path: Path, bootstrap_servers: str, **overrides: object) -> StreamingSettings:
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "jars_dir": JARS_DIR,
        "kafka_bootstrap_servers": bootstrap_servers,
        "spark_master": TEST_SPARK_MASTER,
        "spark_shuffle_partitions": TEST_SHUFFLE_PARTITIONS,
        "spark_ui_enabled": False,
        **topic_names(f"test-{suffix}"),
    }
    values.update(overrides)
    return StreamingSettings(_env_file=None, **values)


def streaming_env(settings: StreamingSettings, **overrides: str) -> dict[str, str]:
    """The environment of `python -m streaming` on the same data dir, broker and topics as `settings`."""
    return clean_env(
        DATA_DIR=str(settings.data_dir),
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        SPARK_MASTER=TEST_SPARK_MASTER,
        SPARK_SHUFFLE_PARTITIONS=str(TEST_SHUFFLE_PARTITIONS),
        SPARK_UI_ENABLED="false",
        SPARK_DRIVER_MEMORY="1g",
        **settings.topic_env(),
        **overrides,
    )


def table(spark: SparkSession, settings: StreamingSettings, name: str):  # type: ignore[no-untyped-def]
    return spark.read.format("delta").load(settings.table(name))


def catch_up(spark: SparkSession, settings: StreamingSettings) -> None:
    assert run_job(settings, True, threading.Event(), spark) == 0
