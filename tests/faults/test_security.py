"""Security, checked for real: a unique random client secret and the tokens the sandbox really issued never
appear in the producer's output (LOG_LEVEL=DEBUG, both kinds of auth, token refreshes included), in a Kafka
event, in the text of an exception the producer raises, in the trainer's output or anywhere in its MLflow
store; the token file stays mode 0600; compose publishes nothing beyond 127.0.0.1 and defaults no secret;
the sandbox and the MLflow UI bind to loopback unless told otherwise.

pip-audit is not run here (it needs PyPI's per-version JSON API or OSV): `make audit`, and the README's
Security section for its status.
"""

import base64
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from mlflow import MlflowClient

from pipeline_runtime.broker import free_port
from pipeline_runtime.errors import SetupError
from producers.sandbox.server import SandboxServer
from producers.spotify import LoginExpired, SpotifyApi
from tests.support.compose import run_compose
from tests.support.kafka import read_topic
from tests.support.processes import ROOT, local_env, run_module, start_module
from tests.support.spotify import TOPICS, ProducerProcess, change_playlist, fault_env, sandbox_settings, set_faults
from tests.support.training import TrainerPair

EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - the bind the tests ask for when they tell otherwise
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)


def random_secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(12)}"


def assert_secret_free(where: str, text: str, secret_values: Iterable[str]) -> int:
    """No secret in `text`; the number of characters scanned."""
    found = [value for value in secret_values if value and value in text]
    assert not found, f"{len(found)} secret(s) in {where}, e.g. one starting {found[0][:8]!r}"
    return len(text)


