"""An offline Spotify Web API (and a ReccoBeats-compatible audio-features endpoint) on 127.0.0.1.

It serves a generated catalogue (producers.sandbox.catalogue) in either API generation:

* `extended`: the pre-2026 shape: batch /tracks?ids= (50), /artists?ids= (50), /albums?ids= (20),
  /audio-features?ids= (100), popularity/followers/label fields, playlist pages of 100 under /tracks.
* `development`: the 2026 shape: one request per id (batch endpoints 403), audio-features 403 with a
  bare body, /playlists/{id}/items pages of 50 with `item`, no popularity/followers/label/markets,
  search at most 10 a call, artist albums `limit` at most 10, 403 for playlists the user does not own
  (and for every playlist with a client-credentials token).

The user's own playlists can be created (`POST /me/playlists`, or `/users/{id}/playlists`) and their items
replaced, added to, reordered or removed (`PUT`/`POST`/`DELETE /playlists/{id}/items`, and `/tracks` in the
extended generation), 100 per request, with a user token that grants `playlist-modify-private` (or
`-public` for a public playlist).

Tokens: client credentials, and authorization code with PKCE and refresh (`/authorize` approves at
once and redirects, so a login can run headless). Faults are switched by flags or at run time with
`POST /_sandbox/faults` (see `Faults`; `outage_seconds` and `removed` only there); `GET /_sandbox/stats`
counts the requests per endpoint and the answers each fault spoilt.
"""

import base64
import hashlib
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from producers.sandbox.catalogue import BASE62, SANDBOX_USER, Catalogue
from producers.sandbox.fields import FieldsError, parse_fields, select_fields
from producers.sandbox.listener import TIME_RANGE_DAYS, Listener, iso
from producers.settings import DEFAULT_REDIRECT_URI

if TYPE_CHECKING:
    from producers.settings import ProducerSettings

log = logging.getLogger(__name__)

Generation = Literal["extended", "development"]
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - the sandbox's own, public test credential
LIMITS: dict[Generation, dict[str, int]] = {
    "extended": {
        **{"playlist_page": 100, "search": 50, "artist_albums": 50, "default_limit": 20},
        **{"tracks": 50, "artists": 50, "albums": 20},
    },
    # default_limit: of search and artist albums when `limit` is not given (development: 5, at most 10)
    "development": {
        **{"playlist_page": 50, "search": 10, "artist_albums": 10, "default_limit": 5},
        **{"tracks": 0, "artists": 0, "albums": 0},
    },
}
RECCOBEATS_MAX_IDS = 40
AUDIO_FEATURES_MAX_IDS = 100


@dataclass
class Faults:
    """What goes wrong, counted down per API request (`/v1/...`); all off by default."""

    rate_limit: int = 0  # the next N API requests answer 429
    retry_after: int = 1  # ... with this Retry-After (seconds)
    quota_exceeded: bool = False  # ... with reason QUOTA_EXCEEDED
    server_errors: int = 0  # the next N API requests answer 503
    malformed: int = 0  # the next N API requests answer 200 with a body that is not JSON
    slow_ms: int = 0  # every API request waits this long first
    expire_tokens: bool = False  # set: every access token issued so far expires at once (401)
    invalid_grant: bool = False  # refresh tokens are refused with invalid_grant
    token_ttl: int = 3600  # expires_in of new access tokens
    outage_seconds: float = 0  # set: every API request answers 503 for this long from now (longer than retries)
    removed: dict[str, int] = field(default_factory=dict)  # endpoint (as counted in stats) -> 403 or 404 for good


@dataclass
class Token:
    kind: Literal["client", "user"]
    expires_at: float
    scope: str = ""  # what the user granted (space-separated), for the endpoints that need a scope


@dataclass
class SandboxState:
    catalogue: Catalogue
    generation: Generation
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    faults: Faults = field(default_factory=Faults)
    tokens: dict[str, Token] = field(default_factory=dict)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> (challenge, redirect_uri, scope)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> the scope it grants
    unfollowed: set[str] = field(default_factory=set)  # other users' playlists the user does not follow
    revoked_refresh_tokens: set[str] = field(default_factory=set)  # rotated away: refused from now on
    # the app's registered redirect URIs, matched exactly (`localhost` is refused in any case)
    redirect_uris: list[str] = field(default_factory=lambda: [DEFAULT_REDIRECT_URI])
    requests: Counter[str] = field(default_factory=Counter)
    faulted: Counter[str] = field(default_factory=Counter)  # answers spoilt on purpose, per fault
    outage_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    listening_rate: float = 0.0  # the listener's plays per hour of real time (besides POST /_sandbox/listen)
    listening: Listener | None = None  # made on first use (`listener`)

    @property
    def listener(self) -> Listener:
        """The authorised user's listening (producers.sandbox.listener), made on first use."""
        if self.listening is None:
            self.listening = Listener(self.catalogue, plays_per_hour=self.listening_rate)
        self.listening.catch_up()
        return self.listening

    @property
    def limits(self) -> dict[str, int]:
        return LIMITS[self.generation]

    def issue_token(self, kind: Literal["client", "user"], scope: str = "") -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = Token(kind, time.time() + self.faults.token_ttl, scope)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.faults.token_ttl}


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
        self.headers = headers or {}


MARKETS = ["DE", "GB", "US"]
LOCAL, EPISODE, GONE = "<local file>", "<episode>", "<gone>"  # entries of a playlist that are not catalogue tracks
SHOW_ID, EPISODE_ID = "5CfCWKI5pZ28U0uOzXkDHe", "512ojhOuo1ktJprKbVcKyQ"


def stable_number(text: str) -> int:
    """A number derived from `text`, the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def images(item_id: str) -> list[dict[str, Any]]:
    """Spotify's three sizes of an album's or artist's picture."""
    return [
        {"url": f"https://i.scdn.co/image/{stable_number(item_id) + size:040x}", "height": size, "width": size}
        for size in (640, 300, 64)
    ]


def local_file() -> dict[str, Any]:
    """A local file in a playlist: no id, no uri of the catalogue, an album and artist without ids."""
    return {
        "id": None,
        "type": "track",
        "uri": "spotify:local:Someone:Home+Recordings:Demo+Take:187",
        "href": None,
        "name": "Demo Take",
        "is_local": True,
        "duration_ms": 187000,
        "explicit": False,
        "disc_number": 0,
        "track_number": 0,
        "preview_url": None,
        "popularity": 0,
        "available_markets": [],
        "external_ids": {},
        "external_urls": {},
        "artists": [{"id": None, "name": "Someone", "type": "artist", "uri": None, "href": None, "external_urls": {}}],
        "album": {
            "id": None,
            "name": "Home Recordings",
            "type": "album",
            "album_type": None,
            "uri": None,
            "href": None,
            "release_date": None,
            "release_date_precision": None,
            "total_tracks": None,
            "available_markets": [],
            "images": [],
            "external_urls": {},
            "artists": [],
        },
    }


