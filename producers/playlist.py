"""The champion's recommendations, back in Spotify: one playlist of the user's, replaced in place.

The trainer writes the `recommendations` Delta table after every cycle; `read_recommendations` reads its top
rows with delta-rs (no JVM). `sync_playlist` puts them in one playlist of the logged-in user's: created once
(private unless PRODUCER_PLAYLIST_PUBLIC), then, when the list changed, replaced (`PUT` the first 100, `POST` the
rest, 100 per request); when it did not change nothing is written. What was published (the playlist's id, its
`snapshot_id`, the tracks, the table version) is kept in the producer's state: an unchanged snapshot spares
reading the items back, and the poller never reads this playlist as a source, so recommendations never become
their own labels. 2026 apps use `POST /me/playlists` and `/items`; pre-2026 (extended) apps
`POST /users/{id}/playlists` and `/tracks`.

Every list that goes into the playlist is recorded in the `publications` Delta table (when, which champion, the
tracks in rank order), so the trainer can count how many of them the user went on to play or save
(`training.acceptance`). A list is recorded once: when it differs from the last one recorded, which also records a
list whose playlist write succeeded just before a crash.
"""

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from spotipy.exceptions import SpotifyException

from pipeline_runtime.contract import PUBLICATIONS, RECOMMENDATIONS
from pipeline_runtime.delta_log import delta_rs_uri, open_delta_rs
from pipeline_runtime.errors import SetupError, first_line
from producers.settings import ProducerSettings
from producers.spotify import PLAYLIST_SCOPES, SpotifyApi, chunks, refusal_detail
from producers.state import Changes, PollState

log = logging.getLogger(__name__)

STATE_KEY = "recommendations_playlist"  # the poll state's cursor that remembers what was published
PER_REQUEST = 100  # Spotify's limit of items per playlist write


@dataclass(frozen=True)
class Recommendations:
    table_version: int
    track_ids: list[str]
    model_name: str  # the registered model of the champion that ranked them ("" when none did)
    model_version: str

    @property
    def model(self) -> str:
        return f"{self.model_name} v{self.model_version}" if self.model_name else "no champion"


@dataclass(frozen=True)
class Published:
    """What the state remembers of the playlist."""

    playlist_id: str
    snapshot_id: str | None
    track_ids: list[str]
    table_version: int | None = None


@dataclass(frozen=True)
class Outcome:
    playlist_id: str
    created: bool
    tracks: int
    writes: int  # write requests: 0 when the playlist already held the recommendations
    summary: str  # one line for the log or the terminal


def recommendations_table(settings: ProducerSettings) -> Any | None:
    """The recommendations table (delta-rs; opening it reads only its log), or None when there is none yet."""
    return open_delta_rs(settings.table_uri(RECOMMENDATIONS))


def top_recommendations(table: Any, size: int) -> Recommendations:
    """The top `size` rows of the recommendations table by rank."""
    rows = table.to_pyarrow_table(columns=["rank", "track_id", "model_name", "model_version"]).to_pylist()
    rows.sort(key=lambda row: row["rank"])
    top = rows[:size]
    name, version = (str(top[0]["model_name"]), str(top[0]["model_version"])) if top else ("", "")
    return Recommendations(int(table.version()), [str(row["track_id"]) for row in top], name, version)


def read_recommendations(settings: ProducerSettings) -> Recommendations | None:
    """The top PRODUCER_PLAYLIST_SIZE rows of the recommendations table by rank; None when there is no table yet."""
    table = recommendations_table(settings)
    return None if table is None else top_recommendations(table, settings.playlist_size)


