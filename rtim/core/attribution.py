"""Reward attribution: which decision an outcome belongs to, and what a model learns from it.

Every action a decision emits becomes a *pending attribution* in the profile: a compact tuple
(``PendingAttribution``) holding the decision id and time, channel, offer, the propensity that
was logged, the control-group flag, the attribution window and the model features of decision
time (stored as changes to the entry before when shorter; ``pending_attributions`` reads them
back). One timer (kind ``TIMER_ATTRIBUTION``) sits at the earliest expiry of the pending list.

- An **outcome** is matched by ``decision_id`` (and offer), else to the latest pending decision
  for the same offer and channel whose window contains the outcome. ``Attribution.classify``
  decides what it means: positive → reward 1, negative → reward 0, both *resolve* the entry and
  emit a ``TrainingExample``; ``delivered``/``impression`` change nothing; other neutral types
  (``bounce``) resolve the entry without an example (the message was never seen, so neither a
  success nor a failure). The first decisive outcome wins; a later one (a convert after the
  click) is *late*.
- **Expiry**: a window that passes without a decisive outcome gives a negative example with
  outcome ``no_response``.
- **Complaints**: a complaint opened within ``COMPLAINT_WINDOW_MS`` (1 day) after an outbound
  contact resolves the *latest* such pending contact as a negative, outcome ``complaint``.
- **Bound**: at most ``MAX_PENDING`` (16) entries; adding one more evicts the oldest as a
  negative example with outcome ``evicted`` (old entries rarely get a response any more; the
  distinct outcome lets a learner or an analysis leave them out).
- **Late** outcomes (after resolution or expiry, or matching nothing) are not learned; the
  result says so (``status == "late"``) so the shell can count them.

Examples carry the model features stored at decision time, never the profile of outcome time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from rtim.core.engine import Emit
from rtim.core.features import CHANNELS, FeatureValue
from rtim.core.profile import DAY_MS, PendingAttribution, Profile, TimerEntry
from rtim.core.strategy import Strategy

__all__ = [
    "COMPLAINT_WINDOW_MS",
    "EXPOSURE_OUTCOMES",
    "MAX_PENDING",
    "MODEL_FEATURES",
    "TIMER_ATTRIBUTION",
    "TRAINING_TOPIC",
    "AttributionResult",
    "ModelIdFn",
    "add_pending",
    "attribute_complaint",
    "attribute_outcome",
    "expire_pending",
    "model_features",
    "pack_features",
    "pending_attributions",
    "pending_entry",
    "pending_expires_at",
    "training_example",
    "unpack_features",
    "with_timer",
    "without_timers",
]

TRAINING_TOPIC: Final = "rtim.training"
TIMER_ATTRIBUTION: Final = "a"
MAX_PENDING: Final = 16
COMPLAINT_WINDOW_MS: Final = DAY_MS
#: Neutral outcomes that only say the action was seen: the entry keeps waiting.
EXPOSURE_OUTCOMES: Final = frozenset({"delivered", "impression"})

ModelIdFn = Callable[[str, str], str]
Status = Literal["learned", "late", "exposure", "neutral"]

# --- model features ---------------------------------------------------------------------------

#: What a response model learns from, in storage order: who the customer is, what they did
#: lately, the moment and the occasion (the request's placement or the trigger's name). Kept
#: short because every pending attribution stores it: amounts and durations are rounded to
#: whole numbers (models squash them anyway); missing values stay None (models skip them).
MODEL_FEATURES: Final[tuple[str, ...]] = (
    "age",
    "segment",
    "tenure_days",
    "customer_value",
    "cart_value",
    "purchases_30d",
    "days_since_last_purchase",
    "salary_amount",
    "has_open_complaint",
    "contacts_7d",
    "session_page_views",
    "hour_of_day",
    "day_of_week",
    "top_interest",
    "occasion",
)
_LAYOUT: Final = 1  # first element of a packed tuple; bump when MODEL_FEATURES changes
_ROUNDED: Final = (
    "tenure_days",
    "customer_value",
    "cart_value",
    "days_since_last_purchase",
    "salary_amount",
)
_INTEREST: Final = "category_interest."


def _whole(value: FeatureValue) -> FeatureValue:
    if isinstance(value, float):
        return round(value)
    return value


def model_features(
    features: Mapping[str, FeatureValue], offer: object = None, channel: str | None = None
) -> dict[str, FeatureValue]:
    """The compact input of a response model (``MODEL_FEATURES``, 15 entries) from a snapshot.

    It depends on the customer and the moment only, not on ``offer`` or ``channel``: models are
    per offer and add the channel themselves, so one dict serves every candidate of a decision
    (a model set may vectorise it once). Values are numbers, booleans, text or None.
    """
    get = features.get
    x: dict[str, FeatureValue] = {name: get(name) for name in MODEL_FEATURES}
    for name in _ROUNDED:
        x[name] = _whole(x[name])
    age = x["age"]
    if isinstance(age, float):
        x["age"] = int(age)
    placement = get("placement")
    x["occasion"] = placement if placement is not None else get("trigger")
    if "top_interest" not in features:  # a snapshot from before the feature existed
        best, top = 0, None
        for name, value in sorted(features.items()):
            if name.startswith(_INTEREST) and isinstance(value, int) and value > best:
                best, top = value, name[len(_INTEREST) :]
        x["top_interest"] = top
    return x


def pack_features(x: Mapping[str, FeatureValue]) -> tuple[FeatureValue, ...]:
    """Model features as a positional tuple (names are implied by ``MODEL_FEATURES``)."""
    return (_LAYOUT, *map(x.get, MODEL_FEATURES))


def unpack_features(packed: Sequence[Any]) -> dict[str, FeatureValue]:
    """Inverse of ``pack_features``; an unknown layout gives ``{}`` (nothing to learn from)."""
    if not packed or packed[0] != _LAYOUT:
        return {}
    return dict(zip(MODEL_FEATURES, packed[1:], strict=False))


# --- timers -----------------------------------------------------------------------------------


def with_timer(timers: tuple[TimerEntry, ...], timer: TimerEntry) -> tuple[TimerEntry, ...]:
    """``timers`` plus ``timer``, kept sorted by due time (then name, for determinism)."""
    return tuple(sorted((*timers, timer)))


def without_timers(
    timers: tuple[TimerEntry, ...], drop: Callable[[TimerEntry], bool]
) -> tuple[TimerEntry, ...]:
    """``timers`` without those for which ``drop`` is true."""
    return tuple(t for t in timers if not drop(t))


def _is_attribution(timer: TimerEntry) -> bool:
    return timer[3] == TIMER_ATTRIBUTION


def _store(profile: Profile, stored: tuple[PendingAttribution, ...]) -> Profile:
    """A copy of ``profile`` holding the pending entries ``stored`` (``_compress``-ed), with
    their timer."""
    p: Profile = profile.copy()
    p["pending"] = stored
    # at most one attribution timer, due when the first window ends (compression keeps the
    # time and the window of every entry)
    timers = without_timers(p.get("timers", ()), _is_attribution)
    if stored:
        due = min(map(pending_expires_at, stored))
        timers = with_timer(timers, (due, "", "", TIMER_ATTRIBUTION))
    p["timers"] = timers
    return p


# --- pending entries --------------------------------------------------------------------------

_CHANNEL_INDEX: Final = {name: i for i, name in enumerate(CHANNELS)}
_DELTA: Final = 0  # first element of packed features stored as changes to the entry before


def pending_entry(
    decision_id: str,
    ts: int,
    channel: str,
    offer_id: str,
    *,
    propensity: float,
    control_group: bool,
    window_ms: int,
    x: Mapping[str, FeatureValue],
) -> PendingAttribution:
    """A pending attribution (the window is kept in whole seconds, rounded up)."""
    window_s = -(-window_ms // 1000)
    return (
        decision_id,
        ts,
        _CHANNEL_INDEX[channel],
        offer_id,
        propensity,
        control_group,
        window_s,
        pack_features(x),
    )


def pending_expires_at(entry: PendingAttribution) -> int:
    """When the attribution window of a pending entry ends (epoch ms)."""
    return entry[1] + entry[6] * 1000


def _compress(
    entries: Sequence[PendingAttribution], before: tuple[Any, ...] | None = None
) -> tuple[PendingAttribution, ...]:
    """Store each entry's features as changes to the entry before, when that is shorter;
    ``before`` is the full features of the entry before the first, if any.

    A customer's consecutive decisions mostly see the same model features (a web session's
    requests differ in a page count, say): this keeps a pending entry at about 60 bytes.
    """
    out: list[PendingAttribution] = []
    for entry in entries:
        full = entry[7]
        packed = full
        if before is not None and len(before) == len(full) and full and full[0] == before[0]:
            changes: list[Any] = []
            for i in range(1, len(full)):
                old, value = before[i], full[i]
                if old != value or type(old) is not type(value):
                    changes += (i, value)
            if len(changes) + 1 < len(full):
                packed = (_DELTA, *changes)
        out.append((*entry[:7], packed))
        before = full
    return tuple(out)


def _full(packed: tuple[Any, ...], before: tuple[Any, ...]) -> tuple[Any, ...]:
    """The full packed features of a stored entry, given the full ones of the entry before."""
    if not (packed and packed[0] == _DELTA and before):
        return packed
    full = list(before)
    for i in range(1, len(packed) - 1, 2):
        full[packed[i]] = packed[i + 1]
    return tuple(full)


def pending_attributions(profile: Profile) -> list[PendingAttribution]:
    """The profile's pending attributions, oldest first, each with its full packed features."""
    out: list[PendingAttribution] = []
    before: tuple[Any, ...] = ()
    for stored in profile.get("pending", ()):
        before = _full(stored[7], before)
        out.append((*stored[:7], before))
    return out


