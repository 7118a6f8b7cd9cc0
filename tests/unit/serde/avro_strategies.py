"""Hypothesis strategies for records of an Avro schema (as rtim decodes them: plain dicts)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_TS = st.integers(0, 4_102_444_800_000)  # 1970 .. 2100


def records(schema: dict[str, Any], *, finite: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Records of a record schema JSON (named types inline, as in rtim's schemas)."""
    names: dict[str, Any] = {}
    return _strategy(schema, names, finite)  # type: ignore[return-value]


def _strategy(schema: Any, names: dict[str, Any], finite: bool) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of([_strategy(branch, names, finite) for branch in schema])
    if isinstance(schema, str):
        if schema in names:
            return _strategy(names[schema], names, finite)
        return _primitive(schema, None, finite)
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _strategy(kind, names, finite)
    if kind in ("record", "enum", "fixed"):
        names[schema["name"]] = schema
        names[schema["name"].rsplit(".", 1)[-1]] = schema
    if kind == "record":
        fields = {f["name"]: _strategy(f["type"], names, finite) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(_strategy(schema["items"], names, finite), max_size=3)
    if kind == "map":
        return st.dictionaries(_TEXT, _strategy(schema["values"], names, finite), max_size=3)
    return _primitive(kind, schema.get("logicalType"), finite)


def _primitive(kind: str, logical: Any, finite: bool) -> st.SearchStrategy[Any]:
    if kind == "long" and logical == "timestamp-millis":
        return _TS
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=not finite, allow_infinity=not finite),
        "double": st.floats(allow_nan=not finite, allow_infinity=not finite),
        "string": _TEXT,
        "bytes": st.binary(max_size=16),
    }[kind]
