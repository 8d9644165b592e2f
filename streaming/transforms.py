"""Pure DataFrame transforms of the streaming job: the same functions run on a stream and on a batch
DataFrame in tests. Nothing here reads or writes a table.

Parsing uses Spark's VARIANT (`try_parse_json`, `try_variant_get`): a record that is not valid UTF-8,
not JSON, of an unknown `event_type` or `schema_version`, missing a required field, with a field of the
wrong type, or larger than the limit gets a `reason` and goes to quarantine instead of failing the job.
"""

import operator
import re
from dataclasses import dataclass
from functools import cache, reduce
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, Window
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.contract import (
    CODED_AUDIO_FEATURES,
    MEASURED_AUDIO_FEATURES,
    SILVER_ENTITY_TABLES,
    SILVER_MEMBERS,
    SILVER_PLAYS,
    SILVER_TOP_TRACKS,
    TIME_RANGES,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SUPPORTED_SCHEMA_VERSIONS = (1, 2)

# (field, Spark type, required) of each payload, schema version 1 (version 2 may add fields).
PAYLOADS: dict[str, list[tuple[str, str, bool]]] = {
    "track": [
        ("track_id", "string", True),
        ("name", "string", False),
        ("artist_ids", "array<string>", False),
        ("artist_names", "array<string>", False),
        ("album_id", "string", False),
        ("album_name", "string", False),
        ("release_date", "string", False),
        ("duration_ms", "bigint", False),
        ("explicit", "boolean", False),
        ("popularity", "int", False),
        ("isrc", "string", False),
        ("genres", "array<string>", False),
    ],
    "artist": [
        ("artist_id", "string", True),
        ("name", "string", False),
        ("genres", "array<string>", False),
        ("popularity", "int", False),
        ("followers", "bigint", False),
    ],
    "audio_features": [
        ("track_id", "string", True),
        ("provider", "string", True),
        *((name, "double", False) for name in MEASURED_AUDIO_FEATURES),
        *((name, "int", False) for name in CODED_AUDIO_FEATURES),
    ],
    "playlist_membership": [
        ("playlist_id", "string", True),
        ("playlist_name", "string", False),
        ("track_id", "string", True),
        ("action", "string", True),
        ("snapshot_id", "string", False),
        ("is_favourite_playlist", "boolean", True),
    ],
    "play": [
        ("track_id", "string", True),
        ("played_at", "timestamp", True),
        ("context_type", "string", False),
        ("context_uri", "string", False),
    ],
    "top_track": [
        ("track_id", "string", True),
        ("time_range", "string", True),
        ("rank", "int", True),
        ("day", "date", True),
    ],
}
KEYS = {
    "track": ["track_id"],
    "artist": ["artist_id"],
    "audio_features": ["track_id"],
    "playlist_membership": ["playlist_id", "track_id"],
    "play": ["track_id", "played_at"],
    "top_track": ["time_range", "day", "track_id"],
}
META = ["event_id", "source", "schema_version", "observed_at"]
# The silver tables whose rows the latest event of a key replaces (a late or replayed one changes nothing).
LATEST_WINS = {**SILVER_ENTITY_TABLES, "top_track": SILVER_TOP_TRACKS}


@dataclass(frozen=True)
class Expectation:
    """A value range every event of `event_type` keeps in `fields` (a null passes: the fields are optional); an
    event outside it goes to quarantine with the reason `expectation <name> failed: ...`, and every silver batch
    counts the violations per expectation in the progress log."""

    name: str
    event_type: str
    fields: tuple[str, ...]
    low: float
    high: float | None = None

    @property
    def expected(self) -> str:
        return f"{self.low:g} to {self.high:g}" if self.high is not None else f"at least {self.low:g}"


# From the Web API's published description (popularity "between 0 and 100", the audio scores "0.0 to 1.0", `key`
# -1 to 11, `mode` 1 or 0) with what the real service is known to return on top: `time_signature` is described as 3
# to 7, but catalogues taken from the API hold 0 and 1, so 0 to 7 is accepted; `mode` -1 ("no result") as for a
# section. Loudness is "typically" -60 to 0 dB, which is no bound, so it has no expectation.
EXPECTATIONS = (
    Expectation("popularity_0_100", "track", ("popularity",), 0, 100),
    Expectation("duration_positive", "track", ("duration_ms",), 1),
    Expectation("popularity_0_100", "artist", ("popularity",), 0, 100),
    Expectation("followers_non_negative", "artist", ("followers",), 0),
    Expectation(
        "audio_score_0_1",
        "audio_features",
        tuple(n for n in MEASURED_AUDIO_FEATURES if n not in ("loudness", "tempo")),
        0,
        1,
    ),
    Expectation("tempo_non_negative", "audio_features", ("tempo",), 0),
    Expectation("key_pitch_class", "audio_features", ("key",), -1, 11),
    Expectation("mode_major_minor", "audio_features", ("mode",), -1, 1),
    Expectation("time_signature_0_7", "audio_features", ("time_signature",), 0, 7),
    Expectation("rank_positive", "top_track", ("rank",), 1),
)
EXPECTATION_REASON = r"^expectation (\S+) failed"


def _expectation_check(expectation: Expectation, event_type: Column) -> Column:
    """The reason the first of the expectation's fields outside its range gives, else null."""
    types = {name: spark_type for name, spark_type, _ in PAYLOADS[expectation.event_type]}
    expected = expectation.expected
    checks = []
    for name in expectation.fields:
        value = F.try_variant_get(F.col("doc"), f"$.payload.{name}", types[name])
        outside = _outside(value, expectation)
        checks.append(
            F.when(
                outside,
                F.format_string(
                    f"expectation {expectation.name} failed: payload.{name} is %s, expected {expected}", value
                ),
            )
        )
    return F.when(event_type == expectation.event_type, F.coalesce(*checks))


def _outside(value: Column, expectation: Expectation) -> Column:
    """Whether `value` is outside the expectation's range (null for a null value)."""
    low, high = expectation.low, expectation.high
    return value < low if high is None else (value < low) | (value > high)


def to_bronze(records: "DataFrame") -> "DataFrame":
    """Kafka source rows as bronze rows: the record as received plus when it was ingested."""
    return records.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
        F.current_date().alias("ingest_date"),
    )


