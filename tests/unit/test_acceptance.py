"""How often the recommendations land (training.acceptance): the pure counting, on lists and plays made here."""

from datetime import UTC, datetime, timedelta

from training.acceptance import Acceptance, Landing, Publication, acceptance, describe, rates_per_model

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
WEEK = timedelta(days=7)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_track_counts_once_when_played_or_saved_after_its_publication_and_within_the_window() -> None:
    lists = [
        Publication(at(0), "favourite", "1", ("a", "b", "c", "d")),
        Publication(at(48), "favourite", "2", ("c", "d", "e", "e")),  # a track twice is one track
    ]
    landings = [
        Landing("a", at(-1), saved=False),  # before its list: not landed
        Landing("b", at(1), saved=False),
        Landing("b", at(2), saved=False),  # played twice: one track
        Landing("c", at(3), saved=True),  # saved only
        Landing("d", at(24 * 7 + 1), saved=False),  # after list 1's window, in list 2's
        Landing("e", at(50), saved=False),
        Landing("e", at(51), saved=True),  # played and saved: one accepted track
        Landing("z", at(5), saved=False),  # never recommended
    ]
    first, second = acceptance(reversed(lists), landings, WEEK, now=at(24 * 8))
    assert (first.model_version, first.tracks, first.played, first.saved, first.accepted) == ("1", 4, 1, 1, 2)
    assert first.rate == 0.5 and first.complete and first.window_ends_at == at(24 * 7)
    assert (second.model_version, second.tracks, second.played, second.saved, second.accepted) == ("2", 3, 2, 1, 2)
    assert not second.complete, "its window is still open: the figures may grow"
    assert rates_per_model([first, second]) == {("favourite", "1"): (0.5, 4), ("favourite", "2"): (2 / 3, 3)}
    line = describe([first, second])
    assert line is not None and "2 of the 3 tracks of the latest list (favourite v2" in line
    assert "favourite v1 50% of 4" in line and "window open until 2026-12-10 12:00 UTC" in line
    assert describe([]) is None


def test_the_rate_of_a_model_is_over_all_its_lists_tracks() -> None:
    rows = [
        Acceptance(at(0), at(1), True, "favourite", "3", 10, 2, 0, 2),
        Acceptance(at(2), at(3), True, "favourite", "3", 30, 9, 3, 10),
        Acceptance(at(4), at(5), False, "favourite", "4", 0, 0, 0, 0),
    ]
    assert rates_per_model(rows) == {("favourite", "3"): (0.3, 40), ("favourite", "4"): (0.0, 0)}
