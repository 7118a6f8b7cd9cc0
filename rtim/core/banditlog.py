"""Generic logged bandit feedback: one logged decision per line, as JSON lines or CSV.

A logged decision is (ts, context, action, propensity, reward[, available actions]): what the
logging policy saw, what it chose, the probability it had of choosing it, and what it earned.
Parsing works on lines, so it is testable without files; `read_bandit_log` is the only I/O.

JSON lines: `{"ts": ISO-8601 | epoch ms, "context": {name: number|string}, "action": id,
"propensity": p, "reward": r, "actions": [ids, optional]}`. CSV: the same columns, the context as
`context.<name>` columns and `actions` as `a|b|c` or a JSON list. Unknown keys/columns are
ignored. Errors carry the line number and are collected, so one run reports several of them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from rtim.errors import ConfigError, ValidationError

__all__ = [
    "BanditLog",
    "Context",
    "LoggedDecision",
    "parse_bandit_log",
    "read_bandit_log",
]

Context = Mapping[str, float | str]
"""Context features of one decision: numbers (floats; booleans become 0/1) or strings."""

Format = Literal["jsonl", "csv"]

MAX_REPORTED_ERRORS: Final = 10
_REQUIRED: Final = ("ts", "action", "propensity", "reward")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One logged decision. `actions` is None when the log did not list the available actions
    (then every action of the log counts as available). `line` is where it was read (0: not
    from a file)."""

    ts: int
    context: Context
    action: str
    propensity: float
    reward: float
    actions: tuple[str, ...] | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class BanditLog:
    """Logged decisions sorted by ts (stable: ties keep file order) and the action set: every
    action logged or listed as available, sorted."""

    decisions: tuple[LoggedDecision, ...]
    actions: tuple[str, ...]
    source: str = "<input>"


class _LineError(Exception):
    """A problem with one field of one line; collected, then reported together."""


def read_bandit_log(path: str | Path, fmt: Format | None = None) -> BanditLog:
    """Read a bandit-log file. The format comes from `fmt`, else the suffix (.csv → CSV,
    .jsonl/.ndjson/.json → JSON lines), else the first non-blank character (`{` → JSON lines)."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8", newline="") as f:
            if fmt is None:
                fmt = _guess_format(p, f.read(4096))
                f.seek(0)
            return parse_bandit_log(f, fmt, source=str(p))
    except FileNotFoundError:
        raise ConfigError(f"bandit log {p}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"bandit log {p}: is a directory, expected a file") from None
    except UnicodeDecodeError as e:
        raise ValidationError(f"bandit log {p}: not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ConfigError(f"bandit log {p}: cannot read it ({e.strerror or e})") from None


def parse_bandit_log(lines: Iterable[str], fmt: Format, *, source: str = "<input>") -> BanditLog:
    """Parse bandit-log lines in format `fmt` (JSON lines need no line ends; CSV needs them
    only for quoted cells that span lines).

    Raises ValidationError naming the source and up to ten `line N: …` problems.
    """
    if fmt not in ("jsonl", "csv"):
        raise ConfigError(f"bandit log format must be jsonl or csv, got {fmt!r}")
    rows = _jsonl_rows(lines) if fmt == "jsonl" else _csv_rows(lines, source)
    decisions: list[LoggedDecision] = []
    errors: list[str] = []
    for line, row in rows:
        if isinstance(row, str):
            errors.append(f"line {line}: {row}")
            continue
        try:
            decisions.append(_decision(row, line))
        except _LineError as e:
            errors.append(f"line {line}: {e}")
    if errors:
        shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        tail = f"; … and {more} more" if more > 0 else ""
        raise ValidationError(f"bandit log {source}: {shown}{tail}")
    if not decisions:
        raise ValidationError(f"bandit log {source}: no logged decisions")
    decisions.sort(key=lambda d: d.ts)
    actions: set[str] = set()
    for d in decisions:
        actions.add(d.action)
        actions.update(d.actions or ())
    return BanditLog(tuple(decisions), tuple(sorted(actions)), source)


def _guess_format(path: Path, head: str) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


# A row is (line number, fields) or (line number, error message).
_Row = tuple[int, dict[str, Any] | str]


def _jsonl_rows(lines: Iterable[str]) -> Iterator[_Row]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield number, f"not valid JSON ({e.msg} at column {e.colno})"
            continue
        if not isinstance(obj, dict):
            yield number, f"expected a JSON object, got {type(obj).__name__}"
            continue
        yield number, obj


def _csv_rows(lines: Iterable[str], source: str) -> Iterator[_Row]:
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise ValidationError(f"bandit log {source}: line 1: bad CSV header ({e})") from None
    header = [h.strip() for h in header]
    _check_header(header, source)
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, f"bad CSV ({e})"
            return
        end = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield start, f"expected {len(header)} fields as in the header, got {len(cells)}"
            continue
        row: dict[str, Any] = {}
        context: dict[str, str] = {}
        for name, cell in zip(header, cells, strict=True):
            if name.startswith("context."):
                context[name.removeprefix("context.")] = cell
            else:
                row[name] = cell
        row["context"] = _CsvContext(context)
        if "actions" in row:
            row["actions"] = _CsvActions(row["actions"])
        yield start, row


def _check_header(header: list[str], source: str) -> None:
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ValidationError(
            f"bandit log {source}: line 1: CSV header lacks column(s) {', '.join(missing)}"
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ValidationError(
            f"bandit log {source}: line 1: duplicate column(s) {', '.join(dupes)}"
        )
    if "context" in header:
        raise ValidationError(
            f"bandit log {source}: line 1: give context features as context.<name> columns, "
            "not one 'context' column"
        )
    if any(h == "context." for h in header):
        raise ValidationError(f"bandit log {source}: line 1: a context column has no name")


class _CsvContext(dict[str, str]):
    """Raw CSV context cells, to be typed by `_context`."""


class _CsvActions(str):
    """A raw CSV `actions` cell: `a|b|c` or a JSON list; empty means not given."""

    __slots__ = ()


def _decision(row: dict[str, Any], line: int) -> LoggedDecision:
    problems: list[str] = []

    def field(name: str, parse: Any) -> Any:
        if name not in row or (isinstance(row[name], str) and not row[name].strip()):
            problems.append(f"{name} is required")
            return None
        try:
            return parse(row[name])
        except _LineError as e:
            problems.append(str(e))
            return None

    ts = field("ts", _ts)
    action = field("action", _action_id)
    propensity = field("propensity", _propensity)
    reward = field("reward", _reward)
    context = field("context", _context)
    raw_actions = row.get("actions")
    actions: tuple[str, ...] | None = None
    if raw_actions is not None:
        try:
            actions = _actions(raw_actions)
        except _LineError as e:
            problems.append(str(e))
    if actions is not None and action is not None and action not in actions:
        problems.append(f"action {action!r} is not among the available actions")
    if problems:
        raise _LineError("; ".join(problems))
    return LoggedDecision(ts, context, action, propensity, reward, actions, line)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: Any, name: str) -> float:
    """A finite number from JSON (int/float, not bool) or a CSV cell."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _LineError(f"{name} must be a number, got {_shown(value)}")
    try:
        x = float(value)
    except ValueError:
        raise _LineError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise _LineError(f"{name} must be finite, got {_shown(value)}")
    return x