def exception_text(exc: BaseException) -> str:
    """What a user or a log could ever see of an exception: the message, the repr and the whole traceback,
    with every exception it was raised from or during (even a suppressed context)."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current), *traceback.format_exception(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def kafka_text(bootstrap_servers: str, env: dict[str, str]) -> tuple[str, int]:
    events = [event for name in TOPICS for event in read_topic(bootstrap_servers, env[name])]
    return "\n".join(json.dumps(event) for event in events), len(events)


def files_text(folder: Path, leave_out: Path | None = None) -> tuple[str, int]:
    """Every file under `folder` as text (bytes decoded leniently): the SQLite stores, logs, artifacts."""
    files = [p for p in folder.rglob("*") if p.is_file() and p != leave_out]
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files), len(files)


def printed(process: "subprocess.Popen[str]", pattern: str, what: str) -> str:
    """The first match of `pattern` (its group, if it has one) in what `process` prints, read line by line."""
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, f"{what} ended without printing an address"
        found = re.findall(pattern, line)
        if found:
            return str(found[0])


def issued(server: SandboxServer) -> set[str]:
    """Every access and refresh token the sandbox ever issued."""
    state = server.state
    return set(state.tokens) | set(state.refresh_tokens) | state.revoked_refresh_tokens


# --- the producer: client credentials ---


def test_client_credentials_never_reach_logs_events_or_errors(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    """Moved here from the producer CLI tests and extended: both Kafka clients, a token
    renewed mid-run, a wrong secret, the exceptions themselves."""
    server = sandbox_factory("extended")
    secret = random_secret("secret")
    server.state.client_secret = secret
    basic = base64.b64encode(f"{server.state.client_id}:{secret}".encode()).decode()
    data_dir = tmp_path / "data"
    env = fault_env(
        server,
        data_dir,
        bootstrap_servers,
        PRODUCER_AUTH="client",
        LOG_LEVEL="DEBUG",
        PRODUCER_KAFKA_CLIENT="kafka-python",
    )
    assert env["SPOTIFY_CLIENT_SECRET"] == secret
    outputs = []
    first = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=180)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "published" in first.stderr and "DEBUG" in first.stderr, "the logs at DEBUG were scanned"
    outputs.append(first.stdout + first.stderr)
    producer = ProducerProcess({**env, "PRODUCER_KAFKA_CLIENT": "confluent-kafka"}, tmp_path, "--interval", "1")
    try:
        first_poll = producer.wait_for(r"poll: .* published nothing new")
        playlist = next(iter(server.state.catalogue.playlists))
        change_playlist(server, playlist, [], server.state.catalogue.playlists[playlist]["track_ids"][:1])
        set_faults(server, expire_tokens=True)  # the running producer's token is refused: it fetches a new one
        renewed = producer.wait_for(r"access token expired: getting a new one", first_poll)
        producer.wait_for(r"playlist '.*0 added, 1 removed", renewed)
        producer.terminate()
    finally:
        producer.kill()
    outputs.append(producer.output)
    check = run_module("producers", "check", env=env, cwd=tmp_path)
    assert "**********" in check.stdout
    outputs.append(check.stdout + check.stderr)

    wrong = random_secret("wrong")
    refused = run_module("producers", "run", "--once", env={**env, "SPOTIFY_CLIENT_SECRET": wrong}, cwd=tmp_path)
    assert refused.returncode == 2 and "rejected SPOTIFY_CLIENT_ID/SPOTIFY_CLIENT_SECRET (invalid_client)" in (
        " ".join(refused.stdout.split())
    )
    outputs.append(refused.stdout + refused.stderr)
    settings = sandbox_settings(server, tmp_path / "in-process", auth="client", spotify_client_secret=wrong)
    with pytest.raises(SetupError) as caught:
        SpotifyApi(settings).detect_generation()
    errors = exception_text(caught.value)
    assert "invalid_client" in errors

    tokens = set(server.state.tokens)
    assert len(tokens) >= 2, "a first token and the one fetched after it expired"
    wrong_basic = base64.b64encode(f"{server.state.client_id}:{wrong}".encode()).decode()
    watched = {secret, basic, wrong, wrong_basic, *tokens}
    scanned = sum(assert_secret_free(f"output {i}", text, watched) for i, text in enumerate(outputs))
    scanned += assert_secret_free("the exception", errors, watched)
    events, count = kafka_text(bootstrap_servers, env)
    assert count > 0
    scanned += assert_secret_free("Kafka events", events, watched)
    stored, files = files_text(data_dir)
    scanned += assert_secret_free(f"the {files} file(s) of DATA_DIR", stored, watched)
    figures(
        secrets_watched=len(watched),
        tokens_issued=len(tokens),
        outputs_scanned=len(outputs),
        kafka_events_scanned=count,
        data_files_scanned=files,
        exceptions_scanned=1,
        characters_scanned=scanned,
        leaks=0,
    )


# --- the producer: a user's login (PKCE), refreshes, invalid_grant ---


def test_a_user_login_stays_in_a_private_file_and_out_of_logs_events_and_errors(
    sandbox_factory: Callable[..., SandboxServer],
    bootstrap_servers: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    """Moved here from the producer CLI tests (the login) and extended: a run at DEBUG with
    a refresh that rewrites the token file, invalid_grant in a run and as an exception."""
    server = sandbox_factory("development")
    secret = random_secret("secret")
    server.state.client_secret = secret
    data_dir = tmp_path / "data"
    token_file = data_dir / "state" / "spotify-token.json"
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    server.state.redirect_uris.append(redirect_uri)  # registered in the app's settings, exactly
    env = fault_env(server, data_dir, bootstrap_servers, LOG_LEVEL="DEBUG", PRODUCER_REDIRECT_URI=redirect_uri)
    outputs = []
    login = start_module("producers", "login", "--no-browser", "--timeout", "60", env=env, cwd=tmp_path)
    try:
        url = printed(login, r"http://\S+/authorize\?\S+", "the login")
        assert "code_challenge_method=S256" in url
        answer = requests.get(url, timeout=10)  # what the browser does: approve, follow the redirect home
        assert answer.status_code == 200 and "Logged in" in answer.text
        outputs.append(url + login.communicate(timeout=60)[0])
    finally:
        login.kill()
    assert login.returncode == 0, outputs[-1]
    assert "logged in as Sandbox User" in outputs[-1]
    modes = [token_file.stat().st_mode & 0o777]
    first_token = json.loads(token_file.read_text())
    assert first_token["refresh_token"] in server.state.refresh_tokens

    producer = ProducerProcess(env, tmp_path, "--interval", "1")
    try:
        first = producer.wait_for(r"poll: .* 0 failed; published \d+")
        set_faults(server, expire_tokens=True)
        renewed = producer.wait_for(r"access token expired: getting a new one", first)
        producer.wait_for(r"poll: .* 0 failed; published nothing new", renewed)
        producer.terminate()
    finally:
        producer.kill()
    outputs.append(producer.output)
    refreshed = json.loads(token_file.read_text())
    assert refreshed["access_token"] != first_token["access_token"], "the refresh rewrote the token file"
    modes.append(token_file.stat().st_mode & 0o777)

    set_faults(server, invalid_grant=True, expire_tokens=True)
    expired = run_module("producers", "run", "--once", env=env, cwd=tmp_path, timeout=120)
    assert expired.returncode == 2 and "invalid_grant" in expired.stdout, expired.stdout + expired.stderr
    outputs.append(expired.stdout + expired.stderr)
    with pytest.raises(LoginExpired) as caught:
        SpotifyApi(sandbox_settings(server, data_dir)).get("me")
    errors = exception_text(caught.value)
    assert "invalid_grant" in errors
    modes.append(token_file.stat().st_mode & 0o777)

    tokens = issued(server)
    assert len(server.state.tokens) >= 2 and server.state.refresh_tokens
    assert server.state.revoked_refresh_tokens, "the refresh in the run rotated the refresh token"
    assert refreshed["refresh_token"] in server.state.refresh_tokens, "the rotated one was written to the file"
    watched = {secret, *tokens}
    scanned = sum(assert_secret_free(f"output {i}", text, watched) for i, text in enumerate(outputs))
    scanned += assert_secret_free("the exception", errors, watched)
    events, count = kafka_text(bootstrap_servers, env)
    assert count > 0
    scanned += assert_secret_free("Kafka events", events, watched)
    stored, files = files_text(data_dir, leave_out=token_file)
    scanned += assert_secret_free(f"the {files} other file(s) of DATA_DIR", stored, watched)
    assert modes == [0o600] * 3, [oct(m) for m in modes]
    figures(
        secrets_watched=len(watched),
        access_tokens=len(server.state.tokens),
        refresh_tokens=len(server.state.refresh_tokens),
        outputs_scanned=len(outputs),
        kafka_events_scanned=count,
        other_data_files_scanned=files,
        exceptions_scanned=1,
        characters_scanned=scanned,
        leaks=0,
        token_file_modes=sorted({oct(m) for m in modes}),
    )


# --- the trainer and MLflow ---


def test_mlflow_and_the_trainer_hold_no_secret(trainer_pair: TrainerPair, figures: Callable[..., None]) -> None:
    """The trainers of `trainer_pair` had a client secret and an MLflow token in their environment."""
    data_dir, watched = trainer_pair.data_dir, trainer_pair.secrets
    output = "\n".join(trainer_pair.outputs)
    assert "recommendations written" in output and "DEBUG" in output, "a whole cycle, its logs at DEBUG"

    client = MlflowClient(f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}")
    experiments = client.search_experiments()
    runs = [run for e in experiments for run in client.search_runs([e.experiment_id])]
    assert len(runs) >= 4, "a baseline and a candidate per task"
    recorded: list[Any] = [e.name for e in experiments] + [e.tags for e in experiments]
    params = tags = 0
    for run in runs:
        recorded += [run.info.run_name, run.data.params, run.data.tags]
        params += len(run.data.params)
        tags += len(run.data.tags)
    for model in client.search_registered_models():
        recorded += [model.name, model.description, model.tags, model.aliases]
        for version in client.search_model_versions(f"name = '{model.name}'"):
            recorded += [version.description, version.tags, version.run_id]
    scanned = assert_secret_free("MLflow's params, tags and names", json.dumps(recorded, default=str), watched)
    store, files = files_text(data_dir / "mlflow")  # the SQLite store and every artifact, byte for byte
    scanned += assert_secret_free("the MLflow store and artifacts", store, watched)
    scanned += assert_secret_free("the trainer's output", output, watched)
    figures(runs=len(runs), params=params, tags=tags, mlflow_files_scanned=files, characters_scanned=scanned, leaks=0)


# --- compose ---


def test_compose_publishes_loopback_only_and_defaults_no_secret(figures: Callable[..., None]) -> None:
    """Moved here from tests/unit/test_compose.py (loopback ports) and extended: no default for anything
    named like a secret, neither in the file nor once compose has interpolated it, nor in .env.example."""
    rendered = run_compose("config", "--format", "json", env={})
    assert rendered.returncode == 0, rendered.stderr
    services = json.loads(rendered.stdout)["services"]
    published = [(name, port) for name, svc in services.items() for port in svc.get("ports", [])]
    assert published, "kafka and mlflow publish a port for the host"
    for name, port in published:
        assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port}"

    secret_values = {
        (name, key): value
        for name, svc in services.items()
        for key, value in (svc.get("environment") or {}).items()
        if SECRET_NAME.search(key)
    }
    assert ("producer", "SPOTIFY_CLIENT_SECRET") in secret_values
    assert all(not value for value in secret_values.values()), f"defaulted: {secret_values}"

    text = (ROOT / "docker-compose.yml").read_text()
    raw = yaml.safe_load(text)
    literal = {
        (name, key): value
        for name, svc in raw["services"].items()
        for key, value in (svc.get("environment") or {}).items()
        if SECRET_NAME.search(key) and not re.fullmatch(r"\$\{\w+(:?[-?][^}]*)?\}", str(value))
    }
    assert not literal, f"secrets written into the file: {literal}"
    references = re.findall(r"\$\{(\w+)(?::?-([^}]*))?\}", text)
    secret_references = [(name, default) for name, default in references if SECRET_NAME.search(name)]
    assert secret_references and all(default == "" for _, default in secret_references), secret_references

    example = re.findall(r"^([A-Z0-9_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert not [name for name, _ in example if SECRET_NAME.search(name)], ".env.example sets a secret"
    figures(
        ports_published=len(published),
        bound_beyond_loopback=0,
        secret_variables=len(secret_values),
        secret_references=len(secret_references),
        defaults=0,
    )


# --- loopback binds ---


def listening(port: int) -> set[str]:
    """The addresses a socket listens on for `port` (TCP over IPv4 and IPv6), from /proc/net."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
                found.add(socket.inet_ntop(family, raw))
    return found


