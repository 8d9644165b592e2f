"""Storage faults, for real: the data dir on a small tmpfs of its own that fills up, or is remounted
read-only, while the streaming job writes to it. The job ends with one line that says what and how to
go on; once the fault is gone, a restart resumes, and every Delta table reads back whole and equal to
a clean run's. The producer's poll state on a full disk: the same kind of line, and nothing recorded
that Kafka did not confirm.

Mounting a tmpfs needs root (or CAP_SYS_ADMIN), as CI and the development machine have.
"""

import errno
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.contract import SILVER_TABLES
from pipeline_runtime.errors import SetupError
from pipeline_runtime.kafka_admin import ensure_topics
from producers.state import Changes, PollState
from streaming.job import table_schemas
from streaming.progress import read_progress
from tests.support.kafka import publish_raw
from tests.support.processes import start_group
from tests.support.streaming import catch_up, catch_up_records, streaming_env, streaming_settings, table

CHUNK = 1 << 20
DISK_MIB = 96
TRACKS = 1_000  # 4 events a track and an artist per 5 tracks: 4,200 events


def mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"mount {' '.join(args)}: {result.stderr.strip()} (these tests need root)"


@contextmanager
def small_disk(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` at `path` for the test's length: a disk of its own to fill or make read-only."""
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={megabytes}m,mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def fill(disk: Path) -> tuple[Path, int]:
    """Write a filler file until the disk says ENOSPC, to the last 4 KiB: (the file, bytes written)."""
    filler = disk / "filler"
    written = 0
    with filler.open("wb", buffering=0) as handle:
        for size in (CHUNK, 4096):
            try:
                while True:
                    written += handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler, written


def remount(disk: Path, mode: str, timeout: float = 60) -> None:
    """`mount -o remount,ro|rw`; a remount read-only waits for files open for writing to be closed (EBUSY)."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(disk)], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"remount,{mode} of {disk}: {result.stderr.strip()}"
        time.sleep(0.05)


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def history_versions(spark: SparkSession, location: str) -> list[int]:
    return sorted(row.version for row in DeltaTable.forPath(spark, location).history().select("version").collect())


def test_streaming_on_a_disk_that_fills_up_then_turns_read_only(
    spark: SparkSession, bootstrap_servers: str, tmp_path: Path, figures: Callable[..., None]
) -> None:
    with small_disk(tmp_path / "disk", DISK_MIB) as disk:
        # DATA_DIR on the small disk; bronze and silver as two queries (STREAMING_FUSED_INGEST=false): the crash
        # tests and the cluster test run the default's one ingest query, so both layouts meet a fault.
        settings = streaming_settings(disk, bootstrap_servers, fused_ingest=False)
        ensure_topics(bootstrap_servers, settings.topics, partitions=2)
        records = catch_up_records(settings, TRACKS)
        parts = [
            records[: len(records) // 3],
            records[len(records) // 3 : 2 * len(records) // 3],
            records[2 * len(records) // 3 :],
        ]
        publish_raw(bootstrap_servers, parts[0])  # the rest once each fault is on: the job has work that fails
        env = streaming_env(
            settings,
            STREAMING_MAX_OFFSETS_PER_TRIGGER="1000",
            STREAMING_TRIGGER_INTERVAL="1 second",
            STREAMING_SILVER_MAX_FILES_PER_TRIGGER="2",
            STREAMING_FUSED_INGEST="false",
        )
        faults = {}
        for fault in ("full", "read-only"):
            before = len([b for b in read_progress(settings.progress_file) if b["query"] == "silver"])
            log = tmp_path / f"streaming-{fault}.log"
            process = start_group(["streaming", "run"], env, tmp_path, log)
            deadline = time.monotonic() + 300
            while len([b for b in read_progress(settings.progress_file) if b["query"] == "silver"]) <= before:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            if fault == "full":
                filler, written = fill(disk)
            else:
                remount(disk, "ro")
            publish_raw(bootstrap_servers, parts.pop(1))
            started = time.monotonic()
            code = process.wait(300)
            output = log.read_text()
            line = error_line(output)
            assert code == 2, output[-3000:]
            assert "Traceback" not in output, output[-3000:]
            expected = (
                "the disk is full (No space left on device)"
                if fault == "full"
                else ("the file system is read-only (Read-only file system)")
            )
            assert f"could not write its tables or checkpoints: {expected}" in line, line
            assert f"DATA_DIR ({settings.data_dir.resolve()})" in line and "start the job again" in line, line
            batches = len([b for b in read_progress(settings.progress_file) if b["query"] == "silver"]) - before
            faults[fault] = f"exit 2 {time.monotonic() - started:.0f}s after, {batches} silver batch(es) before"
            if fault == "full":
                filler.unlink()
            else:
                remount(disk, "rw")

        # After the faults, the job catches up (in this process: the same job, without a JVM's start-up).
        catch_up(spark, settings)

        bronze = table(spark, settings, "bronze")
        rows = bronze.count()
        offsets = bronze.select("topic", "partition", "offset").distinct().count()
        assert rows == offsets == len(records), "every Kafka record exactly once"
        versions = {}
        for name in table_schemas():  # every commit of every table is there, and every file it names reads
            history = history_versions(spark, settings.table(name))
            assert history == list(range(len(history))), f"{name}: a gap in the Delta log {history}"
            versions[name] = history[-1]
        counts = {name: table(spark, settings, name).count() for name in (*SILVER_TABLES, "track_features")}
        artists = TRACKS // 5
        assert counts == {
            "silver_tracks": TRACKS,
            "silver_artists": artists,
            "silver_audio_features": TRACKS,
            "silver_playlist_members": TRACKS,
            "silver_playlist_history": TRACKS,
            "silver_plays": 0,  # no listening history in this stream
            "silver_top_tracks": 0,
            "track_features": TRACKS,
        }, counts
        assert table(spark, settings, "quarantine").count() == 0
        latest = table(spark, settings, "silver_tracks").where(F.col("name").endswith("(remastered)")).count()
        assert latest == TRACKS - artists, "the later version of a track won"
        favourites = table(spark, settings, "track_features").where("is_favourite").count()
        assert favourites == TRACKS // 5
    figures(
        events_sent=len(records),
        disk_mib=DISK_MIB,
        filler_mib=round(written / CHUNK),
        **faults,
        restarts=3,
        bronze_rows=rows,
        duplicates=rows - offsets,
        **counts,
        latest_delta_versions=versions,
    )


def test_the_producer_state_on_a_full_disk_records_nothing_and_says_so(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with small_disk(tmp_path / "disk", 32) as disk:
        state = PollState(disk / "state" / "producer.sqlite")
        first = Changes(
            playlists=[("P1", "s1", "one", False)],
            members={"P1": {"T1", "T2"}},
            published=[("track", "T1", "h1"), ("track", "T2", "h2")],
        )
        state.commit(first)
        filler, written = fill(disk)
        big = Changes(
            playlists=[("P2", "s1", "two", True)],
            members={"P2": {f"T{i:021d}" for i in range(20_000)}},
            published=[("track", f"T{i:021d}", "h" * 40) for i in range(20_000)],
        )
        with pytest.raises(SetupError) as caught:
            state.commit(big)
        message = str(caught.value)
        assert message.startswith(
            f"the producer could not record its poll state in {disk}/state/producer.sqlite: the disk is full ("
        )
        assert "start the producer again" in message
        assert state.snapshot("P2") is None and state.members("P1") == {"T1", "T2"}, "nothing of the failed unit"
        assert state.counts() == {"track": 2}
        filler.unlink()
        state.commit(big)
        assert state.snapshot("P2") == "s1" and len(state.members("P2")) == 20_000
        assert state.counts() == {"track": 20_002}
        state.close()
    figures(
        disk_mib=32, filler_kib=written // 1024, unit_rows=40_000, recorded_while_full=0, recorded_after_freeing=40_000
    )