def release_date(album: dict[str, Any]) -> tuple[str, str]:
    """An album's release date and its precision: as on Spotify, older albums often carry only a year
    (`1967`) or a month (`1981-03`); about a third of those before 1990 here."""
    released = str(album["release_date"])
    if released < "1990":
        draw = stable_number(album["name"] + released) % 6
        if draw == 0:
            return released[:4], "year"
        if draw == 1:
            return released[:7], "month"
    return released, "day"


def snapshot_id(playlist: dict[str, Any]) -> str:
    digest = hashlib.sha256(f"{playlist['id']}:{playlist['version']}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


class SandboxHandler(BaseHTTPRequestHandler):
    server: "SandboxServer"
    protocol_version = "HTTP/1.1"
    body: bytes | None = None  # the current request's, once read

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox: " + format, *args)

    # --- plumbing ---

    @property
    def state(self) -> SandboxState:
        return self.server.state

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(body).encode(), headers)

    def send_bytes(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes:
        """The request's body, read once (dispatch reads it first, so an answer given before a handler looks
        at the body never leaves it unread on a kept-alive connection)."""
        if self.body is None:
            self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self.body

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        self.body = None
        self.read_body()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            for route_method, pattern, name, handler in ROUTES:
                match = re.fullmatch(pattern, path)
                if route_method == method and match:
                    with self.state.lock:
                        self.state.requests[name] += 1
                    if path.startswith("/v1/"):
                        self.apply_faults(name)
                    handler(self, query, *match.groups())
                    return
            raise ApiError(404, "Service not found")
        except ApiError as error:
            body = (
                error.body
                if error.body is not None
                else json.dumps({"error": {"status": error.status, "message": error.message}}).encode()
            )
            self.send_bytes(error.status, body, error.headers)

    def apply_faults(self, endpoint: str) -> None:
        faults, faulted = self.state.faults, self.state.faulted
        if faults.slow_ms:
            time.sleep(faults.slow_ms / 1000)
        with self.state.lock:
            if endpoint in faults.removed:
                faulted["removed"] += 1
                raise ApiError(
                    faults.removed[endpoint], "Service not found" if faults.removed[endpoint] == 404 else "Forbidden"
                )
            if time.time() < self.state.outage_until:
                faulted["outage"] += 1
                raise ApiError(503, "Service unavailable")
            if faults.rate_limit > 0:
                faults.rate_limit -= 1
                faulted["429"] += 1
                error: dict[str, Any] = {"status": 429, "message": "API rate limit exceeded"}
                if faults.quota_exceeded:
                    error = {"status": 429, "message": "Quota exceeded", "reason": "QUOTA_EXCEEDED"}
                raise ApiError(
                    429,
                    error["message"],
                    json.dumps({"error": error}).encode(),
                    {"Retry-After": str(faults.retry_after)},
                )
            if faults.server_errors > 0:
                faults.server_errors -= 1
                faulted["503"] += 1
                raise ApiError(503, "Service unavailable")
            if faults.malformed > 0:
                faults.malformed -= 1
                faulted["malformed"] += 1
                raise ApiError(200, "malformed", b'{"items": [{"id": "trunc')
        self.authorise()

    def authorise(self) -> Token:
        header = self.headers.get("Authorization", "")
        token = self.state.tokens.get(header.removeprefix("Bearer ").strip())
        if token is None:
            raise ApiError(401, "Invalid access token")
        if token.expires_at < time.time():
            raise ApiError(401, "The access token expired")
        return token

    # --- accounts ---

    def token(self, _query: dict[str, str]) -> None:
        form = {k: v[-1] for k, v in parse_qs(self.read_body().decode()).items()}
        grant = form.get("grant_type")
        state = self.state
        if grant == "client_credentials":
            auth = self.headers.get("Authorization", "")
            expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
            if auth != f"Basic {expected}":
                self.send_json(400, {"error": "invalid_client", "error_description": "Invalid client"})
                return
            self.send_json(200, state.issue_token("client"))
            return
        if grant == "authorization_code":
            pending = state.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if pending is None or pending[:2] != (challenge, form.get("redirect_uri")):
                self.send_json(400, {"error": "invalid_grant", "error_description": "Invalid authorization code"})
                return
            refresh = secrets.token_urlsafe(24)
            state.refresh_tokens[refresh] = pending[2]
            answer = {**state.issue_token("user", pending[2]), "refresh_token": refresh, "scope": pending[2]}
            self.send_json(200, answer)
            return
        if grant == "refresh_token":
            self.refresh(form)
            return
        self.send_json(400, {"error": "unsupported_grant_type"})

    def refresh(self, form: dict[str, str]) -> None:
        """A PKCE refresh, as Spotify answers it: a new access token and a new refresh token; the old refresh
        token is revoked (a second use: 400 invalid_grant "Refresh token revoked")."""
        state = self.state
        if state.faults.invalid_grant:  # the login expired (6 months after it was given)
            self.send_json(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
            return
        used = form.get("refresh_token", "")
        scope = state.refresh_tokens.pop(used, None)
        if scope is None:  # used before: rotated away and revoked
            self.send_json(400, {"error": "invalid_grant", "error_description": "Refresh token revoked"})
            return
        state.revoked_refresh_tokens.add(used)
        rotated = secrets.token_urlsafe(24)
        state.refresh_tokens[rotated] = scope
        self.send_json(200, {**state.issue_token("user", scope), "refresh_token": rotated, "scope": scope})

    def authorize(self, query: dict[str, str]) -> None:
        """Approves at once: redirects to redirect_uri with a code bound to the PKCE challenge."""
        if query.get("client_id") != self.state.client_id or query.get("code_challenge_method") != "S256":
            raise ApiError(400, "INVALID_CLIENT: Invalid client or missing PKCE")
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).hostname == "localhost" or not redirect_uri.startswith(("http://", "https://")):
            raise ApiError(400, "INVALID_CLIENT: Insecure redirect URI")  # since 2025-11-27
        if redirect_uri not in self.state.redirect_uris:
            raise ApiError(400, "INVALID_CLIENT: Invalid redirect URI")
        code = secrets.token_urlsafe(16)
        pending = (query.get("code_challenge", ""), query.get("redirect_uri", ""), query.get("scope", ""))
        self.state.codes[code] = pending
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- objects in the generation's shape ---

    @property
    def extended(self) -> bool:
        return self.state.generation == "extended"

    def links(self, kind: str, item_id: str) -> dict[str, Any]:
        """The fields every Spotify object carries: id, type, uri, href (absolute), external_urls."""
        return {
            "id": item_id,
            "type": kind,
            "uri": f"spotify:{kind}:{item_id}",
            "href": f"{self.base_url}/v1/{kind}s/{item_id}",
            "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{item_id}"},
        }

    def artist_ref(self, artist_id: str) -> dict[str, Any]:
        artist = self.state.catalogue.artists[artist_id]
        return {**self.links("artist", artist_id), "name": artist["name"]}

    def artist_obj(self, artist_id: str) -> dict[str, Any]:
        artist = self.state.catalogue.artists[artist_id]
        obj = {**self.artist_ref(artist_id), "genres": artist["genres"], "images": images(artist_id)}
        if self.extended:
            obj.update(popularity=artist["popularity"], followers={"href": None, "total": artist["followers"]})
        return obj

    def album_ref(self, album_id: str) -> dict[str, Any]:
        album = self.state.catalogue.albums[album_id]
        released, precision = release_date(album)
        return {
            **self.links("album", album_id),
            "name": album["name"],
            "album_type": "single" if len(album["track_ids"]) < 3 else "album",
            "total_tracks": len(album["track_ids"]),
            "available_markets": MARKETS,
            "images": images(album_id),
            "release_date": released,
            "release_date_precision": precision,
            "artists": [self.artist_ref(a) for a in album["artist_ids"]],
        }

    def album_obj(self, album_id: str) -> dict[str, Any]:
        album = self.state.catalogue.albums[album_id]
        obj = self.album_ref(album_id)
        tracks = [self.track_obj(t, simplified=True) for t in album["track_ids"]]
        obj["tracks"] = self.page(tracks, 0, 50, f"{self.base_url}/v1/albums/{album_id}/tracks")
        year = obj["release_date"][:4]
        obj["copyrights"] = [{"text": f"(C) {year} {album['label']}", "type": "C"}]
        obj["external_ids"] = {"upc": f"{stable_number(album_id) % 10**12:012d}"}
        obj["genres"] = []  # Spotify serves an empty list: genres live on artists
        if self.extended:
            obj.update(label=album["label"], popularity=album["popularity"])
        return obj

    def track_obj(self, track_id: str, simplified: bool = False) -> dict[str, Any]:
        track = self.state.catalogue.tracks[track_id]
        obj: dict[str, Any] = {
            **self.links("track", track_id),
            "name": track["name"],
            "duration_ms": track["duration_ms"],
            "explicit": track["explicit"],
            "disc_number": 1,
            "track_number": track["track_number"],
            "preview_url": None,  # gone for every app since Nov 2024
            "is_local": False,
            "artists": [self.artist_ref(a) for a in track["artist_ids"]],
        }
        if self.extended:
            obj["available_markets"] = MARKETS
        if not simplified:
            obj["album"] = self.album_ref(track["album_id"])
            obj["external_ids"] = {"isrc": track["isrc"]}
            if self.extended:
                obj["popularity"] = track["popularity"]
        return obj

    def page(
        self, items: list[Any], offset: int, limit: int, base: str, make: Callable[[Any], Any] | None = None
    ) -> dict[str, Any]:
        """A paging object; `href`, `next` and `previous` are absolute URLs of this same request. `make`
        turns the page's items (ids, entries) into API objects: only those of the page are built."""

        def link(at: int) -> str:
            return f"{base}{'&' if '?' in base else '?'}offset={at}&limit={limit}"

        following = offset + limit
        return {
            "href": link(offset),
            "items": [make(i) for i in items[offset:following]] if make else items[offset:following],
            "limit": limit,
            "offset": offset,
            "total": len(items),
            "next": link(following) if following < len(items) else None,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
        }

    def paging_args(self, query: dict[str, str], default: int, maximum: int) -> tuple[int, int]:
        try:
            limit, offset = int(query.get("limit", default)), int(query.get("offset", 0))
        except ValueError:
            raise ApiError(400, "Invalid limit") from None
        if not 1 <= limit <= maximum or offset < 0:
            raise ApiError(400, "Invalid limit")
        return limit, offset

    def ids(self, query: dict[str, str], maximum: int) -> list[str]:
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids or len(ids) > maximum:
            raise ApiError(400, "Invalid ids")
        return ids

    # --- the Web API ---

    def user_obj(self, user_id: str) -> dict[str, Any]:
        name = "Sandbox User" if user_id == SANDBOX_USER else "Someone Else"
        return {**self.links("user", user_id), "display_name": name}

    def me(self, _query: dict[str, str]) -> None:
        if self.authorise().kind != "user":
            raise ApiError(401, "This endpoint needs a user access token")
        user = {
            **self.user_obj(SANDBOX_USER),
            "country": "DE",
            "email": "sandbox-user@example.com",
            "explicit_content": {"filter_enabled": False, "filter_locked": False},
            "followers": {"href": None, "total": 3},
            "images": [],
            "product": "premium",
        }
        self.send_json(200, user)

    def me_playlists(self, query: dict[str, str]) -> None:
        """The playlists the user owns or follows (Spotify lists both)."""
        if self.authorise().kind != "user":
            raise ApiError(401, "This endpoint needs a user access token")
        limit, offset = self.paging_args(query, 20, 50)
        listed = [
            self.playlist_summary(p)
            for p in self.state.catalogue.playlists.values()
            if p["owner"] == SANDBOX_USER or p["id"] not in self.state.unfollowed
        ]
        self.send_json(200, self.page(listed, offset, limit, f"{self.base_url}/v1/me/playlists"))

    def me_tracks(self, query: dict[str, str]) -> None:
        """Saved tracks, newest first."""
        if self.authorise().kind != "user":
            raise ApiError(401, "This endpoint needs a user access token")
        limit, offset = self.paging_args(query, 20, 50)
        saved = sorted(self.state.catalogue.favourites)[:60]
        items = [
            {"added_at": f"2026-01-{1 + i % 28:02d}T12:{i // 28:02d}:00Z", "track": self.track_obj(t)}
            for i, t in enumerate(saved)
        ]
        if self.state.listening is not None:  # what the listener saved since (newer than every older save)
            with self.state.lock:
                listened = list(self.state.listener.saved)
            items += [{"added_at": at, "track": self.track_obj(t)} for at, t in listened if t not in saved]
        items.reverse()
        self.send_json(200, self.page(items, offset, limit, f"{self.base_url}/v1/me/tracks"))

    def playlist_summary(self, playlist: dict[str, Any]) -> dict[str, Any]:
        key = "tracks" if self.extended else "items"
        items_href = f"{self.base_url}/v1/playlists/{playlist['id']}/{key}"
        return {
            **self.links("playlist", playlist["id"]),
            "name": playlist["name"],
            "description": playlist.get("description", ""),
            "collaborative": False,
            "public": playlist.get("public", playlist["owner"] != SANDBOX_USER),
            "images": images(playlist["id"])[:1],
            "snapshot_id": snapshot_id(playlist),
            "owner": self.user_obj(playlist["owner"]),
            key: {"href": items_href, "total": len(self.playlist_entries(playlist))},
        }

    def playlist_entries(self, playlist: dict[str, Any]) -> list[tuple[str, str | None]]:
        """(what, added_at) of each entry: as in real playlists, a user's own mixes also hold a local file,
        a podcast episode, an entry whose track is gone (`null`), a track added twice, and, in old
        playlists, entries without `added_at`."""
        if "added_at" in playlist:  # created through the API: exactly what was put in, when it was
            return [(t, added) for t, added in zip(playlist["track_ids"], playlist["added_at"], strict=True)]
        entries: list[tuple[str, str | None]] = [(t, "2026-02-01T00:00:00Z") for t in playlist["track_ids"]]
        if playlist["owner"] == SANDBOX_USER and not playlist.get("favourite") and entries:
            entries[0] = (entries[0][0], None)
            entries += [(LOCAL, "2026-02-02T00:00:00Z"), (EPISODE, "2026-02-02T00:00:00Z"), (GONE, None)]
            entries.append((playlist["track_ids"][-1], "2026-02-03T00:00:00Z"))
        return entries

    def playlist_entry(self, what: str, added_at: str | None, *, key: str) -> dict[str, Any]:
        added_by = None if added_at is None else self.user_obj(SANDBOX_USER)
        entry: dict[str, Any] = {"added_at": added_at, "added_by": added_by, "is_local": what == LOCAL}
        if what == GONE:
            entry[key] = None
        elif what == LOCAL:
            entry[key] = local_file()
        elif what == EPISODE:
            entry[key] = self.episode_obj()
        else:
            entry[key] = self.track_obj(what)
        return entry

    def episode_obj(self) -> dict[str, Any]:
        show = {
            **self.links("show", SHOW_ID),
            "name": "The Sandbox Podcast",
            "publisher": "Sandbox",
            "description": "A podcast in a playlist.",
            "html_description": "<p>A podcast in a playlist.</p>",
            "available_markets": MARKETS,
            "copyrights": [],
            "explicit": False,
            "images": images(SHOW_ID),
            "is_externally_hosted": False,
            "languages": ["en"],
            "media_type": "audio",
            "total_episodes": 1,
        }
        return {
            **self.links("episode", EPISODE_ID),
            "name": "Episode 1",
            "description": "An episode.",
            "html_description": "<p>An episode.</p>",
            "audio_preview_url": None,
            "duration_ms": 1_800_000,
            "explicit": False,
            "images": images(EPISODE_ID),
            "is_externally_hosted": False,
            "is_playable": True,
            "languages": ["en"],
            "release_date": "2025",
            "release_date_precision": "year",
            "show": show,
        }

    def find_playlist(self, playlist_id: str) -> dict[str, Any]:
        playlist = self.state.catalogue.playlists.get(playlist_id)
        if playlist is None:
            raise ApiError(404, "Resource not found")
        return playlist

    def may_read_items(self, playlist: dict[str, Any]) -> bool:
        """Development mode shows the items of the user's own playlists only, and never to client credentials."""
        token = self.authorise()
        return self.extended or (token.kind == "user" and playlist["owner"] == SANDBOX_USER)

    def playlist(self, query: dict[str, str], playlist_id: str) -> None:
        """A playlist's metadata and its first page of items (only the metadata where items may not be shown);
        only the `fields` asked for, when a client names them."""
        self.send_json(200, self.only_fields(query, self.playlist_obj(self.find_playlist(playlist_id))))

    @staticmethod
    def only_fields(query: dict[str, str], answer: dict[str, Any]) -> Any:
        """`answer` filtered by the request's `fields` (as Spotify does: a field not asked for is not sent)."""
        if not query.get("fields"):
            return answer
        try:
            return select_fields(answer, parse_fields(query["fields"]))
        except FieldsError as exc:
            raise ApiError(400, f"Invalid fields: {exc}") from None

    def playlist_obj(self, playlist: dict[str, Any]) -> dict[str, Any]:
        key, entry_key = ("tracks", "track") if self.extended else ("items", "item")
        followers = 0 if playlist.get("by_app") else stable_number(playlist["id"]) % 1000
        obj = {**self.playlist_summary(playlist), "followers": {"href": None, "total": followers}}
        if self.may_read_items(playlist):
            obj[key] = self.entries_page(playlist, 0, self.state.limits["playlist_page"], key, entry_key)
        else:
            del obj[key]  # metadata only: no items, not even their count
        return obj

    def playlist_tracks(self, query: dict[str, str], playlist_id: str) -> None:
        if not self.extended:
            raise ApiError(404, "Service not found")  # became /items in 2026
        self.playlist_page(query, playlist_id, "tracks", "track")

    def playlist_items(self, query: dict[str, str], playlist_id: str) -> None:
        self.playlist_page(query, playlist_id, "items", "item")

    def playlist_page(self, query: dict[str, str], playlist_id: str, path: str, key: str) -> None:
        playlist = self.find_playlist(playlist_id)
        if not self.may_read_items(playlist):
            raise ApiError(403, "Forbidden")
        maximum = self.state.limits["playlist_page"]
        limit, offset = self.paging_args(query, maximum, maximum)
        self.send_json(200, self.only_fields(query, self.entries_page(playlist, offset, limit, path, key)))

    def entries_page(self, playlist: dict[str, Any], offset: int, limit: int, path: str, key: str) -> dict[str, Any]:
        """One page of a playlist's entries under /playlists/{id}/`path`, each entry's object under `key`."""
        base = f"{self.base_url}/v1/playlists/{playlist['id']}/{path}"
        entries = self.playlist_entries(playlist)
        return self.page(entries, offset, limit, base, lambda entry: self.playlist_entry(*entry, key=key))

    def batch(
        self, query: dict[str, str], kind: str, make: Callable[[str], dict[str, Any]], table: dict[str, Any]
    ) -> None:
        maximum = self.state.limits[kind]
        if not maximum:
            raise ApiError(403, "Forbidden")  # batch endpoints are gone in development mode
        self.authorise()
        ids = self.ids(query, maximum)
        self.send_json(200, {kind: [make(i) if i in table else None for i in ids]})

    def tracks(self, query: dict[str, str]) -> None:
        self.batch(query, "tracks", self.track_obj, self.state.catalogue.tracks)

    def artists(self, query: dict[str, str]) -> None:
        self.batch(query, "artists", self.artist_obj, self.state.catalogue.artists)

    def albums(self, query: dict[str, str]) -> None:
        self.batch(query, "albums", self.album_obj, self.state.catalogue.albums)

    def one(self, table: dict[str, Any], item_id: str, make: Callable[[str], dict[str, Any]]) -> None:
        self.authorise()
        if item_id not in table:
            raise ApiError(404, "Resource not found")
        self.send_json(200, make(item_id))

    def track(self, _query: dict[str, str], track_id: str) -> None:
        self.one(self.state.catalogue.tracks, track_id, self.track_obj)

    def artist(self, _query: dict[str, str], artist_id: str) -> None:
        self.one(self.state.catalogue.artists, artist_id, self.artist_obj)

    def album(self, _query: dict[str, str], album_id: str) -> None:
        self.one(self.state.catalogue.albums, album_id, self.album_obj)

    def audio_features(self, query: dict[str, str]) -> None:
        if not self.extended:
            raise ApiError(403, "Forbidden", body=b"")  # gone for new apps since Nov 2024: a bare 403
        self.authorise()
        catalogue = self.state.catalogue
        ids = self.ids(query, AUDIO_FEATURES_MAX_IDS)
        features = [
            {"id": i, "type": "audio_features", **catalogue.audio_features[i]} if i in catalogue.tracks else None
            for i in ids
        ]
        self.send_json(200, {"audio_features": features})

    def artist_albums(self, query: dict[str, str], artist_id: str) -> None:
        self.authorise()
        if artist_id not in self.state.catalogue.artists:
            raise ApiError(404, "Resource not found")
        limits = self.state.limits
        limit, offset = self.paging_args(query, limits["default_limit"], limits["artist_albums"])
        albums = [
            {**self.album_ref(a), "album_group": "album"}
            for a, album in self.state.catalogue.albums.items()
            if artist_id in album["artist_ids"]
        ]
        base = f"{self.base_url}/v1/artists/{artist_id}/albums"
        if "include_groups" in query:
            base += f"?{urlencode({'include_groups': query['include_groups']})}"
        self.send_json(200, self.page(albums, offset, limit, base))

    def album_tracks(self, query: dict[str, str], album_id: str) -> None:
        self.authorise()
        album = self.state.catalogue.albums.get(album_id)
        if album is None:
            raise ApiError(404, "Resource not found")
        limit, offset = self.paging_args(query, 20, 50)
        items = [self.track_obj(t, simplified=True) for t in album["track_ids"]]
        self.send_json(200, self.page(items, offset, limit, f"{self.base_url}/v1/albums/{album_id}/tracks"))

    def search(self, query: dict[str, str]) -> None:
        """Tracks, albums and artists matching `q` with Spotify's filters (see `search_catalogue`)."""
        self.authorise()
        limits = self.state.limits
        limit, offset = self.paging_args(query, limits["default_limit"], limits["search"])
        kinds = [k for k in query.get("type", "").split(",") if k]
        if not query.get("q") or not kinds or offset + limit > 1000 or not set(kinds) <= {"track", "album", "artist"}:
            raise ApiError(400, "Bad search request: q and a type of track, album or artist are needed")
        found = search_catalogue(self.state.catalogue, query["q"])
        base = f"{self.base_url}/v1/search?{urlencode({'q': query['q'], 'type': query['type']})}"
        make: dict[str, Callable[[str], dict[str, Any]]] = {
            "track": self.track_obj,
            "album": self.album_ref,
            "artist": self.artist_obj,
        }
        self.send_json(200, {f"{kind}s": self.page(found[kind], offset, limit, base, make[kind]) for kind in kinds})

    def reccobeats(self, query: dict[str, str]) -> None:
        catalogue = self.state.catalogue
        ids = self.ids(query, RECCOBEATS_MAX_IDS)
        content = []
        for spotify_id in ids:
            track = catalogue.tracks.get(spotify_id)
            if track is None or not track["reccobeats"]:
                continue  # ReccoBeats omits ids it does not know
            features = {k: v for k, v in catalogue.audio_features[spotify_id].items() if k != "time_signature"}
            content.append(
                {
                    "id": hashlib.md5(spotify_id.encode()).hexdigest(),  # noqa: S324 - an id, not security
                    "href": f"https://open.spotify.com/track/{spotify_id}",
                    **features,
                }
            )
        self.send_json(200, {"content": content})

    # --- listening (producers.sandbox.listener) ---

    def require_scope(self, scope: str) -> None:
        token = self.authorise()
        if token.kind != "user":
            raise ApiError(401, "This endpoint needs a user access token")
        if scope not in token.scope.split():
            raise ApiError(403, "Insufficient client scope")

    def recently_played(self, query: dict[str, str]) -> None:
        """The last 50 plays at most, newest first, cursor-paged: `after` (plays after that moment, in ms: the
        oldest `limit` of them) or `before` (the newest `limit` plays before it), not both."""
        self.require_scope("user-read-recently-played")
        limit, _ = self.paging_args({k: v for k, v in query.items() if k == "limit"}, 20, 50)
        if "after" in query and "before" in query:
            raise ApiError(400, "Only one of after and before can be specified")
        try:
            after, before = int(query.get("after", -1)), int(query.get("before", 2**62))
        except ValueError:
            raise ApiError(400, "Invalid cursor") from None
        with self.state.lock:
            recent = self.state.listener.recent()  # newest first
        if "after" in query:
            later = [p for p in recent if p.played_at_ms > after]
            shown, more = later[-limit:], len(later) > limit
        else:
            earlier = [p for p in recent if p.played_at_ms < before]
            shown, more = earlier[:limit], len(earlier) > limit
        base = f"{self.base_url}/v1/me/player/recently-played"
        # no plays in the page: no cursors (an empty object: the description has no null cursors)
        cursors = {"after": str(shown[0].played_at_ms), "before": str(shown[-1].played_at_ms)} if shown else {}
        following = None
        if more and cursors:
            following = (
                f"{base}?after={cursors['after']}&limit={limit}"
                if "after" in query
                else f"{base}?before={cursors['before']}&limit={limit}"
            )
        items = [{"track": self.track_obj(p.track_id), "played_at": iso(p.played_at_ms)} for p in shown]
        for item, p in zip(items, shown, strict=True):
            if p.context is not None:  # the description has no null context: a play outside one has none
                item["context"] = {
                    "type": "playlist",
                    "href": f"{self.base_url}/v1/playlists/{p.context}",
                    "external_urls": {"spotify": f"https://open.spotify.com/playlist/{p.context}"},
                    "uri": f"spotify:playlist:{p.context}",
                }
        href = f"{base}?{urlencode({k: v for k, v in query.items() if k in ('after', 'before', 'limit')})}"
        self.send_json(200, {"href": href, "items": items, "limit": limit, "next": following, "cursors": cursors})

    def top_tracks(self, query: dict[str, str]) -> None:
        """The user's top tracks of a time range (short_term: 4 weeks, medium_term: 6 months, long_term)."""
        self.require_scope("user-top-read")
        time_range = query.get("time_range", "medium_term")
        if time_range not in TIME_RANGE_DAYS:
            raise ApiError(400, "Invalid time range")
        limit, offset = self.paging_args(query, 20, 50)
        with self.state.lock:
            ranked = self.state.listener.top_tracks(time_range, int(time.time() * 1000))
        base = f"{self.base_url}/v1/me/top/tracks?{urlencode({'time_range': time_range})}"
        self.send_json(200, self.page(ranked, offset, limit, base, self.track_obj))

    # --- writes: playlists the user creates and changes (scope playlist-modify-private / -public) ---

    def may_modify(self, public: bool) -> None:
        """A user token granting playlist-modify-public (a public playlist) or -private (a private one)."""
        token = self.authorise()
        if token.kind != "user":
            raise ApiError(401, "This endpoint needs a user access token")
        granted = set(token.scope.split())
        needed = {"playlist-modify-public"} if public else {"playlist-modify-private"}
        if not needed & granted:
            raise ApiError(403, "Insufficient client scope")

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.read_body() or b"{}")
        except ValueError:
            raise ApiError(400, "Error parsing JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Error parsing JSON.")
        return body

    def create_playlist(self, owner: str) -> None:
        body = self.json_body()
        public = bool(body.get("public", True))
        self.may_modify(public)
        if owner != SANDBOX_USER:
            raise ApiError(403, "You cannot create a playlist for another user")
        if not str(body.get("name") or "").strip():
            raise ApiError(400, "Missing required field: name")
        playlist_id = "".join(secrets.choice(BASE62) for _ in range(22))
        playlist = {
            "id": playlist_id,
            "name": str(body["name"]),
            "description": str(body.get("description") or ""),
            "public": public,
            "owner": SANDBOX_USER,
            "favourite": False,
            "by_app": True,  # the listener plays the playlists an app made for the user
            "track_ids": [],
            "added_at": [],
            "version": 1,
        }
        with self.state.lock:
            self.state.catalogue.playlists[playlist_id] = playlist
        self.send_json(201, self.playlist_obj(playlist))

    def create_my_playlist(self, _query: dict[str, str]) -> None:
        self.create_playlist(SANDBOX_USER)

    def create_user_playlist(self, _query: dict[str, str], user_id: str) -> None:
        self.create_playlist(user_id)

    def own_playlist(self, playlist_id: str) -> dict[str, Any]:
        """The user's own playlist, which the token may change (its scope as the playlist's visibility needs)."""
        playlist = self.find_playlist(playlist_id)
        self.may_modify(bool(playlist.get("public", playlist["owner"] != SANDBOX_USER)))
        if playlist["owner"] != SANDBOX_USER:
            raise ApiError(403, "You cannot modify a playlist you do not own")
        return playlist

    def entries_of(self, uris: list[Any]) -> list[str]:
        """The playlist entries that a write's URIs name, at most 100 a request: catalogue tracks, and the
        catalogue's podcast episode (the description: "can be track or episode URIs")."""
        if len(uris) > 100:
            raise ApiError(400, "Too many ids requested")
        entries = []
        for uri in uris:
            kind, _, item_id = str(uri).removeprefix("spotify:").partition(":")
            if kind not in ("track", "episode") or not re.fullmatch(r"[0-9A-Za-z]{22}", item_id):
                raise ApiError(400, f"Invalid track uri: {uri}")
            if kind == "episode":
                if item_id != EPISODE_ID:
                    raise ApiError(400, f"Invalid episode uri: {uri}")
                entries.append(EPISODE)
                continue
            if item_id not in self.state.catalogue.tracks:
                raise ApiError(400, f"Invalid track uri: {uri}")
            entries.append(item_id)
        return entries

    def check_snapshot(self, playlist: dict[str, Any], body: dict[str, Any]) -> None:
        """A `snapshot_id` in a write must be one of this playlist's (any earlier version, as Spotify applies a
        change against the snapshot it names)."""
        given = body.get("snapshot_id")
        if given is not None and given not in {
            snapshot_id({**playlist, "version": v}) for v in range(1, playlist["version"] + 1)
        }:
            raise ApiError(400, "Invalid snapshot id")

    @staticmethod
    def settle(playlist: dict[str, Any]) -> None:
        """A playlist from the catalogue takes the shape of one written through the API (each entry with its
        `added_at`) before its entries are moved or removed one by one."""
        if "added_at" not in playlist:
            playlist["added_at"] = ["2026-02-01T00:00:00Z"] * len(playlist["track_ids"])

    def changed(self, playlist: dict[str, Any], status: int) -> None:
        playlist["changed_ms"] = int(time.time() * 1000)  # the listener plays its tracks only after this
        playlist["version"] += 1
        self.send_json(status, {"snapshot_id": snapshot_id(playlist)})

    def replace_items(self, query: dict[str, str], playlist_id: str) -> None:
        """PUT: replace the items (`uris` in the query, else in the body), or reorder a range of them
        (`range_start`, `insert_before`, `range_length`, `snapshot_id`): never both in one request."""
        playlist, body = self.own_playlist(playlist_id), self.json_body()
        if "uris" not in query and "uris" not in body and "range_start" in body:
            self.reorder_items(playlist, body)
            return
        if "range_start" in body:
            raise ApiError(400, "Replace and reorder cannot be applied together")
        track_ids = self.entries_of(query["uris"].split(",") if "uris" in query else list(body.get("uris") or []))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.state.lock:
            playlist["track_ids"] = track_ids
            playlist["added_at"] = [now] * len(track_ids)
            self.changed(playlist, 200)

    def reorder_items(self, playlist: dict[str, Any], body: dict[str, Any]) -> None:
        try:
            start, before = int(body["range_start"]), int(body["insert_before"])
            length = int(body.get("range_length") or 1)
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "range_start and insert_before must be integers") from None
        with self.state.lock:
            self.check_snapshot(playlist, body)
            self.settle(playlist)
            count = len(playlist["track_ids"])
            if start < 0 or length < 1 or start + length > count or not 0 <= before <= count:
                raise ApiError(400, "Index out of bounds")
            for key in ("track_ids", "added_at"):
                entries = playlist[key]
                moved, rest = entries[start : start + length], entries[:start] + entries[start + length :]
                at = before if before <= start else max(before - length, start)
                playlist[key] = rest[:at] + moved + rest[at:]
            self.changed(playlist, 200)

    def add_items(self, query: dict[str, str], playlist_id: str) -> None:
        playlist, body = self.own_playlist(playlist_id), self.json_body()
        track_ids = self.entries_of(query["uris"].split(",") if "uris" in query else list(body.get("uris") or []))
        position = query.get("position", body.get("position"))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.state.lock:
            at = len(playlist["track_ids"]) if position is None else int(position)
            if not 0 <= at <= len(playlist["track_ids"]):
                raise ApiError(400, "Index out of bounds")
            playlist["track_ids"][at:at] = track_ids
            if "added_at" in playlist:
                playlist["added_at"][at:at] = [now] * len(track_ids)
            self.changed(playlist, 201)

    def remove_items(self, playlist_id: str, key: str) -> None:
        """DELETE: every occurrence of each URI in the body's `key` list (`items` in 2026, `tracks` before), or
        only the occurrences at its `positions`, at most 100 objects a request."""
        playlist, body = self.own_playlist(playlist_id), self.json_body()
        named = body.get(key)
        if not isinstance(named, list) or not all(isinstance(o, dict) and "uri" in o for o in named):
            raise ApiError(400, f"Missing required field: {key}")
        track_ids = self.entries_of([o["uri"] for o in named])
        with self.state.lock:
            self.check_snapshot(playlist, body)
            self.settle(playlist)
            everywhere = {t for t, o in zip(track_ids, named, strict=True) if o.get("positions") is None}
            at_positions: set[int] = set()
            for track_id, o in zip(track_ids, named, strict=True):
                for position in o.get("positions") or []:
                    if not 0 <= int(position) < len(playlist["track_ids"]) or (
                        playlist["track_ids"][int(position)] != track_id
                    ):
                        raise ApiError(400, f"Could not remove {o['uri']} at position {position}")
                    at_positions.add(int(position))
            kept = [
                (t, a)
                for i, (t, a) in enumerate(zip(playlist["track_ids"], playlist["added_at"], strict=True))
                if t not in everywhere and i not in at_positions
            ]
            playlist["track_ids"], playlist["added_at"] = [t for t, _ in kept], [a for _, a in kept]
            self.changed(playlist, 200)

    def remove_playlist_items(self, _query: dict[str, str], playlist_id: str) -> None:
        self.remove_items(playlist_id, "items")

    def tracks_write(self, query: dict[str, str], playlist_id: str, method: str) -> None:
        if not self.extended:
            raise ApiError(404, "Service not found")  # became /items in 2026
        if method == "DELETE":
            self.remove_items(playlist_id, "tracks")
        else:
            (self.replace_items if method == "PUT" else self.add_items)(query, playlist_id)

    def replace_tracks(self, query: dict[str, str], playlist_id: str) -> None:
        self.tracks_write(query, playlist_id, "PUT")

    def add_tracks(self, query: dict[str, str], playlist_id: str) -> None:
        self.tracks_write(query, playlist_id, "POST")

    def remove_tracks(self, query: dict[str, str], playlist_id: str) -> None:
        self.tracks_write(query, playlist_id, "DELETE")

    # --- control ---

    def set_faults(self, _query: dict[str, str]) -> None:
        changes = json.loads(self.read_body() or b"{}")
        with self.state.lock:
            for key, value in changes.items():
                if not hasattr(self.state.faults, key):
                    raise ApiError(400, f"unknown fault {key}")
                setattr(self.state.faults, key, value)
            if self.state.faults.expire_tokens:
                for token in self.state.tokens.values():
                    token.expires_at = 0
                self.state.faults.expire_tokens = False
            if self.state.faults.outage_seconds:
                self.state.outage_until = time.time() + self.state.faults.outage_seconds
                self.state.faults.outage_seconds = 0
        self.send_json(200, asdict(self.state.faults))

    def stats(self, _query: dict[str, str]) -> None:
        with self.state.lock:
            counts, faulted = dict(self.state.requests), dict(self.state.faulted)
            listener = self.state.listener.figures() if self.state.listening is not None else None
        answer = {"requests": counts, "total": sum(counts.values()), "faults": faulted}
        self.send_json(200, {**answer, "generation": self.state.generation, "listener": listener})

    def listen(self, _query: dict[str, str]) -> None:
        """The listener listens `plays` times now (spread since its last play): what it did so far."""
        asked = json.loads(self.read_body() or b"{}").get("plays", 0)
        if not isinstance(asked, int) or not 0 <= asked <= 100_000:
            raise ApiError(400, "plays: a whole number from 0 to 100000")
        with self.state.lock:
            listener = self.state.listener
            listener.listen(asked)
            self.send_json(200, listener.figures())

    def reset_stats(self, _query: dict[str, str]) -> None:
        with self.state.lock:
            self.state.requests.clear()
            self.state.faulted.clear()
        self.send_json(200, {"requests": {}, "total": 0})

    def register_redirect_uri(self, _query: dict[str, str]) -> None:
        """What the app's owner does in Spotify's dashboard: register a redirect URI (exactly as given)."""
        uri = str(json.loads(self.read_body() or b"{}").get("uri", ""))
        with self.state.lock:
            if uri and uri not in self.state.redirect_uris:
                self.state.redirect_uris.append(uri)
            self.send_json(200, {"redirect_uris": list(self.state.redirect_uris)})

    def change_playlist(self, _query: dict[str, str], playlist_id: str) -> None:
        playlist = self.find_playlist(playlist_id)
        changes = json.loads(self.read_body() or b"{}")
        with self.state.lock:
            removed = set(changes.get("remove", []))
            added = [t for t in changes.get("add", []) if t not in playlist["track_ids"]]
            if "added_at" in playlist:  # created through the API: each track keeps when it was added
                kept = [
                    (t, a) for t, a in zip(playlist["track_ids"], playlist["added_at"], strict=True) if t not in removed
                ]
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                playlist["added_at"] = [a for _, a in kept] + [now] * len(added)
                playlist["track_ids"] = [t for t, _ in kept]
            playlist["track_ids"] = [t for t in playlist["track_ids"] if t not in removed] + added
            playlist["version"] += 1
        self.send_json(200, {"snapshot_id": snapshot_id(playlist), "tracks": len(playlist["track_ids"])})


