"""A real Apache Kafka 4 broker (KRaft combined mode, one node) run as a child process.

For tests, `make demo` and `make broker-start` on one machine; a deployment points
KAFKA_BOOTSTRAP_SERVERS at a real cluster instead. Everything lives under <DATA_DIR>/kafka/:

    server.properties, log4j2.properties   written on every start
    logs/                                  Kafka's log.dirs (formatted once, kept across restarts)
    cluster.json                           cluster id and controller port chosen at format time
    broker.json                            pid and ports of the running broker (for status/stop)
    broker.log, broker.out                 the broker's log (rolled) and the JVM's own output

Command line: `python -m pipeline_runtime broker start|stop|status|run|logs`.
"""

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pipeline_runtime.errors import SetupError
from pipeline_runtime.java import check_java
from pipeline_runtime.kafka_admin import broker_registered
from pipeline_runtime.settings import ServiceSettings, ensure_writable_dir

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
NODE_ID = 1
LOG_TAIL_LINES = 25


class BrokerSettings(ServiceSettings):
    """The local broker: `LOCAL_KAFKA_PORT=9092` (0 picks a free port), heap, timeouts."""

    model_config = SettingsConfigDict(env_prefix="LOCAL_KAFKA_")

    port: int = Field(9092, ge=0, le=65535, description="Client port on 127.0.0.1; 0 picks a free one.")
    controller_port: int = Field(0, ge=0, le=65535, description="KRaft controller port; 0 picks a free one.")
    heap: str = Field("512m", description="JVM heap (-Xmx) of the broker.")
    start_timeout: float = Field(60.0, gt=0, description="Seconds to wait for the broker to accept clients.")
    stop_timeout: float = Field(20.0, gt=0, description="Seconds to wait after SIGTERM before SIGKILL.")
    sasl_users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='SASL/PLAIN users as JSON ({"name": "password"}): the client port then asks for a login '
        "(SASL_PLAINTEXT), as a secured cluster does; the first user is the broker's own.",
    )

    def client_config(self, bootstrap_servers: str) -> dict[str, str]:
        """How a client of this broker connects (as the first SASL user when there are any)."""
        config = {"bootstrap.servers": bootstrap_servers}
        if self.sasl_users:
            name, password = next(iter(self.sasl_users.items()))
            config.update(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN",
                    "sasl.username": name,
                    "sasl.password": password.get_secret_value(),
                }
            )
        return config