INTEGRAL_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")


def as_time(text: Column, spark_type: str) -> Column:
    """An ISO 8601 text as a `timestamp` (any precision, a zone or Z) or a `date` (yyyy-MM-dd); null if it is none."""
    if spark_type == "timestamp":
        return F.try_to_timestamp(text)
    return F.try_to_timestamp(text, F.lit("yyyy-MM-dd")).cast("date")


def _check_field(v: Column, path: str, name: str, spark_type: str, required: bool) -> Column:
    """The reason a field fails (missing when required, not of its JSON type, or out of range), else null.

    The JSON type itself is checked: `try_variant_get` alone casts ("42" and true read as the int 42 and 1,
    1.5 as 1, [1] as ["1"]), so an event with such a field would be accepted with a value it did not hold."""
    value = F.try_variant_get(v, path, "variant")
    present = value.isNotNull() & ~F.is_variant_null(value)
    json_type = F.schema_of_variant(value)
    in_range = None
    if spark_type in ("int", "bigint"):  # an integral number (1, 1.0, 1e2, 1e400), not 1.5 or a numeric string
        as_double = F.try_variant_get(v, path, "double")
        well_typed = (
            json_type.isin(*INTEGRAL_TYPES)
            | json_type.rlike(r"^DECIMAL\(\d+,0\)$")
            | ((json_type == "DOUBLE") & ((as_double % 1 == 0) | (F.abs(as_double) == float("inf"))))
        )
        in_range = F.try_variant_get(v, path, spark_type).isNotNull()
    elif spark_type == "double":  # any finite number (1e400 parses as infinity)
        well_typed = json_type.isin(*INTEGRAL_TYPES, "DOUBLE", "FLOAT") | json_type.startswith("DECIMAL")
        in_range = F.abs(F.try_variant_get(v, path, "double")) != float("inf")
    elif spark_type in ("timestamp", "date"):  # JSON has neither: an ISO 8601 string
        well_typed = json_type == "STRING"
        in_range = as_time(F.try_variant_get(v, path, "string"), spark_type).isNotNull()
    elif spark_type == "array<string>":
        well_typed = json_type.isin("ARRAY<STRING>", "ARRAY<VOID>")  # [] and [null] have no element type
    else:
        well_typed = json_type == F.lit(spark_type.upper())  # STRING, BOOLEAN
    missing = F.lit(f"missing field {name}") if required else F.lit(None)
    check = F.when(~present, missing).when(~well_typed, F.lit(f"wrong type of {name} (expected {spark_type})"))
    if in_range is not None:
        times = spark_type in ("timestamp", "date")
        check = check.when(~in_range, F.lit(f"{name} {'is not a' if times else 'out of range for'} {spark_type}"))
    return check


