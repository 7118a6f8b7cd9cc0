"""Input events as the core sees them: a kind, the decoded record and its identity."""

from __future__ import annotations

import hashlib
from typing import Any, Final, NamedTuple

__all__ = [
    "INPUT_TOPICS",
    "KIND_BY_SCHEMA",
    "KIND_BY_TOPIC",
    "SCHEMA_BY_KIND",
    "Event",
    "event_hash",
    "make_event",
    "order_key",
]

# Logical input topic → event kind. The kind is also the short code of the source in the
# profile's applied-offset markers, so keep these names short and stable.
KIND_BY_TOPIC: Final[dict[str, str]] = {
    "rtim.events.clickstream": "click",
    "rtim.events.transactions": "txn",
    "rtim.events.complaints": "complaint",
    "rtim.events.profile": "profile",
    "rtim.requests": "request",
    "rtim.outcomes": "outcome",
}

INPUT_TOPICS: Final = tuple(KIND_BY_TOPIC)

# Processing order of a partition's inputs: event time, then this rank for equal timestamps
# (state-changing inputs before the requests that read them), then the offset.
_KIND_RANK: Final = {"profile": 0, "txn": 1, "complaint": 2, "click": 3, "outcome": 4, "request": 5}

SCHEMA_BY_KIND: Final[dict[str, str]] = {
    "click": "ClickstreamEvent",
    "txn": "TransactionEvent",
    "complaint": "ComplaintEvent",
    "profile": "ProfileEvent",
    "request": "DecisionRequest",
    "outcome": "Outcome",
}
KIND_BY_SCHEMA: Final[dict[str, str]] = {v: k for k, v in SCHEMA_BY_KIND.items()}


class Event(NamedTuple):
    """One validated input event (immutable; a named tuple: one is built per input record,
    at about a third of the cost of a frozen dataclass).

    `offset` is where it came from when it came from Kafka; it lets the customer state skip
    a redelivered record exactly once.
    """

    kind: str
    event_id: str
    customer_id: str
    ts: int
    record: dict[str, Any]
    offset: int = -1


_new_tuple: Final = tuple.__new__


def make_event(kind: str, record: dict[str, Any], offset: int = -1) -> Event:
    """Build an Event from a decoded record of the schema that belongs to `kind`."""
    if kind == "request":
        event_id = record.get("event_id") or record["request_id"]
    else:
        event_id = record["event_id"]
    # the tuple built directly: the named tuple's own __new__ is a Python call (~2x the cost)
    return _new_tuple(Event, (kind, event_id, record["customer_id"], record["ts"], record, offset))


def event_hash(event_id: str) -> int:
    """A stable 64-bit hash of an event id (remembered instead of the id, to stay small)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


def order_key(kind: str, ts: int, offset: int) -> tuple[int, int, int]:
    """Sort key of an input record within its partition (the worker and the backtest agree)."""
    return (ts, _KIND_RANK[kind], offset)
