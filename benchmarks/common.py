"""What every benchmark shares: a broker in a temporary data dir, peak-RSS sampling of process trees,
percentiles, and running a worker process while its memory is watched."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent  # workers run as `python -m benchmarks.<name>` from here


def tree_rss(process: psutil.Process) -> dict[str, int]:
    """Resident memory of a process and each of its descendants (a Python driver, its JVM, ...) in bytes,
    by "pid name". Each counts its proportional share (PSS) of pages it shares: a JVM forking to run a
    command, or a Python worker forked from its daemon, would otherwise count the parent's memory twice.
    For a process that shares nothing, PSS is its RSS."""
    sizes = {}
    for proc in [process, *process.children(recursive=True)]:
        try:
            if not is_process(proc.pid):  # a thread of a JVM can show up as a child: its memory is the JVM's
                continue
            sizes[f"{proc.pid} {proc.name()}"] = proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            continue
    return sizes


def is_process(pid: int) -> bool:
    """Whether `pid` leads its thread group (a process, not one of its threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Tgid:"):
            return int(line.split()[1]) == pid
    return True


class PeakRss:
    """Samples the resident memory of process trees (see `tree_rss`) every `interval` seconds in a thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.watched: dict[str, psutil.Process] = {}
        self.peak: dict[str, int] = {}
        self.at_peak: dict[str, dict[str, int]] = {}  # the processes of each tree at its peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.watched[name] = psutil.Process(pid)
        self.sample()

    def sample(self) -> None:
        for name, proc in list(self.watched.items()):
            try:
                sizes = tree_rss(proc)
            except psutil.NoSuchProcess:
                continue
            if sum(sizes.values()) > self.peak.get(name, 0):
                self.peak[name], self.at_peak[name] = sum(sizes.values()), sizes

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, name: str) -> float | None:
        return round(self.peak[name] / MIB, 1) if name in self.peak else None

    def breakdown_mib(self, name: str) -> dict[str, float]:
        """Each process of the tree at its peak, in MiB (which part of a driver + JVM pair holds what)."""
        return {process: round(size / MIB, 1) for process, size in self.at_peak.get(name, {}).items()}


@dataclass
class Broker:
    bootstrap_servers: str
    pid: int
    data_dir: Path


@contextmanager
def local_broker(data_dir: Path) -> Iterator[Broker]:
    """A real Kafka broker for one benchmark (its own data dir, a free port), stopped afterwards."""
    broker = LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=data_dir, port=0, heap="1g"))
    running = broker.start()
    try:
        yield Broker(running.bootstrap_servers, running.pid, data_dir)
    finally:
        broker.stop()


@dataclass
class WorkerResult:
    returncode: int
    seconds: float
    peak_rss_mib: float | None
    stdout: str
    stderr: str
    output: dict[str, Any] = field(default_factory=dict)


def worker_env(env: dict[str, str | None]) -> dict[str, str]:
    """This process's environment with `env` applied (None removes a variable)."""
    merged = {**os.environ, **env}
    return {name: value for name, value in merged.items() if value is not None}


def run_worker(
    args: Sequence[str], env: dict[str, str | None], memory: PeakRss, name: str, timeout: float = 3600.0
) -> WorkerResult:
    """Run `python <args>` with `env`, its process tree's peak RSS recorded under `name`; the last line of
    its stdout, when it is a JSON object, is the worker's own result."""
    started = time.monotonic()
    with subprocess.Popen(
        [sys.executable, *args],
        env=worker_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as process:
        memory.watch(name, process.pid)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        memory.watched.pop(name, None)
    seconds = time.monotonic() - started
    result = WorkerResult(process.returncode, seconds, memory.peak_mib(name), stdout, stderr)
    lines = stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result.output = json.loads(lines[-1])
    if process.returncode:
        raise BenchmarkFailed(f"{' '.join(args[:3])} exited {process.returncode}:\n{stderr[-3000:]}")
    return result


class BenchmarkFailed(Exception):
    """A benchmark's worker failed: the message carries the tail of its error output."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator and denominator else None


def rate(count: float, seconds: float) -> float:
    return round(count / seconds) if seconds > 0 else 0.0


@dataclass
class DeltaCommit:
    version: int
    visible_at: float  # when the commit's log file was written: the moment its rows became readable
    operation: str
    metrics: dict[str, str]
    added_files: list[str]


def delta_commits(table: Path) -> list[DeltaCommit]:
    """Every commit of a local Delta table, from its JSON log (oldest first)."""
    commits = []
    for entry in sorted((table / "_delta_log").glob("*.json")):
        if not entry.stem.isdigit():
            continue
        info: dict[str, Any] = {}
        added = []
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                info = action["commitInfo"]
            elif "add" in action:
                added.append(action["add"]["path"])
        commits.append(
            DeltaCommit(
                int(entry.stem),
                entry.stat().st_mtime,
                info.get("operation", ""),
                info.get("operationMetrics", {}),
                added,
            )
        )
    return commits
