"""Poison input: 2,400 malformed records, generated with hypothesis, interleaved with 3,000 valid events
in the topics of a running streaming job (`python -m streaming run`). Every valid event reaches silver and
gold, every malformed record is in quarantine with the reason the contract (docs/events.md) gives it, and
the job keeps running.

Each malformed record is one of six kinds, 400 of each: a valid event with one field of the wrong JSON
type; a valid event cut short; a huge value (a record over the size limit, a number out of range for
its type); an unknown schema_version, event_type, action or time_range; bytes that are not UTF-8; a well-typed value
outside the range an expectation allows (popularity 140, a danceability of 1.5). A record is
malformed by construction, and the strategy says which reason it must get.

The job is the long-running service: its table upkeep (OPTIMIZE, VACUUM) runs between the batches on its own
schedule, and SIGTERM stops it after the current batch with gold caught up, exit code 0.
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer as KafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F  # noqa: N812

from pipeline_runtime.contract import (
    MEASURED_AUDIO_FEATURES,
    SILVER_ENTITY_TABLES,
    SILVER_HISTORY,
    SILVER_PLAYS,
    SILVER_TOP_TRACKS,
    TIME_RANGES,
)
from pipeline_runtime.kafka_admin import ensure_topics
from producers.events import make_event
from streaming.job import INGEST
from streaming.progress import read_progress
from streaming.transforms import EXPECTATIONS, KEYS, PAYLOADS, SUPPORTED_SCHEMA_VERSIONS, Expectation
from tests.support.processes import TEST_SHUFFLE_PARTITIONS, TEST_SPARK_MASTER, clean_env, wait_for_log

MAX_EVENT_BYTES = 8192
# Each kind's reason holds at any volume: 400 of each kind of poison among 2,400 valid events.
PER_KIND = 400
VALID = {"track": 1000, "artist": 500, "audio_features": 400, "playlist_membership": 500, "play": 300, "top_track": 300}
LATE_VALID = 100  # tracks published after all the poison was quarantined: the job still works
TOPICS = {
    "track": "tracks",
    "artist": "artists",
    "audio_features": "features",
    "playlist_membership": "members",
    "play": "plays",
    "top_track": "top-tracks",
}
SILVER = {  # where each event type's rows land
    **SILVER_ENTITY_TABLES,
    "playlist_membership": SILVER_HISTORY,
    "play": SILVER_PLAYS,
    "top_track": SILVER_TOP_TRACKS,
}
INT_RANGES = {"int": 2**31, "bigint": 2**63}
Record = tuple[str, str | None, bytes, str]  # event type (its topic), key, value, the reason it must get

# --- valid events: every field the contract allows, any text (the keys are given afterwards) ---

text = st.text(max_size=12)
names = st.one_of(st.none(), text)
timestamps = st.datetimes(datetime(2000, 1, 1), datetime(2030, 12, 31)).map(
    lambda t: t.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": names,
    "array<string>": st.one_of(st.none(), st.lists(st.one_of(st.none(), text), max_size=3)),
    "bigint": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "int": st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
    "boolean": st.one_of(st.none(), st.booleans()),
    "double": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    "timestamp": timestamps,
    "date": st.dates(date(2000, 1, 1), date(2030, 12, 31)).map(date.isoformat),
}


def payload_values(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    values = {name: FIELD_VALUES[spark_type] for name, spark_type, _ in PAYLOADS[event_type]}
    types = {name: spark_type for name, spark_type, _ in PAYLOADS[event_type]}
    values |= {key: st.text(min_size=1, max_size=22) for key in KEYS[event_type] if types[key] == "string"}
    if event_type == "playlist_membership":
        values |= {"action": st.sampled_from(["added", "removed"]), "is_favourite_playlist": st.booleans()}
    if event_type == "audio_features":
        values["provider"] = text
    if event_type == "top_track":
        values["time_range"] = st.sampled_from(TIME_RANGES)
    required = {name for name, _, needed in PAYLOADS[event_type] if needed}
    for expectation in EXPECTATIONS:  # a valid event keeps the expectations' ranges
        if expectation.event_type == event_type:
            for name in expectation.fields:
                allowed = within(expectation, types[name])
                values[name] = allowed if name in required else st.one_of(st.none(), allowed)
    return st.fixed_dictionaries(values)


def within(expectation: Expectation, spark_type: str) -> st.SearchStrategy[Any]:
    if spark_type in INT_RANGES:
        high = INT_RANGES[spark_type] - 1 if expectation.high is None else int(expectation.high)
        return st.integers(int(expectation.low), high)
    return st.floats(expectation.low, expectation.high, allow_nan=False, allow_infinity=False)


PAYLOAD_VALUES = {event_type: payload_values(event_type) for event_type in PAYLOADS}
EVENT_TYPES = st.sampled_from(list(PAYLOADS))


@st.composite
def events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(event type, envelope as a dict): a valid event with an arbitrary key."""
    event_type = draw(EVENT_TYPES)
    payload = draw(PAYLOAD_VALUES[event_type])
    envelope = make_event(event_type, payload[KEYS[event_type][0]], payload, draw(text), draw(timestamps)).envelope
    if draw(st.booleans()):  # version 2 may add fields; a reader of version 1 ignores them
        envelope = {**envelope, "schema_version": 2, "trace": draw(text)}
    return event_type, envelope


