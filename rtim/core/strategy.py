"""The strategy as data: channels, offers, rules, triggers, arbitration, exploration, attribution.

``load_strategy`` / ``parse_strategy`` read a YAML strategy, compile every condition and validate
everything at once; every mistake is reported with the file, the YAML line, the path in the file
and what is wrong (``InvalidStrategyError``, a ``StrategyError``). The result is a frozen
``Strategy`` with the lookups the decision engine needs; ``docs/strategy.md`` is the user's
reference.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from rtim.core.conditions import Condition, ConditionSyntaxError, Features, compile_condition
from rtim.core.durations import local_day_start, parse_duration
from rtim.errors import StrategyError

__all__ = [
    "CHANNELS",
    "CONTACT",
    "DEFAULT_PRIOR",
    "EVENT_TYPES",
    "OUTCOME_TYPES",
    "SIGNALS",
    "Arbitration",
    "Attribution",
    "Channel",
    "ConsentRule",
    "ContactCapRule",
    "ContextWeight",
    "ControlGroup",
    "Exploration",
    "InvalidStrategyError",
    "Offer",
    "OfferCaps",
    "QuietHours",
    "Rule",
    "Strategy",
    "StrategyIssue",
    "SuppressRule",
    "Trigger",
    "load_strategy",
    "parse_strategy",
]

Direction: TypeAlias = Literal["inbound", "outbound"]
RuleKind: TypeAlias = Literal["suppress", "contact_cap", "consent"]
Policy: TypeAlias = Literal["greedy", "epsilon_greedy", "softmax", "thompson"]
Scope: TypeAlias = Literal["customer", "offer", "category"]
OutcomeClass: TypeAlias = Literal["positive", "negative", "neutral"]

CHANNELS: Final[tuple[str, ...]] = ("web", "push", "email", "sms", "call_center", "outbound_call")
_DEFAULT_DIRECTION: Final[dict[str, Direction]] = {
    "web": "inbound",
    "push": "outbound",
    "email": "outbound",
    "sms": "outbound",
    "call_center": "inbound",
    "outbound_call": "outbound",
}

#: The events triggers react to (``on``/``unless``) and suppress rules count from (``after``),
#: with what each one means in the input topics.
EVENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "page_view": "clickstream page_view",
        "product_view": "clickstream product_view",
        "search": "clickstream search",
        "add_to_cart": "clickstream add_to_cart",
        "remove_from_cart": "clickstream remove_from_cart",
        "checkout_start": "clickstream checkout_start",
        "purchase_complete": "clickstream purchase_complete (web/app checkout done)",
        "login": "clickstream login",
        "logout": "clickstream logout",
        "purchase": "transaction type purchase, status approved",
        "purchase_declined": "transaction type purchase, status declined",
        "refund": "transaction type refund",
        "payment": "transaction type payment, status approved (salary payments included)",
        "salary_payment": "transaction type payment with category 'salary'",
        "credit_check_passed": "transaction type credit_check, status passed",
        "credit_check_failed": "transaction type credit_check, status failed",
        "complaint_opened": "complaint with status opened",
        "complaint_resolved": "complaint with status resolved",
        "consent_granted": "profile consent event with granted = true",
        "consent_withdrawn": "profile consent event with granted = false",
    }
)
#: Outcome types reported by channel adapters (rtim.outcomes).
OUTCOME_TYPES: Final[tuple[str, ...]] = (
    "delivered",
    "impression",
    "click",
    "accept",
    "convert",
    "dismiss",
    "unsubscribe",
    "bounce",
)
#: The signal "an outbound contact was made" (an outbound decision with an action was emitted).
CONTACT: Final = "contact"
#: Everything a suppress rule may count from with ``after``.
SIGNALS: Final[frozenset[str]] = frozenset(EVENT_TYPES) | frozenset(OUTCOME_TYPES) | {CONTACT}
DEFAULT_PRIOR: Final = 0.05
_DEFAULT_EXPIRY: Final = "1d"
_DEFAULT_ATTRIBUTION: Final = "3d"
_DEFAULT_OUTCOMES: Final[dict[str, tuple[str, ...]]] = {
    "positive": ("click", "accept", "convert"),
    "negative": ("dismiss", "unsubscribe"),
    "neutral": ("delivered", "impression", "bounce"),
}
_DAY_MS: Final = 86_400_000
_POLICIES: Final[tuple[Policy, ...]] = ("greedy", "epsilon_greedy", "softmax", "thompson")
_EXPLORATION_KEYS: Final = ("policy", "epsilon", "temperature")
_T = TypeVar("_T")
_NAME_RE = re.compile(r"[a-z0-9_]+")
_QUIET_RE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")

# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window (local time of the strategy's timezone) without outbound contacts."""

    start: int  # minutes after local midnight
    end: int  # exclusive; may be smaller than start (the window spans midnight)

    def contains(self, minute_of_day: int) -> bool:
        """Whether a local minute of the day (0-1439) lies inside the window."""
        if self.start < self.end:
            return self.start <= minute_of_day < self.end
        return minute_of_day >= self.start or minute_of_day < self.end

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel: inbound (it asks: web, call_center) or outbound (rtim contacts)."""

    name: str
    direction: Direction
    cost: float
    enabled: bool = True
    consent_required: bool = False
    max_per_day: int | None = None
    max_per_week: int | None = None
    quiet_hours: QuietHours | None = None
    expires_after_ms: int = 86_400_000
    description: str = ""

    @property
    def outbound(self) -> bool:
        return self.direction == "outbound"


@dataclass(frozen=True, slots=True)
class OfferCaps:
    """Per customer limits of one offer: decisions carrying it per day / week, and a cooldown."""

    max_per_day: int | None = None
    max_per_week: int | None = None
    cooldown_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """An action rtim may propose.

    Gates, in order: ``eligibility`` (may this customer have it at all), ``applicability``
    (is it relevant now), ``suitability`` (is it in the customer's interest); absent = passes.
    """

    id: str
    category: str
    value: float
    channels: tuple[str, ...]
    eligibility: Condition | None = None
    applicability: Condition | None = None
    suitability: Condition | None = None
    caps: OfferCaps = OfferCaps()
    payload: Mapping[str, str] = field(default_factory=dict, hash=False)
    prior: float = DEFAULT_PRIOR
    channel_priors: Mapping[str, float] = field(default_factory=dict, hash=False)
    lever: float = 1.0
    expires_after_ms: int | None = None
    description: str = ""

    gates: tuple[tuple[str, Condition], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        stages = (
            ("eligibility", self.eligibility),
            ("applicability", self.applicability),
            ("suitability", self.suitability),
        )
        gates = tuple((stage, cond) for stage, cond in stages if cond is not None)
        object.__setattr__(self, "gates", gates)  # the present gates, in evaluation order

    def failed_gate(self, features: Features) -> tuple[str, Condition] | None:
        """The first gate that does not hold for ``features`` as (stage, condition), or None."""
        for stage, cond in self.gates:
            if not cond.evaluate(features):
                return stage, cond
        return None

    def prior_for(self, channel: str) -> float:
        """The response probability to assume before any model: per channel, else the prior."""
        return self.channel_priors.get(channel, self.prior)


@dataclass(frozen=True, slots=True)
class SuppressRule:
    """No targeted offers while ``when`` holds and/or within ``within_ms`` after ``after``.

    Targets: offers of ``categories`` or with ids in ``offers`` (both empty = every offer), on
    ``channels`` (empty = every channel). ``scope`` says whose ``after`` signal counts: the
    customer's (any), the same offer's, or the same category's (outcome and contact signals).
    """

    name: str
    categories: frozenset[str] = frozenset()
    offers: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    after: str | None = None
    scope: Scope = "customer"
    within_ms: int | None = None
    when: Condition | None = None
    description: str = ""
    kind: Literal["suppress"] = field(default="suppress", init=False)

    def targets(self, offer: Offer, channel: str | None = None) -> bool:
        """Whether this rule is about ``offer`` (on ``channel``, when given)."""
        if self.channels and channel is not None and channel not in self.channels:
            return False
        if not self.categories and not self.offers:
            return True
        return offer.category in self.categories or offer.id in self.offers


@dataclass(frozen=True, slots=True)
class ContactCapRule:
    """At most ``max_per_day`` / ``max_per_week`` outbound contacts over ``channels`` together.

    ``channels`` is resolved at load time (absent in the file = every outbound channel);
    ``categories`` empty = contacts of every category count and are capped.
    """

    name: str
    channels: frozenset[str]
    max_per_day: int | None = None
    max_per_week: int | None = None
    categories: frozenset[str] = frozenset()
    description: str = ""
    kind: Literal["contact_cap"] = field(default="contact_cap", init=False)

    def targets(self, offer: Offer, channel: str) -> bool:
        """Whether an action of ``offer`` on ``channel`` is counted and capped by this rule."""
        return channel in self.channels and (
            not self.categories or offer.category in self.categories
        )


@dataclass(frozen=True, slots=True)
class ConsentRule:
    """Targeted offers need the customer's consent for ``purpose`` (feature consent.<purpose>).

    ``missing``: what a customer who never answered counts as — ``deny`` (opt-in) or ``allow``
    (opt-out: only an explicit withdrawal blocks).
    """

    name: str
    purpose: str
    categories: frozenset[str] = frozenset()
    offers: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    missing: Literal["deny", "allow"] = "deny"
    description: str = ""
    kind: Literal["consent"] = field(default="consent", init=False)

    @property
    def feature(self) -> str:
        return f"consent.{self.purpose}"

    def targets(self, offer: Offer, channel: str | None = None) -> bool:
        """Whether this rule is about ``offer`` (on ``channel``, when given)."""
        if self.channels and channel is not None and channel not in self.channels:
            return False
        if not self.categories and not self.offers:
            return True
        return offer.category in self.categories or offer.id in self.offers

    def allows(self, features: Features) -> bool:
        """Whether the customer's consent (``features[self.feature]``) permits the contact."""
        value = features.get(self.feature)
        return value is True or (value is None and self.missing == "allow")


Rule: TypeAlias = SuppressRule | ContactCapRule | ConsentRule


@dataclass(frozen=True, slots=True)
class Trigger:
    """An outbound decision fired by an event.

    On event ``on`` (if ``when`` holds then), a decision runs ``fire_after_ms`` later over the
    targeted offers on ``channels`` — unless event ``unless`` arrived in between.
    """

    name: str
    on: str
    channels: tuple[str, ...]
    offers: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    when: Condition | None = None
    delay_ms: int = 0
    unless: str | None = None
    within_ms: int | None = None
    max_actions: int = 1
    cooldown_ms: int | None = None
    description: str = ""

    @property
    def fire_after_ms(self) -> int:
        """How long after the ``on`` event the decision runs (``within`` or ``delay``)."""
        if self.unless is not None and self.within_ms is not None:
            return self.within_ms
        return self.delay_ms

    def targets(self, offer: Offer) -> bool:
        """Whether ``offer`` is a candidate of this trigger (channels aside)."""
        if not self.categories and not self.offers:
            return True
        return offer.category in self.categories or offer.id in self.offers


@dataclass(frozen=True, slots=True)
class ContextWeight:
    """A multiplier on the priority of targeted offers while ``when`` holds."""

    name: str
    when: Condition
    weight: float
    categories: frozenset[str] = frozenset()
    offers: frozenset[str] = frozenset()

    def targets(self, offer: Offer) -> bool:
        if not self.categories and not self.offers:
            return True
        return offer.category in self.categories or offer.id in self.offers


@dataclass(frozen=True, slots=True)
class Arbitration:
    """priority = propensity^propensity_weight * value^value_weight * lever * context - cost.

    Below ``min_score`` an action is not taken (deliberately no action). The channel of an
    outbound action is the one with the highest ``propensity * value - cost`` (``net_value``).
    """

    propensity_weight: float = 1.0
    value_weight: float = 1.0
    min_score: float = 0.0
    category_levers: Mapping[str, float] = field(default_factory=dict, hash=False)
    context_weights: tuple[ContextWeight, ...] = ()

    def priority(
        self, propensity: float, value: float, lever: float, context_weight: float, cost: float
    ) -> float:
        """The arbitration score of one action on one channel."""
        scaled = float(propensity**self.propensity_weight) * float(value**self.value_weight)
        return scaled * lever * context_weight - cost

    @staticmethod
    def net_value(propensity: float, value: float, cost: float) -> float:
        """Expected value minus the cost of the contact: the channel choice criterion."""
        return propensity * value - cost


@dataclass(frozen=True, slots=True)
class Exploration:
    """How the engine explores: ``epsilon`` is used by epsilon_greedy, ``temperature`` by
    softmax; greedy and thompson use neither."""

    policy: Policy = "greedy"
    epsilon: float = 0.1
    temperature: float = 1.0


@dataclass(frozen=True, slots=True)
class ControlGroup:
    """Share of decisions chosen uniformly at random among eligible actions (flagged)."""

    share: float = 0.0


@dataclass(frozen=True, slots=True)
class Attribution:
    """How long after a decision an outcome is credited to it, and what counts as a success."""

    default_ms: int = 3 * 86_400_000
    channels: Mapping[str, int] = field(default_factory=dict, hash=False)
    offers: Mapping[str, int] = field(default_factory=dict, hash=False)
    positive: frozenset[str] = frozenset(_DEFAULT_OUTCOMES["positive"])
    negative: frozenset[str] = frozenset(_DEFAULT_OUTCOMES["negative"])
    neutral: frozenset[str] = frozenset(_DEFAULT_OUTCOMES["neutral"])

    def window_ms(self, offer_id: str, channel: str) -> int:
        """The attribution window: per offer, else per channel, else the default."""
        if offer_id in self.offers:
            return self.offers[offer_id]
        return self.channels.get(channel, self.default_ms)

    def classify(self, outcome: str) -> OutcomeClass:
        """positive, negative or neutral (outcome types in no list are neutral)."""
        if outcome in self.positive:
            return "positive"
        if outcome in self.negative:
            return "negative"
        return "neutral"


@dataclass(frozen=True)
class Strategy:
    """A validated strategy. Disabled offers, rules and triggers are left out.

    Build it with ``load_strategy``/``parse_strategy``. ``fingerprint`` is a hash of the
    normalised content (not of comments, formatting or the file name): equal fingerprints,
    equal behaviour.
    """

    version: str
    channels: Mapping[str, Channel] = field(hash=False)
    offers: tuple[Offer, ...]
    rules: tuple[Rule, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    arbitration: Arbitration = field(default_factory=Arbitration)
    exploration: Exploration = field(default_factory=Exploration)
    control_group: ControlGroup = field(default_factory=ControlGroup)
    attribution: Attribution = field(default_factory=Attribution)
    timezone: str = "UTC"
    description: str = ""
    source: str = field(default="<strategy>", compare=False)
    fingerprint: str = field(init=False, compare=False)
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _offers: dict[str, Offer] = field(init=False, repr=False, compare=False)
    _by_channel: dict[str, tuple[Offer, ...]] = field(init=False, repr=False, compare=False)
    _rules: dict[str, Rule] = field(init=False, repr=False, compare=False)
    _by_kind: dict[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    _triggers: dict[str, Trigger] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "zone", ZoneInfo(self.timezone))
        setattr_(self, "_offers", {offer.id: offer for offer in self.offers})
        by_channel = {
            name: tuple(o for o in self.offers if name in o.channels)
            for name, channel in self.channels.items()
            if channel.enabled
        }
        setattr_(self, "_by_channel", by_channel)
        setattr_(self, "_rules", {rule.name: rule for rule in self.rules})
        by_kind = {k: tuple(r for r in self.rules if r.kind == k) for k in _RULE_KEYS}
        setattr_(self, "_by_kind", by_kind)
        setattr_(self, "_triggers", {trigger.name: trigger for trigger in self.triggers})
        digest = hashlib.sha256(
            json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        )
        setattr_(self, "fingerprint", digest.hexdigest()[:16])

    # --- lookups ------------------------------------------------------------------------
    def offer(self, offer_id: str) -> Offer:
        """The (enabled) offer with this id; KeyError if there is none."""
        return self._offers[offer_id]

    def has_offer(self, offer_id: str) -> bool:
        return offer_id in self._offers

    def channel(self, name: str) -> Channel:
        """The configured channel; KeyError if it is not configured."""
        return self.channels[name]

    def offers_for_channel(self, channel: str) -> tuple[Offer, ...]:
        """Offers allowed on ``channel``, in file order; () if it is disabled or not configured."""
        return self._by_channel.get(channel, ())

    def offers_in_category(self, category: str) -> tuple[Offer, ...]:
        return tuple(o for o in self.offers if o.category == category)

    def rule(self, name: str) -> Rule:
        return self._rules[name]

    @overload
    def rules_of_kind(self, kind: Literal["suppress"]) -> tuple[SuppressRule, ...]: ...
    @overload
    def rules_of_kind(self, kind: Literal["contact_cap"]) -> tuple[ContactCapRule, ...]: ...
    @overload
    def rules_of_kind(self, kind: Literal["consent"]) -> tuple[ConsentRule, ...]: ...
    def rules_of_kind(self, kind: RuleKind) -> tuple[Rule, ...]:
        """The rules of one kind, in file order."""
        return self._by_kind.get(kind, ())

    def trigger(self, name: str) -> Trigger:
        return self._triggers[name]

    def triggers_on(self, event: str) -> tuple[Trigger, ...]:
        """Triggers that an event of this type starts."""
        return tuple(t for t in self.triggers if t.on == event)

    def triggers_cancelled_by(self, event: str) -> tuple[Trigger, ...]:
        """Triggers whose pending firing an event of this type cancels (their ``unless``)."""
        return tuple(t for t in self.triggers if t.unless == event)

    def trigger_offers(self, trigger: Trigger, channel: str) -> tuple[Offer, ...]:
        """The candidates of ``trigger`` on ``channel``."""
        return tuple(o for o in self.offers_for_channel(channel) if trigger.targets(o))

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(o.category for o in self.offers)

    @property
    def outbound_channels(self) -> tuple[str, ...]:
        """Enabled outbound channels."""
        return tuple(n for n, c in self.channels.items() if c.enabled and c.outbound)

    @property
    def features(self) -> frozenset[str]:
        """Every feature name the strategy reads (conditions and consent rules)."""
        names: set[str] = set()
        for cond in self._conditions():
            names |= cond.features
        names |= {rule.feature for rule in self.rules_of_kind("consent")}
        names |= {f"consent.{n}" for n, ch in self.channels.items() if ch.consent_required}
        return frozenset(names)

    @property
    def events(self) -> frozenset[str]:
        """Event types and signals the strategy reacts to or counts from."""
        names = {t.on for t in self.triggers} | {t.unless for t in self.triggers if t.unless}
        names |= {r.after for r in self.rules_of_kind("suppress") if r.after}
        return frozenset(names)

    def _conditions(self) -> list[Condition]:
        conds: list[Condition] = [c for o in self.offers for _, c in o.gates]
        conds += [r.when for r in self.rules_of_kind("suppress") if r.when is not None]
        conds += [t.when for t in self.triggers if t.when is not None]
        conds += [w.when for w in self.arbitration.context_weights]
        return conds

    # --- arbitration helpers --------------------------------------------------------------
    def lever(self, offer: Offer) -> float:
        """The business lever of an offer: its own times its category's."""
        return offer.lever * self.arbitration.category_levers.get(offer.category, 1.0)

    def context_weight(self, offer: Offer, features: Features) -> float:
        """The product of the context weights that hold for ``offer`` now (1.0 if none)."""
        weight = 1.0
        for cw in self.arbitration.context_weights:
            if cw.targets(offer) and cw.when.evaluate(features):
                weight *= cw.weight
        return weight

    def priority(self, offer: Offer, channel: str, propensity: float, features: Features) -> float:
        """The arbitration score of ``offer`` on ``channel`` (see ``Arbitration``)."""
        return self.arbitration.priority(
            propensity,
            offer.value,
            self.lever(offer),
            self.context_weight(offer, features),
            self.channels[channel].cost,
        )

    def net_value(self, offer: Offer, channel: str, propensity: float) -> float:
        """propensity * value - channel cost: pick the outbound channel where this is highest."""
        return Arbitration.net_value(propensity, offer.value, self.channels[channel].cost)

    def expires_after_ms(self, offer: Offer, channel: str) -> int:
        """How long the channel may act on a decision: the offer's, else the channel's."""
        if offer.expires_after_ms is not None:
            return offer.expires_after_ms
        return self.channels[channel].expires_after_ms

    # --- time helpers -----------------------------------------------------------------------
    def _local(self, now_ms: int) -> datetime:
        return datetime.fromtimestamp(now_ms / 1000, tz=self.zone)

    def in_quiet_hours(self, channel: str, now_ms: int) -> bool:
        """Whether ``channel`` is in its quiet hours at ``now_ms`` (event time, epoch ms)."""
        ch = self.channels.get(channel)
        if ch is None or ch.quiet_hours is None:
            return False
        local = self._local(now_ms)
        return ch.quiet_hours.contains(local.hour * 60 + local.minute)

    def quiet_hours_end(self, channel: str, now_ms: int) -> int | None:
        """When the current quiet hours of ``channel`` end (epoch ms); None if not quiet now."""
        if not self.in_quiet_hours(channel, now_ms):
            return None
        quiet = self.channels[channel].quiet_hours
        assert quiet is not None
        local = self._local(now_ms)
        end = local.replace(hour=quiet.end // 60, minute=quiet.end % 60, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return int(end.timestamp() * 1000)

    def local_day_start(self, now_ms: int) -> int:
        """Local midnight (strategy timezone) of the day of ``now_ms``, as epoch ms."""
        return local_day_start(self._local(now_ms))

    def to_dict(self) -> dict[str, Any]:
        """The normalised content (durations in ms, conditions as text) as plain data."""
        out = _plain(self)
        assert isinstance(out, dict)
        return out


def _plain(obj: object) -> object:
    if isinstance(obj, Condition):
        return obj.source
    if isinstance(obj, QuietHours):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.compare}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, frozenset | set):
        return sorted(obj)
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrategyIssue:
    """One problem in a strategy file, located."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class InvalidStrategyError(StrategyError):
    """A strategy has one or more problems; ``issues`` lists them, the message shows them all."""

    def __init__(self, issues: Sequence[StrategyIssue]) -> None:
        self.issues = tuple(issues)
        if len(self.issues) == 1:
            message = str(self.issues[0])
        else:
            source = self.issues[0].source if self.issues else "<strategy>"
            lines = "\n".join(f"  {issue}" for issue in self.issues)
            message = f"{source}: {len(self.issues)} problems\n{lines}"
        super().__init__(message)


# --- YAML with line numbers -------------------------------------------------------------------

Path_: TypeAlias = tuple[str | int, ...]
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~5x faster


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Safe loading with YAML 1.2 booleans: `on`, `off`, `yes`, `no` stay text (`on:` is a key
    of triggers, and `yes` meaning true is a classic surprise)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_Duplicate: TypeAlias = tuple[Path_, int, str]


def _read_yaml(text: str, source: str) -> tuple[object, dict[Path_, int], list[_Duplicate]]:
    """Parse YAML; also map each path (keys and list indexes) to its line, and find duplicate
    keys (which YAML itself silently resolves to the last)."""
    lines: dict[Path_, int] = {}
    duplicates: list[_Duplicate] = []
    active: set[int] = set()

    def index(node: yaml.Node, path: Path_) -> None:
        if id(node) in active:  # a recursive alias
            return
        active.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in seen:
                    msg = f"duplicate key '{key}' (first at line {seen[key]})"
                    duplicates.append(((*path, key), line, msg))
                    continue
                seen[key] = line
                lines.setdefault((*path, key), line)
                index(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault((*path, i), item.start_mark.line + 1)
                index(item, (*path, i))
        active.discard(id(node))

    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, duplicates
        lines[()] = node.start_mark.line + 1
        index(node, ())
        return loader.construct_document(node), lines, duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        column = f" (column {mark.column + 1})" if mark is not None else ""
        issue = StrategyIssue(source, line, "", f"invalid YAML: {problem}{column}")
        raise InvalidStrategyError([issue]) from None
    except yaml.YAMLError as exc:
        raise InvalidStrategyError(
            [StrategyIssue(source, None, "", f"invalid YAML: {exc}")]
        ) from None
    finally:
        loader.dispose()


def _render_path(path: Path_, labels: Mapping[Path_, str] | None = None) -> str:
    out = ""
    for k, seg in enumerate(path):
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
        label = labels.get(path[: k + 1]) if labels else None
        if label:
            out += f" ({label})"
    return out


# --- validation -----------------------------------------------------------------------------


def _suggest(word: str, options: Collection[str], *, list_all: bool = False) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if match:
        return f" (did you mean '{match[0]}'?)"
    if list_all and options:
        return f"; expected one of: {', '.join(options)}"
    return ""


def _what(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _feature_catalogue(known: Collection[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Split a catalogue into exact names and prefix families (``attr.*``, ``attr.<x>``)."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for name in known:
        if "<" in name:
            prefixes.append(name[: name.index("<")])
        elif name.endswith(".*"):
            prefixes.append(name[:-1])
        elif name.endswith("."):
            prefixes.append(name)
        else:
            exact.add(name)
    return frozenset(exact), tuple(prefixes)


_CHANNEL_FAMILIES: Final = ("contacts_today.",)

_TOP_KEYS: Final = (
    "strategy_version",
    "description",
    "timezone",
    "channels",
    "offers",
    "rules",
    "triggers",
    "arbitration",
    "exploration",
    "control_group",
    "attribution",
)
_CHANNEL_KEYS: Final = (
    "direction",
    "cost",
    "enabled",
    "consent_required",
    "max_per_day",
    "max_per_week",
    "quiet_hours",
    "expires_after",
    "description",
)
_OFFER_KEYS: Final = (
    "id",
    "category",
    "value",
    "channels",
    "description",
    "eligibility",
    "applicability",
    "suitability",
    "caps",
    "payload",
    "prior",
    "channel_priors",
    "lever",
    "expires_after",
    "enabled",
)
_RULE_COMMON: Final = ("name", "kind", "description", "enabled")
_RULE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "suppress": (
        *_RULE_COMMON,
        "categories",
        "offers",
        "channels",
        "after",
        "scope",
        "within",
        "when",
    ),
    "contact_cap": (*_RULE_COMMON, "max_per_day", "max_per_week", "channels", "categories"),
    "consent": (*_RULE_COMMON, "purpose", "categories", "offers", "channels", "missing"),
}
_TRIGGER_KEYS: Final = (
    "name",
    "on",
    "description",
    "enabled",
    "when",
    "delay",
    "unless",
    "within",
    "channels",
    "offers",
    "categories",
    "max_actions",
    "cooldown",
)


class _Reader:
    """Reads plain data into the model, collecting located issues instead of stopping."""

    def __init__(
        self, source: str, lines: dict[Path_, int], known_features: Collection[str] | None
    ) -> None:
        self.source = source
        self.lines = lines
        self.issues: list[StrategyIssue] = []
        self.labels: dict[Path_, str] = {}
        self.catalogue = None if known_features is None else _feature_catalogue(known_features)
        self.channels: dict[str, Channel] = {}
        self.offer_ids: dict[str, Path_] = {}
        self.categories: set[str] = set()
        self.offer_channels: dict[str, tuple[str, ...]] = {}
        self.all_offers: list[Offer] = []

    # --- reporting ---------------------------------------------------------------------------
    def line(self, path: Path_) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: Path_, message: str) -> None:
        self.issues.append(
            StrategyIssue(self.source, self.line(path), _render_path(path, self.labels), message)
        )

    # --- primitive readers -------------------------------------------------------------------
    def maybe(
        self, m: Mapping[str, Any], key: str, path: Path_, read: Callable[..., _T | None], **kw: Any
    ) -> _T | None:
        """Read the optional ``m[key]`` with ``read``; absent or null gives None."""
        if m.get(key) is None:
            return None
        return read(m[key], (*path, key), **kw)

    def mapping(
        self,
        value: object,
        path: Path_,
        keys: Sequence[str],
        required: Sequence[str] = (),
        what: str = "",
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping (key: value), got {_what(value)}")
            return None
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.error(path, f"keys must be text, got {_what(key)}")
            elif key not in keys:
                self.error(
                    (*path, key),
                    f"unknown key '{key}'{what}{_suggest(key, keys, list_all=True)}",
                )
            else:
                out[key] = item
        for key in required:
            if value.get(key) is None:
                self.error(path, f"missing required key '{key}'")
        return out

    def text(self, value: object, path: Path_) -> str | None:
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, int | float) else ""
            self.error(path, f"expected text, got {_what(value)}{hint}")
            return None
        return value

    def ident(self, value: object, path: Path_, what: str) -> str | None:
        text = self.text(value, path)
        if text is not None and not _NAME_RE.fullmatch(text):
            self.error(path, f"invalid {what} '{text}': use lowercase letters, digits and '_' only")
            return None
        return text

    def number(
        self,
        value: object,
        path: Path_,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        below: float | None = None,
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, f"expected a number, got {_what(value)}")
            return None
        number = float(value)
        problem = None
        if above is not None and below is not None and not above < number < below:
            problem = f"must be between {above:g} and {below:g} (exclusive)"
        elif minimum is not None and maximum is not None and not minimum <= number <= maximum:
            problem = f"must be between {minimum:g} and {maximum:g}"
        elif minimum is not None and number < minimum:
            problem = f"must be at least {minimum:g}"
        elif above is not None and number <= above:
            problem = f"must be more than {above:g}"
        elif not math.isfinite(number):
            problem = "must be a finite number"
        if problem:
            self.error(path, f"{problem}, got {value}")
            return None
        return number

    def integer(self, value: object, path: Path_, *, minimum: int = 0) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected a whole number, got {_what(value)}")
            return None
        if value < minimum:
            self.error(path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def boolean(self, value: object, path: Path_) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {_what(value)}")
            return None
        return value

    def duration(self, value: object, path: Path_, *, positive: bool = True) -> int | None:
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None
        if positive and ms <= 0:
            self.error(path, f"must be longer than 0, got {value}")
            return None
        return ms

    def choice(self, value: object, path: Path_, options: Sequence[str], what: str) -> str | None:
        if not isinstance(value, str) or value not in options:
            shown = value if isinstance(value, str) else _what(value)
            self.error(
                path, f"unknown {what} '{shown}'{_suggest(str(value), options, list_all=True)}"
            )
            return None
        return value

    def condition(self, value: object, path: Path_) -> Condition | None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            self.error(path, f"expected a condition as text (e.g. 'age >= 18'), got {_what(value)}")
            return None
        try:
            cond = compile_condition(value)
        except ConditionSyntaxError as exc:
            self.error(path, f"{exc.message} in condition: {value}")
            return None
        for name in sorted(cond.features):
            problem = self.feature_problem(name)
            if problem:
                self.error(path, problem)
        return cond

    def feature_problem(self, name: str) -> str | None:
        if self.catalogue is None:
            return None
        exact, prefixes = self.catalogue
        if name in exact:
            return None
        family = next((p for p in prefixes if name.startswith(p) and len(name) > len(p)), None)
        if family is not None:
            suffix = name[len(family) :]
            if family in _CHANNEL_FAMILIES and suffix not in CHANNELS:
                return f"unknown channel '{suffix}' in feature '{name}'{_suggest(suffix, CHANNELS)}"
            return None
        candidates = set(exact)
        if "." in name:
            rest = name.split(".", 1)[1]
            candidates |= {p + rest for p in prefixes}
        return f"unknown feature '{name}'{_suggest(name, sorted(candidates))}"

    def names(self, value: object, path: Path_, what: str) -> list[str]:
        """A list of identifiers (a single one is accepted too)."""
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(path, f"expected a list of {what}s, got {_what(value)}")
            return []
        out: list[str] = []
        for i, item in enumerate(value):
            name = self.ident(item, (*path, i), what)
            if name is None:
                continue
            if name in out:
                self.error((*path, i), f"{what} '{name}' is listed twice")
                continue
            out.append(name)
        return out

    def channel_refs(self, value: object, path: Path_) -> list[str]:
        out: list[str] = []
        for i, name in enumerate(self.names(value, path, "channel")):
            if self.channel_ref(name, (*path, i)):
                out.append(name)
        return out

    def channel_ref(self, name: str, path: Path_) -> bool:
        if name not in CHANNELS:
            self.error(path, f"unknown channel '{name}'{_suggest(name, CHANNELS, list_all=True)}")
            return False
        if name not in self.channels:
            self.error(path, f"channel '{name}' is not configured under channels")
            return False
        return True

    def category_refs(self, value: object, path: Path_) -> frozenset[str]:
        out = self.names(value, path, "category")
        for i, name in enumerate(out):
            if name not in self.categories:
                self.error(
                    (*path, i),
                    f"unknown category '{name}'{_suggest(name, sorted(self.categories))}: "
                    "no offer has it",
                )
        return frozenset(out)

    def offer_refs(self, value: object, path: Path_) -> frozenset[str]:
        out = self.names(value, path, "offer")
        for i, name in enumerate(out):
            if name not in self.offer_ids:
                self.error(
                    (*path, i), f"unknown offer '{name}'{_suggest(name, sorted(self.offer_ids))}"
                )
        return frozenset(out)

    def event(self, value: object, path: Path_, options: Collection[str], what: str) -> str | None:
        name = self.text(value, path)
        if name is None:
            return None
        if name not in options:
            self.error(path, f"unknown {what} '{name}'{_suggest(name, sorted(options))}")
            return None
        return name

    # --- sections ----------------------------------------------------------------------------
    def read(self, data: object) -> Strategy | None:
        if data is None:
            self.error((), "the strategy is empty")
            return None
        top = self.mapping(data, (), _TOP_KEYS, required=("strategy_version", "channels", "offers"))
        if top is None:
            return None
        version = self.maybe(top, "strategy_version", (), self.text)
        description = self.maybe(top, "description", (), self.text) or ""
        timezone = self.read_timezone(top.get("timezone", "UTC"))
        self.read_channels(top.get("channels"))
        offers = self.read_offers(top.get("offers"))
        rules = self.read_rules(top.get("rules"))
        triggers = self.read_triggers(top.get("triggers"))
        arbitration = self.read_arbitration(top.get("arbitration"))
        exploration = self.read_exploration(top.get("exploration"))
        control_group = self.read_control_group(top.get("control_group"))
        attribution = self.read_attribution(top.get("attribution"))
        if self.issues or version is None or timezone is None:
            return None
        return Strategy(
            version=version,
            channels=dict(self.channels),
            offers=tuple(offers),
            rules=tuple(rules),
            triggers=tuple(triggers),
            arbitration=arbitration,
            exploration=exploration,
            control_group=control_group,
            attribution=attribution,
            timezone=timezone,
            description=description,
            source=self.source,
        )

    def read_timezone(self, value: object) -> str | None:
        name = self.text(value, ("timezone",))
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.error(
                ("timezone",),
                f"unknown timezone '{name}'{_suggest(name, sorted(available_timezones()))}"
                " (use an IANA name such as Europe/Amsterdam or UTC)",
            )
            return None
        return name

    def read_channels(self, value: object) -> None:
        path: Path_ = ("channels",)
        if not isinstance(value, dict) or not value:
            self.error(path, f"expected a mapping of channels ({', '.join(CHANNELS)})")
            return
        for name, spec in value.items():
            cpath: Path_ = (*path, str(name))
            if name not in CHANNELS:
                hint = _suggest(str(name), CHANNELS, list_all=True)
                self.error(cpath, f"unknown channel '{name}'{hint}")
                continue
            m = self.mapping(spec, cpath, _CHANNEL_KEYS, required=("cost",))
            if m is None:  # reported; registered anyway to spare follow-up errors
                self.channels[name] = Channel(name, _DEFAULT_DIRECTION[name], 0.0)
                continue
            direction = self.choice(
                m.get("direction", _DEFAULT_DIRECTION[name]),
                (*cpath, "direction"),
                ("inbound", "outbound"),
                "direction",
            )
            outbound = direction == "outbound"
            cost = self.maybe(m, "cost", cpath, self.number, minimum=0)
            enabled = self.boolean(m.get("enabled", True), (*cpath, "enabled"))
            consent = self.boolean(
                m.get("consent_required", outbound), (*cpath, "consent_required")
            )
            for key in ("max_per_day", "max_per_week", "quiet_hours"):
                if m.get(key) is not None and not outbound:
                    what = "caps count" if key.startswith("max") else "quiet hours apply to"
                    self.error((*cpath, key), f"{what} outbound contacts, but {name} is inbound")
            expires = self.duration(
                m.get("expires_after", _DEFAULT_EXPIRY), (*cpath, "expires_after")
            )
            # Registered even when a field is wrong (already reported), so that references to
            # the channel do not produce follow-up errors.
            self.channels[name] = Channel(
                name=name,
                direction="outbound" if outbound else "inbound",
                cost=cost or 0.0,
                enabled=bool(enabled),
                consent_required=bool(consent),
                max_per_day=self.maybe(m, "max_per_day", cpath, self.integer, minimum=1)
                if outbound
                else None,
                max_per_week=self.maybe(m, "max_per_week", cpath, self.integer, minimum=1)
                if outbound
                else None,
                quiet_hours=self.maybe(m, "quiet_hours", cpath, self.quiet_hours)
                if outbound
                else None,
                expires_after_ms=expires or _DAY_MS,
                description=self.maybe(m, "description", cpath, self.text) or "",
            )

    def quiet_hours(self, value: object, path: Path_) -> QuietHours | None:
        text = self.text(value, path)
        if text is None:
            return None
        match = _QUIET_RE.fullmatch(text.strip())
        minutes = []
        if match:
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
                minutes = [h1 * 60 + m1, h2 * 60 + m2]
        if not minutes:
            self.error(path, f"invalid quiet hours '{text}': write HH:MM-HH:MM, e.g. 21:00-08:00")
            return None
        if minutes[0] == minutes[1]:
            self.error(path, f"quiet hours '{text}' start and end at the same time")
            return None
        return QuietHours(minutes[0], minutes[1])

    def read_offers(self, value: object) -> list[Offer]:
        path: Path_ = ("offers",)
        if not isinstance(value, list) or not value:
            self.error(path, f"expected a list of offers, got {_what(value)}")
            return []
        # First pass: ids and categories, so that references from anywhere resolve.
        for i, spec in enumerate(value):
            if not isinstance(spec, dict):
                continue
            oid, cat = spec.get("id"), spec.get("category")
            if isinstance(oid, str):
                self.labels[(*path, i)] = oid
                if oid in self.offer_ids:
                    first = self.line(self.offer_ids[oid])
                    self.error(
                        (*path, i, "id"), f"duplicate offer id '{oid}' (first at line {first})"
                    )
                else:
                    self.offer_ids[oid] = (*path, i)
            if isinstance(cat, str) and _NAME_RE.fullmatch(cat):
                self.categories.add(cat)
        offers: list[Offer] = []
        for i, spec in enumerate(value):
            offer, enabled = self.read_offer(spec, (*path, i))
            if offer is not None:
                self.all_offers.append(offer)
                if enabled:
                    offers.append(offer)
        return offers

    def read_offer(self, spec: object, path: Path_) -> tuple[Offer | None, bool]:
        m = self.mapping(spec, path, _OFFER_KEYS, required=("id", "category", "value", "channels"))
        if m is None:
            return None, False
        oid = self.maybe(m, "id", path, self.ident, what="offer id")
        category = self.maybe(m, "category", path, self.ident, what="category")
        value = self.maybe(m, "value", path, self.number, minimum=0)
        channels = self.maybe(m, "channels", path, self.channel_refs) or []
        if isinstance(m.get("channels"), list) and not m["channels"]:
            self.error((*path, "channels"), "an offer needs at least one channel")
        gates = {
            stage: self.maybe(m, stage, path, self.condition)
            for stage in ("eligibility", "applicability", "suitability")
        }
        caps = OfferCaps()
        cm = self.maybe(
            m, "caps", path, self.mapping, keys=("max_per_day", "max_per_week", "cooldown")
        )
        if cm is not None:
            cpath = (*path, "caps")
            caps = OfferCaps(
                max_per_day=self.maybe(cm, "max_per_day", cpath, self.integer, minimum=1),
                max_per_week=self.maybe(cm, "max_per_week", cpath, self.integer, minimum=1),
                cooldown_ms=self.maybe(cm, "cooldown", cpath, self.duration),
            )
        prior = self.maybe(m, "prior", path, self.number, above=0, below=1)
        listed = m.get("channels")
        channel_priors = self.channel_priors(
            m.get("channel_priors"),
            (*path, "channel_priors"),
            channels,
            listed if isinstance(listed, list) else [],
        )
        lever = self.maybe(m, "lever", path, self.number, minimum=0)
        enabled = self.boolean(m.get("enabled", True), (*path, "enabled"))
        if oid is None or category is None or value is None:
            return None, False
        offer = Offer(
            id=oid,
            category=category,
            value=value,
            channels=tuple(channels),
            eligibility=gates["eligibility"],
            applicability=gates["applicability"],
            suitability=gates["suitability"],
            caps=caps,
            payload=self.payload(m.get("payload"), (*path, "payload")),
            prior=DEFAULT_PRIOR if prior is None else prior,
            channel_priors=channel_priors,
            lever=1.0 if lever is None else lever,
            expires_after_ms=self.maybe(m, "expires_after", path, self.duration),
            description=self.maybe(m, "description", path, self.text) or "",
        )
        return offer, bool(enabled)

    def channel_priors(
        self, value: object, path: Path_, channels: Sequence[str], listed: Sequence[object]
    ) -> dict[str, float]:
        """Priors per channel; ``channels`` are the offer's valid channels, ``listed`` as written
        (a channel already reported as invalid is not reported again here)."""
        out: dict[str, float] = {}
        if value is None:
            return out
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping channel: prior, got {_what(value)}")
            return out
        for key, prior in value.items():
            ch = str(key)
            if ch in listed and ch not in channels:
                continue
            if ch not in channels:
                if self.channel_ref(ch, (*path, ch)):
                    self.error((*path, ch), f"the offer is not allowed on {ch}")
                continue
            got = self.number(prior, (*path, ch), above=0, below=1)
            if got is not None:
                out[ch] = got
        return out

    def payload(self, value: object, path: Path_) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping of text values, got {_what(value)}")
            return {}
        out: dict[str, str] = {}
        for key, item in value.items():
            if isinstance(item, str):
                out[str(key)] = item
            elif isinstance(item, int | float) and not isinstance(item, bool):
                out[str(key)] = str(item)
            else:
                self.error((*path, str(key)), f"payload values are text, got {_what(item)}")
        return out

    def targets(self, m: dict[str, Any], path: Path_) -> tuple[frozenset[str], frozenset[str]]:
        categories = self.maybe(m, "categories", path, self.category_refs)
        offers = self.maybe(m, "offers", path, self.offer_refs)
        return categories or frozenset(), offers or frozenset()

    def read_named_list(
        self, value: object, path: Path_, what: str
    ) -> list[tuple[Path_, dict[str, Any]]]:
        """Items of a list of mappings with unique `name`s (labels set for messages)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list of {what}s, got {_what(value)}")
            return []
        seen: dict[str, Path_] = {}
        items: list[tuple[Path_, dict[str, Any]]] = []
        for i, spec in enumerate(value):
            ipath = (*path, i)
            if not isinstance(spec, dict):
                self.error(ipath, f"expected a {what} (a mapping), got {_what(spec)}")
                continue
            name = spec.get("name")
            if isinstance(name, str):
                self.labels[ipath] = name
                if name in seen:
                    first = self.line(seen[name])
                    msg = f"duplicate {what} name '{name}' (first at line {first})"
                    self.error((*ipath, "name"), msg)
                else:
                    seen[name] = ipath
            items.append((ipath, spec))
        return items

    def read_rules(self, value: object) -> list[Rule]:
        rules: list[Rule] = []
        for path, spec in self.read_named_list(value, ("rules",), "rule"):
            if spec.get("kind") is None:
                self.error(path, "missing required key 'kind' (suppress, contact_cap or consent)")
                continue
            kind = self.choice(spec["kind"], (*path, "kind"), tuple(_RULE_KEYS), "rule kind")
            if kind is None:
                continue
            keys = _RULE_KEYS[kind]
            m = self.mapping(spec, path, keys, required=("name",), what=f" for a {kind} rule")
            if m is None:
                continue
            name = self.maybe(m, "name", path, self.ident, what="rule name")
            description = self.maybe(m, "description", path, self.text) or ""
            enabled = self.boolean(m.get("enabled", True), (*path, "enabled"))
            rule: Rule | None
            if kind == "suppress":
                rule = self.suppress_rule(m, path, name or "", description)
            elif kind == "contact_cap":
                rule = self.contact_cap_rule(m, path, name or "", description)
            else:
                rule = self.consent_rule(m, path, name or "", description)
            if rule is not None and name is not None and enabled:
                rules.append(rule)
        return rules

    def suppress_rule(
        self, m: dict[str, Any], path: Path_, name: str, description: str
    ) -> SuppressRule | None:
        categories, offers = self.targets(m, path)
        channels = self.maybe(m, "channels", path, self.channel_refs) or []
        if m.get("after") is None and m.get("when") is None:
            self.error(path, "a suppress rule needs 'after' (with 'within') or 'when'")
        after = self.maybe(m, "after", path, self.event, options=SIGNALS, what="event or signal")
        if m.get("after") is not None and m.get("within") is None:
            self.error(path, "'after' needs 'within' (how long the suppression lasts)")
        within = self.maybe(m, "within", path, self.duration)
        if m.get("within") is not None and m.get("after") is None:
            self.error((*path, "within"), "'within' needs 'after' (the event it counts from)")
        scope = self.choice(
            m.get("scope", "customer"),
            (*path, "scope"),
            ("customer", "offer", "category"),
            "scope",
        )
        if scope in ("offer", "category") and after in EVENT_TYPES:
            self.error(
                (*path, "scope"),
                f"scope '{scope}' needs an outcome or contact signal in 'after'; "
                f"'{after}' is a customer event",
            )
        when = self.maybe(m, "when", path, self.condition)
        return SuppressRule(
            name=name,
            categories=categories,
            offers=offers,
            channels=frozenset(channels),
            after=after,
            scope="offer"
            if scope == "offer"
            else "category"
            if scope == "category"
            else "customer",
            within_ms=within,
            when=when,
            description=description,
        )

    def contact_cap_rule(
        self, m: dict[str, Any], path: Path_, name: str, description: str
    ) -> ContactCapRule | None:
        if m.get("max_per_day") is None and m.get("max_per_week") is None:
            self.error(path, "a contact_cap rule needs 'max_per_day' and/or 'max_per_week'")
        if m.get("channels") is None:
            channels = [n for n, c in self.channels.items() if c.outbound]
        else:
            channels = self.channel_refs(m["channels"], (*path, "channels"))
            for i, ch in enumerate(channels):
                if not self.channels[ch].outbound:
                    self.error(
                        (*path, "channels", i),
                        f"contact caps count outbound contacts, but {ch} is inbound",
                    )
        return ContactCapRule(
            name=name,
            channels=frozenset(channels),
            max_per_day=self.maybe(m, "max_per_day", path, self.integer, minimum=0),
            max_per_week=self.maybe(m, "max_per_week", path, self.integer, minimum=0),
            categories=self.maybe(m, "categories", path, self.category_refs) or frozenset(),
            description=description,
        )

    def consent_rule(
        self, m: dict[str, Any], path: Path_, name: str, description: str
    ) -> ConsentRule | None:
        if m.get("purpose") is None:
            self.error(path, "missing required key 'purpose' (e.g. marketing, or a channel name)")
        purpose = self.maybe(m, "purpose", path, self.ident, what="consent purpose")
        if purpose is not None:
            problem = self.feature_problem(f"consent.{purpose}")
            if problem:
                self.error((*path, "purpose"), problem)
        categories, offers = self.targets(m, path)
        channels = self.maybe(m, "channels", path, self.channel_refs) or []
        missing = self.choice(
            m.get("missing", "deny"), (*path, "missing"), ("deny", "allow"), "value"
        )
        if purpose is None or missing is None:
            return None
        return ConsentRule(
            name=name,
            purpose=purpose,
            categories=categories,
            offers=offers,
            channels=frozenset(channels),
            missing="allow" if missing == "allow" else "deny",
            description=description,
        )

    def read_triggers(self, value: object) -> list[Trigger]:
        triggers: list[Trigger] = []
        for path, spec in self.read_named_list(value, ("triggers",), "trigger"):
            m = self.mapping(spec, path, _TRIGGER_KEYS, required=("name", "on", "channels"))
            if m is None:
                continue
            trigger = self.trigger(m, path)
            if trigger is not None and self.boolean(m.get("enabled", True), (*path, "enabled")):
                triggers.append(trigger)
        return triggers

    def trigger(self, m: dict[str, Any], path: Path_) -> Trigger | None:
        name = self.maybe(m, "name", path, self.ident, what="trigger name")
        on = self.maybe(m, "on", path, self.event, options=EVENT_TYPES, what="event")
        unless = self.maybe(m, "unless", path, self.event, options=EVENT_TYPES, what="event")
        if unless is not None and unless == on:
            self.error((*path, "unless"), "'unless' must differ from 'on'")
        if m.get("unless") is not None and m.get("within") is None:
            self.error(path, "'unless' needs 'within' (how long to wait for it)")
        within = self.maybe(m, "within", path, self.duration)
        if m.get("within") is not None and m.get("unless") is None:
            self.error(
                (*path, "within"),
                "'within' goes with 'unless'; to fire later unconditionally, use 'delay'",
            )
        if m.get("delay") is not None and m.get("unless") is not None:
            self.error(
                (*path, "delay"), "use either 'delay' or 'unless' + 'within' (which already waits)"
            )
        delay = self.maybe(m, "delay", path, self.duration, positive=False)
        known_issues = len(self.issues)
        channels = self.maybe(m, "channels", path, self.channel_refs) or []
        categories, offers = self.targets(m, path)
        references_ok = len(self.issues) == known_issues
        max_actions = self.maybe(m, "max_actions", path, self.integer, minimum=1)
        trigger = Trigger(
            name=name or "",
            on=on or "",
            channels=tuple(channels),
            offers=offers,
            categories=categories,
            when=self.maybe(m, "when", path, self.condition),
            delay_ms=delay or 0,
            unless=unless,
            within_ms=within,
            max_actions=max_actions or 1,
            cooldown_ms=self.maybe(m, "cooldown", path, self.duration),
            description=self.maybe(m, "description", path, self.text) or "",
        )
        if references_ok and not any(
            trigger.targets(o) and set(o.channels) & set(channels) for o in self.all_offers
        ):
            self.error(
                path,
                "this trigger can never act: no offer it targets is allowed on "
                f"{', '.join(channels)}",
            )
        if name is None or on is None or not channels:
            return None
        return trigger

    def read_arbitration(self, value: object) -> Arbitration:
        path: Path_ = ("arbitration",)
        keys = (
            "propensity_weight",
            "value_weight",
            "min_score",
            "category_levers",
            "context_weights",
        )
        m = self.mapping(value, path, keys) if value is not None else None
        if m is None:
            return Arbitration()
        propensity_weight = self.maybe(m, "propensity_weight", path, self.number, minimum=0)
        value_weight = self.maybe(m, "value_weight", path, self.number, minimum=0)
        levers: dict[str, float] = {}
        lpath = (*path, "category_levers")
        if m.get("category_levers") is not None and not isinstance(m["category_levers"], dict):
            self.error(
                lpath, f"expected a mapping category: lever, got {_what(m['category_levers'])}"
            )
        elif m.get("category_levers") is not None:
            for key, lever in m["category_levers"].items():
                cat = str(key)
                if cat not in self.categories:
                    hint = _suggest(cat, sorted(self.categories))
                    self.error((*lpath, cat), f"unknown category '{cat}'{hint}: no offer has it")
                    continue
                got = self.number(lever, (*lpath, cat), minimum=0)
                if got is not None:
                    levers[cat] = got
        context: list[ContextWeight] = []
        cw_keys = ("name", "when", "weight", "categories", "offers")
        cw_path = (*path, "context_weights")
        for cpath, spec in self.read_named_list(
            m.get("context_weights"), cw_path, "context weight"
        ):
            cm = self.mapping(spec, cpath, cw_keys, required=("name", "when", "weight"))
            if cm is None:
                continue
            name = self.maybe(cm, "name", cpath, self.ident, what="name")
            when = self.maybe(cm, "when", cpath, self.condition)
            weight = self.maybe(cm, "weight", cpath, self.number, minimum=0)
            categories, offers = self.targets(cm, cpath)
            if name is not None and when is not None and weight is not None:
                context.append(ContextWeight(name, when, weight, categories, offers))
        return Arbitration(
            propensity_weight=1.0 if propensity_weight is None else propensity_weight,
            value_weight=1.0 if value_weight is None else value_weight,
            min_score=self.maybe(m, "min_score", path, self.number) or 0.0,
            category_levers=levers,
            context_weights=tuple(context),
        )

    def read_exploration(self, value: object) -> Exploration:
        path: Path_ = ("exploration",)
        m = self.mapping(value, path, _EXPLORATION_KEYS) if value is not None else None
        if m is None:
            return Exploration()
        policy = self.choice(m.get("policy", "greedy"), (*path, "policy"), _POLICIES, "policy")
        epsilon = self.maybe(m, "epsilon", path, self.number, minimum=0, maximum=1)
        temperature = self.maybe(m, "temperature", path, self.number, above=0)
        return Exploration(
            policy=next((p for p in _POLICIES if p == policy), "greedy"),
            epsilon=0.1 if epsilon is None else epsilon,
            temperature=1.0 if temperature is None else temperature,
        )

    def read_control_group(self, value: object) -> ControlGroup:
        path: Path_ = ("control_group",)
        m = self.mapping(value, path, ("share",), required=("share",)) if value else None
        if value is not None and not value and not isinstance(value, dict):
            self.error(path, f"expected a mapping (key: value), got {_what(value)}")
        share = self.maybe(m, "share", path, self.number, minimum=0, maximum=0.5) if m else None
        return ControlGroup(share=share or 0.0)

    def read_attribution(self, value: object) -> Attribution:
        path: Path_ = ("attribution",)
        keys = ("default", "channels", "offers", "positive", "negative", "neutral")
        m = self.mapping(value, path, keys) if value is not None else None
        if m is None:
            return Attribution()
        default = self.duration(m.get("default", _DEFAULT_ATTRIBUTION), (*path, "default"))
        windows: dict[str, dict[str, int]] = {"channels": {}, "offers": {}}
        for key, what in (("channels", "channel"), ("offers", "offer")):
            wpath = (*path, key)
            if m.get(key) is None:
                continue
            if not isinstance(m[key], dict):
                self.error(wpath, f"expected a mapping {what}: duration, got {_what(m[key])}")
                continue
            for raw_ref, dur in m[key].items():
                ref = str(raw_ref)
                if key == "channels":
                    known = self.channel_ref(ref, (*wpath, ref))
                else:
                    known = ref in self.offer_ids
                    if not known:
                        hint = _suggest(ref, sorted(self.offer_ids))
                        self.error((*wpath, ref), f"unknown offer '{ref}'{hint}")
                got = self.duration(dur, (*wpath, ref))
                if known and got is not None:
                    windows[key][ref] = got
        classes: dict[str, frozenset[str]] = {}
        for key in ("positive", "negative", "neutral"):
            names = list(_DEFAULT_OUTCOMES[key])
            if m.get(key) is not None:
                names = []
                for i, name in enumerate(self.names(m[key], (*path, key), "outcome")):
                    if name in OUTCOME_TYPES:
                        names.append(name)
                    else:
                        hint = _suggest(name, OUTCOME_TYPES, list_all=True)
                        self.error((*path, key, i), f"unknown outcome '{name}'{hint}")
            classes[key] = frozenset(names)
        given = [key for key in ("positive", "negative", "neutral") if m.get(key) is not None]
        for a, b in (("positive", "negative"), ("positive", "neutral"), ("negative", "neutral")):
            both = classes[a] & classes[b]
            if both and (a in given or b in given):
                where = b if b in given else a
                listed = ", ".join(sorted(both))
                self.error((*path, where), f"outcome {listed} is both {a} and {b}")
        return Attribution(
            default_ms=default or 3 * _DAY_MS,
            channels=windows["channels"],
            offers=windows["offers"],
            positive=classes["positive"],
            negative=classes["negative"] - classes["positive"],
            neutral=classes["neutral"] - classes["positive"] - classes["negative"],
        )


# --- entry points -----------------------------------------------------------------------------


def parse_strategy(
    data: str | Mapping[str, Any],
    source: str = "<strategy>",
    known_features: Collection[str] | None = None,
) -> Strategy:
    """Validate a strategy given as YAML text or as plain data and return it.

    ``known_features``: the feature catalogue; names ending in ``.*`` (or ``.``) are prefix
    families (``attr.*`` allows any ``attr.x``). When given, every feature a condition reads
    must be in it. Raises ``InvalidStrategyError`` (a ``StrategyError``) listing every problem
    found, each as ``file:line path: what is wrong``; lines are known only for YAML text.
    """
    lines: dict[Path_, int] = {}
    duplicates: list[_Duplicate] = []
    if isinstance(data, str):
        raw, lines, duplicates = _read_yaml(data, source)
    else:
        raw = dict(data) if isinstance(data, Mapping) else data
    reader = _Reader(source, lines, known_features)
    strategy = reader.read(raw)
    problems = [
        StrategyIssue(source, line, _render_path(path, reader.labels), message)
        for path, line, message in duplicates
    ] + reader.issues
    if problems or strategy is None:
        ordered = sorted(problems, key=lambda p: p.line if p.line is not None else 1 << 30)
        raise InvalidStrategyError(ordered)
    return strategy


def load_strategy(path: str | Path, known_features: Collection[str] | None = None) -> Strategy:
    """Read and validate a strategy file (the only I/O of the core); see ``parse_strategy``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StrategyError(f"strategy file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyError(f"cannot read strategy file {file}: {exc}") from None
    return parse_strategy(text, source=str(file), known_features=known_features)
