"""The wire codec: single-object encoding round trips, schema resolution, precise failures."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from avro_strategies import records
from fastavro import schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.errors import DecodeError, SchemaError, ValidationError
from rtim.serde.codec import Codec
from rtim.serde.schemas import build_schema, get_schemas, load_schemas

CLICK: dict[str, Any] = {
    "event_id": "e-000123456",
    "customer_id": "c-000042",
    "ts": 1763798400000,
    "session_id": "s-9f8e7d",
    "type": "product_view",
    "page": "/products/p-17",
    "product_id": "p-17",
    "category": "mortgage",
    "price": 199.0,
    "quantity": 1,
    "anonymous_id": None,
}
OUTCOME: dict[str, Any] = {
    "event_id": "o-1",
    "decision_id": None,
    "customer_id": "c-000042",
    "ts": 1763798400000,
    "channel": "email",
    "offer_id": "card",
    "type": "click",
    "value": None,
}


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def test_single_object_layout(codec: Codec) -> None:
    data = codec.encode("ClickstreamEvent", CLICK)
    schema = get_schemas().current("ClickstreamEvent")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint
    # the body is plain Avro binary: fastavro alone reads it with the schema
    body = io.BytesIO(data[10:])
    assert schemaless_reader(body, schema.parsed, None) == CLICK
    assert body.tell() == len(data) - 10


def test_round_trip_keeps_timestamps_as_epoch_ms(codec: Codec) -> None:
    name, record = codec.decode(codec.encode("ClickstreamEvent", CLICK), "ClickstreamEvent")
    assert name == "ClickstreamEvent"
    assert record == CLICK
    assert type(record["ts"]) is int


def test_missing_optional_fields_are_written_as_their_defaults(codec: Codec) -> None:
    required = {k: v for k, v in CLICK.items() if k in ("event_id", "customer_id", "ts",
                                                         "session_id", "type")}  # fmt: skip
    _, record = codec.decode(codec.encode("ClickstreamEvent", required))
    assert record == {**required, "page": None, "product_id": None, "category": None,
                      "price": None, "quantity": None, "anonymous_id": None}  # fmt: skip


@pytest.mark.parametrize("name", get_schemas().names())
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_schema_round_trips(codec: Codec, name: str, data: st.DataObject) -> None:
    record = data.draw(records(get_schemas().current(name).raw))
    assert codec.decode(codec.encode(name, record), expected=name) == (name, record)


def test_encode_rejects_a_record_that_does_not_fit(codec: Codec) -> None:
    with pytest.raises(ValidationError, match="record does not fit schema ClickstreamEvent"):
        codec.encode("ClickstreamEvent", {**CLICK, "price": "cheap"})
    with pytest.raises(ValidationError, match="ClickstreamEvent"):
        codec.encode("ClickstreamEvent", {**CLICK, "type": "teleport"})


def test_encode_unknown_schema(codec: Codec) -> None:
    with pytest.raises(SchemaError, match="unknown schema 'Nope'"):
        codec.encode("Nope", {})


def test_encode_reuses_its_buffer_safely(codec: Codec) -> None:
    first = codec.encode("ClickstreamEvent", CLICK)
    second = codec.encode("Outcome", OUTCOME)
    assert codec.decode(first)[1] == CLICK  # the first result is not overwritten
    assert codec.decode(second)[1] == OUTCOME


# --- failures -----------------------------------------------------------------------------------


def test_empty_message(codec: Codec) -> None:
    with pytest.raises(DecodeError, match=r"^empty message$"):
        codec.decode(b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"json": true}', "unknown magic byte 0x7b"),
        (b"\xc3\x02" + bytes(20), "unknown magic bytes 0xc302"),
        (b"Obj\x01", "unknown magic byte 0x4f"),
    ],
)
def test_unknown_magic(codec: Codec, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        codec.decode(data)


def test_unknown_fingerprint_is_printed_in_hex(codec: Codec) -> None:
    data = b"\xc3\x01" + bytes.fromhex("0102030405060708") + b"\x00"
    with pytest.raises(DecodeError, match=r"^unknown schema fingerprint 0102030405060708$"):
        codec.decode(data)


def test_expected_schema_mismatch(codec: Codec) -> None:
    with pytest.raises(DecodeError, match=r"^expected ClickstreamEvent, got Outcome$"):
        codec.decode(codec.encode("Outcome", OUTCOME), expected="ClickstreamEvent")


def test_every_truncation_is_a_decode_error(codec: Codec) -> None:
    data = codec.encode("ClickstreamEvent", CLICK)
    for end in range(len(data)):
        with pytest.raises(DecodeError) as info:
            codec.decode(data[:end])
        assert "\n" not in str(info.value)
        if end >= 10:
            assert "ClickstreamEvent" in str(info.value)


@pytest.mark.parametrize("extra", [b"\x00", b"junk", bytes(100)])
def test_trailing_bytes_after_a_complete_record_are_rejected(codec: Codec, extra: bytes) -> None:
    data = codec.encode("ClickstreamEvent", CLICK) + extra
    with pytest.raises(DecodeError, match=rf"^{len(extra)} unexpected bytes after the end"):
        codec.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 200))
def test_corrupt_bodies_only_ever_raise_decode_error(codec: Codec, noise: bytes, cut: int) -> None:
    valid = codec.encode("Decision", _decision())
    header = valid[:10]
    flipped = bytes(a ^ b for a, b in zip(valid, noise.ljust(len(valid), b"\x00"), strict=False))
    for data in (header + noise, valid[:cut] + noise, flipped):
        try:
            name, record = codec.decode(data)
        except DecodeError as exc:
            reason = str(exc)
            assert reason
            assert "\n" not in reason
        else:
            assert name == "Decision"
            assert isinstance(record, dict)


def _decision() -> dict[str, Any]:
    return {
        "decision_id": "d-1", "customer_id": "c-1", "ts": 1, "channel": "web",
        "trigger": {"type": "request", "id": "r-1", "name": None}, "request_id": "r-1",
        "actions": [{"offer_id": "o", "category": "card", "rank": 1, "score": 0.5,
                     "propensity": 0.9, "payload": {"headline": "Hi"}}],
        "control_group": False, "strategy_version": "s1", "model_version": "m1",
        "reasons": ["top score"], "expires_at": 2, "placement": None,
    }  # fmt: skip


# --- schema evolution ---------------------------------------------------------------------------


def _schema_dir(tmp_path: Path, name: str, fields: list[dict[str, Any]]) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    raw = {"type": "record", "name": "Thing", "namespace": "rtim", "fields": fields}
    (directory / "Thing.avsc").write_text(json.dumps(raw))
    return directory


def test_old_writer_schema_from_history_is_resolved_into_the_current_one(tmp_path: Path) -> None:
    v1_fields = [
        {"name": "id", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "gone", "type": "int"},
    ]
    v2_fields = [
        {"name": "id", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "score", "type": "double", "default": 0.5},
    ]
    v1_dir = _schema_dir(tmp_path, "v1", v1_fields)
    v2_dir = _schema_dir(tmp_path, "v2", v2_fields)
    old_writer = Codec(load_schemas(v1_dir))
    old_data = old_writer.encode("Thing", {"id": "a", "ts": 7, "gone": 3})

    # without the old version in history, the new reader cannot decode it
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        Codec(load_schemas(v2_dir)).decode(old_data)

    v1 = build_schema((v1_dir / "Thing.avsc").read_text())
    (v2_dir / "history").mkdir()
    (v2_dir / "history" / f"Thing.{v1.fingerprint_hex}.avsc").write_text(
        (v1_dir / "Thing.avsc").read_text()
    )
    reader = Codec(load_schemas(v2_dir))
    assert reader.decode(old_data, expected="Thing") == (
        "Thing",
        {"id": "a", "ts": 7, "note": None, "score": 0.5},
    )
    # and data of the current version still decodes directly
    new_data = reader.encode("Thing", {"id": "b", "ts": 8, "note": "x", "score": 1.0})
    assert reader.decode(new_data)[1] == {"id": "b", "ts": 8, "note": "x", "score": 1.0}


def test_confluent_format_without_a_registry_is_a_decode_error(codec: Codec) -> None:
    with pytest.raises(DecodeError, match=r"schema id 42\) but no schema registry"):
        codec.decode(b"\x00\x00\x00\x00\x2a\x02")
    with pytest.raises(DecodeError, match="truncated Confluent header"):
        codec.decode(b"\x00\x00\x01")


def test_an_old_version_that_cannot_be_resolved_is_a_decode_error(tmp_path: Path) -> None:
    old_dir = _schema_dir(tmp_path, "old", [{"name": "id", "type": "string"}])
    new_dir = _schema_dir(tmp_path, "new", [{"name": "id", "type": "int"}])
    old = build_schema((old_dir / "Thing.avsc").read_text())
    (new_dir / "history").mkdir()
    (new_dir / "history" / f"Thing.{old.fingerprint_hex}.avsc").write_text(json.dumps(old.raw))
    data = Codec(load_schemas(old_dir)).encode("Thing", {"id": "x"})
    with pytest.raises(DecodeError, match=r"^cannot read this older Thing as the current version"):
        Codec(load_schemas(new_dir)).decode(data)