def to_json(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False, allow_nan=False).encode()


# --- the five kinds of poison ---

JSON_SCALARS = {
    "string": text,
    "integer": st.integers(-(10**20), 10**20),
    "fraction": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f % 1 != 0),
    "boolean": st.booleans(),
    "numeric string": st.one_of(st.integers().map(str), st.floats().map(repr), st.sampled_from(["true", "false"])),
}
NOT_OF_TYPE = {  # JSON values that are not of the type, but that Spark could cast to it
    "string": ["integer", "fraction", "boolean", "array", "object"],
    "int": ["string", "numeric string", "fraction", "boolean", "array", "object"],
    "double": ["string", "numeric string", "boolean", "array", "object"],
    "boolean": ["string", "numeric string", "integer", "fraction", "array", "object"],
    "array<string>": ["string", "integer", "boolean", "object", "array of non-strings"],
    "object": ["string", "integer", "boolean", "array"],
    "timestamp": ["integer", "fraction", "boolean", "array", "object"],  # JSON has none: an ISO 8601 string
    "date": ["integer", "fraction", "boolean", "array", "object"],
}
ENVELOPE = [
    ("schema_version", "int"),
    ("event_id", "string"),
    ("event_type", "string"),
    ("source", "string"),
    ("observed_at", "timestamp"),  # an ISO 8601 string
    ("payload", "object"),
]


def wrong_values(spark_type: str) -> st.SearchStrategy[Any]:
    kinds = NOT_OF_TYPE[spark_type]
    scalar = st.one_of(*JSON_SCALARS.values())
    choices = {
        **JSON_SCALARS,
        "array": st.lists(scalar, max_size=3),
        "object": st.dictionaries(text, scalar, max_size=3),
        "array of non-strings": st.lists(st.one_of(scalar, st.none()), min_size=1, max_size=3).filter(
            lambda items: any(item is not None and not isinstance(item, str) for item in items)
        ),
    }
    return st.one_of(*(choices[kind] for kind in kinds))


WRONG_VALUES = {spark_type: wrong_values(spark_type) for spark_type in NOT_OF_TYPE} | {"bigint": wrong_values("int")}
FIELDS = {  # (name, type, in the payload) of every field an event of a type has
    event_type: st.sampled_from([(name, t, False) for name, t in ENVELOPE] + [(n, t, True) for n, t, _ in fields])
    for event_type, fields in PAYLOADS.items()
}


@st.composite
def wrong_types(draw: st.DrawFn) -> Record:
    event_type, envelope = draw(events())
    name, spark_type, in_payload = draw(FIELDS[event_type])
    value = draw(WRONG_VALUES[spark_type])
    if in_payload:
        envelope["payload"][name] = value
        name = f"payload.{name}"
    else:
        envelope[name] = value
    return event_type, None, to_json(envelope), f"wrong type of {name} (expected {spark_type})"