def _last_features(stored: Sequence[PendingAttribution]) -> tuple[Any, ...] | None:
    """The full packed features of the last of ``stored`` (compressed) entries, or None."""
    before: tuple[Any, ...] = ()
    for entry in stored:
        before = _full(entry[7], before)
    return before if stored else None


def training_example(
    entry: PendingAttribution,
    *,
    customer_id: str,
    model_id: ModelIdFn,
    outcome: str,
    reward: float,
    value: float,
    ts: int,
) -> dict[str, Any]:
    """The ``TrainingExample`` record of a resolved pending entry (with full features)."""
    decision_id, decision_ts, channel_index, offer_id, propensity, control, _w, packed = entry
    channel = CHANNELS[channel_index]
    return {
        "model_id": model_id(offer_id, channel),
        "example_id": f"{decision_id}:{offer_id}:{outcome}",
        "decision_id": decision_id,
        "customer_id": customer_id,
        "ts": ts,
        "decision_ts": decision_ts,
        "offer_id": offer_id,
        "channel": channel,
        "features": unpack_features(packed),
        "propensity": propensity,
        "reward": reward,
        "value": value,
        "outcome": outcome,
        "control_group": control,
    }


def _emit(record: dict[str, Any]) -> Emit:
    return Emit(TRAINING_TOPIC, record["model_id"], "TrainingExample", record)


