"""Validate the sandbox's answers against the Web API's published OpenAPI description (openapi-core).

The description files are tests/support/spotify-openapi/ (a copy of ../shared/spotify-openapi/; SPOTIFY_OPENAPI_DIR
overrides);
in development mode the fields REFERENCE.md §4 lists as removed are allowed to be missing, and nothing else.
"""

import base64
import copy
import functools
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_schema_validator import OAS30Validator

from producers.sandbox.server import SandboxServer
from producers.settings import DEFAULT_REDIRECT_URI

# A copy of ../shared/spotify-openapi/ (MIT, see its LICENSE), so a fresh clone tests without it.
SPEC_DIR = Path(os.environ.get("SPOTIFY_OPENAPI_DIR", Path(__file__).with_name("spotify-openapi")))
SPEC_FILES = {"development": "development-2026-05-31.yml", "extended": "extended-2025-10-03.yml"}
# REFERENCE.md §4: the fields development mode removed (schema name -> properties allowed to be missing)
DEVELOPMENT_REMOVALS = {
    "track": ("popularity", "available_markets", "linked_from"),
    "artist": ("followers", "popularity"),
    "album": ("popularity", "label"),
}
SCHEMAS_OF = {
    "track": ("TrackObject", "SimplifiedTrackObject"),
    "artist": ("ArtistObject",),
    "album": ("AlbumObject", "AlbumBase", "SimplifiedAlbumObject"),
}
TYPED_SCHEMAS = {"track": "TrackObject", "episode": "EpisodeObject"}
# RFC 6749 §5.1 and Spotify's token answers
TOKEN_SCHEMA = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string", "minLength": 1},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer", "minimum": 1},
        "refresh_token": {"type": "string", "minLength": 1},
        "scope": {"type": "string"},
    },
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
        }
    },
}
TOKEN_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def name_discriminators(node: Any) -> None:
    """The description's `oneOf: [TrackObject, EpisodeObject]` discriminates on `type` without a mapping,
    so a validator looks for schemas named `track` and `episode`: name them (the meaning it states)."""
    if isinstance(node, dict):
        found = node.get("discriminator")
        if isinstance(found, dict) and found.get("propertyName") == "type" and "mapping" not in found:
            found["mapping"] = {kind: f"#/components/schemas/{name}" for kind, name in TYPED_SCHEMAS.items()}
        for value in node.values():
            name_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            name_discriminators(value)


# Spotify's "local files" concept page: a local file in a playlist is a track object with `is_local` true, a
# `spotify:local:` uri and no ids (null id, href, album and artist ids); the description has no schema for it.
LOCAL_TRACK_SCHEMA = {
    "type": "object",
    "required": ["is_local", "type", "uri", "name", "id"],
    "properties": {
        "is_local": {"type": "boolean", "enum": [True]},
        "type": {"type": "string", "enum": ["track"]},
        "uri": {"type": "string", "pattern": "^spotify:local:"},
        "name": {"type": "string"},
        "id": {"type": "string", "nullable": True, "enum": [None]},
        "href": {"type": "string", "nullable": True},
        "duration_ms": {"type": "integer"},
    },
}


NULL_SCHEMA = {"type": "object", "nullable": True, "enum": [None]}


def describe_playlist_entries(spec: dict[str, Any]) -> None:
    """Where the description's own notes say a playlist entry has nulls, let the schema say so too:
    `added_at`/`added_by` ("some very old playlists may return null"), the entry of a track that is gone
    (`item`/`track` null), and local files (LOCAL_TRACK_SCHEMA). Nothing else is relaxed."""
    schemas = spec["components"]["schemas"]
    schemas["LocalTrackObject"] = LOCAL_TRACK_SCHEMA
    entry = schemas["PlaylistTrackObject"]["properties"]
    entry["added_at"]["nullable"] = True
    entry["added_by"] = {"oneOf": [NULL_SCHEMA, *entry["added_by"]["allOf"]]}
    for name in ("item", "track"):
        if name in entry:
            kinds = entry[name]["oneOf"]
            entry[name] = {"oneOf": [NULL_SCHEMA, *kinds, {"$ref": "#/components/schemas/LocalTrackObject"}]}


