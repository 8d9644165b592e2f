"""The producer's poll state in SQLite under the data dir, so a restart resumes where it was.

What it records only ever describes what Kafka has confirmed: the poller commits a unit's state
after the broker acknowledged every event of that unit, in one transaction. A crash in between can
cause re-sends of the same events (same event ids), never gaps.
"""

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_runtime.errors import SetupError, storage_fault

SCHEMA = """
CREATE TABLE IF NOT EXISTS playlist (
    playlist_id TEXT PRIMARY KEY, snapshot_id TEXT, name TEXT, is_favourite INTEGER, updated_at REAL);
CREATE TABLE IF NOT EXISTS playlist_member (
    playlist_id TEXT, track_id TEXT, PRIMARY KEY (playlist_id, track_id));
CREATE TABLE IF NOT EXISTS published (
    event_type TEXT, entity_id TEXT, content_hash TEXT, published_at REAL, PRIMARY KEY (event_type, entity_id));
CREATE TABLE IF NOT EXISTS fetched (
    kind TEXT, entity_id TEXT, fetched_at REAL, PRIMARY KEY (kind, entity_id));
CREATE TABLE IF NOT EXISTS cursor (name TEXT PRIMARY KEY, value TEXT);
"""


@dataclass
class Changes:
    """What one unit of work will record once its events are confirmed."""

    playlists: list[tuple[str, str | None, str | None, bool]] = field(default_factory=list)
    members: dict[str, set[str]] = field(default_factory=dict)  # playlist -> its complete new member set
    published: list[tuple[str, str, str]] = field(default_factory=list)  # (event_type, entity_id, hash)
    fetched: list[tuple[str, str]] = field(default_factory=list)  # (kind, entity_id)
    cursors: dict[str, str] = field(default_factory=dict)


class PollState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                with suppress(sqlite3.Error):  # SQLite has rolled back already after some errors
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            fault = storage_fault(exc)
            if fault is None:
                raise
            with suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise SetupError(
                f"the producer could not record its poll state in {self.path}: {fault}. Free space on that disk or "
                "make it writable, then start the producer again: what Kafka confirmed but the state did not record "
                "is sent again with the same event ids, and the streaming job keeps one of each"
            ) from None

    def snapshot(self, playlist_id: str) -> str | None:
        row = self.db.execute("SELECT snapshot_id FROM playlist WHERE playlist_id = ?", (playlist_id,)).fetchone()
        return row[0] if row else None

    def members(self, playlist_id: str) -> set[str]:
        rows = self.db.execute("SELECT track_id FROM playlist_member WHERE playlist_id = ?", (playlist_id,))
        return {row[0] for row in rows}

    def published_hashes(self, event_type: str, entity_ids: Iterable[str]) -> dict[str, str]:
        ids = list(entity_ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT entity_id, content_hash FROM published WHERE event_type = ? AND entity_id IN ({marks})",  # noqa: S608
                (event_type, *chunk),
            )
            found.update(dict(rows.fetchall()))
        return found

    def fresh(self, kind: str, entity_ids: Iterable[str], ttl_seconds: float) -> set[str]:
        """The ids of `kind` fetched less than `ttl_seconds` ago."""
        ids = list(entity_ids)
        cutoff = time.time() - ttl_seconds
        result: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT entity_id FROM fetched WHERE kind = ? AND fetched_at >= ? AND entity_id IN ({marks})",  # noqa: S608
                (kind, cutoff, *chunk),
            )
            result.update(row[0] for row in rows)
        return result

    def cursor(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM cursor WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def commit(self, changes: Changes) -> None:
        now = time.time()
        with self.transaction() as db:
            for playlist_id, snapshot, name, favourite in changes.playlists:
                db.execute(
                    "INSERT OR REPLACE INTO playlist VALUES (?, ?, ?, ?, ?)",
                    (playlist_id, snapshot, name, int(favourite), now),
                )
            for playlist_id, members in changes.members.items():
                db.execute("DELETE FROM playlist_member WHERE playlist_id = ?", (playlist_id,))
                db.executemany("INSERT INTO playlist_member VALUES (?, ?)", [(playlist_id, t) for t in members])
            db.executemany(
                "INSERT OR REPLACE INTO published VALUES (?, ?, ?, ?)",
                [(etype, eid, digest, now) for etype, eid, digest in changes.published],
            )
            db.executemany("INSERT OR REPLACE INTO fetched VALUES (?, ?, ?)", [(k, e, now) for k, e in changes.fetched])
            db.executemany("INSERT OR REPLACE INTO cursor VALUES (?, ?)", list(changes.cursors.items()))

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT event_type, COUNT(*) FROM published GROUP BY event_type")
        return dict(rows.fetchall())