# The JSON types (as `schema_of_variant` names them) a field of each contract type has on the fast path of
# `well_formed`: a subset of what _check_field accepts. Left out, and so checked one field at a time: an integral
# number written as a decimal or a double (1.0, 1e2), and any double (which may be infinite).
_INTEGRAL = "(?:" + "|".join(INTEGRAL_TYPES) + ")"
FAST_JSON_TYPES = {
    "string": "STRING",
    "boolean": "BOOLEAN",
    "int": _INTEGRAL,
    "bigint": _INTEGRAL,
    "double": rf"(?:{_INTEGRAL}|DECIMAL\(\d+,\d+\))",
    "timestamp": "STRING",
    "date": "STRING",
    "array<string>": "ARRAY<(?:STRING|VOID)>",
}
# The envelope's fields: (Spark type, required), as PAYLOADS gives a payload's.
ENVELOPE = {
    "event_id": ("string", True),
    "event_type": ("string", True),
    "observed_at": ("timestamp", True),
    "schema_version": ("int", True),
    "source": ("string", False),
}


def object_pattern(fields: list[tuple[str, str, bool]]) -> str:
    """A regular expression of the `schema_of_variant` text of a JSON object with exactly these (name, JSON type
    pattern, required) fields: in Spark's order (by name), each required one present and not null, each optional
    one absent, null (VOID) or of its type, and no other field."""
    required_seen = False
    parts = []
    for name, json_type, required in sorted(fields):
        segment = f"{re.escape(name)}: " + (json_type if required else f"(?:{json_type}|VOID)")
        if required:  # the first required field needs no separator before it; every field after it does
            parts.append(f", {segment}" if required_seen else segment)
            required_seen = True
        else:
            parts.append(f"(?:, {segment})?" if required_seen else f"(?:{segment}, )?")
    if not required_seen:
        raise ValueError("an object pattern needs a required field")
    return "OBJECT<" + "".join(parts) + ">"


def event_pattern(event_type: str) -> str:
    """The whole `schema_of_variant` text of a well-formed event of `event_type`, anchored."""
    payload = object_pattern([(n, FAST_JSON_TYPES[t], r) for n, t, r in PAYLOADS[event_type]])
    envelope = [(n, FAST_JSON_TYPES[t], r) for n, (t, r) in ENVELOPE.items()] + [("payload", payload, True)]
    return f"^{object_pattern(envelope)}$"


def read_as(spark_type: str) -> str:
    """The type a payload field is read as into its event type's `typed_payload` column: an int as a bigint (the
    fast path checks its range), a time as its text (parsed by `as_time`), any other as its own type."""
    return {"int": "bigint", "timestamp": "string", "date": "string"}.get(spark_type, spark_type)


def typed_payload(event_type: str) -> str:
    """The column of parse_events holding an event's payload as a struct of its event type's fields (read once
    from the VARIANT; null for an event of another type). Its values are the event's for a good event only: a
    field of another JSON type may be null in it, or cast."""
    return f"payload_{event_type}"


def _typed_payload_column(event_type: str) -> Column:
    fields = ", ".join(f"{name} {read_as(spark_type)}" for name, spark_type, _ in PAYLOADS[event_type])
    return F.when(F.col("event_type") == event_type, F.try_variant_get(F.col("doc"), "$.payload", f"struct<{fields}>"))


def _outside_expectations(event_type: str) -> Column:
    """True when one of the event type's expectations fails for a well-typed event (its typed payload), else
    false: the test of the fast path, without the reason that _expectation_check writes."""
    conditions = []
    for expectation in EXPECTATIONS:
        if expectation.event_type != event_type:
            continue
        for name in expectation.fields:
            outside = _outside(F.col(typed_payload(event_type))[name], expectation)
            conditions.append(F.coalesce(outside, F.lit(False)))
    return reduce(operator.or_, conditions, F.lit(False))