FILTER = re.compile(r'(tag|genre|year|artist|album|track|isrc):("[^"]*"|\S+)', re.IGNORECASE)


def search_catalogue(catalogue: Catalogue, q: str) -> dict[str, list[str]]:
    """Ids of the tracks, albums and artists matching a query, as Spotify reads it: free words match names
    (and genres); `artist:`, `album:`, `track:`, `year:` (a year or a range `1990-1999`), `genre:` and
    `isrc:` filter tracks; `tag:new` (the albums of the last weeks: here the 20 newest) and
    `tag:hipster` filter **albums only**: a track or artist search with a tag finds nothing."""
    filters: dict[str, str] = {}
    for key, value in FILTER.findall(q):
        filters[key.lower()] = value.strip('"').lower()
    words = [w for w in re.split(r"\W+", FILTER.sub(" ", q).lower()) if w]
    if not words and not filters:
        return {"track": [], "album": [], "artist": []}

    def year_ok(released: str) -> bool:
        if "year" not in filters:
            return True
        low, _, high = filters["year"].partition("-")
        return low <= released[:4] <= (high or low)

    def text_ok(text: str) -> bool:
        return all(w in text.lower() for w in words)

    def artists_of(ids: list[str]) -> list[dict[str, Any]]:
        return [catalogue.artists[a] for a in ids]

    tagged: set[str] | None = None
    if filters.get("tag") == "new":
        newest = sorted(catalogue.albums, key=lambda a: catalogue.albums[a]["release_date"], reverse=True)[:20]
        tagged = set(newest)
    elif "tag" in filters:  # tag:hipster: the albums with the lowest popularity
        tagged = {a for a, album in catalogue.albums.items() if album["popularity"] < 10}
    albums = [
        a
        for a, album in catalogue.albums.items()
        if (tagged is None or a in tagged)
        and year_ok(album["release_date"])
        and text_ok(" ".join([album["name"], *(x["name"] for x in artists_of(album["artist_ids"]))]))
        and filters.get("album", "") in album["name"].lower()
        and all(filters.get("artist", "") in x["name"].lower() for x in artists_of(album["artist_ids"])[:1])
        and not {"genre", "isrc", "track"} & set(filters)
    ]
    tracks: list[str] = []
    artists: list[str] = []
    if tagged is None:
        for tid, track in catalogue.tracks.items():
            album = catalogue.albums[track["album_id"]]
            credited = artists_of(track["artist_ids"])
            genres = {g for x in credited for g in x["genres"]}
            if (
                year_ok(album["release_date"])
                and text_ok(" ".join([track["name"], *(x["name"] for x in credited), *genres]))
                and filters.get("track", "") in track["name"].lower()
                and filters.get("album", "") in album["name"].lower()
                and (not filters.get("artist") or any(filters["artist"] in x["name"].lower() for x in credited))
                and (not filters.get("genre") or filters["genre"] in genres)
                and (not filters.get("isrc") or filters["isrc"] == track["isrc"].lower())
            ):
                tracks.append(tid)
        artists = [
            a
            for a, artist in catalogue.artists.items()
            if text_ok(" ".join([artist["name"], *artist["genres"]]))
            and (not filters.get("genre") or filters["genre"] in artist["genres"])
            and filters.get("artist", "") in artist["name"].lower()
            and not {"year", "album", "track", "isrc"} & set(filters)
        ]
    return {"track": tracks, "album": albums, "artist": artists}


