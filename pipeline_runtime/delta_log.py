"""Facts about a local Delta table read from its transaction log's file names, without a Spark session."""

from pathlib import Path


def delta_version(location: str) -> int | None:
    """The latest version of a local Delta table, or None when there is no table there or the location is
    remote (an object store needs Spark or a Delta client to tell)."""
    if "://" in location and not location.startswith("file:"):
        return None
    log_dir = Path(location.removeprefix("file:")) / "_delta_log"
    versions = [int(p.name.split(".")[0]) for p in log_dir.glob("*.json") if p.name.split(".")[0].isdigit()]
    return max(versions) if versions else None
