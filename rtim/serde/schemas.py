"""The Avro contract loaded once per process: current schemas by name, every version by fingerprint.

A schema's fingerprint is the CRC-64-AVRO (Rabin) fingerprint of its Parsing Canonical Form, as
the 8 bytes the single-object encoding puts on the wire (little-endian, like Java's
``SchemaNormalization.fingerprint("CRC-64-AVRO", …)``). ``fingerprint_hex`` is those bytes in
hex; it also names the history files, ``schemas/history/<Name>.<fingerprint_hex>.avsc``: older
versions of a schema, kept so readers can decode messages written with them.

The parsed (fastavro) form has every ``logicalType`` removed, so ``timestamp-millis`` fields are
plain ``int`` epoch milliseconds both ways. The canonical form ignores logical types, so this
does not change any fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from rtim.errors import SchemaError
from rtim.paths import contract_dir

__all__ = [
    "HISTORY_DIR",
    "AvroSchema",
    "SchemaSet",
    "build_schema",
    "fingerprint_of",
    "get_schemas",
    "load_schemas",
    "strip_logical_types",
]

HISTORY_DIR = "history"


@dataclass(frozen=True, slots=True, eq=False)
class AvroSchema:
    """One version of one record schema."""

    name: str
    """Short record name, e.g. ``ClickstreamEvent``."""
    full_name: str
    """Name with namespace, e.g. ``rtim.ClickstreamEvent``."""
    raw: dict[str, Any]
    """The schema JSON as written (with logical types); do not modify."""
    parsed: Any = field(repr=False)
    """fastavro-parsed schema without logical types (for the codec)."""
    canonical: str = field(repr=False)
    """Parsing Canonical Form."""
    fingerprint: bytes
    """8-byte CRC-64-AVRO fingerprint in wire (little-endian) order."""
    source: str = ""
    """Where it came from (a file path, or ``registry id N``)."""

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint bytes in hex, as printed in errors and used in history file names."""
        return self.fingerprint.hex()

    @property
    def json(self) -> str:
        """The schema as a compact JSON string (what a schema registry stores)."""
        return json.dumps(self.raw, separators=(",", ":"))


def strip_logical_types(schema: Any) -> Any:
    """A copy of a schema JSON with every ``logicalType`` removed (defaults left untouched)."""
    if isinstance(schema, list):
        return [strip_logical_types(item) for item in schema]
    if isinstance(schema, dict):
        return {
            key: (value if key == "default" else strip_logical_types(value))
            for key, value in schema.items()
            if key != "logicalType"
        }
    return schema


def fingerprint_of(schema: Any) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint (little-endian) of a schema JSON's canonical form."""
    return bytes.fromhex(_fastavro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def build_schema(raw: Any, source: str = "") -> AvroSchema:
    """Parse a record schema (JSON object or JSON text); raise SchemaError if it is invalid."""
    where = f" ({source})" if source else ""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema is not valid JSON{where}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("type") != "record" or "name" not in raw:
        raise SchemaError(f"schema is not a named Avro record{where}")
    try:
        # A fresh named-types dict per schema: several schemas define the same named types
        # (DecisionRecord embeds Decision), which must not clash.
        parsed: Any = fastavro.parse_schema(strip_logical_types(raw), named_schemas={})
        canonical = to_parsing_canonical_form(raw)
    except Exception as exc:  # fastavro raises SchemaParseException, ValueError, KeyError…
        raise SchemaError(f"invalid Avro schema{where}: {exc}") from None
    full_name = str(parsed["name"])
    fingerprint = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
    return AvroSchema(
        name=full_name.rsplit(".", 1)[-1],
        full_name=full_name,
        raw=raw,
        parsed=parsed,
        canonical=canonical,
        fingerprint=fingerprint,
        source=source,
    )


class SchemaSet:
    """The current schemas by name and every known version (current and history) by fingerprint."""

    def __init__(self, current: Iterable[AvroSchema], history: Iterable[AvroSchema] = ()) -> None:
        self._current: dict[str, AvroSchema] = {}
        self._by_fingerprint: dict[bytes, AvroSchema] = {}
        for schema in current:
            other = self._current.get(schema.name)
            if other is not None:
                raise SchemaError(
                    f"two schemas named {schema.name}: {other.source} and {schema.source}"
                )
            self._current[schema.name] = schema
            self._by_fingerprint[schema.fingerprint] = schema
        for schema in history:
            if schema.name not in self._current:
                raise SchemaError(
                    f"history schema {schema.source} is an old version of {schema.name}, "
                    "which has no current schema"
                )
            self._by_fingerprint.setdefault(schema.fingerprint, schema)

    def current(self, name: str) -> AvroSchema:
        """The current schema called `name`; SchemaError if there is none."""
        try:
            return self._current[name]
        except KeyError:
            known = ", ".join(sorted(self._current))
            raise SchemaError(f"unknown schema {name!r} (known: {known})") from None

    def get(self, name: str) -> AvroSchema | None:
        """The current schema called `name`, or None."""
        return self._current.get(name)

    def by_fingerprint(self, fingerprint: bytes) -> AvroSchema | None:
        """The schema version (current or history) with this 8-byte fingerprint, or None."""
        return self._by_fingerprint.get(fingerprint)

    def names(self) -> list[str]:
        """Names of the current schemas, sorted."""
        return sorted(self._current)

    def versions(self) -> list[AvroSchema]:
        """Every known version, current ones first."""
        current = list(self._current.values())
        ids = {id(s) for s in current}
        return current + [s for s in self._by_fingerprint.values() if id(s) not in ids]

    def __iter__(self) -> Iterator[AvroSchema]:
        return iter(self._current[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._current)


def _load_dir(directory: Path) -> list[AvroSchema]:
    schemas = []
    for path in sorted(directory.glob("*.avsc")):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"cannot read {path}: {exc.strerror}") from None
        schemas.append(build_schema(text, str(path)))
    return schemas


def load_schemas(schema_dir: Path | None = None) -> SchemaSet:
    """Read ``*.avsc`` from `schema_dir` (default: the shipped contract) and its ``history/``."""
    directory = schema_dir if schema_dir is not None else contract_dir("schemas")
    if not directory.is_dir():
        raise SchemaError(f"schema directory {directory} does not exist")
    current = _load_dir(directory)
    if not current:
        raise SchemaError(f"no *.avsc schema in {directory}")
    history_dir = directory / HISTORY_DIR
    history = _load_dir(history_dir) if history_dir.is_dir() else []
    return SchemaSet(current, history)


@lru_cache(maxsize=1)
def get_schemas() -> SchemaSet:
    """The shipped contract, parsed once per process."""
    return load_schemas()
