"""A Spark standalone cluster on loopback ports, started by pyspark's own `spark-class`: a master and workers of one
core each. A worker can run in a mount namespace of its own (`unshare`, as root) where the driver's folder (its
DATA_DIR and TMPDIR) is an empty tmpfs, so a path only the driver's disk has is not there for it, as on a second
machine. (Not all of `/tmp`: the project itself may be there, as a fresh clone in CI is.)"""

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from pipeline_runtime.broker import HOST, free_port

SPARK_HOME = Path(pyspark.__file__).parent


@dataclass
class Daemon:
    name: str
    process: "subprocess.Popen[bytes]"
    log: Path

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"the {self.name} never said {text!r}:\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the daemon and what it started (a worker's executors): a machine lost."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


@dataclass
class SparkCluster:
    root: Path
    env: dict[str, str]
    hidden: Path  # the driver's own folder, which a worker "on another machine" does not see
    master_url: str
    master: Daemon
    ui_url: str  # the master's web UI: /json/ lists the workers and the running applications
    workers: list[Daemon] = field(default_factory=list)

    def start_worker(self, index: int, memory: str, elsewhere: bool) -> Daemon:
        """Worker `index` (one core, `memory`), started and registered with the master; `elsewhere`: without the
        driver's folder."""
        work_dir = self.root / f"worker-{index}"
        work_dir.mkdir(exist_ok=True)
        args = ["org.apache.spark.deploy.worker.Worker", "--host", HOST, "--cores", "1", "--memory", memory]
        args += ["--webui-port", str(free_port()), "--work-dir", str(work_dir), self.master_url]
        env = {**self.env, "SPARK_WORKER_DIR": str(work_dir)}
        log = self.root / f"worker-{index}-{len(self.workers)}.log"
        worker = start_daemon(f"worker {index}", args, log, env, self.hidden if elsewhere else None)
        self.workers.append(worker)
        worker.wait_for("Successfully registered with master")
        return worker


def start_daemon(name: str, args: list[str], log: Path, env: dict[str, str], hidden: Path | None) -> Daemon:
    """A daemon in a process group of its own; with `hidden`, in a mount namespace where that folder is empty."""
    command = [str(SPARK_HOME / "bin" / "spark-class"), *args]
    if hidden is not None:
        shell = f"mount -t tmpfs tmpfs {shlex.quote(str(hidden))} && exec " + shlex.join(command)
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Daemon(name, process, log)


@contextmanager
def spark_cluster(
    root: Path, driver: Path, workers: int = 2, memory: str = "1g", elsewhere: tuple[int, ...] = (1,)
) -> Iterator[SparkCluster]:
    """A master and `workers` workers of one core and `memory` each (`elsewhere`: the indexes of the workers that do
    not see the `driver` folder); every daemon is SIGKILLed at the end."""
    root.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPARK_", "PYSPARK_"))}
    env.update({"SPARK_HOME": str(SPARK_HOME), "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": str(root)})
    port = free_port()
    args = ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port)]
    ui_port = free_port(avoid=[port])
    master = start_daemon("master", [*args, "--webui-port", str(ui_port)], root / "master.log", env, None)
    cluster = SparkCluster(root, env, driver, f"spark://{HOST}:{port}", master, f"http://{HOST}:{ui_port}")
    try:
        master.wait_for("I have been elected leader")
        for i in range(workers):
            cluster.start_worker(i, memory, elsewhere=i in elsewhere)
        yield cluster
    finally:
        for daemon in (*cluster.workers, master):
            daemon.kill()
