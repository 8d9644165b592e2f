"""The Spotify Web API as the producer uses it: either API generation, rate limits handed back at once.

spotipy does the HTTP, through our own `requests.Session` (REFERENCE §5): 5xx and timeouts are retried
with backoff inside it, a 429 comes straight back as RateLimited with its Retry-After, so the caller
schedules the wait instead of sleeping inside a call. A removed endpoint's 403/404 switches that
capability off with one warning. ReccoBeats (keyless audio features) is reached the same way.
"""

import fcntl
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests
import spotipy
from requests.adapters import HTTPAdapter
from spotipy.cache_handler import CacheHandler, MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyPKCE
from urllib3.exceptions import TimeoutError
from urllib3.util.retry import Retry

from pipeline_runtime.errors import SetupError
from producers.settings import ProducerSettings

log = logging.getLogger(__name__)

Generation = Literal["extended", "development"]
SCOPES = "playlist-read-private playlist-read-collaborative user-library-read"  # what polling needs
LISTENING_SCOPES = "user-read-recently-played user-top-read"  # the listening history (PRODUCER_INCLUDE_LISTENING)
# What putting the recommendations into a playlist needs on top: a private playlist, or a public one.
PLAYLIST_SCOPES = {False: "playlist-modify-private", True: "playlist-modify-public"}
BATCH = {
    "extended": {
        "tracks": 50,
        "artists": 50,
        "audio-features": 100,
        "playlist_page": 100,
        "search": 50,
        "artist_albums": 50,
    },
    "development": {
        "tracks": 1,
        "artists": 1,
        "audio-features": 100,
        "playlist_page": 50,
        "search": 10,
        "artist_albums": 10,
    },
}
RECCOBEATS_BATCH = 40
_ID = re.compile(r"^[0-9A-Za-z]{22}$")
T = TypeVar("T")


class RateLimited(Exception):
    """A 429: wait `retry_after` seconds before the next request to that service."""

    def __init__(self, service: str, retry_after: float, quota_exceeded: bool) -> None:
        self.service = service
        self.retry_after = retry_after
        self.quota_exceeded = quota_exceeded
        what = "says this app's quota is used up (QUOTA_EXCEEDED)" if quota_exceeded else "rate limited"
        super().__init__(f"{service} {what}: Retry-After {retry_after:.0f}s")


class ServiceUnavailable(Exception):
    """A transient failure after retries (5xx, timeout, unreadable answer): try again next poll."""


class LoginExpired(SetupError):
    pass


ALBUM_FILTERS = re.compile(r"\btag:(new|hipster)\b", re.IGNORECASE)


def is_album_search(query: str) -> bool:
    """`tag:new` and `tag:hipster` filter album searches only: a track search with them finds nothing useful."""
    return bool(ALBUM_FILTERS.search(query))


