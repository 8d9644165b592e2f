"""A Spark standalone cluster on loopback ports, started by pyspark's own `spark-class`: a master and workers of one
core each. A worker can run in its own mount namespace with a private `/tmp` (`unshare`, as root), so a path on
the driver's `/tmp` is not there for it, as on a second machine."""

import os
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
    master_url: str
    master: Daemon
    workers: list[Daemon] = field(default_factory=list)

    def start_worker(self, index: int, memory: str, private_tmp: bool) -> Daemon:
        """Worker `index` (one core, `memory`), started and registered with the master."""
        work_dir = self.root / f"worker-{index}"
        work_dir.mkdir(exist_ok=True)
        args = ["org.apache.spark.deploy.worker.Worker", "--host", HOST, "--cores", "1", "--memory", memory]
        args += ["--webui-port", str(free_port()), "--work-dir", str(work_dir), self.master_url]
        env = {**self.env, "SPARK_WORKER_DIR": str(work_dir)}
        log = self.root / f"worker-{index}-{len(self.workers)}.log"
        worker = start_daemon(f"worker {index}", args, log, env, private_tmp)
        self.workers.append(worker)
        worker.wait_for("Successfully registered with master")
        return worker


def start_daemon(name: str, args: list[str], log: Path, env: dict[str, str], private_tmp: bool) -> Daemon:
    command = [str(SPARK_HOME / "bin" / "spark-class"), *args]
    if private_tmp:
        shell = "mount -t tmpfs tmpfs /tmp && exec " + " ".join(command)
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Daemon(name, process, log)


@contextmanager
def spark_cluster(
    root: Path, workers: int = 2, memory: str = "1g", private_tmp: tuple[int, ...] = (1,)
) -> Iterator[SparkCluster]:
    """A master and `workers` workers of one core and `memory` each (`private_tmp`: the indexes of the workers with
    a /tmp of their own); every daemon is SIGKILLed at the end."""
    root.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPARK_", "PYSPARK_"))}
    env.update({"SPARK_HOME": str(SPARK_HOME), "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": str(root)})
    port = free_port()
    args = ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port)]
    master = start_daemon(
        "master", [*args, "--webui-port", str(free_port(avoid=[port]))], root / "master.log", env, False
    )
    cluster = SparkCluster(root, env, f"spark://{HOST}:{port}", master)
    try:
        master.wait_for("I have been elected leader")
        for i in range(workers):
            cluster.start_worker(i, memory, private_tmp=i in private_tmp)
        yield cluster
    finally:
        for daemon in (*cluster.workers, master):
            daemon.kill()
