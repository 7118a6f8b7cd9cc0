"""The generated writers write fastavro's bytes, and refuse what they are not sure of."""

from __future__ import annotations

import io
from typing import Any

import pytest
from avro_strategies import records
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.errors import ValidationError
from rtim.serde.codec import Codec
from rtim.serde.fastwrite import compile_writer, zigzag
from rtim.serde.schemas import get_schemas

SCHEMAS = get_schemas()
NAMES = sorted(s.name for s in SCHEMAS)


def _fastavro(parsed: Any, record: Any) -> bytes:
    stream = io.BytesIO()
    schemaless_writer(stream, parsed, record)
    return stream.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_schema_gets_a_generated_writer(name: str) -> None:
    assert compile_writer(SCHEMAS.current(name).parsed) is not None


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_bytes_of_fastavro(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS.current(name)
    record = data.draw(records(schema.raw, finite=False))
    writer = compile_writer(schema.parsed)
    assert writer is not None
    assert writer(record) == _fastavro(schema.parsed, record)


def _loosen(value: Any, draw: Any) -> Any:
    """``value`` or one of the looser forms fastavro accepts (or refuses) for it."""
    if isinstance(value, dict):
        out = {k: _loosen(v, draw) for k, v in value.items()}
        if out and draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
            out.pop(draw(st.sampled_from(sorted(out))))  # a missing field: its default, if any
        return out
    if isinstance(value, list):
        items = [_loosen(v, draw) for v in value]
        return tuple(items) if draw(st.integers(0, 4)) == 0 else items
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value) if draw(st.integers(0, 2)) == 0 else value
    if type(value) is int and draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from([float(value), bool(value & 1), str(value)]))
    if value is None and draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from([0, False, "", 0.0]))
    return value


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_loose_values_give_the_codecs_answer(name: str, data: st.DataObject) -> None:
    """Through the codec (the generated writer, else fastavro) the same bytes or the same
    refusal as fastavro alone."""
    schema = SCHEMAS.current(name)
    record = _loosen(data.draw(records(schema.raw)), data.draw)
    try:
        expected: bytes | None = _fastavro(schema.parsed, record)
    except Exception:
        expected = None
    codec = Codec()
    header = codec.writer(name)[0]
    if expected is None:
        with pytest.raises(ValidationError):
            codec.encode(name, record)
    else:
        assert codec.encode(name, record) == header + expected


def test_a_union_whose_int_fastavro_would_write_as_a_double_is_left_to_it() -> None:
    parsed = parse_schema(
        {"type": "record", "name": "U",
         "fields": [{"name": "u", "type": ["null", "double", "long"]}]}
    )  # fmt: skip
    writer = compile_writer(parsed)
    assert writer is not None
    assert writer({"u": 1.5}) == _fastavro(parsed, {"u": 1.5})
    with pytest.raises(TypeError):
        writer({"u": 3})  # fastavro writes 3 as the double branch
    assert _fastavro(parsed, {"u": 3}) == _fastavro(parsed, {"u": 3.0})


def _fastavro_long(n: int) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, "long", n)
    return buffer.getvalue()


@given(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-200, 200)))
def test_zigzag_writes_fastavros_long(n: int) -> None:
    assert zigzag(n) == _fastavro_long(n)


@pytest.mark.parametrize("n", [-65, -64, -1, 0, 63, 64, -(2**63), 2**63 - 1])
def test_zigzag_at_the_edges_of_one_byte_and_of_a_long(n: int) -> None:
    assert zigzag(n) == _fastavro_long(n)


@pytest.mark.parametrize("n", [-(2**63) - 1, 2**63])
def test_zigzag_refuses_beyond_a_long(n: int) -> None:
    with pytest.raises(ValueError, match="beyond a long"):
        zigzag(n)


@pytest.mark.parametrize("n", [1.0, -3.0, 1e10])
def test_zigzag_refuses_a_float_in_or_beyond_one_byte(n: float) -> None:
    with pytest.raises(TypeError):
        zigzag(n)  # type: ignore[arg-type]