def _negative(
    entry: PendingAttribution, customer_id: str, model_id: ModelIdFn, outcome: str, ts: int
) -> Emit:
    return _emit(
        training_example(
            entry,
            customer_id=customer_id,
            model_id=model_id,
            outcome=outcome,
            reward=0.0,
            value=0.0,
            ts=ts,
        )
    )


def add_pending(
    profile: Profile, entries: Iterable[PendingAttribution], now: int, model_id: ModelIdFn
) -> tuple[Profile, list[Emit]]:
    """Add pending entries (and the timer); beyond ``MAX_PENDING`` the oldest are evicted as
    negative examples (outcome ``evicted``)."""
    added = list(entries)
    stored = profile.get("pending", ())
    if len(stored) + len(added) <= MAX_PENDING:
        # the stored entries are compressed already: only the new ones need it, against the
        # full features of the last stored one
        compressed = (*stored, *_compress(added, _last_features(stored)))
        return _store(profile, compressed), []
    pending = pending_attributions(profile)
    in_order = _in_time_order([*pending, *added])  # pending: one entry per stored one
    pending.extend(added)
    pending.sort(key=lambda e: e[1])  # stable: same-time entries keep their order
    customer_id = profile.get("customer_id", "")
    cut = len(pending) - MAX_PENDING
    emits = [_negative(old, customer_id, model_id, "evicted", now) for old in pending[:cut]]
    kept = pending[cut:]
    if in_order and cut < len(stored):
        # the hot case of a busy customer: one decision in, the oldest out. Kept stored entries
        # are already changes to the entry before, except the first, whose base was evicted
        first = kept[0]
        rest = len(stored) - cut - 1  # stored entries kept after the first
        compressed = (
            first,
            *stored[cut + 1 :],
            *_compress(kept[1 + rest :], kept[rest][7]),
        )
        return _store(profile, compressed), emits
    return _store(profile, _compress(kept)), emits


def _in_time_order(entries: Sequence[PendingAttribution]) -> bool:
    return all(entries[i][1] <= entries[i + 1][1] for i in range(len(entries) - 1))


