"""Helpers of the tests that fault the pipeline and count what got through: what the producer confirmed, what
reached bronze, duplicates in silver, the sandbox catalogue's size, waiting on a process's log."""

import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.settings import TOPIC_SETTINGS
from producers.events import make_event, membership_payload
from producers.sandbox.server import SandboxServer
from streaming.settings import StreamingSettings
from tests.support.streaming import table


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float, process: "subprocess.Popen[bytes]", log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"exited with {process.returncode} before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def topics_of(settings: StreamingSettings) -> dict[str, str]:
    return {name: getattr(settings, name) for name in TOPIC_SETTINGS.values()}


def accepted_event_ids(state_file: Path) -> set[str]:
    """The event ids of everything the producer recorded as confirmed by Kafka (its poll state)."""
    from producers.events import event_id

    db = sqlite3.connect(state_file)
    try:
        ids = {
            event_id(t, key, h) for t, key, h in db.execute("SELECT event_type, entity_id, content_hash FROM published")
        }
        members = db.execute(
            "SELECT p.playlist_id, p.name, p.snapshot_id, p.is_favourite, m.track_id "
            "FROM playlist p JOIN playlist_member m USING (playlist_id)"
        ).fetchall()
    finally:
        db.close()
    for playlist_id, name, snapshot, favourite, track_id in members:
        payload = membership_payload(playlist_id, name, track_id, "added", snapshot, bool(favourite))
        ids.add(make_event("playlist_membership", playlist_id, payload, "").envelope["event_id"])
    return ids


def catalogue_counts(server: SandboxServer) -> dict[str, int]:
    catalogue = server.state.catalogue
    tracks = {t for p in catalogue.playlists.values() for t in p["track_ids"]}
    return {
        "track": len(tracks),
        "artist": len({a for t in tracks for a in catalogue.tracks[t]["artist_ids"]}),
        "audio_features": len(tracks),
        "playlist_membership": sum(len(p["track_ids"]) for p in catalogue.playlists.values()),
    }


def bronze_event_ids(spark: SparkSession, settings: StreamingSettings) -> tuple[int, set[str]]:
    ids = table(spark, settings, "bronze").select(
        F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id")
    )
    return ids.count(), {r.event_id for r in ids.distinct().collect()}


def silver_duplicates(spark: SparkSession, settings: StreamingSettings) -> dict[str, int]:
    keys = {
        "silver_tracks": ["track_id"],
        "silver_artists": ["artist_id"],
        "silver_audio_features": ["track_id"],
        "silver_playlist_members": ["playlist_id", "track_id"],
        "silver_playlist_history": ["event_id"],
    }
    found = {}
    for name, columns in keys.items():
        frame = table(spark, settings, name)
        found[name] = frame.count() - frame.select(*columns).distinct().count()
    return found