def _propensity(value: Any) -> float:
    p = _number(value, "propensity")
    if not 0.0 < p <= 1.0:
        raise _LineError(f"propensity must be in (0, 1], got {_shown(value)}")
    return p


def _reward(value: Any) -> float:
    return _number(value, "reward")


def _ts(value: Any) -> int:
    """Epoch milliseconds from a number, a digit string (CSV) or an ISO-8601 string.
    ISO times without an offset are read as UTC."""
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise _LineError(f"ts must be ISO-8601 or epoch milliseconds, got {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return (dt - _EPOCH) // _MS
    return round(_number(value, "ts"))


def _action_id(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _LineError(f"action must be a non-empty string or an integer, got {_shown(value)}")


def _actions(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, _CsvActions):
        text = value.strip()
        if not text:
            return None
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise _LineError(f"actions is not a valid JSON list: {text!r}") from None
        else:
            value = text.split("|")
    if not isinstance(value, list) or not value:
        raise _LineError(f"actions must be a non-empty list of action ids, got {_shown(value)}")
    ids: list[str] = []
    for item in value:
        try:
            ids.append(_action_id(item))
        except _LineError:
            raise _LineError(f"actions holds an invalid id {_shown(item)}") from None
    if len(set(ids)) != len(ids):
        raise _LineError("actions lists an action twice")
    return tuple(ids)


def _context(value: Any) -> dict[str, float | str]:
    if isinstance(value, _CsvContext):
        return _csv_context(value)
    if not isinstance(value, dict):
        raise _LineError(f"context must be a JSON object, got {_shown(value)}")
    out: dict[str, float | str] = {}
    for name, v in value.items():
        if v is None:
            continue  # missing feature
        if isinstance(v, bool):
            out[name] = 1.0 if v else 0.0
        elif isinstance(v, int | float):
            if not math.isfinite(v):
                raise _LineError(f"context.{name} must be finite, got {v}")
            out[name] = float(v)
        elif isinstance(v, str):
            out[name] = v
        else:
            raise _LineError(f"context.{name} must be a number or a string, got {_shown(v)}")
    return out


def _csv_context(cells: Mapping[str, str]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for name, cell in cells.items():
        text = cell.strip()
        if not text or text.lower() in ("nan", "null", "none"):
            continue  # missing feature
        try:
            x = float(text)
        except ValueError:
            out[name] = text
            continue
        if not math.isfinite(x):
            raise _LineError(f"context.{name} must be finite, got {text}")
        out[name] = x
    return out
