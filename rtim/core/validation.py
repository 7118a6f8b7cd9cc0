"""Semantic checks a decoded record must pass beyond what its Avro schema can express.

Used by the worker on every input record (a failure sends it to the dead-letter topic) and by
`rtim produce` before sending. Pure: the clock is an argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from rtim.errors import ValidationError

__all__ = ["KEY_NOT_CHECKED", "MAX_ACTIONS", "format_duration", "format_ts", "validate_record"]

MAX_ACTIONS: Final = 20
"""Most actions a decision request may ask for."""


class _NotChecked(Enum):
    KEY_NOT_CHECKED = "KEY_NOT_CHECKED"


KEY_NOT_CHECKED: Final = _NotChecked.KEY_NOT_CHECKED
"""Default of `validate_record`'s `key`: do not check the key (``None`` is a null Kafka key)."""

# Fields holding free-form maps: their keys are data, not field names.
_MAP_FIELDS: Final = frozenset(
    ("payload", "context", "attributes", "features", "metrics", "channel_scores", "input_offsets")
)
_NON_NEGATIVE: Final = frozenset(("amount", "price", "quantity", "value"))
_PROBABILITIES: Final = frozenset(("propensity", "propensity_model"))
# The field the Kafka key must equal, when it is not customer_id.
_KEY_FIELD: Final = {"TrainingExample": "model_id", "ModelSnapshot": "model_id"}
_CURRENCY: Final = re.compile(r"[A-Z]{3}")


def validate_record(
    schema_name: str,
    record: Mapping[str, Any],
    *,
    now_ms: int,
    max_future_ms: int,
    key: bytes | _NotChecked | None = KEY_NOT_CHECKED,
) -> None:
    """Raise ValidationError (one line naming the field) if `record` breaks a rule of the contract.

    Rules: ids are not blank; every number is finite; amount, price, quantity and value are
    >= 0; propensities are in [0, 1]; ``ts`` is in [0, now_ms + max_future_ms]; per-schema
    rules (consent, identity links, attributes, max_actions, expiry, currency). When `key` is
    given (``None`` = a null Kafka key) it must be the record's customer_id in UTF-8 (model_id
    for TrainingExample and ModelSnapshot, the record's ``key`` for a DeadLetter).
    """
    _check_fields(record, "")
    ts = record.get("ts")
    if isinstance(ts, int):
        _check_ts(ts, "ts", now_ms, max_future_ms)
    rule = _RULES.get(schema_name)
    if rule is not None:
        rule(record, now_ms, max_future_ms)
    if key is not KEY_NOT_CHECKED:
        _check_key(schema_name, record, key)


def format_ts(ts_ms: int) -> str:
    """An epoch-ms timestamp as ISO-8601 UTC (``2096-01-01T00:00:00Z``), for messages."""
    try:
        moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts_ms} ms"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = ts_ms % 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def format_duration(ms: int) -> str:
    """A duration in the largest whole unit: ``24h``, ``90m``, ``30s``, ``1500ms``."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# --- generic checks --------------------------------------------------------------------------


def _check_fields(record: Mapping[str, Any], prefix: str) -> None:
    # hot path (every input record): dispatch on the exact type, build paths only on error
    for name, value in record.items():
        kind = type(value)
        if kind is str:
            if not value.strip() and (name == "id" or name.endswith("_id")):
                raise ValidationError(f"'{prefix}{name}' must not be empty")
        elif kind is float:
            _check_number(name, value, prefix)
        elif kind is int:
            if value < 0 and name in _NON_NEGATIVE:
                raise ValidationError(f"'{prefix}{name}' must be >= 0, got {value}")
        elif value is None or kind is bool or kind is bytes:
            continue
        elif isinstance(value, Mapping):
            if name in _MAP_FIELDS:
                _check_finite(value, f"{prefix}{name}")
            else:
                _check_fields(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    _check_fields(item, f"{prefix}{name}[{index}].")
                else:
                    _check_finite(item, f"{prefix}{name}[{index}]")
        elif isinstance(value, float):  # a float subclass
            _check_number(name, float(value), prefix)


def _check_number(name: str, value: float, prefix: str) -> None:
    if not math.isfinite(value):
        raise ValidationError(f"'{prefix}{name}' is not a finite number ({value})")
    if value < 0 and name in _NON_NEGATIVE:
        raise ValidationError(f"'{prefix}{name}' must be >= 0, got {value}")
    if name in _PROBABILITIES and not 0.0 <= value <= 1.0:
        raise ValidationError(f"'{prefix}{name}' is a probability, must be in [0, 1], got {value}")


def _check_finite(value: Any, path: str) -> None:
    """Every float anywhere inside `value` (maps of data included) is finite."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"'{path}' is not a finite number ({value})")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}[{index}]")


