"""Semantic validation of records (rtim.core.validation), mostly as properties."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rtim.core.validation import (
    KEY_NOT_CHECKED,
    MAX_ACTIONS,
    format_duration,
    format_ts,
    validate_record,
)
from rtim.errors import ValidationError

NOW = 1_763_798_400_000  # 2025-11-22T08:00:00Z
DAY = 86_400_000

CLICK: dict[str, Any] = {
    "event_id": "e-1",
    "customer_id": "c-1",
    "ts": NOW,
    "session_id": "s-1",
    "type": "add_to_cart",
    "page": None,
    "product_id": "p-1",
    "category": "cards",
    "price": 9.5,
    "quantity": 2,
    "anonymous_id": None,
}
TRANSACTION: dict[str, Any] = {
    "event_id": "e-2",
    "customer_id": "c-1",
    "ts": NOW,
    "transaction_id": "t-1",
    "type": "purchase",
    "amount": 120.0,
    "currency": "EUR",
    "status": "approved",
    "product_id": None,
    "category": None,
}
COMPLAINT: dict[str, Any] = {
    "event_id": "e-3",
    "customer_id": "c-1",
    "ts": NOW,
    "complaint_id": "k-1",
    "category": "billing",
    "severity": "high",
    "status": "opened",
    "channel": None,
}
CONSENT: dict[str, Any] = {
    "event_id": "e-4",
    "customer_id": "c-1",
    "ts": NOW,
    "type": "consent",
    "channel": "email",
    "granted": False,
    "attributes": None,
    "linked_id": None,
}
REQUEST: dict[str, Any] = {
    "request_id": "r-1",
    "customer_id": "c-1",
    "ts": NOW,
    "channel": "web",
    "placement": "home_banner",
    "context": {"page": "/"},
    "max_actions": 3,
    "event_id": None,
}
OUTCOME: dict[str, Any] = {
    "event_id": "o-1",
    "decision_id": None,
    "customer_id": "c-1",
    "ts": NOW,
    "channel": "email",
    "offer_id": "card",
    "type": "convert",
    "value": 40.0,
}
DECISION: dict[str, Any] = {
    "decision_id": "d-1",
    "customer_id": "c-1",
    "ts": NOW,
    "channel": "web",
    "trigger": {"type": "request", "id": "r-1", "name": None},
    "request_id": "r-1",
    "actions": [
        {
            "offer_id": "card",
            "category": "credit",
            "rank": 1,
            "score": 0.7,
            "propensity": 0.95,
            "payload": {"headline": "Hi"},
        }
    ],
    "control_group": False,
    "strategy_version": "s1",
    "model_version": "m1",
    "reasons": ["best score"],
    "expires_at": NOW + 60_000,
    "placement": None,
}
DECISION_RECORD: dict[str, Any] = {
    "decision": DECISION,
    "features": {"recency_min": 3, "spend_30d": 120.5, "vip": True, "segment": "a", "x": None},
    "candidates": [
        {
            "offer_id": "card",
            "category": "credit",
            "channel": "web",
            "eligible": True,
            "removed_by": None,
            "removed_reason": None,
            "propensity_model": 0.2,
            "value": 30.0,
            "expected_value": 6.0,
            "channel_cost": 0.0,
            "score": 6.0,
            "propensity": 0.95,
            "channel_scores": {"web": 6.0},
        }
    ],
    "policy": "epsilon_greedy",
    "input_offsets": {"click": 12},
    "partition": 3,
}
DEAD_LETTER: dict[str, Any] = {
    "source_topic": "rtim.requests",
    "partition": 0,
    "offset": 7,
    "key": b"c-1",
    "value": b"\x00garbage",
    "error": "unknown magic byte 0x00",
    "ts": NOW,
    "error_kind": "decode",
}
TRAINING: dict[str, Any] = {
    "model_id": "m-cards", "example_id": "d-1/card", "decision_id": "d-1", "customer_id": "c-1",
    "ts": NOW, "decision_ts": NOW - 1000, "offer_id": "card", "channel": "web",
    "features": {"spend_30d": 1.5}, "propensity": 0.5, "reward": 1.0, "value": 3.0,
    "outcome": "convert", "control_group": False,
}  # fmt: skip

VALID: dict[str, dict[str, Any]] = {
    "ClickstreamEvent": CLICK,
    "TransactionEvent": TRANSACTION,
    "ComplaintEvent": COMPLAINT,
    "ProfileEvent": CONSENT,
    "DecisionRequest": REQUEST,
    "Outcome": OUTCOME,
    "Decision": DECISION,
    "DecisionRecord": DECISION_RECORD,
    "DeadLetter": DEAD_LETTER,
    "TrainingExample": TRAINING,
}


def check(name: str, record: dict[str, Any], **kwargs: Any) -> None:
    kwargs.setdefault("now_ms", NOW)
    kwargs.setdefault("max_future_ms", DAY)
    validate_record(name, record, **kwargs)


def message(name: str, record: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as info:
        check(name, record, **kwargs)
    text = str(info.value)
    assert text
    assert "\n" not in text
    return text


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_records_pass(name: str) -> None:
    check(name, VALID[name])


# --- locations of values inside records, for the properties ---------------------------------

Path = tuple[Any, ...]


def paths(value: Any, prefix: Path = ()) -> list[tuple[Path, Any]]:
    """Every (path, leaf) in a nested record."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in paths(v, (*prefix, i))]
    return [(prefix, value)]