def _well_formed_of(event_type: str) -> Column:
    """True when an event (whose `event_type` is this one) passes every check of parse_events, decided from its
    JSON types at once (one `schema_of_variant` of the document against `event_pattern`) and the few values a type
    does not settle: an int in range, a time that parses, the known actions and time ranges, the expectations. The
    text cannot be forged by a key such as `release_date: STRING, track_id`: Spark writes a key that is not a plain
    name between backticks, which the pattern never holds. Never true for an event one of the checks would
    quarantine; false (or null) for some good ones, which the checks then pass."""
    payload = F.col(typed_payload(event_type))
    conditions = [F.schema_of_variant(F.col("doc")).rlike(event_pattern(event_type))]
    for name, spark_type, required in PAYLOADS[event_type]:
        value = payload[name]
        if spark_type == "int":
            value_ok = value.between(-(2**31), 2**31 - 1)
            conditions.append(value_ok if required else F.coalesce(value_ok, F.lit(True)))
        elif spark_type in ("timestamp", "date"):
            parsed = as_time(value, spark_type).isNotNull()
            conditions.append(parsed if required else F.coalesce(parsed, value.isNull()))
    if event_type == "playlist_membership":
        conditions.append(payload["action"].isin("added", "removed"))
    if event_type == "top_track":
        conditions.append(payload["time_range"].isin(*TIME_RANGES))
    conditions.append(~_outside_expectations(event_type))
    return reduce(operator.and_, conditions)


@cache
def well_formed(topic_event_types: tuple[tuple[str, str], ...], max_bytes: int) -> Column:
    """True for a parsed event (parse_events' columns) that passes every check, decided at once for almost every
    good event (`_well_formed_of`); false or null for the rest, whose `reason` the checks give one by one."""
    event_type = F.col("event_type")
    kind = F.lit(None).cast("boolean")
    for etype in PAYLOADS:
        kind = F.when(event_type == etype, _well_formed_of(etype)).otherwise(kind)
    topic_type = _topic_event_type(topic_event_types)
    return (
        (F.length("value") <= max_bytes)
        & F.is_valid_utf8(F.col("value").cast("string"))
        & F.col("schema_version").isin(*SUPPORTED_SCHEMA_VERSIONS)
        & (topic_type.isNull() | (event_type == topic_type))
        & F.col("observed_at").isNotNull()
        & kind
    )


def _envelope_check(name: str) -> Column:
    """The reason an envelope field fails its check (see _check_field), else null."""
    return _check_field(F.col("doc"), f"$.{name}", name, *ENVELOPE[name])


def _topic_event_type(topic_event_types: tuple[tuple[str, str], ...]) -> Column:
    """The event type a record's topic carries (null for a topic not in the map)."""
    return F.create_map(*(F.lit(x) for pair in topic_event_types for x in pair))[F.col("topic")]


def parse_events(bronze: "DataFrame", topic_event_types: dict[str, str], max_bytes: int) -> "DataFrame":
    """Bronze rows with the parsed envelope (`doc` VARIANT, `event_type`, ...), each event type's payload as a
    struct (`typed_payload`), and a `reason`, null for a good record. The first failing check gives the reason."""
    doc, envelope, typed, checked = _parse_columns(tuple(topic_event_types.items()), max_bytes)
    return bronze.withColumns(doc).withColumns(envelope).withColumns(typed).withColumns(checked)


