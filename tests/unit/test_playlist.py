"""The champion's recommendations into the user's Spotify playlist (producers.playlist), against the sandbox over
real HTTP with spotipy unmocked; the recommendations table is a real Delta table (written here with delta-rs)."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from pipeline_runtime.contract import PUBLICATIONS
from pipeline_runtime.errors import SetupError
from producers.__main__ import main
from producers.playlist import publish_command, read_recommendations, replace_tracks
from producers.sandbox.catalogue import SANDBOX_USER
from producers.sandbox.server import SandboxServer
from producers.settings import ProducerSettings
from producers.spotify import SpotifyApi
from tests.support.playlist import not_favourites, write_recommendations, writes
from tests.support.spotify import sandbox_login, sandbox_settings, sandbox_stats


def logged_in(server: SandboxServer, data_dir: Path, **overrides: object) -> ProducerSettings:
    settings = sandbox_settings(server, data_dir, auth="user", **overrides)
    sandbox_login(settings)
    return settings


def test_publish_creates_one_private_playlist_and_an_unchanged_list_writes_nothing(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    settings = logged_in(server, tmp_path / "data")
    wanted = not_favourites(server, 30)
    write_recommendations(settings, wanted)
    sandbox_stats(server, reset=True)

    first = publish_command(settings)
    created = server.state.catalogue.playlists[first.playlist_id]
    assert first.created and first.tracks == 30
    assert created["track_ids"] == wanted, "the recommendations in rank order"
    assert created["owner"] == SANDBOX_USER and created["public"] is False
    assert created["name"] == settings.playlist_name
    assert writes(sandbox_stats(server, reset=True)) == {"POST me/playlists": 1, "PUT playlists/{id}/items": 1}

    again = publish_command(settings)
    stats = sandbox_stats(server)
    assert again.playlist_id == first.playlist_id and again.writes == 0 and not again.created
    assert writes(stats) == {}, "nothing changed: no write request"
    assert stats["playlists/{id}"] == 1 and "playlists/{id}/items" not in stats, "its snapshot said it is unchanged"
    assert "already holds" in again.summary

    listing = requests.get(
        f"{server.url}/v1/me/playlists?limit=50",
        headers={"Authorization": f"Bearer {server.state.issue_token('user')['access_token']}"},
        timeout=10,
    ).json()
    assert [p["id"] for p in listing["items"]].count(first.playlist_id) == 1, "visible in /me/playlists, once"


def test_a_changed_list_replaces_the_items_100_per_request_with_the_pre_2026_endpoints(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("extended", tracks=400)
    settings = logged_in(server, tmp_path / "data", playlist_size=230)
    many = not_favourites(server, 300)
    write_recommendations(settings, many[:230])
    sandbox_stats(server, reset=True)
    first = publish_command(settings)
    playlist = server.state.catalogue.playlists[first.playlist_id]
    assert playlist["track_ids"] == many[:230]
    assert writes(sandbox_stats(server, reset=True)) == {
        "POST users/{id}/playlists": 1,
        "PUT playlists/{id}/tracks": 1,
        "POST playlists/{id}/tracks": 2,
    }, "created for the user, then 100 + 100 + 30"

    changed = list(reversed(many[100:300]))
    write_recommendations(settings, changed, version="4")
    second = publish_command(settings)
    assert second.playlist_id == first.playlist_id and not second.created
    assert playlist["track_ids"] == changed, "replaced in place, in the new order"
    assert writes(sandbox_stats(server, reset=True)) == {
        "PUT playlists/{id}/tracks": 1,
        "POST playlists/{id}/tracks": 1,
    }
    assert "favourite v4" in second.summary

    # The user added a track by hand: the snapshot moved, so the items are read back and put right.
    requests.post(f"{server.url}/_sandbox/playlists/{first.playlist_id}", json={"add": [many[0]]}, timeout=10)
    third = publish_command(settings)
    assert playlist["track_ids"] == changed and third.writes == 2


def test_a_lost_state_finds_the_playlist_by_name_instead_of_creating_another(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    settings = logged_in(server, tmp_path / "data")
    write_recommendations(settings, not_favourites(server, 12))
    first = publish_command(settings)
    settings.state_file.unlink()
    again = publish_command(settings)
    assert again.playlist_id == first.playlist_id and not again.created and again.writes == 0
    named = [p for p in server.state.catalogue.playlists.values() if p["name"] == settings.playlist_name]
    assert len(named) == 1


def test_without_a_login_that_may_change_playlists_it_says_what_to_do_in_one_line(
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = sandbox_factory("development")
    data_dir = tmp_path / "data"
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)  # no .env of the developer's

    assert main(["playlist"]) == 2
    said = capsys.readouterr().out.strip()
    assert said.count("\n") == 0 and "no recommendations at" in said and "python -m training run --once" in said

    settings = sandbox_settings(server, data_dir)
    write_recommendations(settings, not_favourites(server, 5))
    monkeypatch.setenv("PRODUCER_AUTH", "client")
    assert main(["playlist"]) == 2
    said = " ".join(capsys.readouterr().out.split())  # rich wraps long lines on a narrow terminal
    assert "needs a user login" in said and "python -m producers login" in said and "Traceback" not in said

    # A login from before publishing existed (or with publishing off) lacks the scope: log in again.
    sandbox_login(sandbox_settings(server, data_dir, publish_playlist=False))
    monkeypatch.setenv("PRODUCER_AUTH", "user")
    assert main(["playlist"]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "lacks playlist-modify-private" in said and "python -m producers login" in said
    assert writes(sandbox_stats(server)) == {}, "nothing was written"
    with pytest.raises(SetupError, match="lacks playlist-modify-public"):
        publish_command(sandbox_settings(server, data_dir, auth="user", playlist_public=True))


def test_the_reader_takes_the_top_rows_by_rank(sandbox_factory: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_factory("development")
    settings = sandbox_settings(server, tmp_path / "data", playlist_size=3)
    assert read_recommendations(settings) is None
    tracks = not_favourites(server, 6)
    write_recommendations(settings, tracks)
    first = read_recommendations(settings)
    assert first is not None and first.track_ids == tracks[:3] and first.model == "favourite v3"
    write_recommendations(settings, tracks[3:], version="5")
    second = read_recommendations(settings)
    assert second is not None and second.table_version == first.table_version + 1 and second.track_ids == tracks[3:]


def publications(settings: ProducerSettings) -> list[dict[str, object]]:
    from deltalake import DeltaTable

    rows = DeltaTable(settings.table_uri(PUBLICATIONS)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda row: row["published_at"])


def test_each_published_list_is_recorded_once_with_its_champion_and_time(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    settings = logged_in(server, tmp_path / "data")
    pool = not_favourites(server, 60)
    write_recommendations(settings, pool[:30], version="3")
    before = datetime.now(UTC)
    first = publish_command(settings)
    publish_command(settings)  # unchanged: no second record
    write_recommendations(settings, pool[30:], version="4")
    publish_command(settings)
    rows = publications(settings)
    assert [(r["model_name"], r["model_version"], r["track_ids"]) for r in rows] == [
        ("favourite", "3", pool[:30]),
        ("favourite", "4", pool[30:]),
    ]
    assert {r["playlist_id"] for r in rows} == {first.playlist_id}
    assert before <= rows[0]["published_at"] <= rows[1]["published_at"] <= datetime.now(UTC)
    added = server.state.catalogue.playlists[first.playlist_id]["changed_ms"]
    assert rows[1]["published_at"].timestamp() * 1000 <= added, "recorded before the write: every play is later"

    # The playlist written, then a crash before the record: the next publish finds the playlist holding the list,
    # writes nothing, and records it.
    write_recommendations(settings, pool[:30], version="5")
    wanted = read_recommendations(settings)
    assert wanted is not None
    api = SpotifyApi(settings)
    api.detect_generation()
    replace_tracks(api, first.playlist_id, wanted.track_ids)
    again = publish_command(settings)
    assert again.writes == 0
    assert [(r["model_version"], r["track_ids"]) for r in publications(settings)][-1] == ("5", pool[:30])


def test_publish_reads_and_records_on_object_storage(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, s3_bucket: str
) -> None:
    """TABLES_LOCATION on S3: the recommendations read and the publication recorded with delta-rs there."""
    from deltalake import DeltaTable

    server = sandbox_factory("development")
    settings = logged_in(server, tmp_path / "data", tables_location=f"s3a://{s3_bucket}/tables")
    wanted = not_favourites(server, 12)
    write_recommendations(settings, wanted)
    first = publish_command(settings)
    assert server.state.catalogue.playlists[first.playlist_id]["track_ids"] == wanted
    rows = DeltaTable(f"s3://{s3_bucket}/tables/{PUBLICATIONS}").to_pyarrow_table().to_pylist()
    assert [row["track_ids"] for row in rows] == [wanted]


def test_a_publication_that_cannot_be_recorded_says_so_in_one_line(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox_factory("development")
    settings = logged_in(server, tmp_path / "data")
    write_recommendations(settings, not_favourites(server, 5))
    Path(settings.table_uri(PUBLICATIONS)).write_text("not a table")  # where the table would go: unwritable
    with pytest.raises(SetupError) as refused:
        publish_command(settings)
    message = str(refused.value)
    assert "the playlist holds the new recommendations, but they could not be recorded in" in message
    assert "needs write access to the tables" in message and "\n" not in message