def expire_pending(profile: Profile, now: int, model_id: ModelIdFn) -> tuple[Profile, list[Emit]]:
    """Resolve every entry whose window ended at or before ``now`` as a ``no_response``; make
    sure the attribution timer sits at the next expiry."""
    pending = pending_attributions(profile)
    expired = [e for e in pending if pending_expires_at(e) <= now]
    if not expired:
        p = _store(profile, profile.get("pending", ()))
        return (profile, []) if p["timers"] == profile.get("timers", ()) else (p, [])
    customer_id = profile.get("customer_id", "")
    emits = [
        _negative(e, customer_id, model_id, "no_response", pending_expires_at(e)) for e in expired
    ]
    return _store(profile, _compress([e for e in pending if pending_expires_at(e) > now])), emits


@dataclass(frozen=True, slots=True)
class AttributionResult:
    """The profile after an outcome, the training examples to emit, and what happened:
    ``learned`` (an example), ``late`` (decisive but nothing pending matches: not learned),
    ``exposure`` (delivered/impression: nothing changes), ``neutral`` (e.g. bounce: the
    matching entry, if any, is dropped without an example)."""

    profile: Profile
    emits: list[Emit]
    status: Status


def _match(
    pending: Sequence[PendingAttribution], outcome: Mapping[str, Any]
) -> PendingAttribution | None:
    offer_id, ts = outcome["offer_id"], outcome["ts"]
    decision_id = outcome.get("decision_id")
    if decision_id:
        for entry in pending:
            if entry[0] == decision_id and entry[3] == offer_id:
                return entry
        return None  # an id that matches nothing pending was resolved or expired: late
    channel = _CHANNEL_INDEX.get(outcome["channel"], -1)
    best: PendingAttribution | None = None
    for entry in pending:
        if (
            entry[3] == offer_id
            and entry[2] == channel
            and entry[1] <= ts <= pending_expires_at(entry)
            and (best is None or entry[1] >= best[1])
        ):
            best = entry
    return best


def attribute_outcome(
    profile: Profile, outcome: Mapping[str, Any], strategy: Strategy, model_id: ModelIdFn
) -> AttributionResult:
    """Attribute an ``Outcome`` record to a pending decision (see the module docstring).

    Entries whose window ended before the outcome are expired first (event time), so an outcome
    after its window is late even if the expiry timer has not fired yet.
    """
    ts = outcome["ts"]
    p, emits = expire_pending(profile, ts - 1, model_id)
    kind = outcome["type"]
    verdict = strategy.attribution.classify(kind)
    if verdict == "neutral" and kind in EXPOSURE_OUTCOMES:
        return AttributionResult(p, emits, "exposure")
    pending = pending_attributions(p)
    entry = _match(pending, outcome)
    if entry is None:
        return AttributionResult(p, emits, "neutral" if verdict == "neutral" else "late")
    p = _store(p, _compress([e for e in pending if e is not entry]))
    if verdict == "neutral":
        return AttributionResult(p, emits, "neutral")
    if verdict == "positive":
        given = outcome.get("value")
        if given is not None:
            value = float(given)
        elif strategy.has_offer(entry[3]):
            value = strategy.offer(entry[3]).value
        else:
            value = 0.0
        reward = 1.0
    else:
        value = reward = 0.0
    record = training_example(
        entry,
        customer_id=p.get("customer_id", ""),
        model_id=model_id,
        outcome=kind,
        reward=reward,
        value=value,
        ts=ts,
    )
    emits.append(_emit(record))
    return AttributionResult(p, emits, "learned")


def attribute_complaint(
    profile: Profile,
    now: int,
    outbound: frozenset[str],
    model_id: ModelIdFn,
    window_ms: int = COMPLAINT_WINDOW_MS,
) -> tuple[Profile, list[Emit]]:
    """A complaint opened at ``now``: the latest pending outbound contact made within
    ``window_ms`` before it is resolved as a negative example (outcome ``complaint``)."""
    pending = pending_attributions(profile)
    latest: PendingAttribution | None = None
    for entry in pending:
        if (
            CHANNELS[entry[2]] in outbound
            and now - window_ms <= entry[1] <= now
            and (latest is None or entry[1] >= latest[1])
        ):
            latest = entry
    if latest is None:
        return profile, []
    p = _store(profile, _compress([e for e in pending if e is not latest]))
    return p, [_negative(latest, p.get("customer_id", ""), model_id, "complaint", now)]
