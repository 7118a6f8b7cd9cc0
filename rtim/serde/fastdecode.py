"""Specialised Avro readers: one generated Python function per record schema.

fastavro's reader interprets the schema for every value: an 11-field click costs it ~64 000
instructions, of which a ``["null", "string"]`` field alone ~8 000 (union resolution, type
dispatch on the schema dict). The function generated here for a schema reads the fields in
order with the branch of each union decided by one comparison, and the common one-byte varints
inline: the same click in ~29 000, less than half (docs/performance.md).

It only ever *agrees* with fastavro: it reads a message written with the current version of a
schema (no schema resolution), and anything it finds unusual — a varint beyond 64 bits, a
boolean byte other than 0 or 1, a negative length, a union branch or enum symbol out of range
(or beyond one byte), truncated data, invalid UTF-8 — raises, upon which `Codec.decode` reads
the message again with fastavro, whose answer (a record or the error) is the one given.
Property tests check that both agree on valid records, on every truncation and on corrupted
bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

from rtim.serde.codegen import RecordCodeGen, UnsupportedSchemaError

__all__ = ["FastReader", "compile_reader"]

# (data, position of the body) -> (record, position after it)
FastReader = Callable[[bytes, int], tuple[dict[str, Any], int]]

_PRIMITIVES: Final = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned base-128 varint of 2 to 10 bytes at ``pos`` (at most 64 bits, the zigzag
    form of a long) and the position after it; unrolled, as most are timestamps of 6 bytes."""
    n = data[pos] & 0x7F
    b = data[pos + 1]
    n |= (b & 0x7F) << 7
    if b < 0x80:
        return n, pos + 2
    b = data[pos + 2]
    n |= (b & 0x7F) << 14
    if b < 0x80:
        return n, pos + 3
    b = data[pos + 3]
    n |= (b & 0x7F) << 21
    if b < 0x80:
        return n, pos + 4
    b = data[pos + 4]
    n |= (b & 0x7F) << 28
    if b < 0x80:
        return n, pos + 5
    b = data[pos + 5]
    n |= (b & 0x7F) << 35
    if b < 0x80:
        return n, pos + 6
    b = data[pos + 6]
    n |= (b & 0x7F) << 42
    if b < 0x80:
        return n, pos + 7
    b = data[pos + 7]
    n |= (b & 0x7F) << 49
    if b < 0x80:
        return n, pos + 8
    b = data[pos + 8]
    n |= (b & 0x7F) << 56
    if b < 0x80:
        return n, pos + 9
    b = data[pos + 9]
    if b < 2:
        return n | (b << 63), pos + 10
    raise ValueError("varint beyond 64 bits")  # fastavro says what it makes of it


