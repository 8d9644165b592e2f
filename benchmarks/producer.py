"""Producer publish rate: our producer (confluent-kafka, kafka-python) against a bare produce loop.

Each side runs in its own process against the same broker, on topics of its own, publishing the same
events: playlists of 500 tracks from a sandbox catalogue, as the 2026 extended API returns them. "Ours"
is the real poller (`Poller.poll_once`: events built from API objects, de-duplicated against the poll
state, published, confirmed by Kafka, the state committed per playlist) with the HTTP answers already
in memory, so the API does not limit it. The ceiling is `Producer.produce` of those events' bytes,
pre-serialized, with the same client settings (idempotent, acks=all, lz4, linger 20 ms), then one flush.

    python -m benchmarks.producer --side ceiling --events 200000 --bootstrap 127.0.0.1:9092
"""

import argparse
import json
import logging
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipeline_runtime.settings import topic_names
from producers.sandbox.catalogue import Catalogue, CatalogueSize, generate_catalogue
from producers.sandbox.server import SandboxHandler, SandboxState
from producers.settings import ProducerSettings

PLAYLIST_SIZE = 500
EVENTS_PER_TRACK = 3.1  # membership + track + audio features per track, an artist per ten tracks
SIDES = ("ceiling", "confluent-kafka", "kafka-python")


class SandboxObjects(SandboxHandler):
    """The sandbox's own API object shapes, built without a request."""

    def __init__(self, state: SandboxState) -> None:  # no socket: only the object builders are used
        self.server = SimpleNamespace(state=state)  # type: ignore[assignment]
        self.headers = {}  # type: ignore[assignment] # no request: links point at 127.0.0.1


class InMemoryApi:
    """What `Poller` asks of `SpotifyApi`, answered from pre-built API objects (extended generation)."""

    generation = "extended"
    user = None

    def __init__(self, catalogue: Catalogue, playlists: dict[str, list[str]]) -> None:
        objects = SandboxObjects(SandboxState(catalogue, "extended"))
        self.counter: Counter[str] = Counter()
        self.unreadable: set[str] = set()
        self.playlists = playlists
        self.track_objects = {t: objects.track_obj(t) for ids in playlists.values() for t in ids}
        self.artist_objects = {a: objects.artist_obj(a) for a in catalogue.artists}
        self.features = {t: {"id": t, **catalogue.audio_features[t]} for t in self.track_objects}

    def playlist_meta(self, playlist_id: str) -> dict[str, Any]:
        return {"id": playlist_id, "name": f"Benchmark {playlist_id}", "snapshot_id": f"s-{playlist_id}"}

    def playlist_tracks(self, playlist_id: str) -> tuple[list[dict[str, Any]], Counter[str]]:
        return [self.track_objects[t] for t in self.playlists[playlist_id]], Counter()

    def artists(self, ids: list[str]) -> list[dict[str, Any]]:
        return [self.artist_objects[a] for a in ids]

    def spotify_audio_features(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {t: self.features[t] for t in ids}


def workload(events: int, seed: int = 7) -> tuple[Catalogue, dict[str, list[str]]]:
    """A catalogue and playlists of PLAYLIST_SIZE tracks giving about `events` events on a first poll."""
    tracks = max(PLAYLIST_SIZE, round(events / EVENTS_PER_TRACK))
    size = CatalogueSize(
        tracks=tracks, artists=max(10, tracks // 10), albums=max(10, tracks // 4), playlists=2, favourite_playlists=1
    )
    catalogue = generate_catalogue(seed, size)
    ids = list(catalogue.tracks)
    playlists = {
        f"benchmarkPlaylist{n:05d}": ids[i : i + PLAYLIST_SIZE] for n, i in enumerate(range(0, len(ids), PLAYLIST_SIZE))
    }
    return catalogue, playlists


def settings_for(side: str, bootstrap: str, prefix: str, data_dir: Path, playlists: list[str]) -> ProducerSettings:
    return ProducerSettings(
        _env_file=None,
        data_dir=data_dir,
        kafka_bootstrap_servers=bootstrap,
        playlists=playlists,
        favourite_playlists=playlists[:1],
        include_my_playlists=False,
        include_saved_tracks=False,
        audio_feature_providers=["spotify"],
        kafka_client="kafka-python" if side == "kafka-python" else "confluent-kafka",
        **topic_names(prefix),
    )


def run_ours(settings: ProducerSettings, api: InMemoryApi) -> tuple[int, float]:
    """(events, seconds) of one first poll through the real poller and publisher."""
    from producers.service import open_producer  # noqa: PLC0415

    with open_producer(settings, threading.Event(), api=api) as producer:  # type: ignore[arg-type]
        started = time.perf_counter()
        report = producer.poller.poll_once()
        seconds = time.perf_counter() - started
    if report.failed_units:
        raise RuntimeError(f"{report.failed_units} unit(s) failed: {report.summary()}")
    return sum(report.events.values()), seconds


class RecordingPublisher:
    """A publisher that keeps what it is given and confirms at once."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.unconfirmed = 0

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.records.append((topic, key.encode(), value))
        self.unconfirmed += 1

    def confirm(self, _timeout: float) -> int:
        confirmed, self.unconfirmed = self.unconfirmed, 0
        return confirmed

    def close(self) -> None:
        pass


def first_poll_records(settings: ProducerSettings, api: InMemoryApi) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of what a first poll publishes, for the ceiling to send pre-serialized."""
    from producers.poller import Poller  # noqa: PLC0415
    from producers.state import PollState  # noqa: PLC0415

    recorder = RecordingPublisher()
    with tempfile.TemporaryDirectory() as tmp:
        state = PollState(Path(tmp) / "state.sqlite")
        Poller(settings, api, recorder, state, threading.Event()).poll_once()  # type: ignore[arg-type]
        state.close()
    return recorder.records


def run_ceiling(settings: ProducerSettings, prepared: list[tuple[str, bytes, bytes]]) -> tuple[int, float]:
    from confluent_kafka import Producer  # noqa: PLC0415

    from pipeline_runtime.kafka_admin import ensure_topics  # noqa: PLC0415

    ensure_topics(settings.kafka_bootstrap_servers, settings.topics, partitions=settings.topic_partitions)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "logger": logging.getLogger("librdkafka"),
        }
    )
    started = time.perf_counter()
    for topic, key, value in prepared:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - started
    if remaining:
        raise RuntimeError(f"{remaining} message(s) not delivered")
    return len(prepared), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.producer", description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--events", type=int, default=200_000, help="about this many events (default 200000)")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    args = parser.parse_args(argv)
    catalogue, playlists = workload(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench-{args.side}-{uuid.uuid4().hex[:6]}"
        settings = settings_for(args.side, args.bootstrap, prefix, Path(tmp), list(playlists))
        api = InMemoryApi(catalogue, playlists)
        if args.side == "ceiling":
            records = first_poll_records(settings, api)
            count, seconds = run_ceiling(settings, records)
            mean_bytes: int | None = round(sum(len(value) for _, _, value in records) / count)
        else:
            (count, seconds), mean_bytes = run_ours(settings, api), None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "side": args.side,
                "events": count,
                "seconds": round(seconds, 3),
                "events_per_second": round(count / seconds),
                "mean_event_bytes": mean_bytes,
                "peak_rss_mib": round(peak, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
