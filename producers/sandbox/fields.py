"""The Web API's `fields` filter (GET /playlists/{id} and its items): only the fields a client asks for come back.

The description's grammar: a comma-separated list; a dot reaches into a non-reoccurring field (`added_by.id`),
parentheses into each object of a reoccurring one (`items(added_at,track(name,album(name)))`), and a field prefixed
with `!` is left out, the rest of that object kept (`items.track.album(!name,href)`). A field the object does not
have is left out.
"""

from dataclasses import dataclass, field
from typing import Any


class FieldsError(ValueError):
    """A `fields` value that does not parse."""


@dataclass
class Selection:
    """What to keep of an object: named fields (each with its own selection, None for all of it), or, when some are
    excluded, everything but those."""

    keep: dict[str, "Selection | None"] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)


def parse_fields(text: str) -> Selection:
    selection, end = _parse_list(text, 0)
    if end != len(text):
        raise FieldsError(f"unexpected {text[end]!r} at {end}")
    return selection


def _parse_list(text: str, at: int) -> tuple[Selection, int]:
    selection = Selection()
    while True:
        excluded = text.startswith("!", at)
        at += excluded
        names: list[str] = []
        while True:
            start = at
            while at < len(text) and text[at] not in ",.()!":
                at += 1
            name = text[start:at].strip()
            if not name:
                raise FieldsError(f"a field name is missing at {start}")
            names.append(name)
            if not text.startswith(".", at):
                break
            at += 1
        inner: Selection | None = None
        if text.startswith("(", at):
            inner, at = _parse_list(text, at + 1)
            if not text.startswith(")", at):
                raise FieldsError(f"a ')' is missing at {at}")
            at += 1
        if excluded and len(names) == 1 and inner is None:
            selection.drop.add(names[0])
        elif excluded:
            raise FieldsError("only a single field can be excluded")
        else:
            _add(selection, names, inner)
        if not text.startswith(",", at):
            return selection, at
        at += 1


def _add(selection: Selection, names: list[str], inner: Selection | None) -> None:
    """`a.b.c(inner)` into `selection`, merged with what it already keeps of `a`."""
    head, rest = names[0], names[1:]
    sub = inner
    if rest:
        sub = Selection()
        _add(sub, rest, inner)
    selection.keep[head] = _union(selection.keep[head], sub) if head in selection.keep else sub


def _union(a: Selection | None, b: Selection | None) -> Selection | None:
    """Two mentions of one field: all of it when either takes all of it, else what both keep."""
    if a is None or b is None:
        return None
    keep = dict(a.keep)
    for name, sub in b.keep.items():
        keep[name] = _union(keep[name], sub) if name in keep else sub
    return Selection(keep, a.drop | b.drop)


def select_fields(value: Any, selection: Selection | None) -> Any:
    """`value` with only what `selection` keeps (each element of a list alike)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [select_fields(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    if selection.drop:
        return {
            name: select_fields(item, selection.keep.get(name))
            for name, item in value.items()
            if name not in selection.drop
        }
    return {name: select_fields(value[name], sub) for name, sub in selection.keep.items() if name in value}
