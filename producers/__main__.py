"""Command line of the producer service.

python -m producers run [--once | --interval SECONDS]   poll Spotify and publish events to Kafka
python -m producers login [--no-browser]                log in a Spotify user (PKCE), for their playlists
python -m producers sandbox [--port N] [...]            an offline Spotify Web API on 127.0.0.1
python -m producers backfill --file PATH                publish a CSV/Parquet catalogue as events
python -m producers playlist                            the champion's recommendations into your Spotify playlist
python -m producers check                               settings (secrets masked) and Kafka reachable
"""

import argparse
import logging
import sys
from pathlib import Path

from pipeline_runtime.cli import console, install_stop_handlers, print_settings, run_cli
from pipeline_runtime.kafka_admin import require_kafka
from pipeline_runtime.kafka_clients import librdkafka_config
from pipeline_runtime.logs import configure_logging
from pipeline_runtime.settings import ensure_writable_dir
from producers.settings import DEFAULT_REDIRECT_URI, ProducerSettings

log = logging.getLogger("producers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producers", description="Polls the Spotify Web API and publishes track events to Kafka."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="poll Spotify and publish events to Kafka, until stopped",
        description="Polls the configured playlists, the logged-in user's playlists and "
        "saved tracks, searches and artists; publishes what is new; repeats every "
        "PRODUCER_POLL_INTERVAL_SECONDS. SIGTERM or Ctrl-C stops it after the current unit.",
    )
    when = run.add_mutually_exclusive_group()
    when.add_argument(
        "--once",
        action="store_true",
        help="poll once and exit: 0 when done, 75 when part of it is left for the next run "
        "(a 429 wait, an outage, events Kafka did not confirm)",
    )
    when.add_argument("--interval", type=float, metavar="SECONDS", help="seconds between polls (overrides setting)")

    login = commands.add_parser(
        "login",
        help="log in a Spotify user (authorization code with PKCE)",
        description="Prints (and opens) Spotify's login page and catches the redirect on "
        "PRODUCER_REDIRECT_URI; keeps the refresh token in DATA_DIR/state (mode 0600).",
    )
    login.add_argument("--no-browser", action="store_true", help="only print the address")
    login.add_argument("--timeout", type=float, default=300, help="seconds to wait for the redirect (default 300)")

    sandbox = commands.add_parser(
        "sandbox",
        help="serve an offline Spotify Web API on 127.0.0.1",
        description="A generated catalogue behind a Spotify-compatible Web API (either "
        "generation), token endpoints and a ReccoBeats-compatible audio-features endpoint. "
        "Prints the settings that point the producer at it.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 picks a free one)")
    sandbox.add_argument(
        "--generation",
        choices=["development", "extended"],
        default="development",
        help="which Web API to imitate (default development, the 2026 one)",
    )
    sandbox.add_argument("--seed", type=int, default=42, help="seed of the generated catalogue (default 42)")
    sandbox.add_argument(
        "--redirect-uri",
        action="append",
        metavar="URI",
        help="a redirect URI registered for the app, matched exactly as Spotify does (repeatable; default "
        f"{DEFAULT_REDIRECT_URI}; `localhost` is refused as on Spotify)",
    )
    for name, default in (
        ("tracks", 2000),
        ("artists", 200),
        ("albums", 500),
        ("playlists", 12),
        ("favourite-playlists", 3),
    ):
        sandbox.add_argument(f"--{name}", type=int, default=default, help=f"catalogue size (default {default})")
    sandbox.add_argument("--export-csv", type=Path, help="also write the catalogue as a Spotify Tracks Dataset CSV")
    sandbox.add_argument(
        "--plays-per-hour",
        type=float,
        default=30,
        help="the simulated listener's plays per hour (recently played, top tracks, saves; default 30)",
    )
    faults = sandbox.add_argument_group("faults")
    faults.add_argument("--rate-limit", type=int, default=0, metavar="N", help="answer the next N API requests 429")
    faults.add_argument("--retry-after", type=int, default=1, metavar="SECONDS", help="Retry-After of those 429s")
    faults.add_argument("--quota-exceeded", action="store_true", help="those 429s say QUOTA_EXCEEDED")
    faults.add_argument("--server-errors", type=int, default=0, metavar="N", help="answer the next N API requests 503")
    faults.add_argument("--malformed", type=int, default=0, metavar="N", help="answer the next N with broken JSON")
    faults.add_argument("--slow-ms", type=int, default=0, help="delay every API answer by this many ms")
    faults.add_argument("--token-ttl", type=int, default=3600, help="lifetime of access tokens in seconds")

    backfill = commands.add_parser(
        "backfill",
        help="publish a CSV/Parquet catalogue as track and audio-features events",
        description="Reads a catalogue in the Spotify Tracks Dataset layout and publishes "
        "what is new or changed (re-running publishes nothing twice).",
    )
    backfill.add_argument("--file", type=Path, required=True, help="the CSV or Parquet file")

    commands.add_parser(
        "playlist",
        help="put the champion's recommendations into your Spotify playlist now",
        description="Reads the top PRODUCER_PLAYLIST_SIZE rows of the trainer's recommendations table and puts "
        "them into one playlist of the logged-in user's (PRODUCER_PLAYLIST_NAME, private unless "
        "PRODUCER_PLAYLIST_PUBLIC): created once, then replaced in place; nothing is written when it already "
        "holds them. `run` does the same after each poll that finds new recommendations. Needs `login`.",
    )
    commands.add_parser("check", help="show the effective settings (secrets masked) and check that Kafka answers")
    return parser