def replaced(record: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(record)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def dotted(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


FLOATS = [(name, p) for name, r in VALID.items() for p, v in paths(r) if isinstance(v, float)]
IDS = [
    (name, p)
    for name, r in VALID.items()
    for p, v in paths(r)
    if isinstance(p[-1], str)
    and (p[-1] == "id" or p[-1].endswith("_id"))
    and isinstance(v, str)
    and not (len(p) > 1 and p[-2] in ("features", "payload"))
]
NON_NEGATIVE = [
    (name, p)
    for name, p in [*FLOATS, ("ClickstreamEvent", ("quantity",))]
    if p[-1] in ("amount", "price", "quantity", "value")
]


def test_the_properties_cover_every_kind_of_location() -> None:
    assert ("DecisionRecord", ("features", "spend_30d")) in FLOATS  # inside a map of data
    assert ("DecisionRecord", ("candidates", 0, "channel_scores", "web")) in FLOATS
    assert ("Decision", ("actions", 0, "score")) in FLOATS
    assert ("Decision", ("trigger", "id")) in IDS
    assert ("DecisionRecord", ("decision", "actions", 0, "offer_id")) in IDS
    assert {p[-1] for _, p in NON_NEGATIVE} == {"amount", "price", "quantity", "value"}


@given(st.sampled_from(FLOATS), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_no_double_may_be_nan_or_infinite(where: tuple[str, Path], bad: float) -> None:
    name, path = where
    text = message(name, replaced(VALID[name], path, bad))
    assert "is not a finite number" in text
    assert path[-1] in text


@given(st.sampled_from(IDS), st.text(alphabet=" \t", max_size=3))
def test_ids_must_not_be_blank(where: tuple[str, Path], blank: str) -> None:
    name, path = where
    assert (
        message(name, replaced(VALID[name], path, blank)) == f"'{dotted(path)}' must not be empty"
    )


@given(st.sampled_from(IDS), st.text(min_size=1).filter(str.strip))
def test_any_non_blank_id_is_fine(where: tuple[str, Path], value: str) -> None:
    name, path = where
    record = replaced(VALID[name], path, value)
    if path == ("linked_id",):
        assume(value != record["customer_id"])
    key_path = {"DecisionRecord": ("decision", "customer_id"), "TrainingExample": ("model_id",),
                "DeadLetter": ()}.get(name, ("customer_id",))  # fmt: skip
    if path == key_path:
        check(name, record, key=value.encode())
    else:
        check(name, record)


@given(st.sampled_from(NON_NEGATIVE), st.floats(max_value=-1e-300, allow_infinity=False))
def test_amounts_prices_quantities_values_are_not_negative(
    where: tuple[str, Path], amount: float
) -> None:
    name, path = where
    bad: float | int = int(min(amount, -1)) if path[-1] == "quantity" else amount
    assert message(name, replaced(VALID[name], path, bad)).startswith(
        f"'{dotted(path)}' must be >= 0, got "
    )


@given(st.sampled_from(NON_NEGATIVE), st.floats(min_value=0, allow_infinity=False))
def test_zero_and_positive_amounts_are_fine(where: tuple[str, Path], amount: float) -> None:
    name, path = where
    good: float | int = int(amount) if path[-1] == "quantity" else amount
    assume(path[-1] != "quantity" or good < 2**31)
    check(name, replaced(VALID[name], path, good))


@given(
    st.sampled_from(["propensity", "propensity_model"]),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_propensities_are_probabilities(field: str, value: float) -> None:
    record = replaced(DECISION_RECORD, ("candidates", 0, field), value)
    if 0.0 <= value <= 1.0:
        check("DecisionRecord", record)
    else:
        assert "is a probability, must be in [0, 1]" in message("DecisionRecord", record)


# --- time -----------------------------------------------------------------------------------


def test_far_future_timestamp_message() -> None:
    far = 3_976_214_400_000  # 2096-01-01T00:00:00Z
    assert message("ClickstreamEvent", {**CLICK, "ts": far}) == (
        "timestamp 2096-01-01T00:00:00Z is more than 24h ahead of the clock"
    )


@given(st.sampled_from(sorted(VALID)), st.integers(0, 7 * DAY), st.integers(-DAY, 2 * DAY))
def test_timestamps_up_to_max_future_pass_and_beyond_fail(
    name: str, max_future: int, offset: int
) -> None:
    record = copy.deepcopy(VALID[name])
    holder = record["decision"] if name == "DecisionRecord" else record
    holder["ts"] = NOW + offset
    if "expires_at" in holder:
        holder["expires_at"] = holder["ts"] + 1000
    if offset <= max_future:
        check(name, record, max_future_ms=max_future)
    else:
        assert "ahead of the clock" in message(name, record, max_future_ms=max_future)


@given(st.integers(max_value=-1))
def test_negative_timestamps_fail(ts: int) -> None:
    assert message("Outcome", {**OUTCOME, "ts": ts}) == f"'ts' {ts} is before 1970-01-01"


def test_decision_may_not_expire_before_it_is_made() -> None:
    assert message("Decision", {**DECISION, "expires_at": NOW - 1}).startswith(
        "'expires_at' 2025-11-22T07:59:59.999Z is before the decision time"
    )


@pytest.mark.parametrize(
    ("ms", "text"), [(DAY, "24h"), (90 * 60_000, "90m"), (30_000, "30s"), (1500, "1500ms"),
                     (0, "0ms")],
)  # fmt: skip
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_format_ts() -> None:
    assert format_ts(NOW) == "2025-11-22T08:00:00Z"
    assert format_ts(NOW + 5) == "2025-11-22T08:00:00.005Z"
    assert format_ts(10**20) == f"{10**20} ms"


# --- per-schema rules -----------------------------------------------------------------------


@given(st.integers(-(2**31), 2**31 - 1))
def test_max_actions_range(max_actions: int) -> None:
    record = {**REQUEST, "max_actions": max_actions}
    if 1 <= max_actions <= MAX_ACTIONS:
        check("DecisionRequest", record)
    else:
        assert message("DecisionRequest", record) == (
            f"'max_actions' must be in 1..20, got {max_actions}"
        )


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"channel": None}, "a consent event needs 'channel'"),
        ({"channel": " "}, "a consent event needs 'channel'"),
        ({"granted": None}, "a consent event needs 'granted'"),
        ({"type": "identity_link"}, "an identity_link event needs 'linked_id'"),
        ({"type": "identity_link", "linked_id": "c-1"},
         "an identity_link event cannot link a customer to itself"),
        ({"type": "attributes"}, "an attributes event needs a non-empty 'attributes' map"),
        ({"type": "attributes", "attributes": {}},
         "an attributes event needs a non-empty 'attributes' map"),
    ],
)  # fmt: skip
def test_profile_event_rules(change: dict[str, Any], text: str) -> None:
    assert message("ProfileEvent", {**CONSENT, **change}) == text


