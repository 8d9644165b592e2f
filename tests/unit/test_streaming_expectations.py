"""The silver batch's expectations: what a batch summary counts, and what `tail` shows of them (pure)."""

from typing import Any

from rich.console import Console

from streaming.progress import progress_table
from streaming.transforms import EXPECTATIONS, PAYLOADS, expectation_violations, silver_table


def test_every_expectation_of_the_batch_event_types_is_counted_zero_included() -> None:
    summary: list[dict[str, Any]] = [
        {"event_type": "track", "expectation": "", "count": 90},
        {"event_type": "track", "expectation": "popularity_0_100", "count": 3},
        {"event_type": "artist", "expectation": "popularity_0_100", "count": 2},
        {"event_type": None, "expectation": "", "count": 4},  # not JSON: no event type, no expectation
    ]
    assert expectation_violations(summary) == {
        "popularity_0_100": 5,
        "duration_positive": 0,
        "followers_non_negative": 0,
    }
    assert expectation_violations([]) == {}


def test_expectations_name_event_types_and_fields_of_the_contract() -> None:
    for expectation in EXPECTATIONS:
        fields = {name for name, _, _ in PAYLOADS[expectation.event_type]}
        assert set(expectation.fields) <= fields, expectation
    assert silver_table("audio_features") == "silver_audio_features"
    assert silver_table("playlist_membership") == "silver_playlist_members"


def test_tail_shows_the_expectations_that_failed() -> None:
    line = {
        "time": "2026-12-04T10:00:00+00:00",
        "query": "silver",
        "batch_id": 7,
        "input_rows": 100,
        "quarantined": 3,
        "expectations": {"popularity_0_100": 3, "duration_positive": 0},
        "delta_versions": {"silver_tracks": 4},
    }
    console = Console(width=250, record=True)
    console.print(progress_table([line], "progress"))
    text = console.export_text()
    assert "popularity_0_100 3" in text
    assert "duration_positive" not in text  # checked, none failed: not shown
