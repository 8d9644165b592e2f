"""API efficiency against the sandbox, both API generations: what each poll costs in requests.

Per generation: a first poll of every readable playlist (every track new), a second poll with nothing
changed, then a third after some playlists changed (tracks added and removed). Requests are counted by
the sandbox (every HTTP request it answered, token requests included).

    python -m benchmarks.api --tracks 2000
"""

import argparse
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from benchmarks.common import local_broker
from pipeline_runtime.settings import topic_names

CHANGED_PLAYLISTS = 3


def requests_made(server: Any) -> int:
    with server.state.lock:
        count = sum(n for endpoint, n in server.state.requests.items() if endpoint != "_sandbox")
        server.state.requests.clear()
    return int(count)


def change_playlists(server: Any, changed: list[str]) -> list[str]:
    """As POST /_sandbox/playlists/{id} does: one track removed, two added from outside every playlist."""
    catalogue = server.state.catalogue
    members = {t for p in catalogue.playlists.values() for t in p["track_ids"]}
    outside = [t for t in catalogue.tracks if t not in members]
    if len(outside) < 2 * len(changed):
        raise ValueError(f"a catalogue of {len(catalogue.tracks)} tracks has too few outside the playlists")
    with server.state.lock:
        for n, playlist_id in enumerate(changed):
            playlist = catalogue.playlists[playlist_id]
            playlist["track_ids"] = [*playlist["track_ids"][1:], *outside[2 * n : 2 * n + 2]]
            playlist["version"] += 1
    return changed


def measure(generation: str, tracks: int, bootstrap: str, data_dir: Path) -> dict[str, Any]:
    from pipeline_runtime.settings import ensure_writable_dir  # noqa: PLC0415
    from producers.sandbox.catalogue import CatalogueSize, generate_catalogue  # noqa: PLC0415
    from producers.sandbox.login import log_in_sandbox_user  # noqa: PLC0415
    from producers.sandbox.server import SandboxServer, SandboxState  # noqa: PLC0415
    from producers.service import open_producer  # noqa: PLC0415

    size = CatalogueSize(tracks=tracks, artists=max(20, tracks // 10), albums=max(40, tracks // 4))
    catalogue = generate_catalogue(11, size)
    server = SandboxServer(SandboxState(catalogue, generation))  # type: ignore[arg-type]
    server.start_in_thread()
    try:
        readable = [
            p for p, v in catalogue.playlists.items() if generation == "extended" or v["owner"] == "sandbox-user"
        ]
        settings = server.producer_settings(
            kafka_bootstrap_servers=bootstrap,
            data_dir=data_dir,
            playlists=readable,
            include_my_playlists=False,
            include_saved_tracks=False,
            include_listening=False,  # the playlists' cost only: the listening history is a request or two a poll
            **topic_names(generation),
        )
        if generation == "development":
            ensure_writable_dir(settings.state_dir, "producer state folder")
            log_in_sandbox_user(settings)
        requests_made(server)
        with open_producer(settings, threading.Event()) as producer:
            poller = producer.poller
            first = poller.poll_once()
            first_requests = requests_made(server)
            new_tracks = len({t for p in readable for t in catalogue.playlists[p]["track_ids"]})

            unchanged = poller.poll_once()
            unchanged_requests = requests_made(server)

            changed = change_playlists(server, readable[:CHANGED_PLAYLISTS])
            after_change = poller.poll_once()
            change_requests = requests_made(server)
    finally:
        server.shutdown()
        server.server_close()
    unchanged_in_third = len(readable) - len(changed)
    return {
        "generation": generation,
        "playlists": len(readable),
        "new_tracks": new_tracks,
        "first_poll": {
            "requests": first_requests,
            "events": sum(first.events.values()),
            "requests_per_new_track": round(first_requests / new_tracks, 3),
        },
        "unchanged_poll": {
            "requests": unchanged_requests,
            "events_republished": sum(unchanged.events.values()),
            "requests_per_unchanged_playlist": round(unchanged_requests / len(readable), 2),
        },
        "changed_poll": {
            "changed_playlists": len(changed),
            "tracks_added_per_playlist": 2,
            "tracks_removed_per_playlist": 1,
            "requests": change_requests,
            "events": dict(after_change.events),
            "requests_per_changed_playlist": round((change_requests - unchanged_in_third) / len(changed), 2),
        },
    }


def run(tracks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, local_broker(Path(tmp) / "broker") as broker:
        return {
            generation: measure(generation, tracks, broker.bootstrap_servers, Path(tmp) / generation)
            for generation in ("extended", "development")
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=2000, help="sandbox catalogue size (default 2000)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.tracks), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
