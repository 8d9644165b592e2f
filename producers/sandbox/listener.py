"""The sandbox's listener: the authorised user plays and saves tracks, drawn from the catalogue's hidden taste.

Each track carries `liking`, the hidden taste's chance that the listener likes it (the catalogue draws the
favourite labels from the same taste). The listener has a history (plays spread over the 30 days before the
current UTC day, mostly of tracks it likes) and keeps listening: `plays_per_hour` as real time passes, or as many
plays as `POST /_sandbox/listen` asks for. When the app has put tracks into a playlist of the user's (the
published recommendations), a share of the listening goes to that playlist: each track tried there is played
through with its `liking` (a skipped track is no play, as on Spotify) and a track played through is saved with
probability `SAVE_CHANCE`. So a list of tracks the listener likes is accepted more often than a random one, and
the rate to expect, the mean `liking` of the playlist's tracks, is known (`expected_acceptance`).

What Spotify shows of it: `GET /me/player/recently-played` (the last 50 plays only, cursor-paged by `after` /
`before` in milliseconds), `GET /me/top/tracks` (by plays in the last 4 weeks, 6 months or ever) and the saves
in `GET /me/tracks`.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from producers.sandbox.catalogue import Catalogue

RECENT_WINDOW = 50  # Spotify keeps this many plays readable
HISTORY_DAYS = 30
HISTORY_PLAYS = 300
SAVE_CHANCE = 0.5
DAY_MS = 86_400_000
TIME_RANGE_DAYS = {"short_term": 28, "medium_term": 182, "long_term": None}  # days; None: ever
TOP_MAX = 50


@dataclass(frozen=True)
class Play:
    played_at_ms: int
    track_id: str
    context: str | None  # the playlist it was played from, if any


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class Listener:
    catalogue: Catalogue
    seed: int = 7
    plays_per_hour: float = 0.0  # plays that happen as real time passes (0: only those asked for)
    recommended_share: float = 0.3  # of the plays, given to the app's playlists when there are any
    plays: list[Play] = field(default_factory=list)  # oldest first
    saved: list[tuple[str, str]] = field(default_factory=list)  # (added_at, track id) saved while listening
    tried: Counter[str] = field(default_factory=Counter)  # per app playlist: tracks tried there
    accepted: Counter[str] = field(default_factory=Counter)  # ... and played through
    last_tick: float = field(default_factory=time.time)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        ids = list(self.catalogue.tracks)
        liking = np.array([self.catalogue.tracks[t].get("liking", 0.5) for t in ids])
        self.track_ids = ids
        self.weights = liking**3 / (liking**3).sum()  # mostly what it likes, now and then anything
        # The history ends where the current UTC day began: a sandbox started again the same day (with the same seed)
        # shows the same plays, so a producer that already read them finds nothing new.
        day_start = int(self.last_tick // 86400 * 86400) * 1000
        start = day_start - HISTORY_DAYS * DAY_MS
        moments = np.sort(self.rng.integers(start, day_start - 60_000, size=HISTORY_PLAYS))
        for at in moments:
            self.plays.append(Play(self.after_last(int(at)), self.pick(), None))

    def after_last(self, at_ms: int) -> int:
        """A play moment strictly after the last one (plays are at least a second apart)."""
        return max(at_ms, self.plays[-1].played_at_ms + 1000) if self.plays else at_ms

    def pick(self) -> str:
        return str(self.track_ids[int(self.rng.choice(len(self.track_ids), p=self.weights))])

    def app_playlists(self) -> list[dict[str, Any]]:
        """The playlists the app created for the user (the published recommendations) that hold tracks."""
        return [p for p in self.catalogue.playlists.values() if p.get("by_app") and self.tracks_of(p)]

    def tracks_of(self, playlist: dict[str, Any]) -> list[str]:
        """A playlist's catalogue tracks (an episode put in through the API is not one)."""
        return [t for t in playlist["track_ids"] if t in self.catalogue.tracks]

    def listen(self, count: int, now: float | None = None) -> int:
        """`count` listening moments between the last play and `now`; the plays they made."""
        now_ms = int((now or time.time()) * 1000)
        first = self.plays[-1].played_at_ms if self.plays else now_ms - count * 1000
        # A playlist's tracks are played only after they were put there (each moment then falls after the change;
        # asked for more plays than the seconds since, the last ones fall a little ahead of the clock).
        first = max([first, *(p.get("changed_ms", 0) for p in self.app_playlists())])
        moments: list[float] = list(np.linspace(first, now_ms, num=count + 1)[1:]) if count else []
        made = 0
        for at in moments:
            made += self.listen_once(self.after_last(int(at)))
        return made

    def listen_once(self, at_ms: int) -> int:
        playlists = self.app_playlists()
        if playlists and self.rng.random() < self.recommended_share:
            playlist = playlists[int(self.rng.integers(len(playlists)))]
            tracks = self.tracks_of(playlist)
            track = tracks[int(self.rng.integers(len(tracks)))]
            self.tried[playlist["id"]] += 1
            if self.rng.random() >= self.catalogue.tracks[track].get("liking", 0.5):
                return 0  # skipped before 30 s: no play
            self.accepted[playlist["id"]] += 1
            self.plays.append(Play(at_ms, track, playlist["id"]))
            if self.rng.random() < SAVE_CHANCE and track not in {t for _, t in self.saved}:
                self.saved.append((iso(at_ms).split(".")[0] + "Z", track))
            return 1
        self.plays.append(Play(at_ms, self.pick(), None))
        return 1

    def catch_up(self, now: float | None = None) -> None:
        """The plays real time has brought since the last look, at `plays_per_hour`."""
        now = now or time.time()
        due = int((now - self.last_tick) * self.plays_per_hour / 3600)
        if due > 0:
            self.listen(due, now)
            self.last_tick += due * 3600 / self.plays_per_hour

    def recent(self) -> list[Play]:
        """What Spotify still shows: the last 50 plays, newest first."""
        return list(reversed(self.plays[-RECENT_WINDOW:]))

    def top_tracks(self, time_range: str, now_ms: int) -> list[str]:
        """The most played tracks of the range (ties: the better liked first), then the best liked favourites."""
        days = TIME_RANGE_DAYS[time_range]
        since = now_ms - days * DAY_MS if days else 0
        counts = Counter(p.track_id for p in self.plays if p.played_at_ms >= since)
        liking = {t: self.catalogue.tracks[t].get("liking", 0.5) for t in counts}
        ranked = sorted(counts, key=lambda t: (-counts[t], -liking[t], t))
        favourites = sorted(
            (t for t in self.catalogue.favourites if t not in counts),
            key=lambda t: (-self.catalogue.tracks[t].get("liking", 0.5), t),
        )
        return (ranked + favourites)[:TOP_MAX]

    def expected_acceptance(self) -> dict[str, float]:
        """Per app playlist: the chance that a track tried there is played through (the mean liking of its tracks)."""
        return {
            p["id"]: round(float(np.mean([self.catalogue.tracks[t].get("liking", 0.5) for t in self.tracks_of(p)])), 4)
            for p in self.app_playlists()
        }

    def figures(self) -> dict[str, Any]:
        return {
            "plays": len(self.plays),
            "saved": len(self.saved),
            "tried": dict(self.tried),
            "accepted": dict(self.accepted),
            "expected_acceptance": self.expected_acceptance(),
        }
