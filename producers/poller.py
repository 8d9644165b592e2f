"""One poll of Spotify, in units of work (a playlist, the saved tracks, a search, an artist, the user's plays and
top tracks).

Each unit builds its events, publishes them, waits for Kafka's confirmation and only then commits its
poll state: an unchanged playlist costs one request, a track already published unchanged is not
published again, and a crash can cause re-sends but never gaps. A 429 ends the poll and says when
Spotify may be asked again; the run loop waits for that without blocking SIGTERM. What keeps going
wrong (a 429 storm, an outage, timeouts) is logged once when it starts and once when it is over.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

from spotipy.exceptions import SpotifyException

from pipeline_runtime.contract import SAVED_TRACKS, TIME_RANGES
from producers.catalogue_file import CatalogueFeatures
from producers.events import (
    HAPPENINGS,
    Event,
    artist_payload,
    audio_features_payload,
    diff_members,
    make_event,
    membership_payload,
    play_payload,
    top_track_payload,
    track_payload,
    utc_now,
)
from producers.playlist import published_playlist_id
from producers.publish import DeliveryFailed, Publisher
from producers.settings import ProducerSettings
from producers.spotify import (
    LISTENING_SCOPES,
    RateLimited,
    ServiceUnavailable,
    SpotifyApi,
    endpoint_of,
    is_album_search,
    parse_id,
    played_at_ms,
    refusal_detail,
)
from producers.state import Changes, PollState

log = logging.getLogger(__name__)

FEATURES_RETRY_SECONDS = 86400.0
RECENT_PLAYS_KEPT = 50  # Spotify's recently-played window: older plays are gone


@dataclass
class PollReport:
    units: int = 0
    unchanged_playlists: int = 0
    failed_units: int = 0
    events: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    rate_limited: int = 0
    resume_at: float | None = None
    stopped: bool = False
    undelivered: bool = False  # Kafka did not confirm a unit's events: they go again next poll
    temporary_failures: int = 0  # units that failed for a reason that passes (an outage, Kafka)
    quiet: bool = False  # nothing new: only what was already reported went on

    @property
    def retry_later(self) -> bool:
        """Something of this poll is still to do and a later run will do it (a 429 wait, an outage, Kafka)."""
        return self.resume_at is not None or self.temporary_failures > 0

    def summary(self) -> str:
        published = ", ".join(f"{n} {t}" for t, n in sorted(self.events.items())) or "nothing new"
        return (
            f"{self.units} unit(s), {self.unchanged_playlists} unchanged playlist(s), {self.failed_units} failed; "
            f"published {published}; {self.requests} API request(s), {self.rate_limited} answered 429"
        )


def describe_wait(exc: RateLimited) -> str:
    resume = datetime.fromtimestamp(time.time() + exc.retry_after, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{exc}; no requests until {resume} (in {timedelta(seconds=round(exc.retry_after))})"


GOING_ON = (
    "the producer keeps running, skips what failed and asks again next poll (a 'resumed' line follows when it is over)"
)


@dataclass
class Condition:
    label: str
    variant: object
    since: float
    times: int = 1
    rate_limit: bool = False


class Conditions:
    """What keeps going wrong with Spotify: a 429 storm, an outage, timeouts, unreadable answers, a refused
    endpoint. Each is logged once when it starts (again only if it changes, e.g. a rate limit becoming
    QUOTA_EXCEEDED) and once when it is over, never at every request or poll."""

    def __init__(self) -> None:
        self.active: dict[str, Condition] = {}
        self.seen: set[str] = set()
        self.news = False  # something was logged since the poll began

    def begin_poll(self) -> None:
        self.seen.clear()
        self.news = False

    def report(self, key: str, label: str, message: str, variant: object = None, rate_limit: bool = False) -> None:
        self.seen.add(key)
        current = self.active.get(key)
        if current is not None and current.variant == variant:
            current.times += 1
            log.debug("still: %s", message)
            return
        since, times = (current.since, current.times + 1) if current else (time.time(), 1)
        self.active[key] = Condition(label, variant, since, times, rate_limit)
        log.warning("%s", message)
        self.news = True

    def rate_limited(self, exc: RateLimited) -> None:
        what = "QUOTA_EXCEEDED" if exc.quota_exceeded else "rate limiting"
        self.report(
            f"{exc.service} 429",
            f"{exc.service} {what} (429)",
            f"{describe_wait(exc)}. What was published is kept; the poll resumes then.",
            exc.quota_exceeded,
            rate_limit=True,
        )

    def failed(self, exc: ServiceUnavailable, where: str) -> None:
        self.report(str(exc), f"'{exc}'", f"{exc} ({where}): {GOING_ON}")

    def refused(self, exc: SpotifyException, where: str) -> None:
        endpoint = endpoint_of(exc)
        detail = refusal_detail(exc)
        answer = f"{exc.http_status} ({detail})" if detail not in ("", "None") else str(exc.http_status)
        why = (
            "this app may not use it (removed for new apps, or not allowed)"
            if exc.http_status in (403, 404)
            else "the request was refused"
        )
        message = f"Spotify answered {answer} for {endpoint} ({where}): {why}; {GOING_ON}"
        self.report(f"{exc.http_status} {endpoint}", f"{exc.http_status} answers for {endpoint}", message)

    def end_poll(self, complete: bool, stopped: bool) -> None:
        """What did not happen again is over: anything after a poll that went through every unit; a 429
        after any poll that no 429 cut short (the service answered)."""
        for key, condition in list(self.active.items()):
            if key in self.seen or stopped or not (complete or condition.rate_limit):
                continue
            del self.active[key]
            lasted = timedelta(seconds=round(time.time() - condition.since))
            log.info(
                "resumed after %s: no more %s, seen %d time(s); polling goes on where it stopped",
                lasted,
                condition.label,
                condition.times,
            )
            self.news = True


class Poller:
    def __init__(
        self,
        settings: ProducerSettings,
        api: SpotifyApi,
        publisher: Publisher,
        state: PollState,
        stop: threading.Event | None = None,
        conditions: Conditions | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.publisher = publisher
        self.state = state
        self.stop = stop or threading.Event()
        self.conditions = conditions or Conditions()
        self.favourites = {parse_id("playlist", p) for p in settings.favourite_playlists}
        self.catalogue = CatalogueFeatures(settings.catalogue_file) if settings.catalogue_file else None
        self.source = f"spotify-api/{api.generation}"
        self.emitter = Emitter(settings, publisher, state)
        self.report = PollReport()

    # --- the poll ---

    def units(self) -> list[tuple[str, Callable[[], None]]]:
        units: list[tuple[str, Callable[[], None]]] = []
        playlists = [parse_id("playlist", p) for p in self.settings.playlists]
        if self.api.user and self.settings.include_my_playlists:
            for listed in self.api.my_playlists():
                if self.api.items_hidden(listed):  # followed, not owned: known from the listing, no request
                    self.api.skip_unreadable(listed)
                elif listed["id"] not in playlists:
                    playlists.append(listed["id"])
        playlists += [p for p in self.favourites if p not in playlists]
        # The recommendations playlist (producers.playlist) is never a source: recommendations are no labels.
        recommended = published_playlist_id(self.state)
        playlists = [p for p in playlists if p not in self.api.unreadable and p != recommended]
        units += [(f"playlist {p}", partial(self.poll_playlist, p)) for p in playlists]
        if self.api.user and self.settings.include_saved_tracks:
            units.append(("saved tracks", self.poll_saved_tracks))
        units += [(f"search {q!r}", partial(self.poll_search, q)) for q in self.settings.search_queries]
        units += [(f"artist {a}", partial(self.poll_artist, parse_id("artist", a))) for a in self.settings.artists]
        if self.api.user and self.settings.include_listening:
            missing = sorted(set(LISTENING_SCOPES.split()) - self.api.granted_scopes())
            if missing:
                self.conditions.report(
                    "listening scopes",
                    "a login without the listening scopes",
                    f"the saved Spotify login does not grant {' and '.join(missing)}, so the listening history is "
                    "not read: run `python -m producers login` again, or set PRODUCER_INCLUDE_LISTENING=false",
                )
            else:
                units += [("recently played", self.poll_recently_played), ("top tracks", self.poll_top_tracks)]
        return units

    def poll_once(self) -> PollReport:
        self.report = report = PollReport()
        before = Counter(self.api.counter)
        published_before = Counter(self.emitter.published)
        conditions = self.conditions
        conditions.begin_poll()
        complete = False
        try:
            for name, unit in self.units():
                if self.stop.is_set():
                    report.stopped = True
                    break
                report.units += 1
                try:
                    unit()
                except ServiceUnavailable as exc:
                    report.failed_units += 1
                    report.temporary_failures += 1
                    conditions.failed(exc, name)
                except SpotifyException as exc:  # a 4xx other than 401/429: that unit only
                    report.failed_units += 1
                    conditions.refused(exc, name)
            complete = not report.stopped
        except RateLimited as exc:
            report.resume_at = time.time() + exc.retry_after
            conditions.rate_limited(exc)
        except ServiceUnavailable as exc:
            report.failed_units += 1
            report.temporary_failures += 1
            conditions.failed(exc, "listing what to poll; the poll stopped there")
        except SpotifyException as exc:
            report.failed_units += 1
            conditions.refused(exc, "listing what to poll; the poll stopped there")
        except DeliveryFailed as exc:
            report.failed_units += 1
            report.temporary_failures += 1
            report.undelivered = True
            log.error("%s; nothing of that unit is recorded as published: it is sent again next poll", exc)
        conditions.end_poll(complete, report.stopped)
        report.requests = self.api.counter["requests"] - before["requests"]
        report.rate_limited = self.api.counter["429"] - before["429"]
        report.events = self.emitter.published - published_before
        report.quiet = bool(conditions.active) and not conditions.news and not report.events
        log.log(logging.DEBUG if report.quiet else logging.INFO, "poll: %s", report.summary())
        return report

    # --- units ---

    def poll_playlist(self, playlist_id: str) -> None:
        meta = self.api.playlist_meta(playlist_id)
        if meta is None:
            return
        snapshot = meta.get("snapshot_id")
        if snapshot and snapshot == self.state.snapshot(playlist_id):
            self.report.unchanged_playlists += 1
            return
        tracks, skipped_entries = self.api.playlist_tracks(playlist_id)
        favourite = playlist_id in self.favourites
        new_members = {t["id"] for t in tracks}
        added, removed = diff_members(self.state.members(playlist_id), new_members)
        changes_by_action: tuple[tuple[Literal["added", "removed"], list[str]], ...] = (
            ("added", added),
            ("removed", removed),
        )
        events = [
            make_event(
                "playlist_membership",
                playlist_id,
                membership_payload(playlist_id, meta.get("name"), track_id, action, snapshot, favourite),
                self.source,
            )
            for action, ids in changes_by_action
            for track_id in ids
        ]
        changes = Changes(
            playlists=[(playlist_id, snapshot, meta.get("name"), favourite)], members={playlist_id: new_members}
        )
        self.emitter.emit(events + self.enrich(tracks, changes), changes)
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped_entries.items()))
        log.info(
            "playlist %r: %d track(s), %d added, %d removed%s",
            meta.get("name"),
            len(tracks),
            len(added),
            len(removed),
            f"; skipped {skipped} (not catalogue tracks)" if skipped else "",
        )

    def poll_saved_tracks(self) -> None:
        since = self.state.cursor("saved_tracks")
        saved = self.api.saved_tracks(since)
        if not saved:
            return
        favourite = self.settings.saved_tracks_are_favourites
        events = [
            make_event(
                "playlist_membership",
                SAVED_TRACKS,
                membership_payload(SAVED_TRACKS, "Saved tracks", track["id"], "added", added_at, favourite),
                self.source,
            )
            for added_at, track in saved
        ]
        changes = Changes(cursors={"saved_tracks": max(added for added, _ in saved)})
        self.emitter.emit(events + self.enrich([t for _, t in saved], changes), changes)

    def poll_search(self, query: str) -> None:
        """A track search; or, with `tag:new`/`tag:hipster` (album filters only), an album search whose albums'
        tracks are published."""
        if is_album_search(query):
            self.poll_albums(self.api.search(query, self.settings.search_max_results, kind="album"))
            return
        changes = Changes()
        self.emitter.emit(self.enrich(self.api.search(query, self.settings.search_max_results), changes), changes)

    def poll_artist(self, artist_id: str) -> None:
        self.poll_albums(self.api.artist_albums(artist_id))

    def poll_albums(self, albums: list[dict[str, Any]]) -> None:
        """The tracks of albums not fetched within the artist TTL."""
        fresh = self.state.fresh("album", [a["id"] for a in albums], self.settings.artist_ttl_seconds)
        for album in albums:
            if album["id"] in fresh or self.stop.is_set():
                continue
            changes = Changes(fetched=[("album", album["id"])])
            listed = self.api.album_tracks(album)
            if self.api.generation == "extended":  # full objects cost one request per 50: same payload as elsewhere
                full = self.api.tracks([t["id"] for t in listed])
                self.emitter.emit(self.enrich(full, changes), changes)
            else:  # one request per id would be dear: publish the listing only for tracks not published yet
                self.emitter.emit(self.enrich(listed, changes, partial=True), changes)

    def poll_recently_played(self) -> None:
        """Each play once: the plays after the cursor (the last play published), oldest first, and their tracks."""
        cursor = self.state.cursor("recently_played")
        plays = self.api.recently_played(int(cursor) if cursor else 0)
        if not plays:
            return
        if cursor and len(plays) >= RECENT_PLAYS_KEPT:
            log.warning(
                "%d plays since the last poll: Spotify keeps only the last %d, so earlier ones may be missing; "
                "poll more often (PRODUCER_POLL_INTERVAL_SECONDS)",
                len(plays),
                RECENT_PLAYS_KEPT,
            )
        events = [make_event("play", item["track"]["id"], play_payload(item), self.source) for item in plays]
        changes = Changes(cursors={"recently_played": str(max(played_at_ms(i["played_at"]) for i in plays))})
        self.emitter.emit(events + self.enrich([item["track"] for item in plays], changes), changes)

    def poll_top_tracks(self) -> None:
        """Each time range's top list with its ranks, as listed today, once per PRODUCER_TOP_TRACKS_REFRESH_SECONDS."""
        fresh = self.state.fresh("top_tracks", TIME_RANGES, self.settings.top_tracks_refresh_seconds)
        for time_range in TIME_RANGES:
            if time_range in fresh or self.stop.is_set():
                continue
            day = utc_now()[:10]
            tracks = self.api.top_tracks(time_range, self.settings.top_tracks_limit)
            events = [
                make_event("top_track", t["id"], top_track_payload(t["id"], time_range, rank, day), self.source)
                for rank, t in enumerate(tracks, 1)
            ]
            changes = Changes(fetched=[("top_tracks", time_range)])
            self.emitter.emit(events + self.enrich(tracks, changes), changes)

    # --- enrichment ---

    def enrich(self, tracks: list[dict[str, Any]], changes: Changes, partial: bool = False) -> list[Event]:
        """Track events, plus artist and audio-feature events for what is not fresh yet.

        `partial` tracks (an album's listing: no ISRC) never replace a track published from a full object,
        or the two versions would be published in turn at every poll."""
        unique = {t["id"]: t for t in tracks}
        known = self.state.published_hashes("track", list(unique)) if partial else {}
        events = [
            make_event("track", tid, track_payload(t), self.source) for tid, t in unique.items() if tid not in known
        ]

        artist_ids = sorted({a["id"] for t in unique.values() for a in t.get("artists") or [] if a.get("id")})
        fresh_artists = self.state.fresh("artist", artist_ids, self.settings.artist_ttl_seconds)
        stale = [a for a in artist_ids if a not in fresh_artists]
        if stale:
            for artist in self.api.artists(stale):
                events.append(make_event("artist", artist["id"], artist_payload(artist), self.source))
            changes.fetched += [("artist", a) for a in stale]

        fresh_features = self.state.fresh("audio_features", list(unique), FEATURES_RETRY_SECONDS)
        wanted = [t for t in unique if t not in fresh_features]
        events += self.audio_features(wanted)
        changes.fetched += [("audio_features", t) for t in wanted]
        return events

    def audio_features(self, track_ids: list[str]) -> list[Event]:
        events: list[Event] = []
        remaining = list(track_ids)
        for provider in self.settings.audio_feature_providers:
            if not remaining:
                break
            found: dict[str, dict[str, Any]] | None
            if provider == "spotify":
                found = self.api.spotify_audio_features(remaining)
            elif provider == "reccobeats":
                found = self.api.reccobeats_audio_features(remaining)
            else:
                found = self.catalogue.lookup(remaining) if self.catalogue else None
            for track_id, features in (found or {}).items():
                if track_id in remaining:
                    payload = audio_features_payload(track_id, features, provider)
                    events.append(make_event("audio_features", track_id, payload, self.source))
            remaining = [t for t in remaining if t not in (found or {})]
        return events