def publication_rows(published_at: datetime, playlist_id: str, snapshot: str | None, wanted: Recommendations) -> Any:
    """One row of the publications table (pyarrow)."""
    import pyarrow as pa  # noqa: PLC0415

    schema = pa.schema(
        [
            ("published_at", pa.timestamp("us", tz="UTC")),
            ("playlist_id", pa.string()),
            ("snapshot_id", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("recommendations_version", pa.int64()),
            ("track_ids", pa.list_(pa.string())),
        ]
    )
    row = [published_at, playlist_id, snapshot, wanted.model_name, wanted.model_version, wanted.table_version]
    return pa.Table.from_pylist([dict(zip(schema.names, [*row, wanted.track_ids], strict=True))], schema=schema)


def last_publication(location: str) -> dict[str, Any] | None:
    """The newest row of the publications table; None when nothing was published yet."""
    table = open_delta_rs(location)
    if table is None:
        return None
    rows = table.to_pyarrow_table(columns=["published_at", "playlist_id", "track_ids"]).to_pylist()
    return max(rows, key=lambda row: row["published_at"], default=None)


def record_publication(
    settings: ProducerSettings, playlist_id: str, snapshot: str | None, wanted: Recommendations, now: datetime
) -> bool:
    """Append the list to the publications table unless it is the list recorded last; whether it was appended."""
    from deltalake import write_deltalake  # noqa: PLC0415
    from deltalake.exceptions import DeltaError  # noqa: PLC0415

    location = settings.table_uri(PUBLICATIONS)
    uri = delta_rs_uri(location)
    try:
        last = last_publication(location)
        if last is not None and last["playlist_id"] == playlist_id and list(last["track_ids"]) == wanted.track_ids:
            return False
        write_deltalake(uri, publication_rows(now, playlist_id, snapshot, wanted), mode="append")
    except (DeltaError, OSError) as exc:
        raise SetupError(
            f"the playlist holds the new recommendations, but they could not be recorded in {uri} "
            f"({first_line(exc, 200)}): the producer needs write access to the tables (TABLES_LOCATION or "
            "DATA_DIR/tables); the next poll tries again"
        ) from None
    return True


def remembered(state: PollState) -> Published | None:
    text = state.cursor(STATE_KEY)
    return Published(**json.loads(text)) if text else None


def remember(state: PollState, published: Published) -> None:
    state.commit(Changes(cursors={STATE_KEY: json.dumps(asdict(published))}))


def published_playlist_id(state: PollState) -> str | None:
    """The recommendations playlist's id, which the poller leaves out of its sources."""
    known = remembered(state)
    return known.playlist_id if known else None


def require_playlist_login(api: SpotifyApi, settings: ProducerSettings) -> None:
    """A user login that may change playlists, else one line that says how to get one."""
    needed = PLAYLIST_SCOPES[settings.playlist_public]
    if not api.user:
        raise SetupError(
            "putting recommendations into a Spotify playlist needs a user login (client credentials cannot change "
            "playlists): run `python -m producers login`, or set PRODUCER_PUBLISH_PLAYLIST=false"
        )
    if needed not in api.granted_scopes():
        raise SetupError(
            f"the saved Spotify login does not allow changing playlists (it lacks {needed}): run "
            "`python -m producers login` again, which asks for it, or set PRODUCER_PUBLISH_PLAYLIST=false"
        )


def find_own_playlist(api: SpotifyApi, name: str) -> dict[str, Any] | None:
    """The user's playlist of that name, so a lost state does not create a second one."""
    me = api.my_id()
    mine = (p for p in api.my_playlists() if (p.get("owner") or {}).get("id") == me)
    return next((p for p in mine if p.get("name") == name), None)


def create_playlist(api: SpotifyApi, settings: ProducerSettings) -> dict[str, Any]:
    body = {
        "name": settings.playlist_name,
        "description": settings.playlist_description,
        "public": settings.playlist_public,
    }
    if api.generation == "extended":
        return api.send("POST", f"users/{api.my_id()}/playlists", body)
    return api.send("POST", "me/playlists", body)


def current_snapshot(api: SpotifyApi, playlist_id: str) -> str | None:
    """The playlist's snapshot_id; None when it is gone (404) or no longer the user's to change (403)."""
    try:
        meta = api.get(f"playlists/{playlist_id}", fields="id,snapshot_id,owner(id)")
    except SpotifyException as exc:
        if exc.http_status in (403, 404):
            return None
        raise
    if (meta.get("owner") or {}).get("id") != api.my_id():
        return None
    return str(meta.get("snapshot_id") or "")


def current_tracks(api: SpotifyApi, playlist_id: str) -> list[str]:
    tracks, _skipped = api.playlist_tracks(playlist_id)
    return [str(t["id"]) for t in tracks]


def replace_tracks(api: SpotifyApi, playlist_id: str, track_ids: list[str]) -> tuple[str | None, int]:
    """Replace the playlist's items with `track_ids`: the new snapshot_id and the write requests made."""
    path = f"playlists/{playlist_id}/{'tracks' if api.generation == 'extended' else 'items'}"
    parts = list(chunks([f"spotify:track:{t}" for t in track_ids], PER_REQUEST)) or [[]]
    answer = api.send("PUT", path, {"uris": parts[0]})
    for part in parts[1:]:
        answer = api.send("POST", path, {"uris": part})
    return answer.get("snapshot_id"), len(parts)


def sync_playlist(api: SpotifyApi, state: PollState, settings: ProducerSettings, wanted: Recommendations) -> Outcome:
    """Make the recommendations playlist hold exactly `wanted`'s tracks, in rank order, writing only what differs."""
    require_playlist_login(api, settings)
    started = datetime.now(UTC)  # the list's publication time: before its first write, so every play of it is later
    known = remembered(state)
    playlist_id, created, snapshot = None, False, None
    if known is not None:
        snapshot = current_snapshot(api, known.playlist_id)
        playlist_id = known.playlist_id if snapshot is not None else None
    if playlist_id is None:
        found = find_own_playlist(api, settings.playlist_name)
        if found is None:
            found = create_playlist(api, settings)
            created = True
            log.info("created the playlist %r (%s) for the recommendations", settings.playlist_name, found["id"])
        playlist_id, snapshot = str(found["id"]), str(found.get("snapshot_id") or "")
    if known is not None and known.playlist_id == playlist_id and known.snapshot_id == snapshot:
        tracks = known.track_ids  # nobody changed it since: no need to read it back
    else:
        tracks = [] if created else current_tracks(api, playlist_id)
    writes = 0
    if tracks != wanted.track_ids:
        snapshot, writes = replace_tracks(api, playlist_id, wanted.track_ids)
        written = current_tracks(api, playlist_id)  # a retried POST could have added a part twice: check
        if written != wanted.track_ids:
            snapshot, more = replace_tracks(api, playlist_id, wanted.track_ids)
            writes += more
    record_publication(settings, playlist_id, snapshot, wanted, started)
    remember(state, Published(playlist_id, snapshot, wanted.track_ids, wanted.table_version))
    where = f"playlist {settings.playlist_name!r} ({playlist_id})"
    summary = (
        f"{where} holds the top {len(wanted.track_ids)} recommendations of {wanted.model} "
        f"({writes} write request(s){', playlist created' if created else ''})"
        if writes
        else f"{where} already holds the top {len(wanted.track_ids)} recommendations of {wanted.model}: nothing written"
    )
    return Outcome(playlist_id, created, len(wanted.track_ids), writes, summary)


def publish_command(settings: ProducerSettings) -> Outcome:
    """`python -m producers playlist`: the recommendations into the user's playlist now; Spotify's refusals and
    outages end in one line (the exit code says whether to try again later)."""
    wanted = read_recommendations(settings)
    if wanted is None:
        raise SetupError(
            f"no recommendations at {settings.table_uri(RECOMMENDATIONS)} yet: train a favourite champion first "
            "(`python -m training run --once`), with the same DATA_DIR / TABLES_LOCATION"
        )
    api = SpotifyApi(settings)
    state = PollState(settings.state_file)
    try:
        api.detect_generation()
        outcome = sync_playlist(api, state, settings, wanted)
    except SpotifyException as exc:
        raise SetupError(f"Spotify refused to change the playlist ({spotify_refusal(exc)})") from None
    finally:
        state.close()
    return outcome


def spotify_refusal(exc: SpotifyException) -> str:
    detail = refusal_detail(exc)
    if exc.http_status == 403 and "scope" in detail.lower():
        return (
            f"403 {detail}: the saved login does not allow changing playlists; run `python -m producers login` "
            "again, which asks for it"
        )
    return f"{exc.http_status} {detail}".strip()