class BrokerStartError(SetupError):
    """The broker process did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class RunningBroker:
    pid: int
    port: int
    controller_port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as `random-uuid` makes)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):  # Kafka's own generator avoids ids that look like options
            return cluster_id


def server_properties(
    log_dir: Path,
    port: int,
    controller_port: int,
    sasl_users: dict[str, str] | None = None,
    *,
    node_id: int = NODE_ID,
    voters: str | None = None,
    replicas: int = 1,
) -> str:
    """KRaft combined-mode properties for one node bound to 127.0.0.1 (replication factor 1 everywhere);
    with `sasl_users` the client listener asks for a SASL/PLAIN login (the first user is the broker's own).
    A node of a cluster gets its `node_id`, the static quorum's `voters` (`1@host:port,2@host:port,...`) and
    `replicas` as the default replication factor of every topic, with `min.insync.replicas` 2 (as a real
    cluster of 3 or more brokers runs)."""
    min_isr = str(min(2, replicas))
    quorum = (
        {"controller.quorum.voters": voters}
        if voters
        else {"controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}"}
    )
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        **quorum,
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
    }
    if sasl_users:
        name, password = next(iter(sasl_users.items()))
        users = " ".join(f'user_{user}="{secret}"' for user, secret in sasl_users.items())
        props.update(
            {
                "listeners": f"SASL_PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
                "advertised.listeners": f"SASL_PLAINTEXT://{HOST}:{port}",
                "inter.broker.listener.name": "SASL_PLAINTEXT",
                "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
                "sasl.enabled.mechanisms": "PLAIN",
                "sasl.mechanism.inter.broker.protocol": "PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="{name}" password="{password}" {users};'
                ),
            }
        )
    return "".join(f"{key}={value}\n" for key, value in props.items())


def log4j2_properties(log_file: Path) -> str:
    """Broker log to a rolled file, so weeks of running keep it bounded (5 x 10 MB)."""
    return f"""status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


def free_port(avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now, other than those in `avoid` (ports already given to something that is not
    listening yet, such as a stopped broker's controller port: the system may hand the same one out again)."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # Java's server sockets set SO_REUSEADDR too: a port in TIME_WAIT is usable, not busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def accepts_connections(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


def pid_is_broker(pid: int, properties_file: Path) -> bool:
    """Whether `pid` is alive and is the broker started with `properties_file` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(properties_file).encode() in cmdline


class LocalKafkaBroker:
    """Start, wait for, and stop one local broker whose data lives in `settings.broker_dir`."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.dir = settings.broker_dir.resolve()
        self.jars = (settings.jars_dir / "kafka").resolve()
        self.process: subprocess.Popen[bytes] | None = None
        self.running: RunningBroker | None = None

    @property
    def properties_file(self) -> Path:
        return self.dir / "server.properties"

    @property
    def state_file(self) -> Path:
        return self.dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.dir / "broker.log"

    @property
    def out_file(self) -> Path:
        return self.dir / "broker.out"

    @property
    def bootstrap_servers(self) -> str:
        if self.running is None:
            raise RuntimeError("the broker is not running")
        return self.running.bootstrap_servers

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return tail(self.out_file, lines) + tail(self.log_file, lines)

    def status(self) -> RunningBroker | None:
        """The broker running for this data dir (started by any process), or None."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if not pid_is_broker(int(state["pid"]), self.properties_file):
            return None
        return RunningBroker(int(state["pid"]), int(state["port"]), int(state["controller_port"]))

    def start(self, *, detach: bool = False) -> RunningBroker:
        """Format storage if new, start the JVM and wait until the broker serves clients.

        `detach` puts the broker in its own session, so it outlives this process (CLI `start`).
        """
        self._check_jars()
        java = check_java(self.settings.java_home)
        ensure_writable_dir(self.dir, "Kafka data folder")
        already = self.status()
        if already is not None:
            raise SetupError(
                f"A Kafka broker is already running for {self.dir} (pid {already.pid}, port {already.port}): "
                "use it, or stop it with `python -m pipeline_runtime broker stop`."
            )
        cluster_id, controller_port = self._cluster_identity()
        port = self.settings.port or free_port(avoid={controller_port})
        for what, candidate in (("client", port), ("controller", controller_port)):
            if not port_is_free(candidate):
                raise SetupError(
                    f"Port {candidate} on {HOST} ({what} port of the local Kafka broker) is already in use: stop "
                    f"what holds it (`ss -ltnp 'sport = :{candidate}'`) or set LOCAL_KAFKA_PORT to another "
                    "port (0 picks a free one)."
                )
        log_dir = self.dir / "logs"
        users = {name: secret.get_secret_value() for name, secret in self.settings.sasl_users.items()}
        self.properties_file.write_text(self._properties(log_dir, port, controller_port, users))
        self.properties_file.chmod(0o600)
        (self.dir / "log4j2.properties").write_text(log4j2_properties(self.log_file))
        if not (log_dir / "meta.properties").is_file():
            self._format(java.executable, cluster_id)
        self.process = process = self._spawn(java.executable, detach=detach)
        self.running = running = RunningBroker(process.pid, port, controller_port)
        self.state_file.write_text(json.dumps({"pid": process.pid, "port": port, "controller_port": controller_port}))
        self._wait_ready(process, running)
        log.info("Kafka broker ready at %s (pid %d)", running.bootstrap_servers, process.pid)
        return running

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL after `stop_timeout`. Returns whether a broker was running."""
        target = self.running or self.status()
        if target is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, signal.SIGTERM)
        if not self._wait_exit(target.pid, self.settings.stop_timeout):
            log.warning(
                "Kafka broker (pid %d) did not stop in %.0fs: killing it",
                target.pid,
                self.settings.stop_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(target.pid, signal.SIGKILL)
            self._wait_exit(target.pid, 10)
        self.state_file.unlink(missing_ok=True)
        self.process = None
        self.running = None
        return True

    def _properties(self, log_dir: Path, port: int, controller_port: int, users: dict[str, str]) -> str:
        """The node's server.properties (one node: its own quorum)."""
        return server_properties(log_dir, port, controller_port, users)

    def _format_options(self) -> list[str]:
        """How storage is formatted: a single node is a quorum of its own (`--standalone`)."""
        return ["--standalone"]

    def _check_jars(self) -> None:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise SetupError(f"The Kafka broker's jars are missing from {self.jars}: run `make jars`.")

    def _cluster_identity(self) -> tuple[str, int]:
        """Cluster id and controller port, kept from the first format: KRaft records the controller's
        endpoint in its metadata, so a restart must come back on the same controller port."""
        identity_file = self.dir / "cluster.json"
        if identity_file.is_file() and (self.dir / "logs" / "meta.properties").is_file():
            identity = json.loads(identity_file.read_text())
            return str(identity["cluster_id"]), int(identity["controller_port"])
        cluster_id = new_cluster_id()
        controller_port = self.settings.controller_port or free_port()
        identity_file.write_text(json.dumps({"cluster_id": cluster_id, "controller_port": controller_port}))
        return cluster_id, controller_port

    def _classpath(self) -> str:
        return f"{self.jars}/*"

    def _format(self, java: str, cluster_id: str) -> None:
        command = [
            java,
            "-cp",
            self._classpath(),
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "kafka.tools.StorageTool",
            "format",
            *self._format_options(),
            "-t",
            cluster_id,
            "-c",
            str(self.properties_file),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
            raise BrokerStartError(
                f"Formatting Kafka storage in {self.dir / 'logs'} failed (exit {result.returncode}):\n"
                + "\n".join(output)
            )

    def _spawn(self, java: str, *, detach: bool) -> "subprocess.Popen[bytes]":
        heap = self.settings.heap
        command = [
            java,
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.out_file.open("ab") as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=detach,
            )

    def _wait_ready(self, process: "subprocess.Popen[bytes]", running: RunningBroker) -> None:
        """Until the broker is registered and unfenced (it appears in metadata), or it dies, or time is up."""
        deadline = time.monotonic() + self.settings.start_timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                self.state_file.unlink(missing_ok=True)
                raise BrokerStartError(self._failure(f"The Kafka broker exited during start-up (exit {code})"))
            if accepts_connections(running.port) and broker_registered(
                self.settings.client_config(running.bootstrap_servers)
            ):
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerStartError(
            self._failure(f"The Kafka broker did not accept clients within {self.settings.start_timeout:.0f}s")
        )

    def _failure(self, headline: str) -> str:
        lines = self.log_tail()
        shown = "\n".join(f"    {line}" for line in lines) or "    (the log is empty)"
        return f"{headline}; last lines of {self.out_file} and {self.log_file}:\n{shown}"

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.pid == pid:
                if self.process.poll() is not None:
                    return True
            elif not pid_is_broker(pid, self.properties_file):
                return True
            time.sleep(0.1)
        return False


@contextmanager
def kafka_for_run(settings: BrokerSettings, bootstrap_servers: str | None) -> Iterator[tuple[str, str]]:
    """The cluster to use and how it was found: given, already running, or started (and stopped) here."""
    if bootstrap_servers:
        yield bootstrap_servers, "given"
        return
    broker = LocalKafkaBroker(settings)
    running: RunningBroker | None = broker.status()
    if running is not None:
        yield running.bootstrap_servers, f"already running, pid {running.pid}"
        return
    running = broker.start()
    try:
        yield running.bootstrap_servers, f"started for this run, data in {broker.dir}"
    finally:
        broker.stop()