@cache
def _parse_columns(
    topic_event_types: tuple[tuple[str, str], ...], max_bytes: int
) -> tuple[dict[str, Column], dict[str, Column], dict[str, Column], dict[str, Column]]:
    """The columns parse_events adds, in four steps (each reads the ones before). Built once per job: the ~50
    checks are ~900 Column objects, each made by a call into the JVM, which took 1.5-2 s of every micro-batch
    when built per batch; a Column is an unresolved expression, so one serves every batch."""
    text = F.col("value").cast("string")
    topic_type = _topic_event_type(topic_event_types)
    # Extracted once into columns that the checks below read: as expressions inside the checks they were
    # evaluated again by each of the ~50 checks of a row (Spark does not share them across a COALESCE's
    # branches); as columns, parsing a batch takes 40 % less time.
    event_type, version = F.col("event_type"), F.col("schema_version")
    payload = F.try_variant_get(F.col("doc"), "$.payload", "variant")

    envelope_checks = [
        F.when(F.length("value") > max_bytes, F.format_string(f"oversize: %d bytes > {max_bytes}", F.length("value"))),
        F.when(~F.is_valid_utf8(text), F.lit("invalid UTF-8")),
        F.when(F.col("doc").isNull(), F.lit("not JSON")),
        F.when(~F.schema_of_variant(F.col("doc")).startswith("OBJECT"), F.lit("not a JSON object")),
        _envelope_check("schema_version"),
        F.when(~version.isin(*SUPPORTED_SCHEMA_VERSIONS), F.format_string("unknown schema_version %s", version)),
        _envelope_check("event_type"),
        F.when(~event_type.isin(*PAYLOADS), F.format_string("unknown event_type %s", event_type)),
        F.when(
            topic_type.isNotNull() & (event_type != topic_type),
            F.format_string("event_type %s on topic %s", event_type, F.col("topic")),
        ),
        _envelope_check("event_id"),
        _envelope_check("source"),
        _envelope_check("observed_at"),  # a string, and one that parses as a timestamp
        F.when(payload.isNull() | F.is_variant_null(payload), F.lit("missing field payload")).when(
            ~F.schema_of_variant(payload).startswith("OBJECT"), F.lit("wrong type of payload (expected object)")
        ),
    ]
    payload_checks = []
    for etype, fields in PAYLOADS.items():
        for name, spark_type, required in fields:
            check = _check_field(F.col("doc"), f"$.payload.{name}", f"payload.{name}", spark_type, required)
            payload_checks.append(F.when(event_type == etype, check))
    action = F.try_variant_get(F.col("doc"), "$.payload.action", "string")
    time_range = F.try_variant_get(F.col("doc"), "$.payload.time_range", "string")
    payload_checks += [
        F.when(
            (event_type == "playlist_membership") & ~action.isin("added", "removed"),
            F.format_string("unknown action %s", action),
        ),
        F.when(
            (event_type == "top_track") & ~time_range.isin(*TIME_RANGES),
            F.format_string("unknown time_range %s", time_range),
        ),
    ]
    # After the type checks: a value checked against its range has the type the contract gives it.
    payload_checks += [_expectation_check(expectation, event_type) for expectation in EXPECTATIONS]
    return (
        {"doc": F.try_parse_json(text)},
        {
            "event_type": F.try_variant_get(F.col("doc"), "$.event_type", "string"),
            "schema_version": F.try_variant_get(F.col("doc"), "$.schema_version", "int"),
            "observed_at": F.try_to_timestamp(F.try_variant_get(F.col("doc"), "$.observed_at", "string")),
        },
        {typed_payload(etype): _typed_payload_column(etype) for etype in PAYLOADS},
        {
            # Almost every event is well formed: one test of its JSON types settles that, and only the others go
            # through the checks one by one (parsing a batch took twice as long when every event went through them).
            "reason": F.when(well_formed(topic_event_types, max_bytes), F.lit(None).cast("string")).otherwise(
                F.coalesce(*envelope_checks, *payload_checks)
            ),
            "event_id": F.try_variant_get(F.col("doc"), "$.event_id", "string"),
            "source": F.try_variant_get(F.col("doc"), "$.source", "string"),
        },
    )


@cache
def entity_key() -> Column:
    """The silver key of a parsed event (its KEYS fields joined), to count the rows a later one of the same key
    supersedes in a batch."""
    keys = F.lit(None).cast("string")
    for event_type, fields in KEYS.items():
        key = F.concat_ws("/", *(F.col(typed_payload(event_type))[name].cast("string") for name in fields))
        keys = F.when(F.col("event_type") == event_type, key).otherwise(keys)
    return keys


def failed_expectation() -> Column:
    """The name of the expectation a quarantined event failed, else an empty string."""
    return F.regexp_extract(F.coalesce(F.col("reason"), F.lit("")), EXPECTATION_REASON, 1)


def expectation_violations(summary: list[dict[str, Any]]) -> dict[str, int]:
    """Violations per expectation from a batch's summary rows (`event_type`, `expectation`, `count`): every
    expectation of an event type the batch holds, 0 when none failed."""
    types = {row["event_type"] for row in summary}
    violations = {e.name: 0 for e in EXPECTATIONS if e.event_type in types}
    for row in summary:
        if row["expectation"]:
            violations[row["expectation"]] = violations.get(row["expectation"], 0) + row["count"]
    return violations


def silver_table(event_type: str) -> str:
    """The silver table an event type's rows are MERGEd into (memberships: the current members)."""
    return {**LATEST_WINS, "play": SILVER_PLAYS}.get(event_type, SILVER_MEMBERS)


def quarantine_rows(parsed: "DataFrame") -> "DataFrame":
    return parsed.where(F.col("reason").isNotNull()).select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "reason",
        F.current_timestamp().alias("quarantined_at"),
    )


def entity_rows(parsed: "DataFrame", event_type: str) -> "DataFrame":
    """The good events of one type as typed columns (envelope metadata last)."""
    good, columns = _entity_columns(event_type)
    return parsed.where(good).select(*columns, *META)