def host_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (where another machine would reach it)."""
    import psutil

    return [
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def wait_listening(port: int, process: "subprocess.Popen[Any]", timeout: float = 120) -> set[str]:
    deadline = time.monotonic() + timeout
    while not (addresses := listening(port)):
        assert process.poll() is None, f"exited with {process.returncode}"
        assert time.monotonic() < deadline, f"nothing listens on port {port} after {timeout:.0f}s"
        time.sleep(0.5)
    return addresses


def test_the_sandbox_binds_loopback_unless_told_otherwise(tmp_path: Path, figures: Callable[..., None]) -> None:
    others = host_addresses()
    binds = {}
    for host in (None, EVERY_ADDRESS):
        env = local_env(tmp_path / "data")
        size = [
            "--tracks",
            "200",
            "--artists",
            "30",
            "--albums",
            "40",
            "--playlists",
            "4",
            "--favourite-playlists",
            "1",
        ]
        args = ["sandbox", "--port", "0", *size, *(["--host", host] if host else [])]
        process = start_module("producers", *args, env=env, cwd=tmp_path)
        try:
            url = printed(process, r"SPOTIFY_API_URL=(\S+)", "the sandbox")
            port = int(url.split(":")[2].split("/")[0])
            binds[host or "default"] = (wait_listening(port, process), url, [reachable(a, port) for a in others])
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        finally:
            process.kill()
    addresses, url, from_others = binds["default"]
    assert addresses == {"127.0.0.1"} and url.startswith("http://127.0.0.1:")
    assert not any(from_others), "not reachable on this machine's other addresses"
    addresses, _, from_others = binds[EVERY_ADDRESS]
    assert addresses == {EVERY_ADDRESS} and all(from_others), "told otherwise: every address"
    figures(
        default_bind=sorted(binds["default"][0]),
        told_otherwise=sorted(addresses),
        other_addresses_tried=len(others),
        reachable_there_by_default=0,
    )


def processes(pid: int) -> list[str]:
    """The command lines of a process's descendants (the MLflow UI's: its server and what that started)."""
    import psutil

    return [" ".join(child.cmdline()) for child in psutil.Process(pid).children(recursive=True)]


def health(port: int, process: "subprocess.Popen[Any]", timeout: float = 120) -> int:
    """The status of the MLflow UI's /health once it answers (its workers start after the socket listens)."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code
        except requests.RequestException:
            assert time.monotonic() < deadline, f"the MLflow UI did not answer within {timeout:.0f}s"
            time.sleep(1)


