"""Avro on the wire: encode records, decode messages of any known schema version.

Two framings, both read always:
- single-object encoding: ``C3 01`` + 8-byte CRC-64-AVRO fingerprint (little-endian) + body;
- Confluent wire format: ``00`` + 4-byte big-endian schema id + body (schema from the registry).

Without a schema registry rtim writes single-object encoding; with one (``registry`` given, see
``Codec.from_settings``) it writes the Confluent format, registering the schema under the
topic's subject (TopicNameStrategy: ``<physical topic>-value``).

A message written with an older version of a schema (kept in ``schemas/history``, or fetched from
the registry) is decoded into the current version by Avro schema resolution.

Records are plain dicts; timestamp-millis fields are ``int`` epoch milliseconds.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.validation import validate

from rtim.errors import DecodeError, SchemaError, ValidationError
from rtim.serde.fastdecode import FastReader, compile_reader
from rtim.serde.fastwrite import FastWriter, compile_writer
from rtim.serde.registry import RegistryError, SchemaRegistryClient
from rtim.serde.schemas import AvroSchema, SchemaSet, build_schema, get_schemas

if TYPE_CHECKING:
    from rtim.settings import Settings

__all__ = ["CONFLUENT_MAGIC", "SINGLE_OBJECT_MAGIC", "Codec", "subject_for"]

SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
CONFLUENT_MAGIC: Final = b"\x00"
_SOE_HEADER: Final = 10  # magic (2) + fingerprint (8)
_CONFLUENT_HEADER: Final = 5  # magic (1) + schema id (4)

# (schema name, writer schema, reader schema or None when the writer is the current version,
# the generated reader of the writer schema when no resolution is needed, see fastdecode)
_Plan = tuple[str, Any, Any, FastReader | None]

# generated readers and writers by schema fingerprint, shared by every codec of the process
_FAST_READERS: dict[bytes, FastReader | None] = {}
_FAST_WRITERS: dict[bytes, FastWriter | None] = {}


def subject_for(topic: str) -> str:
    """The registry subject of a topic's values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


