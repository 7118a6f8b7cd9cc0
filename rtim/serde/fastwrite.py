"""Specialised Avro writers: one generated Python function per record schema.

fastavro's writer interprets the schema for every value and resolves each union by validating
the value against its branches in turn (a Decision costs it ~114 000 instructions). The function
generated here writes the fields in order with the branch of each union chosen by the value's
exact type (docs/performance.md).

It only writes what it is sure fastavro would write the same way: values of the exact Python
type of their Avro type (``str`` for a string or an enum symbol, ``int`` within range for an
int or a long, ``float`` for a double, ``bool``, ``bytes``, ``dict`` for records and maps,
``list`` for arrays), every record field present, unions whose branch for such a value cannot
be an earlier branch by fastavro's looser rules (a double takes an int, for one). Anything else
raises ``TypeError``/``ValueError``/``KeyError``, upon which the caller encodes the record with
fastavro. A property test checks the bytes against fastavro's on random records of every
shipped schema.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

from rtim.serde.codegen import RecordCodeGen, UnsupportedSchemaError

__all__ = ["FastWriter", "compile_writer", "zigzag"]

FastWriter = Callable[[Mapping[str, Any]], bytes]

_LONG: Final = (-(2**63), 2**63 - 1)
_INT: Final = (-(2**31), 2**31 - 1)

# the exact Python type each Avro type is written from here
_CANONICAL: Final[dict[str, type]] = {
    "null": type(None), "boolean": bool, "int": int, "long": int, "double": float,
    "string": str, "bytes": bytes, "enum": str, "fixed": bytes, "record": dict, "map": dict,
    "array": list,
}  # fmt: skip
# the Python types fastavro's validator of each Avro type may accept, a superset (a union takes
# the first branch whose validator accepts the value)
_MAY_ACCEPT: Final[dict[str, frozenset[type]]] = {
    "null": frozenset({type(None)}),
    "boolean": frozenset({bool}),
    "int": frozenset({int, bool}),
    "long": frozenset({int, bool}),
    "float": frozenset({float, int, bool}),
    "double": frozenset({float, int, bool}),
    "string": frozenset({str}),
    "bytes": frozenset({bytes}),
    "enum": frozenset({str}),
    "fixed": frozenset({bytes}),
    "record": frozenset({dict}),
    "map": frozenset({dict}),
    "array": frozenset({list, tuple}),
}


# the one-byte longs, -64 to 63: most lengths, counts and small offsets
_ONE_BYTE: Final = tuple(bytes(((n << 1) ^ (n >> 63),)) for n in range(-64, 64))


def zigzag(n: int) -> bytes:
    """An Avro long (zigzag, base-128 varint); ValueError beyond a long."""
    if -64 <= n < 64:
        return _ONE_BYTE[n + 64]  # TypeError for a float, as the shifts below would raise
    if not _LONG[0] <= n <= _LONG[1]:
        raise ValueError("beyond a long")
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


class _Gen(RecordCodeGen):
    prefix = "write"

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str):
            if schema in _CANONICAL or schema == "float":
                return schema
            if schema not in self.named:
                raise UnsupportedSchemaError(f"unknown named type {schema}")
            return self.named[schema]
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            kind = schema["type"]
            if kind in ("null", "boolean", "int", "long", "double", "string", "bytes", "float"):
                return kind
        return schema

    @staticmethod
    def kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        return schema if isinstance(schema, str) else str(schema["type"])

    @staticmethod
    def is_type(value: str, python: type, kind_of: str | None = None) -> str:
        """Code testing that ``value`` (its type in ``kind_of``, if given) is exactly ``python``."""
        if python is type(None):
            return f"{value} is None"
        return f"{kind_of or f'type({value})'} is {python.__name__}"

    def check_type(self, indent: int, value: str, python: type) -> None:
        self.emit(indent, f"if not {self.is_type(value, python)}: raise TypeError")

    def long(self, indent: int, value: str) -> None:
        """Append the zigzag varint of int ``value`` (one byte inline)."""
        self.emit(indent, f"if 0 <= {value} < 64: out.append({value} << 1)")
        self.emit(indent, f"else: out += zigzag({value})")

    def value(self, indent: int, schema: Any, value: str, checked: bool = False) -> None:
        """Lines that append ``value`` written as ``schema`` to ``out``; ``checked``: its
        exact type is known already (a union dispatched on it)."""
        schema = self.resolve(schema)
        kind = self.kind(schema)
        if kind == "union":
            self.union(indent, schema, value)
            return
        if kind not in _CANONICAL:
            raise UnsupportedSchemaError(f"type {kind!r}")  # float: fastavro's rounding is its own
        if not checked:
            self.check_type(indent, value, _CANONICAL[kind])
        if kind == "null":
            return
        if kind == "boolean":
            self.emit(indent, f"out.append(1 if {value} else 0)")
        elif kind in ("int", "long"):
            low, high = _INT if kind == "int" else _LONG
            self.emit(indent, f"if not {low} <= {value} <= {high}: raise ValueError")
            self.long(indent, value)
        elif kind == "double":
            self.emit(indent, f"out += pack_double({value})")
        elif kind in ("string", "bytes"):
            data = self.var()
            encoded = f"{value}.encode()" if kind == "string" else value
            self.emit(indent, f"{data} = {encoded}")
            size = self.var()
            self.emit(indent, f"{size} = len({data})")
            self.long(indent, size)
            self.emit(indent, f"out += {data}")
        elif kind == "enum":
            index = self.const({s: i for i, s in enumerate(schema["symbols"])})
            position = self.var()
            self.emit(indent, f"{position} = {index}[{value}]")
            self.long(indent, position)
        elif kind == "fixed":
            self.emit(indent, f"if len({value}) != {int(schema['size'])}: raise ValueError")
            self.emit(indent, f"out += {value}")
        elif kind == "record":
            self.emit(indent, f"{self.record_function(schema)}({value}, out)")
        else:  # map, array: one block of every item, then the empty block
            size = self.var()
            self.emit(indent, f"{size} = len({value})")
            self.emit(indent, f"if {size}:")
            self.long(indent + 1, size)
            item = self.var()
            if kind == "map":
                key = self.var()
                self.emit(indent + 1, f"for {key}, {item} in {value}.items():")
                self.value(indent + 2, "string", key)
                self.value(indent + 2, schema["values"], item)
            else:
                self.emit(indent + 1, f"for {item} in {value}:")
                self.value(indent + 2, schema["items"], item)
            self.emit(indent, "out.append(0)")

    def union(self, indent: int, branches: list[Any], value: str) -> None:
        resolved = [self.resolve(b) for b in branches]
        kinds = [self.kind(b) for b in resolved]
        if "union" in kinds or sum(k in ("record", "map", "array") for k in kinds) > 1:
            raise UnsupportedSchemaError("a union of complex types")
        if len(branches) > 63:
            raise UnsupportedSchemaError("a branch index of more than one byte")
        dispatch: list[tuple[type, int]] = []
        for python in {_CANONICAL[k] for k in kinds if k in _CANONICAL}:
            first = next(i for i, k in enumerate(kinds) if python in _MAY_ACCEPT.get(k, ()))
            if _CANONICAL.get(kinds[first]) is python:
                dispatch.append((python, first))  # else: that type is left to fastavro
        kind_of = self.var()
        self.emit(indent, f"{kind_of} = type({value})")
        for n, (python, index) in enumerate(sorted(dispatch, key=lambda d: d[1])):
            test = self.is_type(value, python, kind_of)
            self.emit(indent, f"{'if' if n == 0 else 'elif'} {test}:")
            self.emit(indent + 1, f"out.append({index << 1})")  # branch indexes < 64
            self.value(indent + 1, resolved[index], value, checked=True)
        self.emit(indent, "else: raise TypeError")

    def record_body(self, function: str, schema: Mapping[str, Any]) -> None:
        self.emit(0, f"def {function}(r, out):")
        self.emit(1, "if type(r) is not dict: raise TypeError")
        for field in schema["fields"]:
            value = self.var()
            self.emit(1, f"{value} = r[{field['name']!r}]")
            self.value(1, field["type"], value)
        self.emit(1, "return out")


def compile_writer(parsed: Mapping[str, Any]) -> FastWriter | None:
    """The generated writer of a fastavro-parsed record schema (the Avro body as bytes), or
    None if the schema has a construct it does not handle."""
    helpers = {"zigzag": zigzag, "pack_double": struct.Struct("<d").pack}
    write = _Gen(parsed.get("__named_schemas", {})).build(parsed, helpers)
    if write is None:
        return None

    def writer(record: Mapping[str, Any]) -> bytes:
        return bytes(write(record, bytearray()))

    return writer