H = SandboxHandler
ID = r"([0-9A-Za-z]+)"
ROUTES: list[tuple[str, str, str, Callable[..., None]]] = [
    ("POST", r"/api/token", "token", H.token),
    ("GET", r"/authorize", "authorize", H.authorize),
    ("GET", r"/v1/me", "me", H.me),
    ("GET", r"/v1/me/playlists", "me/playlists", H.me_playlists),
    ("GET", r"/v1/me/tracks", "me/tracks", H.me_tracks),
    ("GET", rf"/v1/playlists/{ID}", "playlists/{id}", H.playlist),
    ("GET", rf"/v1/playlists/{ID}/tracks", "playlists/{id}/tracks", H.playlist_tracks),
    ("GET", rf"/v1/playlists/{ID}/items", "playlists/{id}/items", H.playlist_items),
    # writes: counted apart from the reads ("POST me/playlists" ...), so a test can tell that nothing was written
    ("POST", r"/v1/me/playlists", "POST me/playlists", H.create_my_playlist),
    ("POST", r"/v1/users/([^/]+)/playlists", "POST users/{id}/playlists", H.create_user_playlist),
    ("PUT", rf"/v1/playlists/{ID}/items", "PUT playlists/{id}/items", H.replace_items),
    ("POST", rf"/v1/playlists/{ID}/items", "POST playlists/{id}/items", H.add_items),
    ("PUT", rf"/v1/playlists/{ID}/tracks", "PUT playlists/{id}/tracks", H.replace_tracks),
    ("POST", rf"/v1/playlists/{ID}/tracks", "POST playlists/{id}/tracks", H.add_tracks),
    ("DELETE", rf"/v1/playlists/{ID}/items", "DELETE playlists/{id}/items", H.remove_playlist_items),
    ("DELETE", rf"/v1/playlists/{ID}/tracks", "DELETE playlists/{id}/tracks", H.remove_tracks),
    ("GET", r"/v1/me/player/recently-played", "me/player/recently-played", H.recently_played),
    ("GET", r"/v1/me/top/tracks", "me/top/tracks", H.top_tracks),
    ("GET", r"/v1/tracks", "tracks", H.tracks),
    ("GET", rf"/v1/tracks/{ID}", "tracks/{id}", H.track),
    ("GET", r"/v1/artists", "artists", H.artists),
    ("GET", rf"/v1/artists/{ID}", "artists/{id}", H.artist),
    ("GET", rf"/v1/artists/{ID}/albums", "artists/{id}/albums", H.artist_albums),
    ("GET", r"/v1/albums", "albums", H.albums),
    ("GET", rf"/v1/albums/{ID}", "albums/{id}", H.album),
    ("GET", rf"/v1/albums/{ID}/tracks", "albums/{id}/tracks", H.album_tracks),
    ("GET", r"/v1/audio-features", "audio-features", H.audio_features),
    ("GET", r"/v1/search", "search", H.search),
    ("GET", r"/reccobeats/v1/audio-features", "reccobeats/audio-features", H.reccobeats),
    ("POST", r"/_sandbox/faults", "_sandbox", H.set_faults),
    ("GET", r"/_sandbox/stats", "_sandbox", H.stats),
    ("POST", r"/_sandbox/stats/reset", "_sandbox", H.reset_stats),
    ("POST", rf"/_sandbox/playlists/{ID}", "_sandbox", H.change_playlist),
    ("POST", r"/_sandbox/redirect-uris", "_sandbox", H.register_redirect_uri),
    ("POST", r"/_sandbox/listen", "_sandbox", H.listen),
]


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), SandboxHandler)
        self.state = state

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up waiting (a timeout fault): nothing to report
        super().handle_error(request, client_address)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="spotify-sandbox", daemon=True)
        thread.start()
        return thread

    def env(self) -> dict[str, str]:
        """The environment that points a producer at this sandbox (its app, every playlist, the favourites)."""
        return producer_env(self.url, self.state.catalogue, self.state.client_id, self.state.client_secret)

    def producer_settings(self, **values: Any) -> "ProducerSettings":
        """Producer settings pointed at this sandbox, as `env()` says; `values` (field names) add or override."""
        from producers.settings import ProducerSettings  # noqa: PLC0415

        catalogue = self.state.catalogue
        pointed: dict[str, Any] = {
            "spotify_api_url": f"{self.url}/v1/",
            "spotify_accounts_url": self.url,
            "reccobeats_api_url": f"{self.url}/reccobeats/v1/",
            "spotify_client_id": self.state.client_id,
            "spotify_client_secret": self.state.client_secret,
            "playlists": list(catalogue.playlists),
            "favourite_playlists": catalogue.favourite_playlist_ids,
        }
        return ProducerSettings(**{**pointed, **values})


def producer_env(
    url: str,
    catalogue: Catalogue | None = None,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
) -> dict[str, str]:
    """The environment that points a producer at the sandbox at `url` (one in another process too): its
    API, accounts service and app; with its catalogue, every playlist and the favourite ones."""
    env = {
        "SPOTIFY_API_URL": f"{url}/v1/",
        "SPOTIFY_ACCOUNTS_URL": url,
        "RECCOBEATS_API_URL": f"{url}/reccobeats/v1/",
        "SPOTIFY_CLIENT_ID": client_id,
        "SPOTIFY_CLIENT_SECRET": client_secret,
    }
    if catalogue is not None:
        env["PRODUCER_PLAYLISTS"] = ",".join(catalogue.playlists)
        env["PRODUCER_FAVOURITE_PLAYLISTS"] = ",".join(catalogue.favourite_playlist_ids)
    return env