class Codec:
    """Encodes and decodes rtim records. Not thread-safe: use one per thread (it is cheap)."""

    def __init__(
        self, schemas: SchemaSet | None = None, registry: SchemaRegistryClient | None = None
    ) -> None:
        self.schemas = schemas if schemas is not None else get_schemas()
        self.registry = registry
        self._buffer = io.BytesIO()
        # name → (single-object header, parsed current schema)
        self._writers = {
            s.name: (SINGLE_OBJECT_MAGIC + s.fingerprint, s.parsed) for s in self.schemas
        }
        # name → generated writer of the current schema (None: fastavro); filled lazily
        self._fast_writers: dict[str, FastWriter | None] = {}
        # fingerprint → decoding plan; filled lazily
        self._fp_plans: dict[bytes, _Plan] = {}
        # registry schema id → decoding plan; (subject, name) → Confluent header
        self._id_plans: dict[int, _Plan] = {}
        self._confluent_headers: dict[tuple[str, str], bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings, schemas: SchemaSet | None = None) -> Codec:
        """A codec that writes the Confluent format when ``schema_registry_url`` is set."""
        url = settings.schema_registry_url
        return cls(schemas, SchemaRegistryClient(url) if url else None)

    # --- encoding --------------------------------------------------------------------------
    def writer(self, name: str) -> tuple[bytes, Any]:
        """(single-object header, parsed current schema) of record `name`."""
        return self._writers[name]

    def encode(
        self, schema_name: str, record: Mapping[str, Any], topic: str | None = None
    ) -> bytes:
        """Encode `record` with the current schema `schema_name`.

        `topic` (the physical topic name) is required when a schema registry is configured:
        the schema is registered under the topic's subject. Raises ValidationError when the
        record does not fit the schema, SchemaError for an unknown schema or a registry failure.
        """
        header, schema = self._writer_of(schema_name)
        if self.registry is not None:
            header = self._confluent_header(schema_name, topic)
        return header + self._body(schema_name, schema, record)

    def body(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """The Avro body of `record` in the current schema `schema_name`, without framing."""
        return self._body(schema_name, self._writer_of(schema_name)[1], record)

    def _writer_of(self, schema_name: str) -> tuple[bytes, Any]:
        writer = self._writers.get(schema_name)
        if writer is None:
            self.schemas.current(schema_name)  # raises SchemaError naming the known schemas
            raise AssertionError("unreachable")
        return writer

    def _body(self, schema_name: str, schema: Any, record: Mapping[str, Any]) -> bytes:
        fast = self._fast_writers.get(schema_name) or self._fast_writer(schema_name)
        if fast is not None:
            try:
                return fast(record)
            except Exception:  # fastavro below writes it, or says why it does not fit
                pass
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        try:
            schemaless_writer(buffer, schema, record)
        except Exception as exc:  # fastavro: TypeError, ValueError, KeyError, AttributeError…
            raise ValidationError(_encode_failure(schema_name, schema, record, exc)) from None
        return buffer.getvalue()

    def _fast_writer(self, schema_name: str) -> FastWriter | None:
        if schema_name in self._fast_writers:
            return None  # known: no generated writer for it
        schema = self.schemas.current(schema_name)
        if schema.fingerprint not in _FAST_WRITERS:
            _FAST_WRITERS[schema.fingerprint] = compile_writer(schema.parsed)
        fast = self._fast_writers[schema_name] = _FAST_WRITERS[schema.fingerprint]
        return fast

    def _confluent_header(self, schema_name: str, topic: str | None) -> bytes:
        if topic is None:
            raise SchemaError(
                "encoding for a schema registry needs the topic name (its subject is <topic>-value)"
            )
        key = (topic, schema_name)
        header = self._confluent_headers.get(key)
        if header is None:
            assert self.registry is not None
            schema = self.schemas.current(schema_name)
            schema_id = self.registry.register(subject_for(topic), schema.json)
            header = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
            self._confluent_headers[key] = header
            self._id_plans.setdefault(schema_id, self._plan(schema))
        return header

    # --- decoding --------------------------------------------------------------------------

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode one message into (schema name, record in the current version of the schema).

        `expected`: the schema the message must have. Raises DecodeError with a one-line
        reason for anything that is not a complete, valid message of a known schema.
        SchemaError (not DecodeError) means the schema registry failed: retry, do not drop.
        """
        if not data:
            raise DecodeError("empty message")
        magic = data[0]
        if magic == 0xC3:
            if len(data) > 1 and data[1] != 0x01:
                raise DecodeError(f"unknown magic bytes 0x{data[:2].hex()} (not rtim Avro)")
            if len(data) < _SOE_HEADER:
                raise DecodeError(f"truncated single-object header ({len(data)} bytes)")
            fingerprint = bytes(data[2:_SOE_HEADER])
            plan = self._fp_plans.get(fingerprint) or self._plan_for_fingerprint(fingerprint)
            start = _SOE_HEADER
        elif magic == 0x00:
            if len(data) < _CONFLUENT_HEADER:
                raise DecodeError(f"truncated Confluent header ({len(data)} bytes)")
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            plan = self._id_plans.get(schema_id) or self._plan_for_id(schema_id)
            start = _CONFLUENT_HEADER
        else:
            raise DecodeError(f"unknown magic byte 0x{magic:02x} (not rtim Avro)")
        name, writer, reader, fast = plan
        if expected is not None and name != expected:
            raise DecodeError(f"expected {expected}, got {name}")
        if fast is not None:
            try:
                fast_record, end = fast(data, start)
            except Exception:  # fastavro reads it again below and says what is wrong
                pass
            else:
                if end != len(data):
                    raise _trailing(len(data) - end, name)
                return name, fast_record
        stream = io.BytesIO(data)
        stream.seek(start)
        try:
            record = schemaless_reader(stream, writer, reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"cannot read this older {name} as the current version: {_describe(exc)}"
            ) from None
        except Exception as exc:  # corrupt input can make fastavro raise nearly anything
            raise DecodeError(f"corrupt or truncated {name} body: {_describe(exc)}") from None
        rest = len(data) - stream.tell()
        if rest:
            raise _trailing(rest, name)
        if not isinstance(record, dict):  # pragma: no cover - every rtim schema is a record
            raise DecodeError(f"{name} body is not a record")
        return name, record

    def _plan_for_fingerprint(self, fingerprint: bytes) -> _Plan:
        schema = self.schemas.by_fingerprint(fingerprint)
        if schema is None:
            raise DecodeError(f"unknown schema fingerprint {fingerprint.hex()}")
        plan = self._plan(schema)
        self._fp_plans[fingerprint] = plan
        return plan

    def _plan_for_id(self, schema_id: int) -> _Plan:
        if self.registry is None:
            raise DecodeError(
                f"message in Confluent wire format (schema id {schema_id}) but no schema "
                "registry is configured (RTIM_SCHEMA_REGISTRY_URL)"
            )
        try:
            text = self.registry.get_schema(schema_id)
        except RegistryError as exc:
            if exc.status == 404:
                raise DecodeError(f"schema id {schema_id} is unknown to the registry") from None
            raise
        try:
            written = build_schema(text, f"registry id {schema_id}")
        except SchemaError as exc:
            raise DecodeError(str(exc)) from None
        known = self.schemas.by_fingerprint(written.fingerprint)
        plan = self._plan(known if known is not None else written)
        self._id_plans[schema_id] = plan
        return plan

    def _plan(self, writer: AvroSchema) -> _Plan:
        current = self.schemas.get(writer.name)
        if current is None or current.full_name != writer.full_name:
            raise DecodeError(f"message of unknown schema {writer.full_name}")
        if current.fingerprint == writer.fingerprint:
            fast = _FAST_READERS.get(current.fingerprint)
            if fast is None and current.fingerprint not in _FAST_READERS:
                fast = _FAST_READERS[current.fingerprint] = compile_reader(current.parsed)
            return (current.name, current.parsed, None, fast)
        return (current.name, writer.parsed, current.parsed, None)


def _trailing(rest: int, name: str) -> DecodeError:
    return DecodeError(f"{rest} unexpected bytes after the end of the {name} record")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    if isinstance(exc, EOFError) or not detail:
        return f"{type(exc).__name__}{': ' + detail if detail else ''}"
    return detail


def _encode_failure(name: str, schema: Any, record: Mapping[str, Any], exc: Exception) -> str:
    """Explain why fastavro could not write `record` (validation only runs on this error path)."""
    try:
        validate(record, schema, raise_errors=True)
    except Exception as detail:  # fastavro's ValidationError lists the failing fields
        lines = [line.strip() for line in str(detail).splitlines() if line.strip()]
        reason = "; ".join(lines[:3]) if lines else _describe(exc)
        return f"record does not fit schema {name}: {reason}"
    return f"record does not fit schema {name}: {_describe(exc)}"