@st.composite
def truncations(draw: st.DrawFn) -> Record:
    event_type, envelope = draw(events())
    whole = to_json(envelope)
    cut = whole[: len(whole) - draw(st.integers(1, len(whole)))]  # counted from the end: hypothesis favours small
    try:
        json.loads(cut.decode())
    except UnicodeDecodeError:
        return event_type, None, cut, "invalid UTF-8"
    except ValueError:
        return event_type, None, cut, "not JSON"
    raise AssertionError(f"a cut event is still JSON: {cut!r}")


@st.composite
def huge_values(draw: st.DrawFn) -> Record:
    event_type, envelope = draw(events())
    kind = draw(
        st.sampled_from(
            ["oversize", "integer", "double"] if event_type == "audio_features" else ["oversize", "integer"]
        )
    )
    if kind == "oversize":  # a string field far over the size limit
        name = draw(st.sampled_from([n for n, t, _ in PAYLOADS[event_type] if t == "string"]))
        size = draw(st.integers(MAX_EVENT_BYTES, 3 * MAX_EVENT_BYTES))
        envelope["payload"][name] = (draw(st.text(min_size=1, max_size=4)) * size)[:size]
        value = to_json(envelope)
        return event_type, None, value, f"oversize: {len(value)} bytes > {MAX_EVENT_BYTES}"
    if kind == "integer":
        fields = [("schema_version", "int", False)] + [
            (n, t, True) for n, t, _ in PAYLOADS[event_type] if t in INT_RANGES
        ]
        name, spark_type, in_payload = draw(st.sampled_from(fields))
        limit = INT_RANGES[spark_type]
        number = draw(st.one_of(st.integers(limit, 10**60), st.integers(-(10**60), -limit - 1)))
        (envelope["payload"] if in_payload else envelope)[name] = number
        name = f"payload.{name}" if in_payload else name
        return event_type, None, to_json(envelope), f"{name} out of range for {spark_type}"
    name = draw(st.sampled_from(MEASURED_AUDIO_FEATURES))  # a JSON number beyond a double: Spark reads it as infinity
    envelope["payload"][name] = "HUGE"
    number = draw(st.sampled_from(["", "-"])) + f"{draw(st.integers(1, 9))}e{draw(st.integers(309, 100_000))}"
    value = to_json(envelope).replace(b'"HUGE"', number.encode())
    assert math.isinf(json.loads(value)["payload"][name])
    return event_type, None, value, f"payload.{name} out of range for double"


@st.composite
def unknown_values(draw: st.DrawFn) -> Record:
    event_type, envelope = draw(events())
    named = {"playlist_membership": ["action"], "top_track": ["time_range"]}.get(event_type, [])
    kinds = ["schema_version", "event_type", *named]
    kind = draw(st.sampled_from(kinds))
    if kind == "schema_version":
        version = draw(st.integers(-(2**31), 2**31 - 1).filter(lambda v: v not in SUPPORTED_SCHEMA_VERSIONS))
        envelope["schema_version"] = version
        return event_type, None, to_json(envelope), f"unknown schema_version {version}"
    if kind == "event_type":
        name = draw(text.filter(lambda t: t not in PAYLOADS))
        envelope["event_type"] = name
        return event_type, None, to_json(envelope), f"unknown event_type {name}"
    if kind == "time_range":
        time_range = draw(text.filter(lambda t: t not in TIME_RANGES))
        envelope["payload"]["time_range"] = time_range
        return event_type, None, to_json(envelope), f"unknown time_range {time_range}"
    action = draw(text.filter(lambda t: t not in ("added", "removed")))
    envelope["payload"]["action"] = action
    return event_type, None, to_json(envelope), f"unknown action {action}"


@st.composite
def outside_expectations(draw: st.DrawFn) -> Record:
    """A well-typed value outside the range an expectation allows (a double as k + 0.5 below a million, which Spark
    prints as Python does)."""
    event_type, envelope = draw(events().filter(lambda e: any(x.event_type == e[0] for x in EXPECTATIONS)))
    expectation = draw(st.sampled_from([x for x in EXPECTATIONS if x.event_type == event_type]))
    name = draw(st.sampled_from(expectation.fields))
    spark_type = {n: t for n, t, _ in PAYLOADS[event_type]}[name]
    low, high = int(expectation.low), None if expectation.high is None else int(expectation.high)
    below = st.integers(-(2**31), low - 1)
    if spark_type in INT_RANGES:
        number = draw(below if high is None else st.one_of(below, st.integers(high + 1, 2**31 - 1)))
        value, shown = float(number), str(number)
    else:
        k = draw(
            st.integers(-(10**6), low - 1)
            if high is None
            else st.one_of(st.integers(-(10**6), low - 1), st.integers(high, 10**6))
        )
        value = k + 0.5
        shown = repr(value)
    envelope["payload"][name] = int(value) if spark_type in INT_RANGES else value
    reason = f"expectation {expectation.name} failed: payload.{name} is {shown}, expected {expectation.expected}"
    return event_type, None, to_json(envelope), reason


