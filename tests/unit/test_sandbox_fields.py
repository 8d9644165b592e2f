"""The sandbox's `fields` filter (producers.sandbox.fields), on the description's own examples."""

import pytest

from producers.sandbox.fields import FieldsError, parse_fields, select_fields

PLAYLIST = {
    "description": "d",
    "uri": "spotify:playlist:p",
    "owner": {"id": "u", "display_name": "U"},
    "tracks": {
        "total": 1,
        "limit": 100,
        "items": [
            {
                "added_at": "t",
                "added_by": {"id": "u", "href": "h"},
                "track": {
                    "name": "n",
                    "href": "x",
                    "id": "i",
                    "album": {"name": "a", "href": "y", "external_urls": {}},
                },
            },
            {"added_at": "t2", "added_by": None, "track": None},
        ],
    },
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("description,uri", {"description": "d", "uri": "spotify:playlist:p"}),
        (
            "tracks.items(added_at,added_by.id)",
            {"tracks": {"items": [{"added_at": "t", "added_by": {"id": "u"}}, {"added_at": "t2", "added_by": None}]}},
        ),
        (
            "tracks.items(track(name,href,album(name,href)))",
            {
                "tracks": {
                    "items": [
                        {"track": {"name": "n", "href": "x", "album": {"name": "a", "href": "y"}}},
                        {"track": None},
                    ]
                }
            },
        ),
        (
            "tracks.items(track(album(!name,href)))",
            {"tracks": {"items": [{"track": {"album": {"href": "y", "external_urls": {}}}}, {"track": None}]}},
        ),
        ("tracks.total,tracks.limit,owner", {"tracks": {"total": 1, "limit": 100}, "owner": PLAYLIST["owner"]}),
        ("nothing,uri", {"uri": "spotify:playlist:p"}),
    ],
)
def test_the_description_examples(fields: str, expected: dict[str, object]) -> None:
    assert select_fields(PLAYLIST, parse_fields(fields)) == expected


@pytest.mark.parametrize("fields", ["items(", "a,,b", "a)", "!a.b", "a.(b)"])
def test_what_does_not_parse(fields: str) -> None:
    with pytest.raises(FieldsError):
        parse_fields(fields)