@pytest.mark.parametrize(
    "change",
    [
        {"granted": True},
        {"type": "identity_link", "linked_id": "anon-7", "channel": None, "granted": None},
        {"type": "attributes", "attributes": {"tier": "gold"}, "channel": None, "granted": None},
        {"type": "erasure", "channel": None, "granted": None},
    ],
)
def test_valid_profile_events(change: dict[str, Any]) -> None:
    check("ProfileEvent", {**CONSENT, **change})


@pytest.mark.parametrize("currency", ["eur", "EURO", "", "E1R"])
def test_currency_is_an_iso_code(currency: str) -> None:
    assert message("TransactionEvent", {**TRANSACTION, "currency": currency}).startswith(
        "'currency' must be an ISO 4217 code"
    )


def test_nested_decision_of_a_decision_record_is_checked() -> None:
    record = replaced(DECISION_RECORD, ("decision", "expires_at"), NOW - 5)
    assert message("DecisionRecord", record).startswith("decision: 'expires_at'")
    record = replaced(DECISION_RECORD, ("decision", "ts"), NOW + 2 * DAY)
    assert message("DecisionRecord", record).startswith("'decision.ts' 2025-11-24")


# --- keys -----------------------------------------------------------------------------------


@given(st.text(min_size=1).filter(str.strip), st.binary(max_size=12) | st.none())
def test_key_must_be_the_customer_id(customer_id: str, key: bytes | None) -> None:
    record = {**CLICK, "customer_id": customer_id}
    if key == customer_id.encode():
        check("ClickstreamEvent", record, key=key)
    elif key is None:
        assert message("ClickstreamEvent", record, key=key) == "missing key"
    else:
        text = message("ClickstreamEvent", record, key=key)
        assert text.startswith("key ")
        assert text.endswith(f"does not match customer_id {customer_id!r}")


def test_key_messages() -> None:
    assert message("ClickstreamEvent", CLICK, key=b"x") == (
        "key 'x' does not match customer_id 'c-1'"
    )
    assert message("ClickstreamEvent", CLICK, key=None) == "missing key"
    check("ClickstreamEvent", CLICK)  # no key given: not checked
    check("ClickstreamEvent", CLICK, key=KEY_NOT_CHECKED)
    check("ClickstreamEvent", CLICK, key=b"c-1")


def test_other_key_fields() -> None:
    check("TrainingExample", TRAINING, key=b"m-cards")
    assert message("TrainingExample", TRAINING, key=b"c-1") == (
        "key 'c-1' does not match model_id 'm-cards'"
    )
    check("DecisionRecord", DECISION_RECORD, key=b"c-1")
    check("DeadLetter", DEAD_LETTER, key=b"c-1")
    check("DeadLetter", {**DEAD_LETTER, "key": None}, key=None)
    assert message("DeadLetter", DEAD_LETTER, key=b"zz") == (
        "key 'zz' does not match the dead letter's key 'c-1'"
    )


def test_validation_does_not_modify_the_record() -> None:
    for name, record in VALID.items():
        before = copy.deepcopy(record)
        check(name, record)
        assert record == before