class Emitter:
    """Publishes a unit's new events, waits for Kafka, then commits the unit's state."""

    def __init__(self, settings: ProducerSettings, publisher: Publisher, state: PollState) -> None:
        self.settings = settings
        self.publisher = publisher
        self.state = state
        self.published: Counter[str] = Counter()

    def emit(self, events: list[Event], changes: Changes) -> None:
        """Publish what is new, wait for Kafka's confirmation, then record it and the unit's state."""
        fresh_events = self.new_events(events)
        topics = self.settings.topic_for
        for event in fresh_events:
            self.publisher.publish(topics[event.event_type], event.key, event.to_bytes())
        self.publisher.confirm(self.settings.kafka_timeout_seconds * 6)
        entities = [e for e in fresh_events if e.event_type not in HAPPENINGS]
        changes.published += [(e.event_type, e.key, e.content_hash) for e in entities]
        self.state.commit(changes)
        self.published.update(e.event_type for e in fresh_events)

    def new_events(self, events: list[Event]) -> list[Event]:
        """Happenings always (memberships are diffs; plays and top lists come from a cursor or once a day);
        entities only when their content changed."""
        result: list[Event] = []
        seen: set[tuple[str, str, str]] = set()
        by_type: dict[str, list[Event]] = {}
        for event in events:
            by_type.setdefault(event.event_type, []).append(event)
        for event_type, typed in by_type.items():
            happening = event_type in HAPPENINGS
            known = {} if happening else self.state.published_hashes(event_type, [e.key for e in typed])
            for event in typed:
                identity = (event.event_type, event.key, event.content_hash)
                if known.get(event.key) == event.content_hash or (identity in seen and not happening):
                    continue
                seen.add(identity)
                result.append(event)
        return result