def test_the_mlflow_ui_binds_loopback_unless_told_otherwise(tmp_path: Path, figures: Callable[..., None]) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "mlflow").mkdir(parents=True)
    MlflowClient(f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}").create_experiment(uuid.uuid4().hex)
    others = host_addresses()
    binds = {}
    for host in (None, EVERY_ADDRESS):
        port = free_port()
        env = local_env(
            data_dir, PIPELINE_MLFLOW_UI_PORT=str(port), **({"PIPELINE_MLFLOW_UI_HOST": host} if host else {})
        )
        ui = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "mlflow-ui"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            addresses = wait_listening(port, ui)
            binds[host or "default"] = (addresses, health(port, ui), [reachable(a, port) for a in others])
            group = processes(ui.pid)
            servers = [line for line in group if "uvicorn" in line and "mlflow.server" in line]
            assert len(servers) == 1 and "--workers 1" in servers[0], group  # PIPELINE_MLFLOW_UI_WORKERS
            assert not [line for line in group if "huey" in line or "_job_runner" in line], group
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(30)
    addresses, status, from_others = binds["default"]
    assert addresses == {"127.0.0.1"} and status == 200
    assert not any(from_others), "not reachable on this machine's other addresses"
    addresses, status, from_others = binds[EVERY_ADDRESS]
    assert addresses == {EVERY_ADDRESS} and status == 200 and all(from_others), "PIPELINE_MLFLOW_UI_HOST=0.0.0.0"
    figures(
        default_bind=sorted(binds["default"][0]),
        told_otherwise=sorted(addresses),
        other_addresses_tried=len(others),
        reachable_there_by_default=0,
    )
