"""Records ⇄ plain JSON objects (one JSON object per line in `rtim produce` and `rtim tail`).

Plain JSON, not Avro's JSON encoding: ``"price": 9.5``, not ``{"double": 9.5}``. Going in:
- timestamp fields take epoch milliseconds (int) or an ISO-8601 string (naive means UTC) and
  always become int epoch milliseconds;
- optional fields may be left out (their defaults are filled in); unknown fields are an error;
- ``bytes`` are base64 text; enum symbols are checked;
- every error names the field path, e.g. ``field 'actions[0].score': expected a number``.

Going out (`record_to_json`): bytes become base64 text; everything else is already JSON-safe.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rtim.errors import ValidationError
from rtim.serde.schemas import AvroSchema, SchemaSet, get_schemas

__all__ = ["parse_json_line", "parse_timestamp", "record_from_json", "record_to_json"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS: Final = {
    "timestamp-millis": timedelta(milliseconds=1),
    "local-timestamp-millis": timedelta(milliseconds=1),
    "timestamp-micros": timedelta(microseconds=1),
    "local-timestamp-micros": timedelta(microseconds=1),
}
_INT_RANGE: Final = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_NAMED: Final = ("record", "enum", "fixed")


class _FieldError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"field '{path}': {message}" if path else message)


def record_from_json(
    schema_name: str, obj: Any, schemas: SchemaSet | None = None
) -> dict[str, Any]:
    """Turn a plain JSON object into a record of the current schema `schema_name`.

    Raises ValidationError naming the field for anything that does not fit the schema.
    """
    schema = (schemas if schemas is not None else get_schemas()).current(schema_name)
    names = _names_of(schema)
    if not isinstance(obj, dict):
        raise ValidationError(f"expected a JSON object, got {_show(obj)}")
    try:
        result = _convert(schema.raw, obj, "", names, "")
    except _FieldError as exc:
        raise ValidationError(str(exc)) from None
    assert isinstance(result, dict)
    return result


def parse_json_line(
    schema_name: str, line: str, schemas: SchemaSet | None = None
) -> dict[str, Any]:
    """Parse one line of JSON into a record of `schema_name` (see `record_from_json`)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not valid JSON at column {exc.colno}: {exc.msg}") from None
    return record_from_json(schema_name, obj, schemas)


def record_to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of a decoded record: bytes as base64 text, timestamps stay epoch ints."""
    return {key: _to_json(value) for key, value in record.items()}


def parse_timestamp(value: Any, unit: timedelta = timedelta(milliseconds=1)) -> int:
    """Epoch milliseconds (or `unit`s) from an int or an ISO-8601 string; naive means UTC.

    Raises ValueError for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("not a timestamp")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // unit
    raise ValueError("not a timestamp")


# --- conversion ------------------------------------------------------------------------------


def _convert(schema: Any, value: Any, path: str, names: dict[str, Any], namespace: str) -> Any:
    if isinstance(schema, list):
        return _union(schema, value, path, names, namespace)
    if isinstance(schema, str):
        if schema in _ALL_PRIMITIVES:
            return _primitive(schema, None, value, path)
        schema, namespace = _resolve(schema, names, namespace)
    kind = schema["type"]
    if not isinstance(kind, str):  # {"type": {...}} or {"type": [...]}
        return _convert(kind, value, path, names, namespace)
    if kind in _ALL_PRIMITIVES:
        return _primitive(kind, schema.get("logicalType"), value, path)
    if kind == "record":
        return _record(schema, value, path, names, namespace)
    if kind == "enum":
        if not isinstance(value, str):
            raise _FieldError(path, f"expected one of {_symbols(schema)}, got {_show(value)}")
        if value not in schema["symbols"]:
            raise _FieldError(path, f"{_show(value)} is not one of {_symbols(schema)}")
        return value
    if kind == "fixed":
        data = _bytes(value, path)
        if len(data) != schema["size"]:
            raise _FieldError(path, f"expected {schema['size']} bytes, got {len(data)}")
        return data
    if kind == "array":
        if not isinstance(value, list):
            raise _FieldError(path, f"expected a list, got {_show(value)}")
        items = schema["items"]
        return [_convert(items, v, f"{path}[{i}]", names, namespace) for i, v in enumerate(value)]
    if kind != "map":  # {"type": "SomeNamedType"}
        return _convert(kind, value, path, names, namespace)
    if not isinstance(value, dict):
        raise _FieldError(path, f"expected an object, got {_show(value)}")
    values = schema["values"]
    return {
        k: _convert(values, v, f"{path}[{json.dumps(k)}]", names, namespace)
        for k, v in value.items()
    }


