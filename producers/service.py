"""The producer service: its parts wired in one place, the poll loop and the catalogue backfill.

`open_producer(settings)` is the one wiring of a producer (Spotify client with its API generation,
Kafka publisher, poll state, poller) that the CLI, the demo, the benchmarks and the tests share;
`run_service` is `python -m producers run`; `backfill` is `python -m producers backfill`.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from deltalake.exceptions import DeltaError
from spotipy.exceptions import SpotifyException

from pipeline_runtime.cli import console, install_stop_handlers
from pipeline_runtime.errors import SetupError, first_line
from pipeline_runtime.settings import ensure_writable_dir
from producers.catalogue_file import catalogue_events, catalogue_rows, read_catalogue
from producers.playlist import (
    recommendations_table,
    remembered,
    spotify_refusal,
    sync_playlist,
    top_recommendations,
)
from producers.poller import Conditions, Emitter, Poller, PollReport
from producers.publish import Publisher, open_publisher
from producers.settings import ProducerSettings
from producers.spotify import LoginExpired, RateLimited, ServiceUnavailable, SpotifyApi
from producers.state import Changes, PollState

log = logging.getLogger("producers")
EXIT_TEMPFAIL = 75
LOGIN_CHECK_SECONDS = 5.0  # how often a producer whose login expired looks for a new one
BACKFILL_CHUNK = 5000


@dataclass
class Producer:
    """A producer's parts, wired: close it (or use it as a context manager) to flush and release them."""

    settings: ProducerSettings
    api: SpotifyApi
    publisher: Publisher
    state: PollState
    poller: Poller

    def close(self) -> None:
        self.publisher.close()
        self.state.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def open_producer(
    settings: ProducerSettings,
    stop: threading.Event | None = None,
    conditions: Conditions | None = None,
    api: SpotifyApi | None = None,
) -> Producer:
    """The Spotify client (its API generation asked of Spotify, unless `api` is one that already knows it),
    the Kafka publisher (the cluster checked, missing topics created), the poll state and the poller."""
    ensure_writable_dir(settings.state_dir, "producer state folder")
    if api is None:
        api = SpotifyApi(settings)
        api.detect_generation()
    publisher = open_publisher(settings)
    try:
        state = PollState(settings.state_file)
    except BaseException:
        publisher.close()
        raise
    return Producer(settings, api, publisher, state, Poller(settings, api, publisher, state, stop, conditions))


def poll_once(settings: ProducerSettings, stop: threading.Event) -> PollReport:
    """One poll with its own producer (the demo's producer phase); raises RateLimited when Spotify is
    limiting the app before the first request."""
    with open_producer(settings, stop) as producer:
        return producer.poller.poll_once()


def run_service(settings: ProducerSettings, once: bool, interval: float | None) -> int:
    """`python -m producers run`: poll, publish, repeat every `interval` until SIGTERM; an exit code."""
    stop = install_stop_handlers(log, "after the current unit")
    ensure_writable_dir(settings.state_dir, "producer state folder")
    api = SpotifyApi(settings)
    every = interval or settings.poll_interval_seconds
    conditions = Conditions()
    stopped = wait_for_generation(settings, api, conditions, stop, once, every)
    if stopped is not None:
        log.info("producer stopped before its first poll")
        return stopped
    producer = open_producer(settings, stop, conditions, api)
    report: PollReport | None = None
    said: set[str] = set()  # the playlist problems already reported
    if settings.publish_playlist and not api.user:
        log.info(
            "recommendations are not put into a Spotify playlist: that needs a user login "
            "(`python -m producers login`); PRODUCER_PUBLISH_PLAYLIST=false says nothing"
        )
    try:
        while True:
            try:
                report = producer.poller.poll_once()
                if not stop.is_set():
                    refresh_playlist(producer, said)
            except LoginExpired as exc:
                if wait_for_new_login(settings, exc, stop, every, once):
                    return 0
                continue
            if once or stop.is_set():
                return EXIT_TEMPFAIL if (once and report.retry_later) else 0
            delay = every if report.resume_at is None else max(every, report.resume_at - time.time())
            next_at = datetime.fromtimestamp(time.time() + delay, UTC).strftime("%H:%M:%S UTC")
            log.log(logging.DEBUG if report.quiet else logging.INFO, "next poll at %s", next_at)
            if stop.wait(delay):
                return 0
    finally:
        producer.close()
        if report is not None and report.undelivered:
            log.warning(
                "producer stopped; Kafka did not confirm all of the last poll's events: none of them is recorded "
                "as published, so the next run sends them again"
            )
        else:
            log.info("producer stopped; Kafka confirmed everything it was given")


