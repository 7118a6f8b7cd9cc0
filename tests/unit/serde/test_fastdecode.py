"""The generated readers agree with fastavro: the same record from valid bytes, and never a
record where fastavro would refuse the bytes."""

from __future__ import annotations

import io
import struct
from typing import Any

import pytest
from avro_strategies import records
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.serde.codec import Codec
from rtim.serde.fastdecode import compile_reader
from rtim.serde.schemas import get_schemas

SCHEMAS = get_schemas()
NAMES = sorted(s.name for s in SCHEMAS)


def _fastavro(parsed: Any, body: bytes) -> tuple[Any, int]:
    stream = io.BytesIO(body)
    record = schemaless_reader(stream, parsed, None)
    return record, stream.tell()


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (True is not 1; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


def _encode(parsed: Any, record: dict[str, Any]) -> bytes:
    stream = io.BytesIO()
    schemaless_writer(stream, parsed, record)
    return stream.getvalue()


def _agree(parsed: Any, body: bytes) -> None:
    """The generated reader returns what fastavro returns, or raises where fastavro raises."""
    reader = compile_reader(parsed)
    assert reader is not None
    try:
        fast = reader(body, 0)
    except Exception:
        return  # the codec then asks fastavro, whose answer is the one given
    expected = _fastavro(parsed, body)
    assert _same(fast[0], expected[0])
    assert fast[1] == expected[1]


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_schema_gets_a_generated_reader(name: str) -> None:
    assert compile_reader(SCHEMAS.current(name).parsed) is not None


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_valid_records_read_as_fastavro_reads_them(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS.current(name)
    record = data.draw(records(schema.raw, finite=False))
    body = _encode(schema.parsed, record)
    reader = compile_reader(schema.parsed)
    assert reader is not None
    fast, end = reader(body, 0)
    expected, expected_end = _fastavro(schema.parsed, body)
    assert _same(fast, expected)
    assert end == expected_end == len(body)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_truncation_raises(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS.current(name)
    body = _encode(schema.parsed, data.draw(records(schema.raw)))
    reader = compile_reader(schema.parsed)
    assert reader is not None
    for cut in range(len(body)):
        with pytest.raises((IndexError, ValueError, EOFError, UnicodeDecodeError, struct.error)):
            reader(body[:cut], 0)


@pytest.mark.parametrize("name", ["ClickstreamEvent", "DecisionRequest", "ProfileEvent"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_corrupted_bytes_never_read_differently(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS.current(name)
    body = bytearray(_encode(schema.parsed, data.draw(records(schema.raw))))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip" and at < len(body):
            body[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            body[at:at] = bytes([data.draw(st.integers(0, 255))])
        else:
            del body[at:]
    _agree(schema.parsed, bytes(body))


@pytest.mark.parametrize(
    "value", [0, -1, 63, -64, 64, 2**31, -(2**31), 2**62, -(2**62), 2**63 - 1, -(2**63)]
)
def test_longs_at_every_varint_length_decode_as_fastavro_does(value: int) -> None:
    codec = Codec()
    record = {"event_id": "e", "customer_id": "c", "ts": value, "session_id": "s",
              "type": "page_view", "page": None, "product_id": None, "category": None,
              "price": None, "quantity": None, "anonymous_id": None}  # fmt: skip
    data = codec.encode("ClickstreamEvent", record)
    assert codec.decode(data, "ClickstreamEvent")[1] == record
    _agree(SCHEMAS.current("ClickstreamEvent").parsed, data[10:])


def test_an_enum_index_beyond_one_byte_is_left_to_fastavro() -> None:
    symbols = [f"s{i}" for i in range(100)]
    parsed = parse_schema(
        {"type": "record", "name": "Wide",
         "fields": [{"name": "e", "type": {"type": "enum", "name": "E", "symbols": symbols}}]}
    )  # fmt: skip
    reader = compile_reader(parsed)
    assert reader is not None
    assert reader(_encode(parsed, {"e": "s3"}), 0)[0] == {"e": "s3"}
    body = _encode(parsed, {"e": "s99"})
    with pytest.raises(ValueError, match="index"):
        reader(body, 0)  # the codec reads it again with fastavro
    assert _fastavro(parsed, body)[0] == {"e": "s99"}
