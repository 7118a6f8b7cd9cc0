"""The decision core: from a customer's profile and a trigger to ranked actions, pure.

``decide`` runs one decision: candidates → offer gates → suppression and consent rules → contact
policy (per-offer caps, channel caps, contact-cap rules, quiet hours) → score → channel choice
→ arbitration → exploration/control → top-N, or deliberately no action. Every candidate keeps
the first rule that removed it (``removed_by``: a gate stage, a rule name, or one of
``channel_consent``, ``offer_caps``, ``channel_caps``, ``quiet_hours``, ``min_score``,
``decision_channel``) and a short reason. ``StrategyDecider`` wraps it for the engine: it
answers requests, runs event triggers and their timers, keeps the contact history and the
pending attributions in the profile and emits Decision, DecisionRecord and TrainingExample
records.

Choices made here (see also ``rtim.core.attribution``):

- **Scoring.** propensity = (n·p_model + k·prior)/(n + k): the model's prediction weighted by
  its experience n (examples learned) against the offer's prior (``prior_for(channel)``) worth
  k = ``DEFAULT_PRIOR_STRENGTH`` = 20 examples; before any model, the prior. Channel choice per
  offer: the channel with the highest ``net_value`` (p·value - cost) among those that survive
  every rule; arbitration then uses ``priority`` (p·value·levers·context - cost) on it;
  ``min_score`` removes what is not worth doing.
- **Propensities.** ``Action.propensity`` and ``Candidate.propensity`` are the exact probability
  that the *whole logging policy* — control group with probability ``share``, otherwise the
  exploration policy — includes the candidate in the decision:
  ``share·k/M + (1 - share)·π(i)``, with M eligible candidates and k = min(max_actions, M).
  For one action they sum to 1 over the eligible candidates. For a slate (k > 1) they are
  marginal inclusion probabilities and sum to k: a slate's actions are drawn without replacement
  (greedy: the top k; epsilon-greedy: with probability epsilon a uniformly random k-subset;
  softmax: Plackett-Luce draws; control: a uniformly random k-subset), so item-level off-policy
  estimates weight each shown action by 1/propensity. Exact for greedy, epsilon-greedy, control
  and softmax with k ≤ 2; softmax with k ≥ 3 and thompson (posterior Beta(p(n+k), (1-p)(n+k)))
  use a seeded Monte-Carlo estimate over ``MC_SAMPLES`` draws that includes the actual draw
  (thompson costs MC_SAMPLES x candidates Beta draws, milliseconds: not for a hot web path).
  "Eligible" means it passed every rule *and* ``min_score``: neither exploration nor the control
  group ever picks what a rule removed or what is not worth its cost.
- **Outbound slates.** An outbound decision goes out on one channel. With max_actions > 1 its
  channel is that of the best (greedy) candidate and only candidates whose best channel it is
  take part; the others are removed (``decision_channel``).
- **Quiet hours: defer.** An outbound trigger that can do nothing now *only* because of quiet
  hours (some candidate passed every other rule on a channel that is quiet) is re-armed for the
  earliest end of those quiet hours (timer kind ``TIMER_DEFERRED``, same trigger id, so the
  same decision id and draw), once; nothing is emitted for the deferred attempt. When another
  channel can act now, it does. A deferred firing that still cannot act is logged as no action.
- **No-action outbound decisions** go to the decision log only (no channel wants them); a
  request is always answered on its own channel.
- **Caps count decisions immediately.** Outbound decisions with actions are contacts (one per
  decision, under its first offer) for channel and contact-cap rules; every decision carrying an
  offer counts for that offer's caps and cooldown, inbound ones included (as the strategy
  reference says). "Per day" is since local midnight in the strategy's timezone.
- **Triggers.** ``on`` starts a firing after ``delay`` / ``within`` (a timer in the profile,
  kind ``TIMER_TRIGGER``; a repeated ``on`` restarts it), ``unless`` cancels a firing not yet
  due, ``when`` is checked when the ``on`` event arrives. A trigger's cooldown counts from its
  last firing *that acted*; it is checked when starting and when firing. A timer decides at its
  due time (event time), so live and replay agree.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, Protocol

from rtim.core.attribution import (
    TIMER_ATTRIBUTION,
    add_pending,
    attribute_complaint,
    attribute_outcome,
    expire_pending,
    model_features,
    pending_entry,
    with_timer,
    without_timers,
)
from rtim.core.conditions import Predicate
from rtim.core.durations import format_duration
from rtim.core.engine import Emit, StepContext
from rtim.core.events import Event
from rtim.core.features import Features, FeatureSubset, FeatureValue, compute_features
from rtim.core.profile import DAY_MS, Contact, Profile, TimerEntry
from rtim.core.randomness import DecisionRandom
from rtim.core.strategy import (
    CONTACT,
    Channel,
    ConsentRule,
    ContactCapRule,
    ContextWeight,
    Offer,
    OfferCaps,
    Strategy,
    SuppressRule,
    Trigger,
)

__all__ = [
    "DECISION_LOG_TOPIC",
    "DEFAULT_PRIOR_STRENGTH",
    "MAX_CONTACTS",
    "MC_SAMPLES",
    "TIMER_DEFERRED",
    "TIMER_TRIGGER",
    "Action",
    "Candidate",
    "DecisionResult",
    "DecisionTrigger",
    "NoModels",
    "PropensityModels",
    "StrategyDecider",
    "decide",
    "decision_id_for",
    "decision_rng",
    "event_signals",
    "model_features",
]

DECISION_LOG_TOPIC: Final = "rtim.decision-log"
DEFAULT_PRIOR_STRENGTH: Final = 20.0
MC_SAMPLES: Final = 128
MAX_ACTIONS: Final = 10
MAX_CONTACTS: Final = 256  # kept when some outbound channel has no cap (see _contacts_bound)
TIMER_TRIGGER: Final = "t"
TIMER_DEFERRED: Final = "q"
WEEK_MS: Final = 7 * DAY_MS
_MAX_TIMER_ROUNDS: Final = 1000

# removed_by names of checks that are not named rules
CHANNEL_CONSENT: Final = "channel_consent"
OFFER_CAPS: Final = "offer_caps"
CHANNEL_CAPS: Final = "channel_caps"
QUIET_HOURS: Final = "quiet_hours"
MIN_SCORE: Final = "min_score"
DECISION_CHANNEL: Final = "decision_channel"
_NOT_ALLOWED: Final = ("channel", "not allowed on this channel")

# Signals whose latest time the profile already keeps (no copy in profile["signals"]).
_DERIVED_SIGNALS: Final[dict[str, str]] = {
    "complaint_opened": "last_complaint_ts",
    "add_to_cart": "last_add_to_cart_ts",
    "checkout_start": "last_checkout_ts",
    "purchase_complete": "last_purchase_complete_ts",
    "purchase": "last_purchase_ts",
}


# --- models -----------------------------------------------------------------------------------


class PropensityModels(Protocol):
    """The response models a decider scores with (e.g. ``rtim.core.learning.ModelSet``)."""

    version: str  # logged as Decision.model_version

    def model_id(self, offer_id: str, channel: str) -> str:
        """The model that scores this offer on this channel (the training topic's key)."""
        ...

    def predict(
        self, offer_id: str, channel: str, x: Mapping[str, FeatureValue]
    ) -> tuple[float, int] | None:
        """(probability, examples learned), or None while there is no model."""
        ...


class NoModels:
    """No model yet: every propensity is the offer's prior."""

    version: str = "prior"

    def model_id(self, offer_id: str, channel: str) -> str:
        """Same ids as ``rtim.core.learning.model_id_for``: one model per offer."""
        return "offer." + offer_id

    def predict(
        self, offer_id: str, channel: str, x: Mapping[str, FeatureValue]
    ) -> tuple[float, int] | None:
        return None


_NO_MODELS: Final = NoModels()


# --- ids and randomness -----------------------------------------------------------------------


def decision_id_for(trigger_type: str, trigger_id: str, name: str | None = None) -> str:
    """A short, stable decision id derived from the trigger (16 url-safe characters)."""
    key = f"{trigger_type}\x00{trigger_id}\x00{name or ''}".encode()
    return base64.urlsafe_b64encode(hashlib.blake2b(key, digest_size=12).digest()).decode()


def decision_rng(decision_id: str, seed: int = 0) -> random.Random:
    """The random source of one decision: the same id and seed give the same draws."""
    digest = hashlib.blake2b(f"{seed}\x00{decision_id}".encode(), digest_size=8).digest()
    return DecisionRandom(int.from_bytes(digest, "little"))


def event_signals(event: Event) -> tuple[str, ...]:
    """The strategy's event/outcome names an input event stands for (``EVENT_TYPES``)."""
    r = event.record
    kind = event.kind
    if kind == "click":
        return (r["type"],)
    if kind == "txn":
        t, status = r["type"], r["status"]
        if t == "purchase":
            if status == "approved":
                return ("purchase",)
            return ("purchase_declined",) if status == "declined" else ()
        if status != "approved" and t in ("refund", "payment"):
            return ()
        if t == "refund":
            return ("refund",)
        if t == "payment":
            return ("payment", "salary_payment") if r.get("category") == "salary" else ("payment",)
        if t == "credit_check" and status in ("passed", "failed"):
            return (f"credit_check_{status}",)
        return ()
    if kind == "complaint":
        return ("complaint_opened",) if r["status"] == "opened" else ("complaint_resolved",)
    if kind == "profile":
        if r["type"] == "consent":
            return ("consent_granted",) if r.get("granted") else ("consent_withdrawn",)
        return ()
    if kind == "outcome":
        return (r["type"],)
    return ()


# --- the decision's input and output ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionTrigger:
    """Why a decision runs: a request (its channel) or a strategy trigger (its channels).

    ``id`` is the request id or the id of the event that started the trigger; the decision id
    derives from (type, id, name), so a re-processed or delayed trigger keeps its decision id.
    """

    type: Literal["request", "event"]
    id: str
    channels: tuple[str, ...]
    name: str | None = None
    max_actions: int = 1
    placement: str | None = None
    request_id: str | None = None
    decision_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision_id", decision_id_for(self.type, self.id, self.name))

    @classmethod
    def for_request(cls, record: Mapping[str, Any]) -> DecisionTrigger:
        """The trigger of a ``DecisionRequest`` record."""
        return cls(
            "request",
            record["request_id"],
            (record["channel"],),
            None,
            record.get("max_actions") or 1,
            record.get("placement"),
            record["request_id"],
        )

    @classmethod
    def for_trigger(cls, trigger: Trigger, event_id: str) -> DecisionTrigger:
        """The trigger of a strategy trigger started by event ``event_id``."""
        return cls("event", event_id, trigger.channels, trigger.name, trigger.max_actions)


@dataclass(slots=True)
class Candidate:
    """One offer considered by a decision (a ``Candidate`` of the DecisionRecord).

    Read-only once ``decide`` returns: a candidate removed for a fixed reason (a gate, a channel
    the offer does not use, no consent) is the same in every decision and shared between them.
    """

    offer_id: str
    category: str
    channel: str | None = None
    eligible: bool = False
    removed_by: str | None = None
    removed_reason: str | None = None
    propensity_model: float = 0.0
    value: float = 0.0
    expected_value: float = 0.0
    channel_cost: float = 0.0
    score: float = 0.0
    propensity: float = 0.0
    channel_scores: dict[str, float] = field(default_factory=dict)
    # a shared candidate's record, built once (the same dict in every decision: read-only)
    shared_record: dict[str, Any] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def to_record(self) -> dict[str, Any]:
        """The Avro ``Candidate`` record (of a shared candidate: always the same dict)."""
        if self.shared_record is not None:
            return self.shared_record
        return {
            "offer_id": self.offer_id,
            "category": self.category,
            "channel": self.channel,
            "eligible": self.eligible,
            "removed_by": self.removed_by,
            "removed_reason": self.removed_reason,
            "propensity_model": self.propensity_model,
            "value": self.value,
            "expected_value": self.expected_value,
            "channel_cost": self.channel_cost,
            "score": self.score,
            "propensity": self.propensity,
            "channel_scores": dict(self.channel_scores),
        }


class Action(NamedTuple):
    """A chosen action: the offer, where, its rank, score and logged propensity."""

    offer: Offer
    channel: str
    rank: int
    score: float
    propensity: float
    p_response: float

    @property
    def offer_id(self) -> str:
        return self.offer.id

    def to_record(self) -> dict[str, Any]:
        """The Avro ``Action`` record."""
        return {
            "offer_id": self.offer.id,
            "category": self.offer.category,
            "rank": self.rank,
            "score": self.score,
            "propensity": self.propensity,
            "payload": dict(self.offer.payload),
        }


class DecisionResult(NamedTuple):
    """What ``decide`` concluded. ``actions`` empty = deliberately no action (see ``reasons``).

    Action and DecisionResult are named tuples, not frozen dataclasses: one is built per
    decision and action, at about a third of the cost.

    ``x`` holds the model features of decision time (stored for attribution). ``defer_until``
    is set for an outbound decision that only quiet hours keep from acting.
    """

    decision_id: str
    customer_id: str
    ts: int
    channel: str
    trigger: DecisionTrigger
    actions: tuple[Action, ...]
    candidates: tuple[Candidate, ...]
    control_group: bool
    policy: str
    reasons: tuple[str, ...]
    expires_at: int
    strategy_version: str
    model_version: str
    x: Mapping[str, FeatureValue]
    defer_until: int | None = None

    def decision(self) -> dict[str, Any]:
        """The Avro ``Decision`` record."""
        t = self.trigger
        return {
            "decision_id": self.decision_id,
            "customer_id": self.customer_id,
            "ts": self.ts,
            "channel": self.channel,
            "trigger": {"type": t.type, "id": t.id, "name": t.name},
            "request_id": t.request_id,
            "actions": [a.to_record() for a in self.actions],
            "control_group": self.control_group,
            "strategy_version": self.strategy_version,
            "model_version": self.model_version,
            "reasons": list(self.reasons),
            "expires_at": self.expires_at,
            "placement": t.placement,
        }

    def log_record(
        self,
        features: Mapping[str, FeatureValue],
        ctx: StepContext | None = None,
        decision: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Avro ``DecisionRecord``: the decision, the feature snapshot, every candidate."""
        return {
            "decision": decision if decision is not None else self.decision(),
            "features": dict(features),
            "candidates": [c.to_record() for c in self.candidates],
            "policy": self.policy,
            "input_offsets": dict(ctx.input_offsets) if ctx is not None else {},
            "partition": ctx.partition if ctx is not None else -1,
        }


# --- the strategy, prepared for deciding ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OfferPlan:
    offer: Offer
    channels: frozenset[str]
    capped: bool  # has per-offer caps or a cooldown
    suppress: tuple[SuppressRule, ...]
    consent: tuple[ConsentRule, ...]
    caps: tuple[ContactCapRule, ...]
    weights: tuple[ContextWeight, ...]
    lever: float
    # (removed_by, reason) → the candidate, for the reasons that never change (see Candidate)
    removed: Mapping[tuple[str, str], Candidate]
    # no gate reads `channel`: a decision over several channels evaluates the gates once
    gates_once: bool
    # each gate's predicate with the shared candidate its failure makes (reasons quote the
    # condition): a one-channel decision without `explain` needs no (stage, reason) lookup
    gate_removals: tuple[tuple[Predicate, Candidate], ...]


@dataclass(frozen=True, slots=True)
class _SignalSpec:
    customer: bool
    offer: bool
    category: bool
    horizon_ms: int | None  # the longest `within` of the rules counting from it (None: forever)


class _Plan:
    """Per-strategy lookups, computed once (the strategy is immutable)."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.channels: dict[str, Channel] = dict(strategy.channels)
        self.enabled = frozenset(n for n, c in strategy.channels.items() if c.enabled)
        self.outbound = frozenset(strategy.outbound_channels)
        suppress = strategy.rules_of_kind("suppress")
        self.channel_free = frozenset(
            r.name for r in suppress if r.when is None or "channel" not in r.when.features
        )
        consent = strategy.rules_of_kind("consent")
        caps = strategy.rules_of_kind("contact_cap")
        weights = strategy.arbitration.context_weights
        self.offers: dict[str, _OfferPlan] = {}
        for o in strategy.offers:
            removed = _fixed_removals(o, strategy.channels)
            self.offers[o.id] = _OfferPlan(
                o,
                frozenset(o.channels),
                o.caps != OfferCaps(),
                tuple(r for r in suppress if r.targets(o)),
                tuple(r for r in consent if r.targets(o)),
                tuple(r for r in caps if not r.categories or o.category in r.categories),
                tuple(w for w in weights if w.targets(o)),
                strategy.lever(o),
                removed,
                all("channel" not in cond.features for _stage, cond in o.gates),
                tuple((cond.evaluate, removed[stage, cond.source]) for stage, cond in o.gates),
            )
        self.category_of = {o.id: o.category for o in strategy.offers}
        self.by_channel = {
            ch: tuple(self.offers[o.id] for o in strategy.offers_for_channel(ch))
            for ch in self.enabled
        }
        self.triggers = {t.name: t for t in strategy.triggers}
        # the features each trigger's `when` reads: only those are computed to evaluate it
        self.when_reads = {
            t.name: FeatureSubset(t.when.features) for t in strategy.triggers if t.when is not None
        }
        self.by_trigger = {
            t.name: tuple(
                self.offers[o.id]
                for o in strategy.offers
                if t.targets(o) and any(ch in self.enabled for ch in o.channels if ch in t.channels)
            )
            for t in strategy.triggers
        }
        events = {t.on for t in strategy.triggers} | {t.unless for t in strategy.triggers}
        self.started_by = {e: strategy.triggers_on(e) for e in events if e}
        self.cancelled_by = {e: strategy.triggers_cancelled_by(e) for e in events if e}
        # the signals that start or cancel a trigger; most events are none of them
        self.trigger_signals = frozenset(
            e for e in events if e and (self.started_by[e] or self.cancelled_by[e])
        )
        specs: dict[str, dict[str, Any]] = {}
        contact_horizon = WEEK_MS
        for rule in suppress:
            if rule.after is None:
                continue
            if rule.after == CONTACT:
                contact_horizon = max(contact_horizon, rule.within_ms or WEEK_MS)
                continue
            if rule.scope == "customer" and rule.after in _DERIVED_SIGNALS:
                continue
            spec = specs.setdefault(rule.after, {"scopes": set(), "horizon": 0})
            spec["scopes"].add(rule.scope)
            if spec["horizon"] is not None:
                spec["horizon"] = (
                    None if rule.within_ms is None else max(spec["horizon"], rule.within_ms)
                )
        self.signals = {
            name: _SignalSpec(
                "customer" in s["scopes"], "offer" in s["scopes"], "category" in s["scopes"],
                s["horizon"],
            )
            for name, s in specs.items()
        }  # fmt: skip
        # every key a signal can be remembered under, with its horizon: the strategy's offers
        # and categories only (an outcome's offer id is input data), so the profile's signals
        # are bounded by the strategy and none still counted is ever dropped to make room
        categories = sorted(set(self.category_of.values()))
        self.signal_horizon: dict[str, int | None] = {}
        for name, sig in self.signals.items():
            if sig.customer:
                self.signal_horizon[name] = sig.horizon_ms
            if sig.offer:
                self.signal_horizon.update((f"{name}:{o}", sig.horizon_ms) for o in self.offers)
            if sig.category:
                self.signal_horizon.update((f"{name}@{c}", sig.horizon_ms) for c in categories)
        self.contact_horizon = contact_horizon
        self.max_contacts = _contacts_bound(self, caps, contact_horizon)


def _week_bound(max_per_day: int | None, max_per_week: int | None) -> int | None:
    if max_per_week is not None:
        return max_per_week if max_per_day is None else min(max_per_week, 8 * max_per_day)
    return None if max_per_day is None else 8 * max_per_day  # 7 days touch 8 local days


def _contacts_bound(plan: _Plan, caps: Sequence[ContactCapRule], horizon_ms: int) -> int:
    """How many contacts a profile keeps: every one within ``horizon_ms`` (the longest look-back
    of a rule or cap that counts them), which the strategy's caps bound when every outbound
    channel is capped, alone or by a contact cap over all of them; else ``MAX_CONTACTS``."""
    enabled = plan.outbound & plan.enabled
    per_week: int | None = 0
    for name in enabled:
        channel = plan.channels[name]
        week = _week_bound(channel.max_per_day, channel.max_per_week)
        if week is None or per_week is None:
            per_week = None
        else:
            per_week += week
    for rule in caps:
        week = _week_bound(rule.max_per_day, rule.max_per_week)
        if week is not None and not rule.categories and enabled <= rule.channels:
            per_week = week if per_week is None else min(per_week, week)
    if per_week is None:
        return MAX_CONTACTS
    return max(1, per_week * -(-horizon_ms // WEEK_MS))


def _fixed_removals(
    offer: Offer, channels: Mapping[str, Channel]
) -> dict[tuple[str, str], Candidate]:
    fails = [(stage, cond.source) for stage, cond in offer.gates]
    fails += [(CHANNEL_CONSENT, f"no consent for {ch}") for ch in channels]
    fails.append(_NOT_ALLOWED)
    removals = {fail: _removed(offer, *fail) for fail in fails}
    for candidate in removals.values():
        candidate.shared_record = candidate.to_record()
    return removals


def _removed(offer: Offer, removed_by: str, reason: str) -> Candidate:
    return Candidate(offer.id, offer.category, None, False, removed_by, reason, 0.0, offer.value)


_PLANS: dict[int, _Plan] = {}


def _plan_for(strategy: Strategy) -> _Plan:
    # keyed by identity; the plan holds the strategy, so an id is never reused while cached
    plan = _PLANS.get(id(strategy))
    if plan is None or plan.strategy is not strategy:
        if len(_PLANS) >= 16:
            del _PLANS[next(iter(_PLANS))]
        plan = _PLANS[id(strategy)] = _Plan(strategy)
    return plan


# --- rule checks ------------------------------------------------------------------------------


def _ago(ms: int) -> str:
    return format_duration(max(0, ms - ms % 1000)) if ms >= 1000 else f"{max(ms, 0)}ms"


def _render(value: object) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Ctx:
    """Per-decision lazy lookups (feature views per channel, contact counts, quiet hours)."""

    __slots__ = (
        "_contacts",
        "_day_start",
        "_quiet",
        "_views",
        "explain",
        "features",
        "memo",
        "now",
        "plan",
        "profile",
    )

    def __init__(
        self, plan: _Plan, profile: Profile, features: Features, now: int, explain: bool
    ) -> None:
        self.plan = plan
        self.profile = profile
        self.features = features
        self.now = now
        self.explain = explain
        self._views: dict[str, Features] = {}
        self._quiet: dict[str, bool] = {}
        self._day_start: int | None = None
        self._contacts: list[Contact] | None = None
        # verdicts that depend on the customer and the channel only, not on the offer
        self.memo: dict[tuple[str, str], str | None] = {}

    def view(self, channel: str) -> Features:
        """The features as seen on ``channel`` (the ``channel`` feature set to it)."""
        if self.features.get("channel") == channel:
            return self.features
        view = self._views.get(channel)
        if view is None:
            view = self._views[channel] = {**self.features, "channel": channel}
        return view

    @property
    def day_start(self) -> int:
        if self._day_start is None:
            self._day_start = self.plan.strategy.local_day_start(self.now)
        return self._day_start

    @property
    def week_contacts(self) -> list[Contact]:
        if self._contacts is None:
            start, now = self.now - WEEK_MS, self.now
            self._contacts = [c for c in self.profile.get("contacts", ()) if start < c[0] <= now]
        return self._contacts

    def quiet(self, channel: str) -> bool:
        quiet = self._quiet.get(channel)
        if quiet is None:
            quiet = self._quiet[channel] = self.plan.strategy.in_quiet_hours(channel, self.now)
        return quiet

    def count(self, times: Sequence[int]) -> tuple[int, int]:
        """(today, this week) among ``times``."""
        day, week, now = self.day_start, self.now - WEEK_MS, self.now
        today = sum(1 for t in times if day <= t <= now)
        return today, sum(1 for t in times if week < t <= now)

    def signal_time(self, signal: str, scope: str, offer: Offer) -> int | None:
        """The latest time of ``signal`` that counts for ``offer`` under ``scope``."""
        p = self.profile
        if signal == CONTACT:
            contacts = p.get("contacts", ())
            if scope == "offer":
                times = [c[0] for c in contacts if c[2] == offer.id]
            elif scope == "category":
                category_of = self.plan.category_of
                times = [c[0] for c in contacts if category_of.get(c[2]) == offer.category]
            else:
                times = [c[0] for c in contacts]
            return max(times, default=None)
        if scope == "customer":
            key = _DERIVED_SIGNALS.get(signal)
            if key is not None:
                derived = p.get(key)
                return derived if isinstance(derived, int) and derived else None
            return p.get("signals", {}).get(signal)
        suffix = ":" + offer.id if scope == "offer" else "@" + offer.category
        return p.get("signals", {}).get(signal + suffix)


def _suppressed(rule: SuppressRule, offer: Offer, f: Features, ctx: _Ctx) -> str | None:
    when = rule.when
    if when is not None and not when.evaluate(f):
        return None
    if rule.after is None:
        assert when is not None
        return "while " + (when.explain(f) if ctx.explain else when.source)
    t = ctx.signal_time(rule.after, rule.scope, offer)
    if t is None:
        return None
    age = ctx.now - t
    if rule.within_ms is not None and age > rule.within_ms:
        return None
    within = f" (within {format_duration(rule.within_ms)})" if rule.within_ms else ""
    return f"{rule.after} {_ago(age)} ago{within}"


def _offer_capped(offer: Offer, ctx: _Ctx) -> str | None:
    caps = offer.caps
    if caps.cooldown_ms is not None:
        last = ctx.profile.get("offer_last_shown", {}).get(offer.id)
        if last is not None and ctx.now - last < caps.cooldown_ms:
            return f"cooldown {format_duration(caps.cooldown_ms)}: shown {_ago(ctx.now - last)} ago"
    if caps.max_per_day is not None or caps.max_per_week is not None:
        today, week = ctx.count(ctx.profile.get("offer_shows", {}).get(offer.id, ()))
        if caps.max_per_day is not None and today >= caps.max_per_day:
            return f"{today} today (max {caps.max_per_day} per day)"
        if caps.max_per_week is not None and week >= caps.max_per_week:
            return f"{week} in 7 days (max {caps.max_per_week} per week)"
    return None


def _capped(
    noun: str, day_max: int | None, week_max: int | None, contacts: Sequence[Contact], ctx: _Ctx
) -> str | None:
    today, week = ctx.count([c[0] for c in contacts])
    if day_max is not None and today >= day_max:
        return f"{today} {noun} today (max {day_max} per day)"
    if week_max is not None and week >= week_max:
        return f"{week} {noun} in 7 days (max {week_max} per week)"
    return None


def _check(
    op: _OfferPlan, ch: str, channel: Channel, f: Features, ctx: _Ctx
) -> tuple[str, str] | None:
    """The first check that removes ``op`` on ``ch``: (removed_by, reason), or None."""
    return _check_gates(op, f, ctx) or _check_rules(op, ch, channel, f, ctx)


def _check_gates(op: _OfferPlan, f: Features, ctx: _Ctx) -> tuple[str, str] | None:
    """The first gate of ``op`` that fails on ``f``: (stage, reason), or None."""
    for stage, cond in op.offer.gates:
        if not cond.evaluate(f):
            return stage, cond.explain(f) if ctx.explain else cond.source
    return None


def _check_rules(
    op: _OfferPlan, ch: str, channel: Channel, f: Features, ctx: _Ctx
) -> tuple[str, str] | None:
    """The first check after the gates that removes ``op`` on ``ch`` (see ``_check``)."""
    offer = op.offer
    memo = ctx.memo
    for rule in op.suppress:
        if rule.channels and ch not in rule.channels:
            continue
        if rule.scope == "customer":
            # one verdict for every channel, unless the rule's condition reads the channel
            key = (rule.name, "*" if rule.name in ctx.plan.channel_free else ch)
            if key in memo:
                why = memo[key]
            else:
                why = memo[key] = _suppressed(rule, offer, f, ctx)
        else:
            why = _suppressed(rule, offer, f, ctx)
        if why is not None:
            return rule.name, why
    if channel.consent_required and f.get("consent." + ch) is not True:
        return CHANNEL_CONSENT, f"no consent for {ch}"
    for crule in op.consent:
        if (not crule.channels or ch in crule.channels) and not crule.allows(f):
            return crule.name, f"{crule.feature} is {_render(f.get(crule.feature))}"
    if op.capped:
        why = _offer_capped(offer, ctx)
        if why is not None:
            return OFFER_CAPS, why
    if channel.outbound:
        if channel.max_per_day is not None or channel.max_per_week is not None:
            key = (CHANNEL_CAPS, ch)
            if key in memo:
                why = memo[key]
            else:
                on_channel = [c for c in ctx.week_contacts if c[1] == ch]
                noun = f"{ch} contacts"
                why = _capped(noun, channel.max_per_day, channel.max_per_week, on_channel, ctx)
                memo[key] = why
            if why is not None:
                return CHANNEL_CAPS, why
        for cap in op.caps:
            if ch not in cap.channels:
                continue
            key = (cap.name, "")  # the same count for every offer it caps
            if key in memo:
                why = memo[key]
            else:
                category_of = ctx.plan.category_of
                counted = [
                    c
                    for c in ctx.week_contacts
                    if c[1] in cap.channels
                    and (not cap.categories or category_of.get(c[2]) in cap.categories)
                ]
                why = _capped("contacts", cap.max_per_day, cap.max_per_week, counted, ctx)
                memo[key] = why
            if why is not None:
                return cap.name, why
        # last, so that a candidate removed here passed everything else (see deferral)
        if ctx.quiet(ch):
            return QUIET_HOURS, f"{ch} quiet hours {channel.quiet_hours}"
    return None


# --- choosing ---------------------------------------------------------------------------------


def _blend(
    models: PropensityModels,
    offer: Offer,
    channel: str,
    x: Mapping[str, FeatureValue],
    strength: float,
) -> tuple[float, float]:
    """(propensity, experience): the model blended with the prior by experience."""
    prior = offer.prior_for(channel)
    predicted = models.predict(offer.id, channel, x)
    if predicted is None:
        return prior, 0.0
    p, examples = predicted
    if not 0.0 <= p <= 1.0:
        p = prior if math.isnan(p) else min(max(p, 0.0), 1.0)
    n = max(float(examples), 0.0)
    return (n * p + strength * prior) / (n + strength), n


def _top(scores: Sequence[float], k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def _draw_weighted(weights: list[float], rest: list[int], rng: random.Random) -> int:
    total = math.fsum(weights[i] for i in rest)
    r = rng.random() * total
    for i in rest:
        r -= weights[i]
        if r < 0:
            return i
    return rest[-1]


def _plackett_luce(weights: list[float], k: int, rng: random.Random) -> list[int]:
    rest = list(range(len(weights)))
    out: list[int] = []
    for _ in range(k):
        i = _draw_weighted(weights, rest, rng)
        out.append(i)
        rest.remove(i)
    return out


def _pl_inclusion(weights: list[float], k: int) -> list[float] | None:
    """Exact Plackett-Luce inclusion probabilities for k ≤ 2 (None beyond)."""
    m = len(weights)
    total = math.fsum(weights)
    first = [w / total for w in weights]
    if k == 1:
        return first
    if k != 2:
        return None
    out = list(first)
    for j in range(m):
        rest = math.fsum(weights[i] for i in range(m) if i != j)
        if rest <= 0:
            continue
        for i in range(m):
            if i != j:
                out[i] += first[j] * weights[i] / rest
    return out


def _mc_inclusion(
    draw: Callable[[], list[int]], m: int, first: list[int], samples: int
) -> list[float]:
    counts = [0] * m
    for i in first:
        counts[i] += 1
    for _ in range(samples):
        for i in draw():
            counts[i] += 1
    return [c / (samples + 1) for c in counts]


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 7x as long to build
class _Scored:
    candidate: Candidate
    offer: Offer
    channel: str
    p: float
    experience: float
    multiplier: float  # lever * context weight
    cost: float


def _choose(
    pool: Sequence[_Scored],
    k: int,
    strategy: Strategy,
    *,
    control: bool,
    rng: random.Random,
    strength: float,
) -> tuple[list[int], list[float], str]:
    """Choose k of ``pool``: (chosen indices by rank, inclusion probabilities, how)."""
    m = len(pool)
    scores = [s.candidate.score for s in pool]
    share = strategy.control_group.share
    exploration = strategy.exploration
    policy = exploration.policy
    uniform = k / m
    greedy = _top(scores, k)
    draw: list[int] | None = None
    how = "best"
    if policy == "epsilon_greedy":
        eps = exploration.epsilon
        top = set(greedy)
        pi = [(1.0 - eps) * (i in top) + eps * uniform for i in range(m)]
        if not control:
            explore = rng.random() < eps
            draw = rng.sample(range(m), k) if explore else greedy
            how = f"exploration (epsilon {eps:g}): uniform" if explore else "best"
    elif policy == "softmax":
        t = exploration.temperature
        best = max(scores)
        weights = [max(math.exp((s - best) / t), 1e-300) for s in scores]
        exact = _pl_inclusion(weights, k)
        if not control:
            draw = _plackett_luce(weights, k, rng)
            how = f"softmax draw (temperature {t:g})"
        if exact is not None:
            pi = exact
        else:
            first = draw if draw is not None else _plackett_luce(weights, k, rng)
            pi = _mc_inclusion(lambda: _plackett_luce(weights, k, rng), m, first, MC_SAMPLES)
    elif policy == "thompson":
        arbitration = strategy.arbitration
        params = [
            (
                max(s.p * (s.experience + strength), 1e-9),
                max((1.0 - s.p) * (s.experience + strength), 1e-9),
                s,
            )
            for s in pool
        ]

        def sample() -> list[int]:
            sampled = [
                arbitration.priority(
                    rng.betavariate(a, b), s.offer.value, s.multiplier, 1.0, s.cost
                )
                for a, b, s in params
            ]
            return _top(sampled, k)

        first = sample()
        pi = _mc_inclusion(sample, m, first, MC_SAMPLES)
        if not control:
            draw, how = first, "thompson draw"
    else:
        pi = [1.0 if i in greedy else 0.0 for i in range(m)]
        draw = greedy
    if control:
        draw, how = rng.sample(range(m), k), "control group: uniform"
    assert draw is not None
    probs = [share * uniform + (1.0 - share) * q for q in pi]
    return sorted(draw, key=lambda i: (-scores[i], i)), probs, how


# --- decide -----------------------------------------------------------------------------------


def _summary(candidates: Sequence[Candidate]) -> str:
    counts = Counter(c.removed_by for c in candidates if c.removed_by)
    parts = [f"{name} ({n})" if n > 1 else name for name, n in counts.most_common(4)]
    more = len(counts) - 4
    return "removed by " + ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def decide(  # noqa: PLR0917 - the positional signature is the documented API
    profile: Profile,
    features: Features,
    trigger: DecisionTrigger,
    strategy: Strategy,
    models: PropensityModels | None,
    now: int,
    rng: random.Random,
    *,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    explain: bool = False,
) -> DecisionResult:
    """Decide for one trigger at event time ``now``; pure given ``rng`` (see the module doc).

    ``features`` is the snapshot of ``profile`` at ``now`` (``compute_features``; for a request
    with its channel, placement and context). ``explain=True`` writes gate and rule reasons
    with the feature values (slower); otherwise they quote the condition.
    """
    plan = _plan_for(strategy)
    models = models if models is not None else _NO_MODELS
    control = rng.random() < strategy.control_group.share
    outbound_trigger = trigger.type == "event"
    channels = tuple(ch for ch in trigger.channels if ch in plan.enabled)
    if outbound_trigger:
        ops = plan.by_trigger.get(trigger.name or "", ())
    else:
        ops = plan.by_channel.get(channels[0], ()) if channels else ()
    ctx = _Ctx(plan, profile, features, now, explain)
    lanes = [(ch, plan.channels[ch], ctx.view(ch)) for ch in channels]
    scored_by_model = not isinstance(models, NoModels)
    x = model_features(features) if scored_by_model else None
    candidates: list[Candidate] = []
    pool: list[_Scored] = []
    quiet_channels: set[str] = set()
    min_score = strategy.arbitration.min_score
    priority = strategy.arbitration.priority
    single = lanes[0] if len(lanes) == 1 else None
    for op in ops:
        offer = op.offer
        best: tuple[float, str, float, float] | None = None
        scores: dict[str, float]
        if single is not None:  # a request: one channel, the common and hot case
            ch, chan, f = single
            if ch not in op.channels:
                fail: tuple[str, str] | None = _NOT_ALLOWED
            elif explain:
                fail = _check(op, ch, chan, f, ctx)
            else:
                # most candidates fail a gate: take its shared candidate directly
                removed = None
                for evaluate, if_failed in op.gate_removals:
                    if not evaluate(f):
                        removed = if_failed
                        break
                if removed is not None:
                    candidates.append(removed)
                    continue
                fail = _check_rules(op, ch, chan, f, ctx)
            if fail is not None:
                if fail[0] == QUIET_HOURS:
                    quiet_channels.add(ch)
                candidates.append(op.removed.get(fail) or _removed(offer, *fail))
                continue
            p, n = (
                (offer.prior_for(ch), 0.0)
                if x is None
                else _blend(models, offer, ch, x, prior_strength)
            )
            net = p * offer.value - chan.cost
            scores = {ch: net}  # only for a candidate that is not removed: most are
            best = (net, ch, p, n)
        else:
            scores = {}
            fails: list[tuple[str, str]] = []
            # gates that do not read the channel fail or pass on every channel alike
            gate = _check_gates(op, features, ctx) if op.gates_once else None
            check = _check_rules if op.gates_once else _check
            for ch, chan, f in lanes:
                if ch not in op.channels:
                    continue
                fail = gate or check(op, ch, chan, f, ctx)
                if fail is not None:
                    if fail[0] == QUIET_HOURS:
                        quiet_channels.add(ch)
                    fails.append(fail)
                    continue
                p, n = (
                    (offer.prior_for(ch), 0.0)
                    if x is None
                    else _blend(models, offer, ch, x, prior_strength)
                )
                net = p * offer.value - chan.cost
                scores[ch] = net
                if best is None or net > best[0]:
                    best = (net, ch, p, n)
            if best is None:
                # the first channel names the rule; the reason covers every channel tried
                rule, reason = fails[0] if fails else _NOT_ALLOWED
                if len(fails) > 1:
                    reason = "; ".join(dict.fromkeys(why for _rule, why in fails))
                candidates.append(op.removed.get((rule, reason)) or _removed(offer, rule, reason))
                continue
        _net, ch, p, n = best
        f = single[2] if single is not None else ctx.view(ch)
        weight = 1.0
        for cw in op.weights:
            if cw.when.evaluate(f):
                weight *= cw.weight
        cost = plan.channels[ch].cost
        value, lever = offer.value, op.lever
        score = priority(p, value, lever, weight, cost)
        expected = p * value * lever * weight
        if score < min_score:
            why = f"score {score:.4g} below min_score {min_score:g}"
            candidates.append(
                Candidate(
                    offer.id, offer.category, ch, False, MIN_SCORE, why, p, value, expected, cost,
                    score, 0.0, scores,
                )
            )  # fmt: skip
            continue
        cand = Candidate(
            offer.id, offer.category, ch, True, None, None, p, value, expected, cost, score, 0.0,
            scores,
        )  # fmt: skip
        candidates.append(cand)
        pool.append(_Scored(cand, offer, ch, p, n, lever * weight, cost))

    k_wanted = max(1, min(trigger.max_actions, MAX_ACTIONS))
    if pool and outbound_trigger and k_wanted > 1:
        lead = pool[_top([s.candidate.score for s in pool], 1)[0]].channel
        for s in pool:
            if s.channel != lead:
                s.candidate.eligible = False
                s.candidate.removed_by = DECISION_CHANNEL
                s.candidate.removed_reason = f"best on {s.channel}; this decision goes by {lead}"
        pool = [s for s in pool if s.channel == lead]

    actions: list[Action] = []
    reasons: list[str] = []
    policy = "control" if control else strategy.exploration.policy
    if pool:
        k = min(k_wanted, len(pool))
        chosen, probs, how = _choose(
            pool, k, strategy, control=control, rng=rng, strength=prior_strength
        )
        for s, prob in zip(pool, probs, strict=True):
            s.candidate.propensity = prob
        for rank, i in enumerate(chosen, 1):
            s = pool[i]
            actions.append(Action(s.offer, s.channel, rank, s.candidate.score, probs[i], s.p))
        top = actions[0]
        reasons.append(
            f"{top.offer.id} on {top.channel}: p {top.p_response:.3g}, value "
            f"{top.offer.value:g}, score {top.score:.4g}"
        )
        among = "of" if how == "best" else "among"
        reasons.append(f"{how} {among} {len(pool)} eligible ({len(candidates)} candidates)")
    elif not channels:
        reasons.append(f"no action: channel {', '.join(trigger.channels)} not enabled")
    elif not candidates:
        reasons.append("no action: no offer for this channel")
    else:
        reasons.append(f"no action: none of {len(candidates)} candidates eligible")
        reasons.append(_summary(candidates))

    defer_until = None
    if outbound_trigger and not actions and quiet_channels:
        ends = [strategy.quiet_hours_end(ch, now) for ch in sorted(quiet_channels)]
        defer_until = min((e for e in ends if e is not None), default=None)

    if actions:
        channel = actions[0].channel
        expires_at = min(now + strategy.expires_after_ms(a.offer, a.channel) for a in actions)
    else:
        channel = trigger.channels[0] if trigger.channels else "web"
        configured = plan.channels.get(channel)
        expires_at = now + (configured.expires_after_ms if configured else 0)
    return DecisionResult(
        decision_id=trigger.decision_id,
        customer_id=profile.get("customer_id", ""),
        ts=now,
        channel=channel,
        trigger=trigger,
        actions=tuple(actions),
        candidates=tuple(candidates),
        control_group=control,
        policy=policy,
        reasons=tuple(reasons),
        expires_at=expires_at,
        strategy_version=strategy.version,
        model_version=models.version,
        x=x if x is not None else (model_features(features) if actions else {}),
        defer_until=defer_until,
    )


# --- the decider ------------------------------------------------------------------------------


def _firing_of(names: Collection[str], due_from: int | None = None) -> Callable[[TimerEntry], bool]:
    """Matches pending firings (timers) of the named triggers, optionally only those due from
    ``due_from`` on (a firing already overdue is not cancelled: the trigger's wait is over)."""

    def match(t: TimerEntry) -> bool:
        return (
            t[3] in (TIMER_TRIGGER, TIMER_DEFERRED)
            and t[1] in names
            and (due_from is None or t[0] >= due_from)
        )

    return match


class StrategyDecider:
    """The engine's ``Decider``: answers requests, runs triggers, attributes outcomes.

    ``models`` may be replaced between steps (a new model snapshot). ``counters`` counts what
    happened (decisions, actions, deferrals, outcomes by attribution status, …) for the shell's
    metrics; it never influences a decision.
    """

    def __init__(
        self,
        strategy: Strategy,
        models: PropensityModels | None = None,
        *,
        seed: int = 0,
        prior_strength: float = DEFAULT_PRIOR_STRENGTH,
        explain: bool = False,
    ) -> None:
        self.strategy = strategy
        self.models: PropensityModels = models if models is not None else _NO_MODELS
        self.seed = seed
        self.prior_strength = prior_strength
        self.explain = explain
        self.counters: Counter[str] = Counter()
        self._plan = _plan_for(strategy)

    def rng(self, decision_id: str) -> random.Random:
        """The random source of a decision (from its id and the decider's seed)."""
        return decision_rng(decision_id, self.seed)

    def decide(
        self, profile: Profile, features: Features, trigger: DecisionTrigger, now: int
    ) -> DecisionResult:
        """``decide`` with this decider's strategy, models, seed and settings."""
        return decide(
            profile,
            features,
            trigger,
            self.strategy,
            self.models,
            now,
            self.rng(trigger.decision_id),
            prior_strength=self.prior_strength,
            explain=self.explain,
        )

    # --- Decider protocol -------------------------------------------------------------------

    def on_applied(
        self, before: Profile, after: Profile, event: Event, ctx: StepContext
    ) -> tuple[Profile, list[Emit]]:
        """Answer a request; or record signals, attribute an outcome, start/cancel triggers."""
        if event.kind == "request":
            return self._answer(after, event, ctx)
        signals = event_signals(event)
        p = self._record_signals(after, signals, event)
        emits: list[Emit] = []
        model_id = self.models.model_id
        if event.kind == "outcome":
            result = attribute_outcome(p, event.record, self.strategy, model_id)
            self.counters["outcome_" + result.status] += 1
            p, emits = result.profile, result.emits
        if "complaint_opened" in signals:
            p, more = attribute_complaint(p, event.ts, self._plan.outbound, model_id)
            emits += more
        if signals and not self._plan.trigger_signals.isdisjoint(signals):
            p, more = self._triggers(p, event, signals, ctx)
            emits += more
        if emits:
            self.counters["training_examples"] += sum(e.schema == "TrainingExample" for e in emits)
        return p, emits

    def on_timers(self, profile: Profile, now: int, ctx: StepContext) -> tuple[Profile, list[Emit]]:
        """Handle every timer due at ``now``, in due order; each decides at its due time."""
        p = profile
        emits: list[Emit] = []
        for _ in range(_MAX_TIMER_ROUNDS):
            timers = p.get("timers", ())
            if not timers or timers[0][0] > now:
                break
            due, name, trigger_id, kind = timers[0]
            p = p.copy()
            p["timers"] = timers[1:]
            if kind == TIMER_ATTRIBUTION:
                p, more = expire_pending(p, due, self.models.model_id)
                self.counters["training_examples"] += len(more)
            elif kind in (TIMER_TRIGGER, TIMER_DEFERRED) and name in self._plan.triggers:
                trigger = self._plan.triggers[name]
                p, more = self._fire(
                    p, trigger, trigger_id, due, ctx, deferred=kind == TIMER_DEFERRED
                )
            else:  # a trigger the strategy no longer has, or an unknown kind
                self.counters["timers_dropped"] += 1
                continue
            emits += more
        return p, emits

    def answer_erased(self, profile: Profile, event: Event) -> list[Emit]:
        """A request of an erased customer: no action, and nothing about them in the log."""
        r = event.record
        trigger = DecisionTrigger.for_request(r)
        decision = {
            "decision_id": trigger.decision_id,
            "customer_id": event.customer_id,
            "ts": event.ts,
            "channel": r["channel"],
            "trigger": {"type": "request", "id": trigger.id, "name": None},
            "request_id": trigger.request_id,
            "actions": [],
            "control_group": False,
            "strategy_version": self.strategy.version,
            "model_version": self.models.version,
            "reasons": ["customer erased"],
            "expires_at": event.ts,
            "placement": trigger.placement,
        }
        record = {
            "decision": decision,
            "features": {},
            "candidates": [],
            "policy": "erased",
            "input_offsets": {},
            "partition": -1,
        }
        self.counters["erased_requests"] += 1
        return [
            Emit(f"rtim.decisions.{r['channel']}", event.customer_id, "Decision", decision),
            Emit(DECISION_LOG_TOPIC, event.customer_id, "DecisionRecord", record),
        ]

    # --- internals ----------------------------------------------------------------------------

    def _answer(self, p: Profile, event: Event, ctx: StepContext) -> tuple[Profile, list[Emit]]:
        r = event.record
        features = compute_features(
            p,
            event.ts,
            channel=r["channel"],
            placement=r.get("placement"),
            context=r.get("context"),
            tz=self.strategy.zone,
        )
        result = self.decide(p, features, DecisionTrigger.for_request(r), event.ts)
        return self._emit(p, result, features, ctx)

    def _cooling(self, p: Profile, trigger: Trigger, now: int) -> bool:
        if trigger.cooldown_ms is None:
            return False
        last = p.get("trigger_fired", {}).get(trigger.name)
        return last is not None and now - last < trigger.cooldown_ms

    def _triggers(
        self, p: Profile, event: Event, signals: tuple[str, ...], ctx: StepContext
    ) -> tuple[Profile, list[Emit]]:
        plan = self._plan
        ts = event.ts
        cancel = {t.name for s in signals for t in plan.cancelled_by.get(s, ())}
        if cancel:
            timers = p.get("timers", ())
            kept = without_timers(timers, _firing_of(cancel, due_from=ts))
            if len(kept) != len(timers):
                self.counters["triggers_cancelled"] += len(timers) - len(kept)
                p = p.copy()
                p["timers"] = kept
        emits: list[Emit] = []
        for signal in signals:
            for trigger in plan.started_by.get(signal, ()):
                if self._cooling(p, trigger, ts):
                    self.counters["triggers_cooling"] += 1
                    continue
                if trigger.when is not None:
                    # only the features the condition reads (most triggers read one)
                    f = compute_features(
                        p, ts, trigger=trigger.name, tz=self.strategy.zone,
                        only=plan.when_reads[trigger.name],
                    )  # fmt: skip
                    if not trigger.when.evaluate(f):
                        continue
                if trigger.fire_after_ms <= 0:
                    p, more = self._fire(p, trigger, event.event_id, ts, ctx, deferred=False)
                    emits += more
                    continue
                name = trigger.name
                timers = without_timers(p.get("timers", ()), _firing_of({name}))
                p = p.copy()
                due = ts + trigger.fire_after_ms
                p["timers"] = with_timer(timers, (due, name, event.event_id, TIMER_TRIGGER))
                self.counters["triggers_scheduled"] += 1
        return p, emits

    def _fire(
        self,
        p: Profile,
        trigger: Trigger,
        trigger_id: str,
        now: int,
        ctx: StepContext,
        *,
        deferred: bool,
    ) -> tuple[Profile, list[Emit]]:
        if self._cooling(p, trigger, now):
            self.counters["triggers_cooling"] += 1
            return p, []
        features = compute_features(p, now, trigger=trigger.name, tz=self.strategy.zone)
        result = self.decide(p, features, DecisionTrigger.for_trigger(trigger, trigger_id), now)
        if not result.actions and result.defer_until is not None and not deferred:
            p = p.copy()
            timer = (result.defer_until, trigger.name, trigger_id, TIMER_DEFERRED)
            p["timers"] = with_timer(p.get("timers", ()), timer)
            self.counters["triggers_deferred"] += 1
            return p, []
        self.counters["triggers_fired"] += 1
        return self._emit(p, result, features, ctx)

    def _emit(
        self, p: Profile, result: DecisionResult, features: Features, ctx: StepContext
    ) -> tuple[Profile, list[Emit]]:
        cid = result.customer_id
        decision = result.decision()
        emits: list[Emit] = []
        if result.trigger.type == "request" or result.actions:
            emits.append(Emit(f"rtim.decisions.{result.channel}", cid, "Decision", decision))
        record = result.log_record(features, ctx, decision)
        emits.append(Emit(DECISION_LOG_TOPIC, cid, "DecisionRecord", record))
        counters = self.counters
        counters["decisions"] += 1
        if result.control_group:
            counters["control_group"] += 1
        if not result.actions:
            counters["no_action"] += 1
            return p, emits
        counters["actions"] += len(result.actions)
        p, evicted = self._remember(p, result)
        counters["training_examples"] += len(evicted)
        return p, emits + evicted

    def _remember(self, p: Profile, result: DecisionResult) -> tuple[Profile, list[Emit]]:
        """Count the decision for caps and cooldowns and start attributing its actions."""
        plan = self._plan
        strategy = self.strategy
        now, ch = result.ts, result.channel
        p = p.copy()
        if ch in plan.outbound:
            horizon = now - plan.contact_horizon
            kept = tuple(c for c in p.get("contacts", ()) if c[0] > horizon)
            p["contacts"] = (
                *kept[-(plan.max_contacts - 1) :],
                (now, ch, result.actions[0].offer_id),
            )
        offers = [a.offer for a in result.actions]
        if any(o.caps.cooldown_ms is not None for o in offers):
            # bounded by the strategy: its offers with a cooldown, while it runs
            shown = {
                oid: t
                for oid, t in p.get("offer_last_shown", {}).items()
                if strategy.has_offer(oid)
                and (cooldown := strategy.offer(oid).caps.cooldown_ms) is not None
                and now - t < cooldown
            }
            for o in offers:
                if o.caps.cooldown_ms is not None:
                    shown[o.id] = now
            p["offer_last_shown"] = shown
        if any(o.caps.max_per_day is not None or o.caps.max_per_week is not None for o in offers):
            shows: dict[str, tuple[int, ...]] = {}
            for oid, times in p.get("offer_shows", {}).items():
                recent = tuple(t for t in times if t > now - WEEK_MS)
                if recent and strategy.has_offer(oid):
                    shows[oid] = recent
            for o in offers:
                caps = o.caps
                if caps.max_per_day is None and caps.max_per_week is None:
                    continue
                keep = max(caps.max_per_day or 0, caps.max_per_week or 0, 1)
                shows[o.id] = (*shows.get(o.id, ()), now)[-keep:]
            p["offer_shows"] = shows
        name = result.trigger.name
        if result.trigger.type == "event" and name in plan.triggers:
            fired = {
                name: t
                for name, t in p.get("trigger_fired", {}).items()
                if name in plan.triggers
                and (cooldown := plan.triggers[name].cooldown_ms) is not None
                and now - t < cooldown
            }
            if plan.triggers[name].cooldown_ms is not None:
                fired[name] = now
            if fired or "trigger_fired" in p:
                p["trigger_fired"] = fired
        window = strategy.attribution.window_ms
        entries = [
            pending_entry(
                result.decision_id,
                now,
                ch,
                a.offer_id,
                propensity=a.propensity,
                control_group=result.control_group,
                window_ms=window(a.offer_id, ch),
                x=result.x,
            )
            for a in result.actions
        ]
        return add_pending(p, entries, now, self.models.model_id)

    def _record_signals(self, p: Profile, signals: tuple[str, ...], event: Event) -> Profile:
        """Remember the latest time of signals that suppress rules count from, until the
        longest ``within`` of those rules (bounded by the strategy: see ``_Plan``)."""
        specs, horizon = self._plan.signals, self._plan.signal_horizon
        if specs.keys().isdisjoint(signals):  # most events: no rule counts from their signals
            return p
        keys: list[str] = []
        for signal in signals:
            spec = specs.get(signal)
            if spec is None:
                continue
            if spec.customer:
                keys.append(signal)
            offer_id = event.record.get("offer_id") if event.kind == "outcome" else None
            if offer_id:
                if spec.offer:
                    keys.append(f"{signal}:{offer_id}")
                category = self._plan.category_of.get(offer_id)
                if spec.category and category:
                    keys.append(f"{signal}@{category}")
        keys = [k for k in keys if k in horizon]  # an offer the strategy does not have: none
        if not keys:
            return p
        ts = event.ts
        kept: dict[str, int] = {}
        for key, t in p.get("signals", {}).items():
            if key in horizon and ((h := horizon[key]) is None or ts - t <= h):
                kept[key] = t
        for key in keys:
            if kept.get(key, -1) < ts:
                kept[key] = ts
        p = p.copy()
        p["signals"] = kept
        return p
