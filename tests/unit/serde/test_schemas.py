"""The Avro contract as loaded by rtim.serde.schemas: names, fingerprints, history, caching."""

from __future__ import annotations

import json
from pathlib import Path

import avro.schema
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint

from rtim.errors import SchemaError
from rtim.paths import contract_dir
from rtim.serde.schemas import (
    build_schema,
    fingerprint_of,
    get_schemas,
    load_schemas,
    strip_logical_types,
)

SCHEMA_DIR = contract_dir("schemas")
CONTRACT = ("ClickstreamEvent", "TransactionEvent", "ComplaintEvent", "ProfileEvent",
            "DecisionRequest", "Decision", "Outcome", "DecisionRecord", "DeadLetter")  # fmt: skip


def test_every_contract_schema_is_loaded_by_name() -> None:
    schemas = get_schemas()
    for name in CONTRACT:
        schema = schemas.current(name)
        assert schema.name == name
        assert schema.full_name == f"rtim.{name}"
        assert schemas.by_fingerprint(schema.fingerprint) is schema
    assert set(schemas.names()) == {p.stem for p in SCHEMA_DIR.glob("*.avsc")}


def test_schemas_are_parsed_once_per_process() -> None:
    assert get_schemas() is get_schemas()


def test_unknown_schema_names_the_known_ones() -> None:
    with pytest.raises(SchemaError, match=r"unknown schema 'Nope' \(known: ClickstreamEvent"):
        get_schemas().current("Nope")


# Vectors from Apache Avro's share/test/data/schema-tests.txt (fingerprints as Java longs);
# the single-object encoding stores them little-endian (spec: "8-byte little-endian CRC-64-AVRO
# fingerprint"; Java's SchemaNormalization.fingerprint("CRC-64-AVRO", …) does the same).
@pytest.mark.parametrize(
    ("schema", "java_long"),
    [
        ('"null"', 7195948357588979594),
        ('"boolean"', -6970731678124411036),
        ('{"type":"fixed","name":"foo","size":15}', 1756455273707447556),
        (
            '{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}',
            7843277075252814651,
        ),
    ],
)
def test_fingerprint_matches_avro_test_vectors_little_endian(schema: str, java_long: int) -> None:
    expected = java_long.to_bytes(8, "little", signed=True)
    assert fingerprint_of(json.loads(schema)) == expected


def test_null_fingerprint_bytes_on_the_wire() -> None:
    # 7195948357588979594 == 0x63DD24E7CC258F8A: least significant byte first
    assert fingerprint_of("null").hex() == "8a8f25cce724dd63"


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.stem)
def test_fingerprints_agree_with_the_avro_package(path: Path) -> None:
    """fastavro's canonical form vs the reference `avro` package's (on the logical-type-free
    schema: avro's Python canonical form wrongly keeps {"type":"long"} for logical types)."""
    raw = json.loads(path.read_text())
    ours = get_schemas().current(path.stem)
    reference = avro.schema.parse(json.dumps(strip_logical_types(raw)))
    assert ours.fingerprint == reference.fingerprint("CRC-64-AVRO")
    assert ours.canonical == reference.canonical_form
    assert ours.fingerprint_hex == fastavro_fingerprint(ours.canonical, "CRC-64-AVRO")


def test_logical_types_are_removed_from_the_parsed_schema_only() -> None:
    schema = get_schemas().current("ClickstreamEvent")
    assert "logicalType" not in json.dumps(schema.parsed)
    assert "timestamp-millis" in json.dumps(schema.raw)
    # the canonical form ignores logical types, so the fingerprint is the same either way
    assert fingerprint_of(strip_logical_types(schema.raw)) == schema.fingerprint


def test_strip_logical_types_leaves_defaults_alone() -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "m", "type": {"type": "map", "values": "string"},
         "default": {"logicalType": "kept"}},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ]}  # fmt: skip
    stripped = strip_logical_types(schema)
    assert stripped["fields"][0]["default"] == {"logicalType": "kept"}
    assert stripped["fields"][1]["type"] == {"type": "long"}
    assert schema["fields"][1]["type"]["logicalType"] == "timestamp-millis"  # not mutated


def _record(name: str, *fields: dict[str, object]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "rtim", "fields": list(fields)})


def test_history_versions_are_found_by_fingerprint(tmp_path: Path) -> None:
    v1 = _record("Thing", {"name": "id", "type": "string"})
    v2 = _record("Thing", {"name": "id", "type": "string"},
                 {"name": "note", "type": ["null", "string"], "default": None})  # fmt: skip
    (tmp_path / "Thing.avsc").write_text(v2)
    old = build_schema(v1)
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / f"Thing.{old.fingerprint_hex}.avsc").write_text(v1)
    schemas = load_schemas(tmp_path)
    assert schemas.names() == ["Thing"]
    found = schemas.by_fingerprint(old.fingerprint)
    assert found is not None
    assert found.name == "Thing"
    assert found is not schemas.current("Thing")
    assert len(schemas.versions()) == 2


def test_history_of_an_unknown_schema_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Thing.avsc").write_text(_record("Thing", {"name": "id", "type": "string"}))
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "Gone.0000000000000000.avsc").write_text(
        _record("Gone", {"name": "id", "type": "string"})
    )
    with pytest.raises(SchemaError, match="old version of Gone, which has no current schema"):
        load_schemas(tmp_path)


def test_two_files_with_one_record_name_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "A.avsc").write_text(_record("Thing", {"name": "id", "type": "string"}))
    (tmp_path / "B.avsc").write_text(_record("Thing", {"name": "x", "type": "int"}))
    with pytest.raises(SchemaError, match="two schemas named Thing"):
        load_schemas(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "schema is not valid JSON"),
        ('"string"', "schema is not a named Avro record"),
        (_record("Bad", {"name": "x", "type": "nosuchtype"}), "invalid Avro schema"),
    ],
)
def test_invalid_schema_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "Bad.avsc").write_text(text)
    with pytest.raises(SchemaError, match=message) as info:
        load_schemas(tmp_path)
    assert "Bad.avsc" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_or_empty_schema_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        load_schemas(tmp_path / "nope")
    with pytest.raises(SchemaError, match=r"no \*\.avsc schema"):
        load_schemas(tmp_path)
