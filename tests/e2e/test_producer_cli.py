"""`python -m producers ...` as a user runs it: run, backfill, sandbox, an expired login and an unreachable broker
(Spotify misbehaving and secrets: tests/faults)."""

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import requests

from pipeline_runtime.broker import free_port
from producers.sandbox.server import SandboxServer
from tests.support.kafka import read_topic
from tests.support.processes import clean_env, read_until, run_module, start_module
from tests.support.spotify import producer_env, sandbox_login, sandbox_settings, set_faults


def test_expired_login_is_one_clear_line(
    sandbox_factory: Callable[..., SandboxServer], bootstrap_servers: str, tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    sandbox_login(sandbox_settings(server, tmp_path / "data"))
    set_faults(server, invalid_grant=True, expire_tokens=True)
    env = producer_env(server, tmp_path / "data", bootstrap_servers)
    result = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid_grant" in result.stdout and "run `python -m producers login` again" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unreachable_broker_fails_fast(sandbox_factory: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_factory("extended")
    env = producer_env(
        server,
        tmp_path / "data",
        f"127.0.0.1:{free_port()}",
        PRODUCER_AUTH="client",
        PRODUCER_KAFKA_TIMEOUT_SECONDS="3",
    )
    started = time.monotonic()
    result = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "did not answer within 3s" in result.stdout and "KAFKA_BOOTSTRAP_SERVERS" in result.stdout
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stdout + result.stderr


def test_backfill_publishes_a_catalogue_once(
    sandbox_factory: Callable[..., SandboxServer], bootstrap_servers: str, tmp_path: Path
) -> None:
    server = sandbox_factory("development", tracks=500)
    csv = tmp_path / "tracks.csv"
    server.state.catalogue.export_tracks_csv(csv)
    env = producer_env(
        server,
        tmp_path / "data",
        bootstrap_servers,
        KAFKA_TOPIC_TRACKS="backfill.tracks",
        KAFKA_TOPIC_AUDIO_FEATURES="backfill.features",
    )
    first = run_module("producers", "backfill", "--file", str(csv), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "500 tracks read; published 500 audio_features, 500 track" in first.stdout
    second = run_module("producers", "backfill", "--file", str(csv), env=env, cwd=tmp_path)
    assert "published nothing new" in second.stdout
    import pandas as pd

    parquet = tmp_path / "tracks.parquet"
    pd.read_csv(csv).to_parquet(parquet)
    same = run_module("producers", "backfill", "--file", str(parquet), env=env, cwd=tmp_path)
    assert same.returncode == 0 and "500 tracks read; published nothing new" in same.stdout, "Parquet = CSV"
    tracks = read_topic(bootstrap_servers, "backfill.tracks")
    assert len(tracks) == 500 and all(e["source"] == "catalogue-file/tracks.csv" for e in tracks)
    sample = tracks[0]["payload"]
    catalogue = server.state.catalogue
    assert sample["popularity"] == catalogue.tracks[sample["track_id"]]["popularity"]
    assert set(sample["genres"]) <= set(
        catalogue.artists[catalogue.tracks[sample["track_id"]]["artist_ids"][0]]["genres"]
    )
    missing = run_module("producers", "backfill", "--file", str(tmp_path / "nope.csv"), env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "not found" in missing.stdout


def test_sandbox_command_serves_and_describes_its_model(tmp_path: Path) -> None:
    env = clean_env(DATA_DIR=str(tmp_path / "data"))
    sizes = ["--tracks", "200", "--artists", "30", "--albums", "40", "--playlists", "4", "--favourite-playlists", "1"]
    process = start_module("producers", "sandbox", "--port", "0", *sizes, env=env, cwd=tmp_path)
    try:
        seen, api = read_until(process, r"SPOTIFY_API_URL=\S+")
        assert "best reachable: popularity R²" in seen
        base = api.split("=", 1)[1].removesuffix("/v1/")
        token = requests.post(
            f"{base}/api/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client-id", "sandbox-client-secret"),
            timeout=10,
        ).json()
        answer = requests.get(
            f"{base}/v1/search",
            params={"q": "tag:new", "type": "track", "limit": 11},
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        )
        assert answer.status_code == 400, "development mode: at most 10 search results a call"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    model = json.loads((tmp_path / "data" / "sandbox" / "model.json").read_text())
    assert 0.5 < model["best_popularity_r2"] < 1 and 0.7 < model["best_favourite_auc"] < 1
    assert model["popularity"]["noise_sd"] > 0 and model["favourite"]["noise_sd"] > 0