@functools.cache
def load_spec(generation: str) -> dict[str, Any]:
    path = SPEC_DIR / SPEC_FILES[generation]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the contract tests need the Web API's OpenAPI description")
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    name_discriminators(spec)
    describe_playlist_entries(spec)
    # A cursor page's `next` is "null if none" in the description's own words, though its schema says string.
    cursor_page = spec["components"]["schemas"].get("CursorPagingObject", {}).get("properties", {})
    if "next" in cursor_page:
        cursor_page["next"]["nullable"] = True
    if generation == "development":
        schemas = spec["components"]["schemas"]
        for kind, names in SCHEMAS_OF.items():
            for name in names:
                for part in [schemas[name], *schemas[name].get("allOf", [])]:
                    if "required" in part:
                        part["required"] = [f for f in part["required"] if f not in DEVELOPMENT_REMOVALS[kind]]
    return spec


@dataclass
class ContractChecker:
    """GETs over real HTTP; each answer is validated against the generation's description."""

    server: SandboxServer
    generation: str
    openapi: OpenAPI
    # /playlists/{id}/items: an extended app may call it too, and only the 2026 description has it
    items_openapi: OpenAPI | None = None
    validated: int = 0
    seen: dict[str, int] = field(default_factory=dict)

    def get(self, path: str, token: str) -> requests.Response:
        return self.get_url(f"{self.server.url}{path}", token)

    def get_url(self, url: str, token: str) -> requests.Response:
        answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.check(answer)
        return answer

    def send(self, method: str, path: str, token: str, body: dict[str, Any]) -> requests.Response:
        """A write with a JSON body; the request and the answer are both validated against the description."""
        answer = requests.request(
            method, f"{self.server.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        if answer.status_code < 400:
            self.openapi_for(urlsplit(answer.url).path).validate_request(RequestsOpenAPIRequest(answer.request))
        self.check(answer)
        return answer

    def openapi_for(self, path: str) -> OpenAPI:
        if self.items_openapi is not None and re.fullmatch(r"/v1/playlists/[^/]+/items", path):
            return self.items_openapi
        return self.openapi

    def check(self, answer: requests.Response) -> None:
        path = urlsplit(answer.url).path
        if path == "/v1/audio-features" and answer.status_code == 403 and self.generation == "development":
            # REFERENCE §4: audio-features answers new apps 403 with a bare body (not the described error object)
            assert answer.content == b"", answer.content
            return
        openapi = self.openapi_for(path)
        try:
            openapi.validate_response(RequestsOpenAPIRequest(answer.request), RequestsOpenAPIResponse(answer))
        except ResponseNotFound:
            # a status the description does not list for this operation (404, 400 ...): Spotify's error object
            assert answer.status_code >= 400, (answer.status_code, answer.url)
            OAS30Validator(ERROR_SCHEMA).validate(answer.json())
        except OpenAPIError as error:
            cause = error.__cause__
            details = "; ".join(sorted({e.message for e in getattr(cause, "schema_errors", ())})) or str(error)
            raise AssertionError(f"{answer.request.method} {answer.url} ({answer.status_code}): {details}") from None
        self.validated += 1
        self.seen[path] = answer.status_code


def contract_checker(server: SandboxServer, generation: str) -> ContractChecker:
    spec = copy.deepcopy(load_spec(generation))
    spec["servers"] = [{"url": f"{server.url}/v1"}]
    items = None
    if generation == "extended":
        development = copy.deepcopy(load_spec("development"))
        development["servers"] = spec["servers"]
        items = OpenAPI.from_dict(development)
    return ContractChecker(server, generation, OpenAPI.from_dict(spec), items)


def assert_token_answer(answer: requests.Response, refresh: bool) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    OAS30Validator(TOKEN_SCHEMA).validate(body)
    assert ("refresh_token" in body) == refresh, body


def assert_token_error(answer: requests.Response, error: str) -> None:
    assert answer.status_code in (400, 401), answer.text
    body = answer.json()
    OAS30Validator(TOKEN_ERROR_SCHEMA).validate(body)
    assert body["error"] == error, body


def pkce_login(
    server: SandboxServer,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scope: str = "playlist-read-private user-library-read",
) -> dict[str, Any]:
    """A PKCE login as a browser and a client would do it, by hand (no spotipy): the token answer."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "client_id": server.state.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "code_challenge_method": "S256",
        "code_challenge": challenge,
        "scope": scope,
        "state": "s",
    }
    redirect = requests.get(f"{server.url}/authorize?{urlencode(query)}", allow_redirects=False, timeout=10)
    assert redirect.status_code in (302, 303), redirect.text
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    answer = requests.post(
        f"{server.url}/api/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": server.state.client_id,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert_token_answer(answer, refresh=True)
    body: dict[str, Any] = answer.json()
    return body
