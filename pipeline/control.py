"""The commands around the supervisor: up (in the background), status, down, supervise (in the foreground)."""

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from rich.table import Table

from pipeline.settings import PipelineSettings
from pipeline.supervisor import (
    READY_TIMEOUT,
    Supervisor,
    build_services,
    logs_dir,
    pid_alive,
    read_state,
    supervisor_running,
)
from pipeline_runtime.cli import console
from pipeline_runtime.errors import SetupError
from pipeline_runtime.lock import ProcessLock
from pipeline_runtime.settings import ensure_writable_dir
from producers.settings import ProducerSettings

EXIT_NOT_RUNNING = 3


def supervise(settings: PipelineSettings, services: list[str], stop: threading.Event) -> int:
    ensure_writable_dir(logs_dir(settings), "logs folder")
    ensure_writable_dir(settings.state_dir, "state folder")
    with ProcessLock(settings.state_dir / "supervisor.lock", "supervisor"):
        Supervisor(settings, build_services(settings, ProducerSettings().has_credentials, set(services))).run(stop)
    return 0


def up(settings: PipelineSettings, services: list[str]) -> int:
    running = supervisor_running(settings)
    if running is not None:
        console.print(f"already up (supervisor pid {running}): `make status` shows the services, `make down` stops")
        return 0
    folder = ensure_writable_dir(logs_dir(settings), "logs folder")
    ensure_writable_dir(settings.state_dir, "state folder")
    (settings.state_dir / "supervisor.json").unlink(missing_ok=True)
    log_path = folder / "supervisor.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "supervise", "--services", ",".join(services)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT * len(services)
    with console.status("starting the services ..."):
        while True:
            state = read_state(settings)
            if state is not None and state.get("status") == "running":
                break
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise SetupError("the supervisor stopped while starting the services:\n" + "\n".join(tail))
            if time.monotonic() > deadline:
                raise SetupError(f"the services did not all start: see {log_path} and `make status`")
            time.sleep(0.5)
    status(settings)
    console.print(f"up: supervisor pid {process.pid}, logs in {folder}; `make down` stops everything", highlight=False)
    return 0


def describe_uptime(started: float | None) -> str:
    if not started:
        return "-"
    seconds = int(time.time() - started)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def status(settings: PipelineSettings) -> int:
    state = read_state(settings)
    pid = supervisor_running(settings)
    if state is None or pid is None:
        console.print(f"not running (no supervisor for {settings.data_dir}); `make up` starts the services")
        return EXIT_NOT_RUNNING
    table = Table(title=f"services (supervisor pid {pid}, {state.get('status')})")
    for column in ("service", "state", "pid", "restarts", "uptime", "last exit", "log"):
        table.add_column(column, overflow="fold")
    for name, service in state["services"].items():
        shown = service["state"]
        if shown == "running" and not pid_alive(service.get("pid")):
            shown = "exited"
        last_exit = "-" if service.get("last_exit") is None else str(service["last_exit"])
        uptime = describe_uptime(service.get("started_at") if shown == "running" else None)
        table.add_row(
            name, shown, str(service.get("pid") or "-"), str(service["restarts"]), uptime, last_exit, service["log"]
        )
    console.print(table)
    return 0


def stop_budget(running: list[dict[str, Any]], default: float) -> float:
    """Seconds `down` waits for the supervisor: it stops each running service in turn, each up to its own stop
    timeout (recorded in its state; the streaming job's is longer), then itself."""
    return max(sum(s.get("stop_timeout") or default for s in running), default) + 15


def down(settings: PipelineSettings) -> int:
    pid = supervisor_running(settings)
    if pid is None:
        console.print("not running: nothing to stop")
        return 0
    state = read_state(settings) or {}
    running = [s for s in state.get("services", {}).values() if s.get("pid")]
    children = [s["pid"] for s in running]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + stop_budget(running, settings.stop_timeout_seconds)
    with console.status(f"stopping the services (supervisor pid {pid}) ..."):
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
    if pid_alive(pid):
        console.print(f"the supervisor did not stop in time: SIGKILL to it and {len(children)} service(s)")
        for victim in [pid, *children]:
            if pid_alive(victim):
                os.kill(victim, signal.SIGKILL)
    console.print("stopped")
    return 0


def mlflow_ui(settings: PipelineSettings) -> int:
    """`mlflow ui` on the local store, bound to 127.0.0.1 unless PIPELINE_MLFLOW_UI_HOST says otherwise; a
    configured tracking server has its own UI."""
    from pipeline_runtime.mlflow_setup import tracking_uri  # noqa: PLC0415

    if settings.mlflow_tracking_uri:
        console.print(f"MLFLOW_TRACKING_URI is {settings.mlflow_tracking_uri}: open that server's UI instead")
        return 0
    if not (settings.mlflow_dir / "mlflow.db").exists():
        raise SetupError(f"no MLflow store in {settings.mlflow_dir} yet: run `make demo` or `make train` first")
    uri = tracking_uri(settings)
    host, port = settings.mlflow_ui_host, settings.mlflow_ui_port
    console.print(f"MLflow UI on http://{host}:{port} (store {uri}); Ctrl-C stops it", highlight=False)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    command += ["--workers", str(settings.mlflow_ui_workers)]
    # MLflow 3's server also starts a job runner with seven consumer processes (GenAI jobs: scorers, prompt
    # optimisation), 3 s of CPU each to start; a UI of runs and models uses none, so they stay off unless asked.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


def sandbox_producer(settings: PipelineSettings) -> int:
    """`producers run` pointed at a sandbox that runs elsewhere (compose's `sandbox` service): its URLs from
    PIPELINE_SANDBOX_HOST/PORT, the playlists from the catalogue it saved in DATA_DIR/sandbox."""
    from pipeline.supervisor import log_in_to_sandbox, sandbox_env, sandbox_playlists  # noqa: PLC0415

    catalogue = settings.data_dir / "sandbox" / "catalogue.json"
    if not catalogue.exists():
        raise SetupError(f"no sandbox catalogue at {catalogue}: start the sandbox first (it writes it)")
    env = {**sandbox_env(settings), **sandbox_playlists(settings)}
    if settings.sandbox_generation == "development":
        log_in_to_sandbox(settings, env)
    os.execve(sys.executable, [sys.executable, "-m", "producers", "run"], {**os.environ, **env})  # noqa: S606
