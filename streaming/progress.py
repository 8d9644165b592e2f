"""Progress an operator can watch: one JSON line per micro-batch, and `python -m streaming tail`.

A StreamingQueryListener in the job appends a line per micro-batch of each query to the progress log
(DATA_DIR/logs/streaming-progress.jsonl): rows in, rows/s, batch duration, source offsets and lag
behind the latest offsets, Delta versions written, rows quarantined. `tail` reads that file, so it
works from any process or container that sees the data dir.
"""

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from pipeline_runtime.delta_log import delta_version

log = logging.getLogger(__name__)

# Facts the silver batch function knows and the listener reports: (query name, batch id) -> facts.
BATCH_FACTS: dict[tuple[str, int], dict[str, Any]] = {}


def offsets_lag(end: str | None, latest: str | None) -> int | None:
    """Records between the batch's end offsets and the latest ones, over all topics and partitions."""
    try:
        end_offsets, latest_offsets = json.loads(end or "null"), json.loads(latest or "null")
    except ValueError:
        return None
    if not isinstance(end_offsets, dict) or not isinstance(latest_offsets, dict):
        return None
    lag = 0
    for topic, partitions in latest_offsets.items():
        for partition, offset in partitions.items():
            lag += max(0, int(offset) - int(end_offsets.get(topic, {}).get(partition, 0)))
    return lag


def progress_line(progress: Any, facts: dict[str, Any]) -> dict[str, Any]:
    sources = []
    for source in progress.sources:
        sources.append(
            {
                "description": source.description,
                "start_offset": source.startOffset,
                "end_offset": source.endOffset,
                "latest_offset": source.latestOffset,
                "lag": offsets_lag(source.endOffset, source.latestOffset),
                "input_rows": source.numInputRows,
            }
        )
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "query": progress.name,
        "batch_id": progress.batchId,
        "input_rows": progress.numInputRows,
        "input_rows_per_second": round(progress.inputRowsPerSecond or 0.0, 1),
        "processed_rows_per_second": round(progress.processedRowsPerSecond or 0.0, 1),
        "batch_duration_ms": (progress.durationMs or {}).get("triggerExecution"),
        "durations_ms": dict(progress.durationMs or {}),  # Spark's phases: latestOffset, addBatch, walCommit, ...
        "sources": sources,
        "lag": sum(s["lag"] or 0 for s in sources) if any(s["lag"] is not None for s in sources) else None,
        "sink_rows": getattr(progress.sink, "numOutputRows", None),
        "quarantined": facts.get("quarantined", 0),
        "rows_written": facts.get("rows_written", {}),
        "delta_versions": facts.get("delta_versions", {}),
        "layer_seconds": facts.get("layer_seconds", {}),
        "merge_seconds": facts.get("merge_seconds", {}),
        "expectations": facts.get("expectations", {}),
        "superseded": facts.get("superseded", {}),
    }


class ProgressLog(StreamingQueryListener):
    def __init__(self, path: Path, bronze_location: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.bronze_location = bronze_location

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - the listener API's names
        log.info("query %s started (id %s)", event.name, event.id)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        progress = event.progress
        if progress.numInputRows == 0 and progress.batchId < 0:
            return
        facts = BATCH_FACTS.pop((progress.name, progress.batchId), {})
        if progress.name == "bronze":  # the bronze query's: its facts are the table's version
            facts = {"delta_versions": {"bronze": delta_version(self.bronze_location)}}
        line = progress_line(progress, facts)
        try:
            with self.lock, self.path.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
        except OSError as exc:  # a full disk or a read-only mount: the job says so when its own writes fail
            log.warning(
                "progress of %s batch %d not logged to %s: %s",
                progress.name,
                progress.batchId,
                self.path,
                exc.strerror or exc,
            )

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        if event.exception:  # the job reports the failure itself, once, when it sees the query stopped
            log.debug("query %s failed: %s", event.id, event.exception)

    def flush(self, timeout: float) -> None:
        """Listener events arrive asynchronously: give the last ones a moment to be written."""
        time.sleep(min(timeout, 1.0))


def read_progress(path: Path, last: int | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue  # a line being written right now
    return lines[-last:] if last else lines


def progress_table(lines: list[dict[str, Any]], title: str) -> Any:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, expand=False)
    for column in (
        "time",
        "query",
        "batch",
        "rows in",
        "in rows/s",
        "processed rows/s",
        "duration",
        "lag",
        "quarantined",
        "expectations failed",
        "Delta versions",
    ):
        table.add_column(
            column, justify="left" if column in ("time", "query", "expectations failed", "Delta versions") else "right"
        )
    for line in lines:
        versions = ", ".join(f"{k} v{v}" for k, v in (line.get("delta_versions") or {}).items() if v is not None)
        duration = line.get("batch_duration_ms")
        table.add_row(
            str(line.get("time", ""))[11:19],
            str(line.get("query")),
            str(line.get("batch_id")),
            f"{line.get('input_rows', 0):,}",
            f"{line.get('input_rows_per_second', 0):,.0f}",
            f"{line.get('processed_rows_per_second', 0):,.0f}",
            f"{duration / 1000:.1f}s" if duration is not None else "",
            "" if line.get("lag") is None else f"{line['lag']:,}",
            f"{line.get('quarantined', 0):,}",
            ", ".join(f"{name} {n:,}" for name, n in (line.get("expectations") or {}).items() if n),
            versions,
        )
    return table
