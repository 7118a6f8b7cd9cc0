"""Plain JSON objects ⇄ records: timestamps, defaults, unknown fields, located errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from avro_strategies import records
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.errors import ValidationError
from rtim.serde.jsonio import parse_json_line, parse_timestamp, record_from_json, record_to_json
from rtim.serde.schemas import get_schemas

TS = 1763798400000  # 2025-11-22T08:00:00Z

CLICK_IN: dict[str, Any] = {
    "event_id": "e-1",
    "customer_id": "c-1",
    "ts": "2025-11-22T08:00:00Z",
    "session_id": "s-1",
    "type": "add_to_cart",
    "price": 9.5,
}

DECISION_IN: dict[str, Any] = {
    "decision_id": "d-1",
    "customer_id": "c-1",
    "ts": TS,
    "channel": "web",
    "trigger": {"type": "request", "id": "r-1"},
    "actions": [
        {"offer_id": "card", "category": "credit", "rank": 1, "score": 0.7, "propensity": 1,
         "payload": {"headline": "Hello"}},
    ],
    "control_group": False,
    "strategy_version": "s1",
    "model_version": "m1",
    "reasons": [],
    "expires_at": "2025-11-22T09:00:00+01:00",
}  # fmt: skip


def test_plain_json_with_iso_timestamp_and_defaults() -> None:
    record = record_from_json("ClickstreamEvent", CLICK_IN)
    assert record == {
        "event_id": "e-1", "customer_id": "c-1", "ts": TS, "session_id": "s-1",
        "type": "add_to_cart", "page": None, "product_id": None, "category": None,
        "price": 9.5, "quantity": None, "anonymous_id": None,
    }  # fmt: skip
    assert list(record) == [
        f["name"] for f in get_schemas().current("ClickstreamEvent").raw["fields"]
    ]


def test_nested_records_get_their_defaults_and_numbers_their_types() -> None:
    record = record_from_json("Decision", DECISION_IN)
    assert record["trigger"] == {"type": "request", "id": "r-1", "name": None}
    assert record["expires_at"] == TS  # 09:00+01:00 == 08:00Z
    assert record["actions"][0]["propensity"] == 1.0
    assert type(record["actions"][0]["propensity"]) is float
    assert record["request_id"] is None
    assert record["placement"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TS, TS),
        (0, 0),
        ("2025-11-22T08:00:00Z", TS),
        ("2025-11-22T08:00:00", TS),  # naive = UTC
        ("2025-11-22T08:00:00.123Z", TS + 123),
        ("2025-11-22T09:30:00+01:30", TS),
        ("2025-11-22 08:00:00+00:00", TS),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_timestamps(value: Any, expected: int) -> None:
    assert parse_timestamp(value) == expected
    assert record_from_json("ClickstreamEvent", {**CLICK_IN, "ts": value})["ts"] == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ts": "yesterday"}, "field 'ts': expected epoch milliseconds or an ISO-8601 time, "
                              "got 'yesterday'"),
        ({"ts": True}, "field 'ts': expected epoch milliseconds"),
        ({"ts": 1.5}, "field 'ts': expected epoch milliseconds"),
        ({"price": "abc"}, "field 'price': expected a number, got 'abc'"),
        ({"price": {"double": 9.5}}, "field 'price': expected a number, got an object"),
        ({"price": True}, "field 'price': expected a number, got true"),
        ({"quantity": 1.5}, "field 'quantity': expected an integer, got 1.5"),
        ({"quantity": 2**31}, "field 'quantity': 2147483648 is out of range for an Avro int"),
        ({"type": "teleport"}, "field 'type': 'teleport' is not one of page_view, product_view"),
        ({"type": 3}, "field 'type': expected one of page_view"),
        ({"session_id": None}, "field 'session_id': must not be null"),
        ({"session_id": 7}, "field 'session_id': expected a string, got 7"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)  # fmt: skip
def test_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        record_from_json("ClickstreamEvent", {**CLICK_IN, **change})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_missing_required_field() -> None:
    obj = {k: v for k, v in CLICK_IN.items() if k != "session_id"}
    with pytest.raises(ValidationError, match=r"^missing required field 'session_id'$"):
        record_from_json("ClickstreamEvent", obj)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("actions", 0, "score"), "abc", "field 'actions[0].score': expected a number, got 'abc'"),
        (("actions", 0, "payload", "headline"), 5,
         "field 'actions[0].payload[\"headline\"]': expected a string, got 5"),
        (("trigger", "type"), "timer",
         "field 'trigger.type': 'timer' is not one of request, event"),
        (("trigger", "extra"), 1, "unknown field 'trigger.extra'"),
        (("actions", 0, "rank"), None, "field 'actions[0].rank': must not be null"),
        (("reasons",), "because", "field 'reasons': expected a list, got 'because'"),
    ],
)  # fmt: skip
def test_nested_errors_name_the_path(path: tuple[Any, ...], value: Any, message: str) -> None:
    obj = json.loads(json.dumps(DECISION_IN))
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as info:
        record_from_json("Decision", obj)
    assert str(info.value) == message


def test_missing_nested_required_field() -> None:
    obj = json.loads(json.dumps(DECISION_IN))
    del obj["actions"][0]["offer_id"]
    with pytest.raises(ValidationError, match=r"^missing required field 'actions\[0\]\.offer_id'$"):
        record_from_json("Decision", obj)


def test_bytes_are_base64_both_ways() -> None:
    obj = {"source_topic": "rtim.requests", "partition": 0, "offset": 12, "key": "YzE=",
           "value": "wwH/AA==", "error": "bad", "ts": TS}  # fmt: skip
    record = record_from_json("DeadLetter", obj)
    assert record["key"] == b"c1"
    assert record["value"] == b"\xc3\x01\xff\x00"
    assert record["error_kind"] is None
    assert record_to_json(record) == {**obj, "error_kind": None}
    with pytest.raises(ValidationError, match="field 'value': expected base64 text, got '%%%'"):
        record_from_json("DeadLetter", {**obj, "value": "%%%"})


def test_unions_pick_the_branch_of_the_json_type() -> None:
    base = json.loads(json.dumps(DECISION_IN))
    obj = {"decision": base, "candidates": [],
           "features": {"n": 3, "x": 3.0, "b": True, "s": "3", "z": None}}  # fmt: skip
    record = record_from_json("DecisionRecord", obj)
    features = record["features"]
    assert features == {"n": 3, "x": 3.0, "b": True, "s": "3", "z": None}
    assert [type(v) for v in features.values()] == [int, float, bool, str, type(None)]
    with pytest.raises(
        ValidationError,
        match=r"field 'features\[\"l\"\]': expected null, boolean, long, double or string, "
        "got a list",
    ):
        record_from_json("DecisionRecord", {**obj, "features": {"l": [1]}})


def test_optional_map_and_defaults_of_record_fields() -> None:
    obj = {"request_id": "r", "customer_id": "c", "ts": 1, "channel": "web", "placement": "p"}
    record = record_from_json("DecisionRequest", obj)
    assert record["context"] is None
    assert record["max_actions"] == 1
    assert record_from_json("DecisionRequest", {**obj, "context": {"page": "/"}})["context"] == {
        "page": "/"
    }


@pytest.mark.parametrize("value", [[], "x", 3, None])
def test_top_level_must_be_an_object(value: Any) -> None:
    with pytest.raises(ValidationError, match=r"^expected a JSON object, got"):
        record_from_json("ClickstreamEvent", value)


def test_parse_json_line() -> None:
    assert parse_json_line("ClickstreamEvent", json.dumps(CLICK_IN))["ts"] == TS
    with pytest.raises(ValidationError) as info:
        parse_json_line("ClickstreamEvent", '{"event_id": ')
    assert str(info.value) == "not valid JSON at column 14: Expecting value"


@pytest.mark.parametrize("name", get_schemas().names())
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_to_json_and_back_is_the_identity(name: str, data: st.DataObject) -> None:
    """Every record survives record_to_json → JSON text → record_from_json unchanged."""
    record = data.draw(records(get_schemas().current(name).raw))
    text = json.dumps(record_to_json(record))
    assert record_from_json(name, json.loads(text)) == record


def test_non_finite_numbers_are_left_to_validation() -> None:
    record = record_from_json("ClickstreamEvent", {**CLICK_IN, "price": math.inf})
    assert record["price"] == math.inf
