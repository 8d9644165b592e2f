"""Streaming catch-up throughput: N producer-shaped events through bronze, silver and gold.

    .venv/bin/python -m benchmarks.streaming_catchup [--events 100000]

Starts a local broker in a temporary data dir, publishes a realistic mix of events (per track: a track,
an artist every 10 tracks, audio features, one or two playlist memberships), runs
`python -m streaming run --available-now` as its own process and reports rows/s per query from the
progress log. Prints one JSON object. (A benchmark, not a test: nothing asserts a speed.)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker, ensure_topics
from producers.events import artist_payload, audio_features_payload, make_event, membership_payload, track_payload
from streaming.progress import read_progress

TOPICS = {"track": "spotify.tracks", "artist": "spotify.artists", "audio_features": "spotify.audio_features",
          "playlist_membership": "spotify.playlist_membership"}  # fmt: skip


def events(count: int) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []
    i = 0
    while len(out) < count:
        tid, aid, pid = f"t{i:021d}", f"a{i // 10:021d}", f"p{i % 40:021d}"
        track = {"id": tid, "name": f"Track {i}", "artists": [{"id": aid, "name": f"Artist {i // 10}"}],
                 "album": {"id": f"b{i // 12:021d}", "name": "Album", "release_date": "2020-01-01"},
                 "duration_ms": 200_000, "explicit": False, "popularity": i % 100}  # fmt: skip
        out.append(("track", tid, make_event("track", tid, track_payload(track), "bench").to_bytes()))
        if i % 10 == 0:
            artist = {"id": aid, "name": "A", "genres": ["pop", "rock"], "popularity": 50}
            out.append(("artist", aid, make_event("artist", aid, artist_payload(artist), "bench").to_bytes()))
        features = {"danceability": 0.5, "energy": 0.7, "tempo": 120.0, "key": 5, "mode": 1}
        payload = audio_features_payload(tid, features, "reccobeats")
        out.append(("audio_features", tid, make_event("audio_features", tid, payload, "bench").to_bytes()))
        member = membership_payload(pid, "P", tid, "added", "s1", i % 40 < 8)
        out.append(("playlist_membership", pid, make_event("playlist_membership", pid, member, "bench").to_bytes()))
        i += 1
    return out[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=data, port=0))
        running = broker.start()
        try:
            ensure_topics(running.bootstrap_servers, list(TOPICS.values()), partitions=3)
            producer = Producer({"bootstrap.servers": running.bootstrap_servers, "linger.ms": 20})
            for event_type, key, value in events(args.events):
                while True:
                    try:
                        producer.produce(TOPICS[event_type], key=key.encode(), value=value)
                        break
                    except BufferError:
                        producer.poll(0.2)
            producer.flush(60)
            del producer  # no client left to reconnect once the broker stops
            env = {**os.environ, "DATA_DIR": str(data), "KAFKA_BOOTSTRAP_SERVERS": running.bootstrap_servers,
                   "SPARK_MASTER": os.environ.get("SPARK_MASTER", "local[2]"), "SPARK_UI_ENABLED": "false"}  # fmt: skip
            started = time.monotonic()
            result = subprocess.run([sys.executable, "-m", "streaming", "run", "--available-now"], env=env,
                                    capture_output=True, text=True, check=False)  # fmt: skip
            wall = time.monotonic() - started
            if result.returncode:
                print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
                return 1
            lines = read_progress(data / "logs" / "streaming-progress.jsonl")
        finally:
            broker.stop()
    per_query = {}
    for query in ("bronze", "silver"):
        batches = [x for x in lines if x["query"] == query]
        rows = sum(x["input_rows"] for x in batches)
        seconds = sum((x["batch_duration_ms"] or 0) for x in batches) / 1000
        per_query[query] = {"batches": len(batches), "rows": rows, "seconds": round(seconds, 1),
                            "rows_per_second": round(rows / seconds) if seconds else None}  # fmt: skip
    summary = {"events": args.events, "spark_master": env["SPARK_MASTER"], "wall_seconds": round(wall, 1),
               "end_to_end_rows_per_second": round(args.events / wall), "queries": per_query}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