def _record(
    schema: dict[str, Any], value: Any, path: str, names: dict[str, Any], namespace: str
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(path, f"expected an object, got {_show(value)}")
    namespace = _namespace_of(schema, namespace)
    prefix = f"{path}." if path else ""
    fields = schema["fields"]
    known = {f["name"] for f in fields}
    for key in value:
        if key not in known:
            raise _FieldError("", f"unknown field '{prefix}{key}'")
    out: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        if name in value:
            out[name] = _convert(field["type"], value[name], prefix + name, names, namespace)
        elif "default" in field:
            out[name] = _default(field["type"], field["default"], names, namespace)
        else:
            raise _FieldError("", f"missing required field '{prefix}{name}'")
    return out


def _union(
    branches: list[Any], value: Any, path: str, names: dict[str, Any], namespace: str
) -> Any:
    resolved = [
        (branch, *_resolve(branch, names, namespace))
        if isinstance(branch, str) and branch not in _ALL_PRIMITIVES
        else (branch, branch, namespace)
        for branch in branches
    ]
    if value is None:
        if any(_kind(s) == "null" for _, s, _ in resolved):
            return None
        raise _FieldError(path, f"expected {_describe_union(resolved)}, got null")
    candidates = [(s, ns) for _, s, ns in resolved if _kind(s) != "null"]
    candidates.sort(key=lambda c: _affinity(c[0], value))
    first_error: _FieldError | None = None
    for schema, ns in candidates:
        try:
            return _convert(schema, value, path, names, ns)
        except _FieldError as exc:
            first_error = first_error or exc
    if len(candidates) == 1 and first_error is not None:
        raise first_error
    raise _FieldError(path, f"expected {_describe_union(resolved)}, got {_show(value)}")


def _primitive(kind: str, logical: Any, value: Any, path: str) -> Any:
    if kind == "null":
        if value is not None:
            raise _FieldError(path, f"expected null, got {_show(value)}")
        return None
    if value is None:
        raise _FieldError(path, "must not be null")
    if kind == "string":
        if not isinstance(value, str):
            raise _FieldError(path, f"expected a string, got {_show(value)}")
        return value
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _FieldError(path, f"expected a number, got {_show(value)}")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _FieldError(path, f"expected true or false, got {_show(value)}")
        return value
    if kind == "bytes":
        return _bytes(value, path)
    # int, long
    if kind == "long" and logical in _UNITS:
        try:
            number = parse_timestamp(value, _UNITS[logical])
        except (ValueError, OverflowError):
            raise _FieldError(
                path, f"expected epoch milliseconds or an ISO-8601 time, got {_show(value)}"
            ) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise _FieldError(path, f"expected an integer, got {_show(value)}")
    low, high = _INT_RANGE[kind]
    if not low <= number <= high:
        raise _FieldError(path, f"{number} is out of range for an Avro {kind}")
    return number


def _bytes(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise _FieldError(path, f"expected base64 text, got {_show(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _FieldError(path, f"expected base64 text, got {_show(value)}") from None


def _default(schema: Any, default: Any, names: dict[str, Any], namespace: str) -> Any:
    """A field default (Avro JSON, for a union: of its first branch) as a record value."""
    if isinstance(schema, list):
        return _default(schema[0], default, names, namespace) if schema else None
    if isinstance(schema, str) and schema not in _ALL_PRIMITIVES:
        schema, namespace = _resolve(schema, names, namespace)
    kind = _kind(schema)
    if kind in ("bytes", "fixed") and isinstance(default, str):
        return default.encode("latin-1")  # Avro defaults for bytes are ISO-8859-1 strings
    if kind == "record" and isinstance(default, dict):
        namespace = _namespace_of(schema, namespace)
        return {
            f["name"]: _default(
                f["type"], default.get(f["name"], f.get("default")), names, namespace
            )
            for f in schema["fields"]
        }
    if kind in ("double", "float") and isinstance(default, int):
        return float(default)
    return copy.deepcopy(default)


# --- schema helpers --------------------------------------------------------------------------

_PRIMITIVES: Final = ("null", "boolean", "float", "double", "bytes", "string")
_ALL_PRIMITIVES: Final = (*_PRIMITIVES, "int", "long")

# id(schema) → (schema, its named types); the schema is kept so that its id stays unique.
# Not keyed by fingerprint: versions differing only in defaults or logical types share one.
_names_cache: dict[int, tuple[AvroSchema, dict[str, Any]]] = {}


def _names_of(schema: AvroSchema) -> dict[str, Any]:
    """Named types defined in a schema, by full and by short name."""
    cached = _names_cache.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    names: dict[str, Any] = {}
    _collect(schema.raw, "", names)
    _names_cache[id(schema)] = (schema, names)
    return names


def _collect(schema: Any, namespace: str, names: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in _NAMED:
        ns = _namespace_of(schema, namespace)
        short = schema["name"].rsplit(".", 1)[-1]
        names[f"{ns}.{short}" if ns else short] = (schema, ns)
        names.setdefault(short, (schema, ns))
        if kind == "record":
            for field in schema["fields"]:
                _collect(field["type"], ns, names)
    elif kind == "array":
        _collect(schema["items"], namespace, names)
    elif kind == "map":
        _collect(schema["values"], namespace, names)
    elif isinstance(kind, (dict, list)):
        _collect(kind, namespace, names)


def _namespace_of(schema: dict[str, Any], enclosing: str) -> str:
    name = schema["name"]
    if "." in name:
        return str(name.rsplit(".", 1)[0])
    return str(schema.get("namespace", enclosing))


def _resolve(name: str, names: dict[str, Any], namespace: str) -> tuple[Any, str]:
    found = names.get(f"{namespace}.{name}") if namespace and "." not in name else None
    found = found or names.get(name)
    if found is None:  # pragma: no cover - fastavro already rejected such a schema
        raise _FieldError("", f"schema refers to unknown type {name!r}")
    return found[0], found[1]


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    kind = schema["type"]
    return kind if isinstance(kind, str) else _kind(kind)


def _affinity(schema: Any, value: Any) -> int:
    """How naturally a JSON value maps to a union branch: 0 best, 2 worst."""
    kind = _kind(schema)
    if isinstance(value, bool):
        return 0 if kind == "boolean" else 2
    if isinstance(value, int):
        return 0 if kind in ("int", "long") else 1 if kind in ("double", "float") else 2
    if isinstance(value, float):
        return 0 if kind in ("double", "float") else 1 if kind in ("int", "long") else 2
    if isinstance(value, str):
        if kind == "string" or (kind == "enum" and value in schema["symbols"]):
            return 0
        return 1 if kind in ("enum", "long") else 2
    if isinstance(value, dict):
        return 0 if kind == "record" else 1 if kind == "map" else 2
    if isinstance(value, list):
        return 0 if kind == "array" else 2
    return 2


def _describe_union(resolved: list[tuple[Any, Any, str]]) -> str:
    labels = []
    for original, schema, _ in resolved:
        kind = _kind(schema)
        labels.append(original if isinstance(original, str) else kind)
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


def _symbols(schema: dict[str, Any]) -> str:
    return ", ".join(schema["symbols"])


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    return value