class _Gen(RecordCodeGen):
    """Emits the body of one reader function, line by line."""

    prefix = "read"

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise UnsupportedSchemaError(f"unknown named type {schema}")
            return self.named[schema]
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
            return schema["type"]
        return schema

    def unsigned(self, indent: int, target: str) -> None:
        """``target`` = the raw varint at pos (one byte inline)."""
        self.emit(indent, f"{target} = data[pos]")
        self.emit(indent, f"if {target} < 128: pos += 1")
        self.emit(indent, f"else: {target}, pos = varint(data, pos)")

    def long(self, indent: int, target: str) -> None:
        self.unsigned(indent, target)
        self.emit(indent, f"{target} = ({target} >> 1) ^ -({target} & 1)")

    def small(self, indent: int, target: str) -> None:
        """A non-negative long below 64 (an enum or union index): one byte, even."""
        self.emit(indent, f"{target} = data[pos]")
        self.emit(indent, "pos += 1")
        self.emit(indent, f"if {target} & 129: raise ValueError('index')")
        self.emit(indent, f"{target} >>= 1")

    def length(self, indent: int, target: str) -> None:
        """A non-negative length (strings, bytes)."""
        self.unsigned(indent, target)
        self.emit(indent, f"if {target} & 1: raise ValueError('negative length')")
        self.emit(indent, f"{target} = pos + ({target} >> 1)")

    def value(self, indent: int, schema: Any, target: str) -> None:
        """Lines that read one value of ``schema`` into ``target``."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            self.union(indent, schema, target)
            return
        if schema == "null":
            self.emit(indent, f"{target} = None")
        elif schema == "boolean":
            self.emit(indent, f"{target} = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if {target} > 1: raise ValueError('boolean byte')")
            self.emit(indent, f"{target} = {target} == 1")
        elif schema in ("int", "long"):
            self.long(indent, target)
        elif schema == "float":
            self.emit(indent, f"{target} = unpack_float(data, pos)[0]")
            self.emit(indent, "pos += 4")
        elif schema == "double":
            self.emit(indent, f"{target} = unpack_double(data, pos)[0]")
            self.emit(indent, "pos += 8")
        elif schema == "string":
            end = self.var()
            self.length(indent, end)
            self.emit(indent, f"{target} = data[pos:{end}].decode()")
            self.emit(indent, f"pos = {end}")
        elif schema == "bytes":
            end = self.var()
            self.length(indent, end)
            self.emit(indent, f"{target} = bytes(data[pos:{end}])")
            self.emit(indent, f"pos = {end}")
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind == "enum":
                symbols = self.const(tuple(schema["symbols"]))
                self.small(indent, target)
                self.emit(indent, f"{target} = {symbols}[{target}]")
            elif kind == "fixed":
                size = int(schema["size"])
                self.emit(indent, f"if pos + {size} > size: raise EOFError")
                self.emit(indent, f"{target} = bytes(data[pos:pos + {size}])")
                self.emit(indent, f"pos += {size}")
            elif kind == "record":
                function = self.record_function(schema)
                self.emit(indent, f"{target}, pos = {function}(data, pos)")
            elif kind in ("map", "array"):
                self.block(indent, schema, target)
            else:
                raise UnsupportedSchemaError(f"type {kind!r}")
        else:
            raise UnsupportedSchemaError(f"type {schema!r}")

    def union(self, indent: int, branches: list[Any], target: str) -> None:
        index = self.var()
        self.small(indent, index)
        for i, branch in enumerate(branches):
            self.emit(indent, f"{'if' if i == 0 else 'elif'} {index} == {i}:")
            self.value(indent + 1, branch, target)
        self.emit(indent, "else: raise ValueError('union index')")

    def block(self, indent: int, schema: Any, target: str) -> None:
        """A map or an array: blocks of items until a block of 0 (a negative count: its size
        in bytes follows)."""
        is_map = schema["type"] == "map"
        count, item = self.var(), self.var()
        self.emit(indent, f"{target} = {{}}" if is_map else f"{target} = []")
        self.emit(indent, "while True:")
        self.long(indent + 1, count)
        self.emit(indent + 1, f"if {count} == 0: break")
        self.emit(indent + 1, f"if {count} < 0:")
        skip = self.var()
        self.long(indent + 2, skip)
        self.emit(indent + 2, f"{count} = -{count}")
        self.emit(indent + 1, f"for _ in range({count}):")
        if is_map:
            key = self.var()
            self.value(indent + 2, "string", key)
            self.value(indent + 2, schema["values"], item)
            self.emit(indent + 2, f"{target}[{key}] = {item}")
        else:
            self.value(indent + 2, schema["items"], item)
            self.emit(indent + 2, f"{target}.append({item})")

    def record_body(self, function: str, schema: Mapping[str, Any]) -> None:
        self.emit(0, f"def {function}(data, pos):")
        self.emit(1, "size = len(data)")
        names: list[tuple[str, str]] = []
        for field in schema["fields"]:
            target = self.var()
            self.value(1, field["type"], target)
            names.append((field["name"], target))
        # a string or bytes read past the end leaves pos there (slices do not raise)
        self.emit(1, "if pos > size: raise EOFError")
        items = ", ".join(f"{name!r}: {target}" for name, target in names)
        self.emit(1, f"return {{{items}}}, pos")


def compile_reader(parsed: Mapping[str, Any]) -> FastReader | None:
    """The generated reader of a fastavro-parsed record schema, or None if it is not supported."""
    helpers = {
        "varint": _varint,
        "unpack_float": struct.Struct("<f").unpack_from,
        "unpack_double": struct.Struct("<d").unpack_from,
    }
    reader: FastReader | None = _Gen(parsed.get("__named_schemas", {})).build(parsed, helpers)
    return reader
