"""Long-running services without Docker: `make up`, `make status`, `make down`.

`python -m pipeline up` starts a supervisor in the background (`python -m pipeline supervise` runs it in the
foreground, e.g. under systemd). It starts, in order and each once the one before answers: the local
Kafka broker, the Spotify sandbox (only without SPOTIFY_CLIENT_ID/SECRET), the producer loop, the
streaming job and the trainer loop, each a `python -m ...` child with its log in DATA_DIR/logs/<name>.log.
A service that exits is restarted after 1, 2, 4 ... seconds (at most PIPELINE_RESTART_BACKOFF_MAX_SECONDS;
the pause resets once it has run for a minute). The state (pids, restarts, last exit) is written to
DATA_DIR/state/supervisor.json for `status`. SIGTERM stops the services in reverse order: SIGTERM, then
SIGKILL after PIPELINE_STOP_TIMEOUT_SECONDS.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.settings import PipelineSettings
from pipeline_runtime.errors import SetupError
from pipeline_runtime.settings import ensure_writable_dir

log = logging.getLogger(__name__)
STABLE_SECONDS = 60.0
READY_TIMEOUT = 120.0
SERVICES = ("broker", "sandbox", "producer", "streaming", "trainer")


@dataclass
class ServiceState:
    name: str
    state: str = "pending"  # pending, starting, running, restarting, stopped
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None
    last_exit: int | None = None
    log: str = ""
    stop_timeout: float = 0.0  # seconds between SIGTERM and SIGKILL for this service


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    before_start: Callable[[], None] | None = None
    process: "subprocess.Popen[bytes] | None" = None
    log_handle: IO[bytes] | None = None
    failures: int = 0
    restart_at: float | None = None
    stop_timeout: float | None = None  # None: PIPELINE_STOP_TIMEOUT_SECONDS


def state_file(settings: PipelineSettings) -> Path:
    return settings.state_dir / "supervisor.json"


def logs_dir(settings: PipelineSettings) -> Path:
    return settings.data_dir / "logs"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def backoff(failures: int, maximum: float) -> float:
    """Seconds before restart number `failures` (1, 2, 4 ... up to `maximum`)."""
    return float(min(maximum, 2 ** max(0, failures - 1)))


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def build_services(settings: PipelineSettings, live: bool, only: set[str]) -> list[Service]:
    """The services in start order, with the settings that tie them together."""
    from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker  # noqa: PLC0415

    services: list[Service] = []
    shared: dict[str, str] = {}
    if settings.local_broker and "broker" in only:
        broker = LocalKafkaBroker(BrokerSettings())

        def broker_ready() -> bool:
            running = broker.status()
            if running is not None:
                shared["KAFKA_BOOTSTRAP_SERVERS"] = running.bootstrap_servers
            return running is not None and port_open(running.port)

        services.append(Service("broker", python_module("pipeline_runtime", "broker", "run"), ready=broker_ready))
    if not live and "sandbox" in only:
        port = settings.sandbox_port
        args = [
            "sandbox",
            "--port",
            str(port),
            "--generation",
            settings.sandbox_generation,
            "--seed",
            str(settings.sandbox_seed),
            "--tracks",
            str(settings.sandbox_tracks),
            "--artists",
            str(max(20, settings.sandbox_tracks // 10)),
            "--albums",
            str(max(40, settings.sandbox_tracks // 4)),
        ]
        services.append(Service("sandbox", python_module("producers", *args), ready=lambda: port_open(port)))
        shared.update(sandbox_env(settings))
    producer = Service("producer", python_module("producers", "run"), env=shared)
    if not live and settings.sandbox_generation == "development":
        producer.before_start = lambda: log_in_to_sandbox(settings, shared)
    candidates = [
        producer,
        Service(
            "streaming", python_module("streaming", "run"), env=shared, stop_timeout=streaming_stop_timeout(settings)
        ),
        Service("trainer", python_module("training", "run"), env=shared),
    ]
    services += [s for s in candidates if s.name in only]
    return services


def streaming_stop_timeout(settings: PipelineSettings) -> float:
    """How long `down` lets the streaming job stop on its own: on SIGTERM it lets its queries finish their
    batches and gold catch up with silver, within STREAMING_STOP_TIMEOUT_SECONDS in all, so a SIGKILL after
    PIPELINE_STOP_TIMEOUT_SECONDS alone would cut that short. The job's own timeout and 30 s more (stopping the
    Spark session), never less than PIPELINE_STOP_TIMEOUT_SECONDS."""
    from pydantic import ValidationError  # noqa: PLC0415

    from streaming.settings import StreamingSettings  # noqa: PLC0415

    try:
        own = StreamingSettings().stop_timeout_seconds
    except ValidationError:  # the job itself will say what is wrong when it starts
        return settings.stop_timeout_seconds
    return max(settings.stop_timeout_seconds, own + 30)


def sandbox_env(settings: PipelineSettings) -> dict[str, str]:
    """The environment that points the producer at the supervised sandbox (no playlists before it is up)."""
    from producers.sandbox.server import producer_env  # noqa: PLC0415

    return producer_env(f"http://{settings.sandbox_host}:{settings.sandbox_port}")


def sandbox_playlists(settings: PipelineSettings) -> dict[str, str]:
    """The playlists of the catalogue the sandbox saved (it writes it before it listens)."""
    from producers.sandbox.catalogue import load_catalogue  # noqa: PLC0415
    from producers.sandbox.server import producer_env  # noqa: PLC0415

    env = producer_env("", load_catalogue(settings.data_dir / "sandbox"))
    return {key: env[key] for key in ("PRODUCER_PLAYLISTS", "PRODUCER_FAVOURITE_PLAYLISTS")}


def log_in_to_sandbox(settings: PipelineSettings, env: dict[str, str]) -> None:
    from producers.sandbox.login import log_in_sandbox_user  # noqa: PLC0415
    from producers.settings import ProducerSettings  # noqa: PLC0415

    values = {k.lower(): v for k, v in env.items() if k.startswith("SPOTIFY_")}
    producer = ProducerSettings(**values)  # type: ignore[arg-type]
    ensure_writable_dir(producer.state_dir, "producer state folder")
    log_in_sandbox_user(producer)


class Supervisor:
    def __init__(self, settings: PipelineSettings, services: list[Service]) -> None:
        self.settings = settings
        self.services = services
        self.states = {
            s.name: ServiceState(
                s.name,
                log=str(logs_dir(settings) / f"{s.name}.log"),
                stop_timeout=s.stop_timeout or settings.stop_timeout_seconds,
            )
            for s in services
        }

    def write_state(self, status: str) -> None:
        path = state_file(self.settings)
        data = {
            "pid": os.getpid(),
            "status": status,
            "updated_at": time.time(),
            "services": {name: asdict(state) for name, state in self.states.items()},
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2))
        temporary.replace(path)

    def start(self, service: Service) -> None:
        if service.before_start is not None:
            service.before_start()
        if service.name == "producer" and "SPOTIFY_API_URL" in service.env and "sandbox" in self.states:
            service.env.update(sandbox_playlists(self.settings))
        if service.log_handle is None:
            service.log_handle = (logs_dir(self.settings) / f"{service.name}.log").open("ab")
        service.process = subprocess.Popen(
            service.argv,
            env={**os.environ, **service.env, "PYTHONUNBUFFERED": "1"},
            stdout=service.log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        state = self.states[service.name]
        state.state, state.pid, state.started_at = "running", service.process.pid, time.time()
        service.restart_at = None
        log.info("%s started (pid %d)", service.name, service.process.pid)

    def wait_ready(self, service: Service, stop: threading.Event) -> None:
        if service.ready is None:
            return
        self.states[service.name].state = "starting"
        self.write_state("starting")
        deadline = time.monotonic() + READY_TIMEOUT
        while not service.ready():
            if stop.is_set():
                return
            if service.process is not None and service.process.poll() is not None:
                raise SetupError(f"{service.name} exited while starting: see {self.states[service.name].log}")
            if time.monotonic() > deadline:
                raise SetupError(f"{service.name} did not answer within {READY_TIMEOUT:.0f} s: see its log")
            stop.wait(0.5)
        self.states[service.name].state = "running"

    def check(self, service: Service, stop: threading.Event) -> None:
        """Restart a service that exited, after its backoff."""
        state = self.states[service.name]
        now = time.time()
        if service.process is not None and service.process.poll() is not None:
            code = service.process.returncode
            ran = now - (state.started_at or now)
            service.failures = 1 if ran > STABLE_SECONDS else service.failures + 1
            delay = backoff(service.failures, self.settings.restart_backoff_max_seconds)
            log.warning("%s exited with code %s after %.0f s; restarting in %.0f s", service.name, code, ran, delay)
            state.state, state.last_exit, state.pid = "restarting", code, None
            service.process = None
            service.restart_at = now + delay
        due = service.restart_at is not None and now >= service.restart_at
        if service.process is None and due and not stop.is_set():
            state.restarts += 1
            self.start(service)

    def stop_all(self) -> None:
        for service in reversed(self.services):
            process = service.process
            if process is None or process.poll() is not None:
                self.states[service.name].state = "stopped"
                continue
            log.info("stopping %s (pid %d)", service.name, process.pid)
            process.send_signal(signal.SIGTERM)
            timeout = self.states[service.name].stop_timeout
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: SIGKILL", service.name, timeout)
                process.kill()
                process.wait()
            state = self.states[service.name]
            state.state, state.last_exit, state.pid = "stopped", process.returncode, None
            self.write_state("stopping")
        for service in self.services:
            if service.log_handle is not None:
                service.log_handle.close()

    def run(self, stop: threading.Event) -> None:
        self.write_state("starting")
        try:
            for service in self.services:
                if stop.is_set():
                    break
                self.start(service)
                self.wait_ready(service, stop)
                self.write_state("starting")
            while not stop.is_set():
                for service in self.services:
                    self.check(service, stop)
                self.write_state("running")
                stop.wait(1.0)
        finally:
            self.stop_all()
            self.write_state("stopped")


def read_state(settings: PipelineSettings) -> dict[str, Any] | None:
    path = state_file(settings)
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def supervisor_running(settings: PipelineSettings) -> int | None:
    """The pid of the running supervisor of this data dir, or None."""
    state = read_state(settings)
    if state is None or state.get("status") == "stopped" or not pid_alive(state.get("pid")):
        return None
    return int(state["pid"])