def sandbox_command(settings: ProducerSettings, args: argparse.Namespace) -> int:
    from producers.sandbox.catalogue import CatalogueSize, ceilings_text, generate_catalogue  # noqa: PLC0415
    from producers.sandbox.server import Faults, SandboxServer, SandboxState  # noqa: PLC0415

    size = CatalogueSize(args.tracks, args.artists, args.albums, args.playlists, args.favourite_playlists)
    catalogue = generate_catalogue(args.seed, size)
    folder = ensure_writable_dir(settings.data_dir / "sandbox", "sandbox folder")
    catalogue.save(folder)
    if args.export_csv:
        catalogue.export_tracks_csv(args.export_csv)
    faults = Faults(
        rate_limit=args.rate_limit,
        retry_after=args.retry_after,
        quota_exceeded=args.quota_exceeded,
        server_errors=args.server_errors,
        malformed=args.malformed,
        slow_ms=args.slow_ms,
        token_ttl=args.token_ttl,
    )
    try:
        state = SandboxState(catalogue, args.generation, faults=faults, listening_rate=args.plays_per_hour)
        state.redirect_uris = args.redirect_uri or state.redirect_uris
        server = SandboxServer(state, args.host, args.port)
    except OSError as exc:
        from pipeline_runtime.errors import SetupError  # noqa: PLC0415

        raise SetupError(
            f"Cannot serve the sandbox on {args.host}:{args.port} ({exc.strerror}): choose --port."
        ) from None
    stop = install_stop_handlers(log, "after the current unit")
    server.start_in_thread()
    console.print(
        f"Spotify sandbox ({args.generation} API) at [bold]{server.url}[/]: {len(catalogue.tracks):,} tracks, "
        f"{len(catalogue.playlists)} playlists; catalogue and model in {folder}",
        highlight=False,
    )
    console.print(
        ceilings_text(catalogue.model),
        highlight=False,
    )
    console.print("Point the producer at it with:", highlight=False)
    for key, value in server.env().items():
        console.print(f"  {key}={value}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    while not stop.wait(1):  # a timed wait: the signal handler runs within a second whatever the platform
        pass
    server.shutdown()
    server.server_close()
    return 0


def check_command(settings: ProducerSettings) -> int:
    print_settings(settings, "producer settings")
    brokers = require_kafka(librdkafka_config(settings), settings.kafka_timeout_seconds)
    console.print(f"✓ Kafka at {settings.kafka_bootstrap_servers} answers ({brokers} broker(s))")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        settings = ProducerSettings()
        configure_logging(settings.log_level)
        if args.command == "run":
            from producers.service import run_service  # noqa: PLC0415

            return run_service(settings, args.once, args.interval)
        if args.command == "login":
            from producers.login import login  # noqa: PLC0415

            name = login(settings, open_browser=not args.no_browser, timeout=args.timeout)
            console.print(f"✓ logged in as {name}; token kept in {settings.token_file} (mode 0600)", highlight=False)
            return 0
        if args.command == "sandbox":
            return sandbox_command(settings, args)
        if args.command == "playlist":
            from producers.playlist import publish_command  # noqa: PLC0415

            outcome = publish_command(settings)
            console.print(f"✓ {outcome.summary}", highlight=False, soft_wrap=True)
            return 0
        if args.command == "backfill":
            from producers.service import backfill  # noqa: PLC0415

            backfill(settings, args.file)
            return 0
        return check_command(settings)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
