"""The trainer's recommendations table as the producer reads it, and what the sandbox counts as writes."""

import pyarrow as pa
from deltalake import write_deltalake

from pipeline_runtime.contract import RECOMMENDATIONS
from pipeline_runtime.delta_log import delta_rs_uri
from producers.sandbox.server import SandboxServer
from producers.settings import ProducerSettings


def write_recommendations(settings: ProducerSettings, track_ids: list[str], version: str = "3") -> None:
    """The trainer's recommendations table (the columns the producer reads), ranked as given."""
    rows = pa.table(
        {
            "rank": pa.array(range(1, len(track_ids) + 1), pa.int32()),
            "track_id": track_ids,
            "score": [1.0 - i / 1000 for i in range(len(track_ids))],
            "model_name": ["favourite"] * len(track_ids),
            "model_version": [version] * len(track_ids),
        }
    )
    location = delta_rs_uri(settings.table_uri(RECOMMENDATIONS))
    write_deltalake(location, rows, mode="overwrite", schema_mode="overwrite")


def not_favourites(server: SandboxServer, count: int) -> list[str]:
    catalogue = server.state.catalogue
    return [t for t in catalogue.tracks if t not in catalogue.favourites][:count]


def writes(stats: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in stats.items() if name.startswith(("POST ", "PUT "))}