def refresh_playlist(producer: Producer, said: set[str]) -> None:
    """After a poll: when the trainer's recommendations table has a new version, put its top rows into the
    user's playlist (producers.playlist). A problem is said once and tried again after the next poll; it never
    stops the polling. An expired login goes to the caller, which waits for a new one."""
    settings = producer.settings
    if not settings.publish_playlist or not producer.api.user:
        return
    try:
        table = recommendations_table(settings)
        known = remembered(producer.state)
        if table is None or (known is not None and known.table_version == table.version()):
            return  # no new version: its rows are not even read
        wanted = top_recommendations(table, settings.playlist_size)
        outcome = sync_playlist(producer.api, producer.state, settings, wanted)
    except LoginExpired:
        raise
    except SpotifyException as exc:
        problem = f"Spotify refused it ({spotify_refusal(exc)})"
    except (SetupError, RateLimited, ServiceUnavailable, OSError, DeltaError) as exc:
        problem = first_line(exc)
    else:
        said.clear()
        log.info("%s", outcome.summary)
        return
    if problem not in said:
        said.add(problem)
        log.warning("the recommendations playlist was not updated: %s; tried again after each poll", problem)


def wait_for_generation(
    settings: ProducerSettings,
    api: SpotifyApi,
    conditions: Conditions,
    stop: threading.Event,
    once: bool,
    every: float,
) -> int | None:
    """Ask Spotify which API the app gets, waiting out 429s, outages and an expired login as the poll loop
    does; an exit code when the producer should end instead."""
    while True:
        conditions.begin_poll()
        try:
            api.detect_generation()
        except RateLimited as exc:
            conditions.rate_limited(exc)
            delay = exc.retry_after
        except ServiceUnavailable as exc:
            conditions.failed(exc, "the first request, which tells the API generation")
            delay = every
        except SpotifyException as exc:
            conditions.refused(
                exc,
                "the first request, which tells the API generation; PRODUCER_API_GENERATION "
                "set to extended or development skips it",
            )
            delay = every
        except LoginExpired as exc:
            if wait_for_new_login(settings, exc, stop, every, once):
                return 0
            continue
        else:
            conditions.end_poll(complete=True, stopped=False)
            return None
        if once:
            return EXIT_TEMPFAIL
        if stop.wait(delay):
            return 0


def wait_for_new_login(
    settings: ProducerSettings, exc: Exception, stop: threading.Event, every: float, once: bool
) -> bool:
    """After Spotify refused the saved login: with --once, the error; else ask Spotify nothing and watch the
    token file until `python -m producers login` renews it. True when stopped meanwhile."""
    if once:
        raise exc
    token_file = settings.token_file
    every = min(every, LOGIN_CHECK_SECONDS)
    before = read_token_file(token_file)
    log.error(
        "%s Until then the producer keeps running without asking Spotify anything, and resumes by itself "
        "once the login is renewed (it checks %s every %.0fs).",
        exc,
        token_file,
        every,
    )
    while not stop.wait(every):
        now = read_token_file(token_file)
        if now is not None and now != before:
            log.info("a new Spotify login is in %s: polling resumed", token_file)
            return False
    return True


def read_token_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def backfill(settings: ProducerSettings, file: Path) -> dict[str, int]:
    """Publish what is new or changed in a CSV/Parquet catalogue; the events published, by type."""
    tracks = catalogue_rows(read_catalogue(file))
    ensure_writable_dir(settings.state_dir, "producer state folder")
    publisher = open_publisher(settings)
    state = PollState(settings.state_file)
    emitter = Emitter(settings, publisher, state)
    ids = list(tracks)
    try:
        with console.status("") as status:
            for start in range(0, len(ids), BACKFILL_CHUNK):
                chunk = {t: tracks[t] for t in ids[start : start + BACKFILL_CHUNK]}
                emitter.emit(catalogue_events(chunk, f"catalogue-file/{file.name}"), Changes())
                status.update(f"backfill: {min(start + BACKFILL_CHUNK, len(ids)):,} of {len(ids):,} tracks")
    finally:
        publisher.close()
        state.close()
    published = ", ".join(f"{n:,} {t}" for t, n in sorted(emitter.published.items())) or "nothing new"
    console.print(f"backfill of {file}: {len(ids):,} tracks read; published {published}", highlight=False)
    return dict(emitter.published)
