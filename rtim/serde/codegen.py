"""What the generated Avro readers and writers share: emitting one Python function per record
schema of a fastavro-parsed schema, and compiling them (see fastdecode and fastwrite)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RecordCodeGen", "UnsupportedSchemaError"]


class UnsupportedSchemaError(Exception):
    """A schema construct a generator does not handle: fastavro reads or writes it."""


class RecordCodeGen:
    """Emits functions line by line; a subclass writes the body of one record's function."""

    prefix = "record"  # the generated functions' names: <prefix>_<n>

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named  # named types by full name (fastavro's "__named_schemas")
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.functions: dict[str, str] = {}  # record name -> generated function name
        self.pending: list[tuple[str, Any]] = []
        self.counter = 0

    def var(self) -> str:
        """A fresh local variable name."""
        self.counter += 1
        return f"v{self.counter}"

    def const(self, value: Any) -> str:
        """The name under which the generated code sees ``value``."""
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def record_function(self, schema: Mapping[str, Any]) -> str:
        """The name of the function for record ``schema`` (its body is emitted later)."""
        name = str(schema["name"])
        function = self.functions.get(name)
        if function is None:
            function = self.functions[name] = f"{self.prefix}_{len(self.functions)}"
            self.pending.append((function, schema))
        return function

    def record_body(self, function: str, schema: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def build(
        self, parsed: Mapping[str, Any], helpers: Mapping[str, Any]
    ) -> Callable[..., Any] | None:
        """The compiled function of record schema ``parsed`` (``helpers``: names its code
        calls), or None if a construct in it is not supported."""
        if not isinstance(parsed, Mapping) or parsed.get("type") != "record":
            return None
        try:
            entry = self.record_function(parsed)
            while self.pending:
                function, schema = self.pending.pop()
                self.record_body(function, schema)
        except (UnsupportedSchemaError, KeyError, TypeError, ValueError):
            return None
        namespace: dict[str, Any] = {**helpers, **self.consts}
        code = compile("\n".join(self.lines), f"<avro {self.prefix} {parsed['name']}>", "exec")
        exec(code, namespace)
        compiled: Callable[..., Any] = namespace[entry]
        return compiled