INVALID_UTF8 = [
    b"\x80",
    b"\xbf",
    b"\xc0\xaf",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xfe",
    b"\xff",
]


@st.composite
def inserted_bytes(draw: st.DrawFn) -> Record:
    event_type, envelope = draw(events())
    whole = to_json(envelope)
    at = draw(st.integers(0, len(whole)))
    at = at if draw(st.booleans()) else len(whole) - at  # hypothesis favours small numbers: from either end
    bad = draw(st.one_of(st.sampled_from(INVALID_UTF8), st.binary(min_size=1, max_size=4)))
    return event_type, None, whole[:at] + bad + whole[at:], "invalid UTF-8"


def is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


POISON = {
    "wrong type": wrong_types(),
    "truncated": truncations(),
    "huge value": huge_values(),
    "unknown version or type": unknown_values(),
    "not UTF-8": inserted_bytes().filter(lambda record: not is_utf8(record[2])),
    "outside an expectation": outside_expectations(),
}


def generate(strategy: st.SearchStrategy[Any], count: int, unique: Callable[[Any], Any] | None = None) -> list[Any]:
    """`count` examples of a strategy (distinct by `unique`), the same ones on every run."""
    found: dict[Any, Any] = {}

    @settings(
        max_examples=count * 6 // 5 if unique else count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        if len(found) < count:
            found.setdefault(unique(example) if unique else len(found), example)

    collect()
    assert len(found) == count, f"only {len(found)} distinct examples of {count}"
    return list(found.values())


def valid_events() -> dict[str, list[tuple[str, dict[str, Any], bytes]]]:
    """Per event type: (key, payload, record) of events with distinct keys that refer to each other (audio
    features and memberships of the tracks), the rest of their content from hypothesis."""
    tracks = [f"T{i:021d}" for i in range(VALID["track"])]
    found: dict[str, list[tuple[str, dict[str, Any], bytes]]] = {}
    for event_type, count in VALID.items():
        contents = generate(st.tuples(PAYLOAD_VALUES[event_type], text, timestamps, st.booleans(), text), 500)
        found[event_type] = []
        for i in range(count):
            payload, source, observed_at, version_2, trace = contents[i % len(contents)]
            ids = {
                "track": {"track_id": tracks[i]},
                "artist": {"artist_id": f"A{i:021d}"},
                "audio_features": {"track_id": tracks[i]},
                "playlist_membership": {"playlist_id": f"P{i % 7:021d}", "track_id": tracks[i]},
                "play": {"track_id": tracks[i]},
                "top_track": {"track_id": tracks[i]},
            }
            payload = {**payload, **ids[event_type]}
            key = payload[KEYS[event_type][0]]
            envelope = make_event(event_type, key, payload, source, observed_at).envelope  # type: ignore[arg-type]
            if version_2:
                envelope = {**envelope, "schema_version": 2, "trace": trace}
            found[event_type].append((key, payload, to_json(envelope)))
    return found


def silver_batches(progress_file: Path) -> list[dict[str, Any]]:
    """The batches that wrote silver: the one ingest query's (the default layout)."""
    return [line for line in read_progress(progress_file) if line["query"] == INGEST]


def rows_in_silver(batches: list[dict[str, Any]]) -> int:
    return sum(batch["rows_written"].get(name, 0) for batch in batches for name in SILVER.values())


def reason_group(reason: str) -> str:
    """'wrong type of payload.name (expected string)' -> 'wrong type', 'oversize: 9000 bytes ...' -> 'oversize'."""
    for group in (
        "expectation",
        "wrong type",
        "out of range",
        "oversize",
        "unknown schema_version",
        "unknown event_type",
        "unknown action",
        "unknown time_range",
    ):
        if group in reason:
            return group
    return reason


def test_poison_is_quarantined_with_its_reason_valid_events_reach_silver_and_the_job_keeps_running(
    spark: SparkSession, bootstrap_servers: str, tmp_path: Path, figures: Callable[..., None]
) -> None:
    started = time.monotonic()
    poison = {kind: generate(strategy, PER_KIND, lambda record: record[2]) for kind, strategy in POISON.items()}
    valid = valid_events()
    reasons = {value: reason for records in poison.values() for _, _, value, reason in records}
    assert len(reasons) == len(POISON) * PER_KIND, "the same malformed record in two kinds"
    generated = time.monotonic() - started

    suffix = uuid.uuid4().hex[:8]
    topics = {event_type: f"{name}-{suffix}" for event_type, name in TOPICS.items()}
    ensure_topics(bootstrap_servers, list(topics.values()), partitions=2)
    late = [(topics["track"], key, value) for key, _, value in valid["track"][-LATE_VALID:]]
    mixed = [
        (topics[event_type], key, value)
        for event_type, records in valid.items()
        for key, _, value in (records[:-LATE_VALID] if event_type == "track" else records)
    ]
    mixed += [(topics[event_type], key, value) for records in poison.values() for event_type, key, value, _ in records]
    random.Random(20).shuffle(mixed)

    data_dir = tmp_path / "data"
    env = clean_env(
        DATA_DIR=str(data_dir),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        SPARK_MASTER=TEST_SPARK_MASTER,
        SPARK_SHUFFLE_PARTITIONS=str(TEST_SHUFFLE_PARTITIONS),
        SPARK_UI_ENABLED="false",
        SPARK_DRIVER_MEMORY="1g",
        STREAMING_TRIGGER_INTERVAL="3 seconds",
        STREAMING_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES),
        STREAMING_MAX_OFFSETS_PER_TRIGGER="5000",
        STREAMING_MAINTENANCE_INTERVAL_SECONDS="20",  # upkeep while batches arrive
        KAFKA_TOPIC_TRACKS=topics["track"],
        KAFKA_TOPIC_ARTISTS=topics["artist"],
        KAFKA_TOPIC_AUDIO_FEATURES=topics["audio_features"],
        KAFKA_TOPIC_PLAYLIST_MEMBERSHIP=topics["playlist_membership"],
        KAFKA_TOPIC_PLAYS=topics["play"],
        KAFKA_TOPIC_TOP_TRACKS=topics["top_track"],
    )
    progress_file = data_dir / "logs" / "streaming-progress.jsonl"
    log_path = tmp_path / "streaming.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streaming", "run"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )

    def upkept() -> bool:
        history = spark.sql(f"DESCRIBE HISTORY delta.`{data_dir / 'tables' / 'silver_tracks'}`").collect()
        operations = {row.operation for row in history}
        return {"OPTIMIZE", "VACUUM END"} <= operations

    def wait_for(condition: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition(silver_batches(progress_file)):
            assert process.poll() is None, f"the job died: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f}s: {log_path.read_text()[-3000:]}"
            time.sleep(1)

    try:
        wait_for_log(process, log_path, f"query {INGEST} started", 180)
        producer = KafkaProducer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
        for wave in range(4):  # while the job runs, a trigger apart
            for topic, key, value in mixed[wave::4]:
                producer.produce(topic, key=key, value=value)
            assert producer.flush(60) == 0
            time.sleep(3)
        wait_for(lambda b: sum(x["quarantined"] for x in b) >= len(reasons), "quarantine of all the poison")
        wait_for(lambda b: rows_in_silver(b) >= sum(VALID.values()) - LATE_VALID, "silver rows of all valid events")
        poisoned = len(silver_batches(progress_file))
        for topic, key, value in late:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(60) == 0
        wait_for(lambda b: rows_in_silver(b) >= sum(VALID.values()), "silver rows of the late events")
        wait_for(lambda _: upkept(), "OPTIMIZE and VACUUM of silver_tracks by the job's upkeep", 120)
        assert process.poll() is None, "the job is still running"
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(180) == 0, log_path.read_text()[-3000:]
        stopped_in = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()
    streamed = time.monotonic() - started - generated

    def read(name: str):  # type: ignore[no-untyped-def]
        return spark.read.format("delta").load(str(data_dir / "tables" / name))

    sent = sum(VALID.values()) + len(reasons)
    bronze = read("bronze").agg(F.count("*").alias("rows"), F.count_distinct("topic", "partition", "offset")).first()
    assert bronze is not None and list(bronze) == [sent, sent], "bronze: every record once"

    quarantined = [(bytes(row.value), row.reason) for row in read("quarantine").select("value", "reason").collect()]
    assert Counter(value for value, _ in quarantined) == Counter(list(reasons)), "the poison as sent"
    wrong = [(value[:300], reason, reasons[value]) for value, reason in quarantined if reason != reasons[value]]
    assert not wrong, f"{len(wrong)} records quarantined with another reason than the contract's: {wrong[:5]}"

    for event_type, name in SILVER.items():
        fields = [(field, spark_type) for field, spark_type, _ in PAYLOADS[event_type]]
        rows = [tuple(hashable(row[f]) for f, _ in fields) for row in read(name).select(*dict(fields)).collect()]
        expected = {tuple(as_read(payload[f], t) for f, t in fields) for _, payload, _ in valid[event_type]}
        assert len(rows) == len(expected) and set(rows) == expected, f"{name}: every event once, every field as sent"
    # The upkeep ran beside the batches (upkept() above) and kept every row: the counts above, gold below.
    assert "SIGTERM received: stopping after the current batch" in log_path.read_text()
    members = read("silver_playlist_members")
    assert members.count() == VALID["playlist_membership"]
    gold = {row.track_id: row.is_favourite for row in read("track_features").collect()}
    favourites = {
        p["track_id"]
        for _, p, _ in valid["playlist_membership"]
        if p["action"] == "added" and p["is_favourite_playlist"]
    }
    assert set(gold) == {key for key, _, _ in valid["track"]}
    assert {track for track, favourite in gold.items() if favourite} == favourites

    batches = silver_batches(progress_file)
    after = batches[poisoned:]
    assert sum(x["rows_written"].get("silver_tracks", 0) for x in after) == LATE_VALID, "batches after the poison"
    # Each batch counted the violations of every expectation it checked, in the progress log `tail` shows.
    failed = Counter({x.name: 0 for x in EXPECTATIONS})
    for batch in batches:
        failed.update(batch["expectations"])
    outside = Counter(reason.split()[1] for _, _, _, reason in poison["outside an expectation"])
    assert {name: n for name, n in failed.items() if n} == dict(outside)
    by_reason = Counter(reason_group(reason) for _, reason in quarantined)
    figures(
        what="sent",
        valid_events=sum(VALID.values()),
        **{k.replace(" ", "_"): PER_KIND for k in poison},
        late_valid_events=LATE_VALID,
        generated_in=f"{generated:.0f}s",
    )
    figures(
        what="found",
        bronze_rows=bronze.rows,
        silver_tracks=VALID["track"],
        silver_artists=VALID["artist"],
        silver_audio_features=VALID["audio_features"],
        silver_playlist_history=VALID["playlist_membership"],
        silver_plays=VALID["play"],
        silver_top_tracks=VALID["top_track"],
        gold_rows=len(gold),
        quarantined=len(quarantined),
    )
    figures(what="quarantined per reason", **{k.replace(" ", "_"): v for k, v in by_reason.most_common()})
    figures(
        what="job",
        silver_batches=len(batches),
        batches_with_poison=sum(1 for x in batches if x["quarantined"]),
        batches_after_the_poison=len(after),
        upkeep_rounds=log_path.read_text().count("table upkeep done"),
        exit_code=0,
        sigterm_to_exit=f"{stopped_in:.0f}s",
        streamed_in=f"{streamed:.0f}s",
    )


def hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def as_read(value: Any, spark_type: str) -> Any:
    """A payload's value as Spark reads it back from silver (timestamps in UTC, as the session's time zone)."""
    if value is not None and spark_type == "timestamp":
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)
    if value is not None and spark_type == "date":
        return date.fromisoformat(value)
    return hashable(value)