@cache
def _entity_columns(event_type: str) -> tuple[Column, list[Column]]:
    """entity_rows' filter and columns, built once (see _parse_columns)."""
    payload = F.col(typed_payload(event_type))
    columns = [
        (
            as_time(payload[name], spark_type)
            if spark_type in ("timestamp", "date")
            else payload[name].cast(spark_type)
        ).alias(name)  # an int was read as a bigint (`read_as`); every other cast is to the type it has
        for name, spark_type, _ in PAYLOADS[event_type]
    ]
    return F.col("reason").isNull() & (F.col("event_type") == event_type), columns


def latest_per_key(rows: "DataFrame", keys: list[str]) -> "DataFrame":
    """One row per key: the latest `observed_at` (ties broken by event id, so replays agree)."""
    order = Window.partitionBy(*keys).orderBy(F.col("observed_at").desc(), F.col("event_id").desc())
    return rows.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def newer_condition(target: str = "t", source: str = "s") -> str:
    """MERGE condition: the incoming row is newer than the stored one (late or replayed rows are not)."""
    return (
        f"{source}.observed_at > {target}.observed_at OR "
        f"({source}.observed_at = {target}.observed_at AND {source}.event_id > {target}.event_id)"
    )


def member_rows(memberships: "DataFrame") -> "DataFrame":
    """Current membership per (playlist, track) from the latest add/remove."""
    return latest_per_key(memberships, KEYS["playlist_membership"]).select(
        "playlist_id",
        "track_id",
        "playlist_name",
        (F.col("action") == "added").alias("is_member"),
        "is_favourite_playlist",
        F.col("action").alias("last_action"),
        "snapshot_id",
        "observed_at",
        "event_id",
    )


def release_year(column: str) -> Column:
    """The year of a Spotify release date of any precision: `1967` (year), `1981-03` (month), `2019-05-01` (day);
    null for none and for Spotify's placeholder `0000`."""
    year = F.substring(column, 1, 4).try_cast("int")
    return F.when(year > 0, year)


def listening(plays: "DataFrame", top_tracks: "DataFrame") -> "DataFrame":
    """Per track: its plays (count, the last), and its best rank in any top list with the last day it was listed."""
    played = plays.groupBy("track_id").agg(F.count("*").alias("play_count"), F.max("played_at").alias("last_played_at"))
    listed = top_tracks.groupBy("track_id").agg(F.min("rank").alias("top_rank"), F.max("day").alias("top_listed_on"))
    return played.join(listed, "track_id", "full")


def track_features(
    tracks: "DataFrame",
    artists: "DataFrame",
    features: "DataFrame",
    members: "DataFrame",
    plays: "DataFrame",
    top_tracks: "DataFrame",
) -> "DataFrame":
    """The gold row of each track: track fields, the primary artist's genres and popularity, audio
    features with their provider, the favourite label (in a current favourite playlist), and what the user's
    listening says of it (plays, top lists)."""
    favourite = (
        members.where("is_member")
        .groupBy("track_id")
        .agg(
            F.max(F.col("is_favourite_playlist").cast("int")).cast("boolean").alias("is_favourite"),
            F.count("*").alias("playlist_count"),
        )
    )
    artist = artists.select(
        F.col("artist_id").alias("primary_artist_id"),
        F.col("name").alias("artist_name"),
        F.col("genres").alias("artist_genres"),
        F.col("popularity").alias("artist_popularity"),
        F.col("followers").alias("artist_followers"),
    )
    audio = features.select(
        "track_id", F.col("provider").alias("features_provider"), *MEASURED_AUDIO_FEATURES, *CODED_AUDIO_FEATURES
    )
    return (
        tracks.select(
            "track_id",
            "name",
            F.get(F.col("artist_ids"), 0).alias("primary_artist_id"),
            "artist_names",
            "album_name",
            "release_date",
            release_year("release_date").alias("release_year"),
            "duration_ms",
            "explicit",
            "popularity",
            F.col("genres").alias("track_genres"),
        )
        .join(artist, "primary_artist_id", "left")
        .join(audio, "track_id", "left")
        .join(favourite, "track_id", "left")
        .join(listening(plays, top_tracks), "track_id", "left")
        .withColumn("genres", F.coalesce("artist_genres", "track_genres", F.array().cast("array<string>")))
        .withColumn("is_favourite", F.coalesce("is_favourite", F.lit(False)))
        .withColumn("playlist_count", F.coalesce("playlist_count", F.lit(0)))
        .withColumn("play_count", F.coalesce("play_count", F.lit(0)))
        .withColumn("updated_at", F.current_timestamp())
        .drop("artist_genres", "track_genres")
    )