def parse_id(kind: str, reference: str) -> str:
    """A base-62 id from an id, a `spotify:kind:id` URI or an open.spotify.com URL."""
    text = reference.strip()
    match = re.search(rf"(?:spotify:{kind}:|open\.spotify\.com/(?:intl-\w+/)?{kind}/)([0-9A-Za-z]+)", text)
    candidate = match.group(1) if match else text
    if not _ID.match(candidate):
        raise SetupError(f"{reference!r} is not a Spotify {kind} id, URI or URL (ids are 22 letters and digits).")
    return candidate


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TokenFile(CacheHandler):  # type: ignore[misc]
    """The user's token (with its refresh token) in a file only its owner can read (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_cached_token(self) -> dict[str, Any] | None:
        try:
            token: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return token

    def save_token_to_cache(self, token_info: dict[str, Any]) -> None:
        """Atomically (a temp file, 0600, then a rename): Spotify revokes the old refresh token when it hands
        out a new one, so a torn or lost write would lock the user out."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(token_info, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock shared by every process using this token file (the producer, a second one,
        `login`): one refresh at a time, and each sees the token the last one wrote."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def http_session(settings: ProducerSettings, counter: Counter[str]) -> requests.Session:
    """Retries 5xx and connection/read failures with backoff; 429 is not retried (handed back at once)."""
    retry = Retry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=0.5,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def count(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        counter["requests"] += 1
        if response.status_code == 429:
            counter["429"] += 1

    session.hooks["response"].append(count)
    return session


class StoredLogin(SpotifyPKCE):  # type: ignore[misc]
    """PKCE with the login kept by `python -m producers login`; never falls back to asking on stdin."""

    def refresh_access_token(self, refresh_token: str) -> dict[str, Any]:
        """Refresh under the token file's lock. Spotify rotates refresh tokens: when another process already
        used this one, its successor is in the file, and so is a fresh access token to use as it is."""
        with self.cache_handler.locked():
            stored = self.cache_handler.get_cached_token()
            if stored and stored.get("refresh_token") and stored["refresh_token"] != refresh_token:
                if not self.is_token_expired(stored):
                    return dict(stored)
                refresh_token = stored["refresh_token"]
            token: dict[str, Any] = super().refresh_access_token(refresh_token)
            return token

    def get_authorization_code(self, response: Any = None) -> str:
        raise LoginExpired(
            f"No valid Spotify login in {self.cache_handler.path}: run `python -m producers login` "
            "(or set PRODUCER_AUTH=client for client credentials)."
        )


def login_scopes(settings: ProducerSettings) -> str:
    """The scopes `login` asks for: polling's, reading the listening history, and changing the recommendations
    playlist when it is published."""
    scopes = [SCOPES]
    if settings.include_listening:
        scopes.append(LISTENING_SCOPES)
    if settings.publish_playlist:
        scopes.append(PLAYLIST_SCOPES[settings.playlist_public])
    return " ".join(scopes)


def user_auth(settings: ProducerSettings, session: requests.Session, scope: str = SCOPES) -> SpotifyPKCE:
    """PKCE with the saved login; a saved login that grants more than `scope` serves too."""
    if not settings.spotify_client_id:
        raise SetupError("SPOTIFY_CLIENT_ID is not set: create an app at developer.spotify.com and put its id in .env.")
    auth = StoredLogin(
        client_id=settings.spotify_client_id,
        redirect_uri=settings.redirect_uri,
        scope=scope,
        cache_handler=TokenFile(settings.token_file),
        open_browser=False,
        requests_session=session,
        requests_timeout=settings.request_timeout_seconds,
    )
    accounts = settings.spotify_accounts_url.rstrip("/")
    auth.OAUTH_AUTHORIZE_URL = f"{accounts}/authorize"
    auth.OAUTH_TOKEN_URL = f"{accounts}/api/token"
    return auth


def client_auth(settings: ProducerSettings, session: requests.Session) -> SpotifyClientCredentials:
    if not settings.spotify_client_id or not settings.spotify_client_secret:
        raise SetupError(
            "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are needed: put your Spotify app's credentials in .env "
            "(see .env.example), or run `python -m producers sandbox` and use the settings it prints."
        )
    auth = SpotifyClientCredentials(
        client_id=settings.spotify_client_id,
        client_secret=settings.spotify_client_secret.get_secret_value(),
        cache_handler=MemoryCacheHandler(),
        requests_session=session,
        requests_timeout=settings.request_timeout_seconds,
    )
    auth.OAUTH_TOKEN_URL = f"{settings.spotify_accounts_url.rstrip('/')}/api/token"
    return auth


@dataclass
class SpotifyApi:
    """What the poller asks of Spotify; counts requests and 429s in `counter`."""

    settings: ProducerSettings
    counter: Counter[str] = field(default_factory=Counter)
    generation: Generation = "development"
    disabled: set[str] = field(default_factory=set)
    unreadable: set[str] = field(default_factory=set)
    user_id: str | None = None

    def __post_init__(self) -> None:
        self.session = http_session(self.settings, self.counter)
        use_user = self.settings.auth == "user" or (self.settings.auth == "auto" and self.settings.token_file.is_file())
        self.auth: SpotifyPKCE | SpotifyClientCredentials = (
            user_auth(self.settings, self.session) if use_user else client_auth(self.settings, self.session)
        )
        self.user = use_user
        self.sp = spotipy.Spotify(
            auth_manager=self.auth,
            requests_session=self.session,
            requests_timeout=self.settings.request_timeout_seconds,
        )
        self.sp.prefix = self.settings.spotify_api_url.rstrip("/") + "/"
        self.recco = http_session(self.settings, self.counter)

    # --- calls, errors ---

    def _call(self, action: Callable[[], T]) -> T:
        """One API call: 401 once refreshes the token and retries; 429 -> RateLimited;
        timeouts, connection failures and unreadable answers -> ServiceUnavailable."""
        for attempt in range(2):
            try:
                result = action()
            except SpotifyException as exc:
                if exc.http_status == 429:
                    raise RateLimited(
                        "Spotify", retry_after_seconds(exc.headers), exc.reason == "QUOTA_EXCEEDED"
                    ) from None
                if exc.http_status == 401 and attempt == 0:
                    log.info("Spotify says the access token expired: getting a new one")
                    self._drop_token()
                    continue
                if exc.http_status >= 500:
                    raise ServiceUnavailable(f"Spotify answered {exc.http_status} after retries") from None
                raise
            except SpotifyOauthError as exc:
                raise self._oauth_problem(exc) from None
            except requests.RequestException as exc:
                raise no_answer("Spotify", exc, self.settings.request_timeout_seconds) from None
            if result is None:
                raise ServiceUnavailable("Spotify's answer was not valid JSON")
            return result
        raise ServiceUnavailable("Spotify refused a fresh access token")

    def _drop_token(self) -> None:
        cache = self.auth.cache_handler
        token = cache.get_cached_token()
        if self.user and token:
            token["expires_at"] = 0  # the next call refreshes it with the refresh token
            cache.save_token_to_cache(token)
        elif isinstance(cache, MemoryCacheHandler):
            cache.token_info = None

    def _oauth_problem(self, exc: SpotifyOauthError) -> Exception:
        if exc.error == "invalid_grant" and "revoked" in str(exc.error_description or "").lower():
            return LoginExpired(
                "Spotify revoked the saved login's refresh token (invalid_grant): another process or copy of the "
                "token refreshed it: log in again with `python -m producers login` (processes that share one "
                "DATA_DIR share its token file safely; a copied token file does not)."
            )
        if exc.error == "invalid_grant":
            return LoginExpired(
                "Spotify no longer accepts the saved login (invalid_grant; logins expire after 6 months): "
                "run `python -m producers login` again."
            )
        if exc.error == "invalid_client":
            return SetupError(
                "Spotify rejected SPOTIFY_CLIENT_ID/SPOTIFY_CLIENT_SECRET (invalid_client): check them in .env."
            )
        return ServiceUnavailable(f"Spotify's token endpoint failed ({exc.error})")

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call(lambda: self.sp._get(path, **params))  # noqa: SLF001
        return result

    def send(self, method: Literal["POST", "PUT"], path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A write (a JSON body); its answer."""
        call = self.sp._post if method == "POST" else self.sp._put  # noqa: SLF001
        result: dict[str, Any] = self._call(lambda: call(path, payload=payload))
        self.counter["writes"] += 1
        return result

    def granted_scopes(self) -> set[str]:
        """The scopes of the saved user login (none with client credentials)."""
        if not self.user:
            return set()
        token = self.auth.cache_handler.get_cached_token() or {}
        return set(str(token.get("scope") or "").split())

    def optional(self, capability: str, action: Callable[[], T]) -> T | None:
        """A call whose endpoint may be gone for this app: 403/404 switches it off for good, once."""
        if capability in self.disabled:
            return None
        try:
            return self._call(action)
        except SpotifyException as exc:
            if exc.http_status in (403, 404):
                self.disabled.add(capability)
                log.warning(
                    "Spotify answered %d for %s: this app has no access to it (removed for new apps); "
                    "switched off for this run",
                    exc.http_status,
                    capability,
                )
                return None
            raise

    def pages(self, first: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The items of a paged answer and of every page its absolute `next` links lead to."""
        page: dict[str, Any] | None = first
        while page is not None:
            yield from page.get("items") or []
            following = page.get("next")
            page = self.get(following) if following else None

    # --- generation ---

    def detect_generation(self) -> Generation:
        """Development mode caps search at 10 results a call: a search for 11 tells the generations apart."""
        configured = self.settings.api_generation
        if configured != "auto":
            self.generation = configured
        else:
            try:
                self.get("search", q="a", type="track", limit=11)
                self.generation = "extended"
            except SpotifyException as exc:
                if exc.http_status != 400:
                    raise
                self.generation = "development"
        log.info(
            "Spotify Web API: %s mode (%s)",
            self.generation,
            "batch endpoints, popularity"
            if self.generation == "extended"
            else "2026: one request per id, no popularity",
        )
        return self.generation

    @property
    def batch(self) -> dict[str, int]:
        return BATCH[self.generation]

    # --- playlists ---

    def my_id(self) -> str | None:
        """The logged-in user's id (one request per process), None with client credentials."""
        if not self.user:
            return None
        if self.user_id is None:
            self.user_id = str(self.get("me")["id"])
        return self.user_id

    def items_hidden(self, playlist: dict[str, Any]) -> bool:
        """Whether this app may not read the playlist's items, known from its metadata or its entry in
        /me/playlists: in development mode only the user's own playlists and those they collaborate on."""
        if self.generation == "extended":
            return False
        if not self.user:
            return True
        owner = (playlist.get("owner") or {}).get("id")
        return not playlist.get("collaborative") and owner is not None and owner != self.my_id()

    def skip_unreadable(self, playlist: dict[str, Any]) -> None:
        """Say once, in one line, why a playlist's items cannot be read and what to do; it is not asked for again."""
        playlist_id = str(playlist["id"])
        if playlist_id in self.unreadable:
            return
        self.unreadable.add(playlist_id)
        if not self.user:
            log.warning(
                "playlist %s: a development-mode app reads playlist items only with a user login, and only for "
                "the user's own playlists: run `python -m producers login`; skipped",
                playlist_id,
            )
            return
        log.warning(
            "playlist %s (%r) is owned by %s, not by you: a development-mode app may not read its items. "
            "Copy its tracks into a playlist you own, or ask Spotify for extended quota; skipped from now on",
            playlist_id,
            playlist.get("name"),
            (playlist.get("owner") or {}).get("id"),
        )

    def playlist_meta(self, playlist_id: str) -> dict[str, Any] | None:
        """id, name, snapshot_id, owner and collaborative: one small request. None where this app may not
        read the items (said once; not asked for again)."""
        try:
            meta = self.get(f"playlists/{playlist_id}", fields="id,name,snapshot_id,owner(id),collaborative")
        except SpotifyException as exc:
            if exc.http_status in (403, 404):
                if playlist_id not in self.unreadable:  # said once; it is skipped quietly after that
                    self.unreadable.add(playlist_id)
                    log.warning(
                        "playlist %s is not readable (%d): %s; skipped",
                        playlist_id,
                        exc.http_status,
                        "it does not exist or is private"
                        if exc.http_status == 404
                        else "in development mode only playlists the logged-in user owns or collaborates on are",
                    )
                return None
            raise
        if self.items_hidden(meta):
            self.skip_unreadable({"id": playlist_id, **meta})
            return None
        return meta

    def playlist_tracks(self, playlist_id: str) -> tuple[list[dict[str, Any]], Counter[str]]:
        """Every track of a playlist, each once: /tracks pages of 100 ('track') or, in 2026, /items pages of
        50 ('item'). Podcast episodes, local files and entries whose track is gone are skipped: the second
        value counts them by kind."""
        path, key = ("tracks", "track") if self.generation == "extended" else ("items", "item")
        first = self.get(f"playlists/{playlist_id}/{path}", limit=self.batch["playlist_page"])
        tracks: dict[str, dict[str, Any]] = {}
        skipped: Counter[str] = Counter()
        for entry in self.pages(first):
            track = entry.get(key) or entry.get("track")
            if not track:
                skipped["gone"] += 1
            elif entry.get("is_local") or track.get("is_local"):
                skipped["local file"] += 1
            elif track.get("type", "track") != "track":
                skipped[str(track.get("type"))] += 1
            elif track.get("id"):
                tracks.setdefault(track["id"], track)
        return list(tracks.values()), skipped

    def my_playlists(self) -> list[dict[str, Any]]:
        return list(self.pages(self.get("me/playlists", limit=50)))

    def saved_tracks(self, since: str | None) -> list[tuple[str, dict[str, Any]]]:
        """(added_at, track), newest first, down to `since` (exclusive): saved tracks come newest first."""
        found: list[tuple[str, dict[str, Any]]] = []
        for entry in self.pages(self.get("me/tracks", limit=50)):
            added = entry.get("added_at") or ""
            if since and added <= since:
                break
            if entry.get("track", {}).get("id"):
                found.append((added, entry["track"]))
        return found

    # --- listening history ---

    def recently_played(self, after_ms: int) -> list[dict[str, Any]]:
        """The plays after `after_ms` (epoch milliseconds, exclusive), oldest first. Spotify keeps the last 50
        plays only: each page holds the oldest plays after its cursor, and `next` goes on from the newest."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.pages(self.get("me/player/recently-played", limit=50, after=after_ms)):
            if (item.get("track") or {}).get("id") and item.get("played_at"):
                found[(item["played_at"], item["track"]["id"])] = item
        return [found[key] for key in sorted(found, key=lambda k: (played_at_ms(k[0]), k[1]))]

    def top_tracks(self, time_range: str, limit: int) -> list[dict[str, Any]]:
        """The user's `limit` most listened tracks of a time range, in rank order."""
        page = self.get("me/top/tracks", time_range=time_range, limit=limit)
        return [t for t in (page.get("items") or [])[:limit] if t and t.get("id")]

    # --- catalogue objects ---

    def tracks(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._objects("tracks", ids)

    def artists(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._objects("artists", ids)

    def _objects(self, kind: str, ids: list[str]) -> list[dict[str, Any]]:
        """Batch requests (extended) or one request per id (development)."""
        found: list[dict[str, Any]] = []
        if self.batch[kind] > 1:
            for chunk in chunks(ids, self.batch[kind]):
                found.extend(x for x in self.get(kind, ids=",".join(chunk))[kind] if x)
        else:
            for one in ids:
                found.append(self.get(f"{kind}/{one}"))
        return found

    def search(self, query: str, max_results: int, kind: str = "track") -> list[dict[str, Any]]:
        """Up to `max_results` tracks (or albums: `kind="album"`) matching `query`, page by page."""
        size = self.batch["search"]
        found: list[dict[str, Any]] = []
        offset = 0
        while len(found) < max_results and offset < 1000:
            limit = min(size, max_results - len(found))
            page = self.get("search", q=query, type=kind, limit=limit, offset=offset)[f"{kind}s"]
            items = page["items"]
            found.extend(t for t in items if t and t.get("id"))
            if not page.get("next") or not items:
                break
            offset += len(items)
        return found

    def artist_albums(self, artist_id: str) -> list[dict[str, Any]]:
        first = self.get(
            f"artists/{artist_id}/albums", include_groups="album,single", limit=self.batch["artist_albums"]
        )
        return list(self.pages(first))

    def album_tracks(self, album: dict[str, Any]) -> list[dict[str, Any]]:
        """An album's tracks, each given the album it came from (the listing leaves it out)."""
        tracks = []
        for track in self.pages(self.get(f"albums/{album['id']}/tracks", limit=50)):
            if track.get("id"):
                tracks.append({**track, "album": {k: album.get(k) for k in ("id", "name", "release_date")}})
        return tracks

    # --- audio features ---

    def spotify_audio_features(self, ids: list[str]) -> dict[str, dict[str, Any]] | None:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(ids, self.batch["audio-features"]):
            answer = self.optional("audio-features", partial(self.get, "audio-features", ids=",".join(chunk)))
            if answer is None:
                return found or None
            found.update({f["id"]: f for f in answer.get("audio_features") or [] if f})
        return found

    def reccobeats_audio_features(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """ReccoBeats answers only for ids it knows; each item names its Spotify id in `href`."""
        found: dict[str, dict[str, Any]] = {}
        base = self.settings.reccobeats_api_url.rstrip("/")
        for chunk in chunks(ids, RECCOBEATS_BATCH):
            try:
                response = self.recco.get(
                    f"{base}/audio-features",
                    params={"ids": ",".join(chunk)},
                    timeout=self.settings.request_timeout_seconds,
                )
            except requests.RequestException as exc:
                raise no_answer("ReccoBeats", exc, self.settings.request_timeout_seconds) from None
            if response.status_code == 429:
                raise RateLimited("ReccoBeats", retry_after_seconds(response.headers), False)
            if response.status_code >= 400:
                raise ServiceUnavailable(f"ReccoBeats answered {response.status_code}")
            try:
                content = response.json().get("content") or []
            except ValueError:
                raise ServiceUnavailable("ReccoBeats' answer was not valid JSON") from None
            for item in content:
                match = re.search(r"track/([0-9A-Za-z]{22})", item.get("href") or "")
                if match:
                    found[match.group(1)] = item
        return found


def played_at_ms(played_at: str) -> int:
    """A play's `played_at` (ISO 8601 UTC, milliseconds optional) as epoch milliseconds: the `after` cursor."""
    moment = datetime.fromisoformat(played_at.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def no_answer(service: str, exc: requests.RequestException, timeout: float) -> ServiceUnavailable:
    """A timeout as such (requests reports one that ran out of retries as a ConnectionError), else what failed."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(exc, requests.Timeout) or isinstance(reason, TimeoutError):
        return ServiceUnavailable(f"{service} did not answer within {timeout:g}s (timeout)")
    return ServiceUnavailable(f"{service} could not be reached ({type(exc).__name__})")


def refusal_detail(exc: SpotifyException) -> str:
    """What Spotify said when it refused a request (spotipy puts the URL first, then a newline and the reason)."""
    return str(exc.msg).split(":\n", 1)[-1].strip()


def endpoint_of(exc: SpotifyException) -> str:
    """The endpoint a refused request went to, ids left out: `playlists/{id}/items` (from the URL that
    spotipy puts at the start of its message)."""
    url = str(exc.msg).split(":\n", 1)[0]
    if not url.startswith(("http", "/")):
        return "an endpoint"
    path = re.sub(r"^.*?/v1/", "", urlsplit(url).path)
    return re.sub(r"\b[0-9A-Za-z]{22}\b", "{id}", path).strip("/") or "an endpoint"


def retry_after_seconds(headers: Any) -> float:
    try:
        return max(1.0, float((headers or {}).get("Retry-After", 1)))
    except (TypeError, ValueError):
        return 60.0