def _check_ts(ts: int, name: str, now_ms: int, max_future_ms: int) -> None:
    if ts < 0:
        raise ValidationError(f"'{name}' {ts} is before 1970-01-01")
    if ts > now_ms + max_future_ms:
        label = "timestamp" if name == "ts" else f"'{name}'"
        raise ValidationError(
            f"{label} {format_ts(ts)} is more than {format_duration(max_future_ms)} ahead "
            "of the clock"
        )


def _check_key(schema_name: str, record: Mapping[str, Any], key: bytes | None) -> None:
    if schema_name == "DeadLetter":
        expected, what = record.get("key"), "the dead letter's key"
        if key != expected:
            raise ValidationError(
                f"key {_show_key(key)} does not match {what} {_show_key(expected)}"
            )
        return
    field = _KEY_FIELD.get(schema_name, "customer_id")
    if key is None:
        raise ValidationError("missing key")
    holder = record.get("decision") if schema_name == "DecisionRecord" else record
    # `type is dict` first: the ABC check costs more than the rest of this function
    value = holder.get(field) if type(holder) is dict or isinstance(holder, Mapping) else None
    if not isinstance(value, str) or key != value.encode("utf-8"):
        raise ValidationError(f"key {_show_key(key)} does not match {field} {value!r}")


def _show_key(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bytes):
        return repr(key.decode("utf-8", "backslashreplace"))
    return repr(key)


def _require(record: Mapping[str, Any], name: str, why: str) -> Any:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError(f"{why} needs '{name}'")
    return value


# --- per-schema rules ------------------------------------------------------------------------


def _transaction(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    currency = record.get("currency")
    if isinstance(currency, str) and not _CURRENCY.fullmatch(currency):
        raise ValidationError(f"'currency' must be an ISO 4217 code like EUR, got {currency!r}")


def _complaint(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    _require(record, "category", "a complaint")


def _profile(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    kind = record.get("type")
    if kind == "consent":
        _require(record, "channel", "a consent event")
        _require(record, "granted", "a consent event")
    elif kind == "identity_link":
        linked = _require(record, "linked_id", "an identity_link event")
        if linked == record.get("customer_id"):
            raise ValidationError("an identity_link event cannot link a customer to itself")
    elif kind == "attributes" and not record.get("attributes"):
        raise ValidationError("an attributes event needs a non-empty 'attributes' map")


def _request(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    _require(record, "placement", "a decision request")
    max_actions = record.get("max_actions")
    if isinstance(max_actions, int) and not 1 <= max_actions <= MAX_ACTIONS:
        raise ValidationError(f"'max_actions' must be in 1..{MAX_ACTIONS}, got {max_actions}")


def _decision(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    ts, expires_at = record.get("ts"), record.get("expires_at")
    if isinstance(ts, int) and isinstance(expires_at, int) and expires_at < ts:
        raise ValidationError(
            f"'expires_at' {format_ts(expires_at)} is before the decision time {format_ts(ts)}"
        )
    for index, action in enumerate(record.get("actions") or ()):
        rank = action.get("rank")
        if isinstance(rank, int) and rank < 1:
            raise ValidationError(f"'actions[{index}].rank' must be >= 1, got {rank}")


def _decision_record(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    decision = record.get("decision")
    if isinstance(decision, Mapping):
        ts = decision.get("ts")
        if isinstance(ts, int):
            _check_ts(ts, "decision.ts", now_ms, max_future_ms)
        try:
            _decision(decision, now_ms, max_future_ms)
        except ValidationError as exc:
            raise ValidationError(f"decision: {exc}") from None


def _training(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    decision_ts = record.get("decision_ts")
    if isinstance(decision_ts, int) and decision_ts < 0:
        raise ValidationError(f"'decision_ts' {decision_ts} is before 1970-01-01")


def _dead_letter(record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    _require(record, "source_topic", "a dead letter")


_RULES: Final = {
    "TransactionEvent": _transaction,
    "ComplaintEvent": _complaint,
    "ProfileEvent": _profile,
    "DecisionRequest": _request,
    "Decision": _decision,
    "DecisionRecord": _decision_record,
    "TrainingExample": _training,
    "DeadLetter": _dead_letter,
}
