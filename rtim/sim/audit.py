"""An independent check of rtim's decisions against the ground truth the simulator sent.

The `Auditor` is told every event the simulator produced (`observe`) and every outcome its
channel adapters reported (`observe_outcome`), so it knows — without asking rtim — each
customer's credit checks, complaints, consent and contacts at any moment. For each decision it
sees (`check`) it counts the rules the decision breaks:

- every `suppress` rule of the strategy whose signals (`after`) and condition (`when`) it can
  evaluate — e.g. ``no_credit_after_failed_check``, ``no_upsell_after_complaint``,
  ``calm_after_unsubscribe`` — reported under the rule's name;
- every `consent` rule (purpose consent, e.g. ``marketing_objection``), under its name;
- offer gates (eligibility, applicability, suitability) that read only features it knows
  (credit status, complaints, consent, attributes, age, tenure, salary), as ``<offer>.<gate>``;
- outbound contacts on a channel without consent: ``no_consent``, or ``after_unsubscribe``
  when the consent was withdrawn by an unsubscribe outcome;
- channel caps (``channel_cap_day``, ``channel_cap_week``; days are local days of the
  strategy's timezone), `contact_cap` rules under their names, and ``quiet_hours``.

Rule parameters come from the loaded `Strategy`; nothing about the example is hard-coded.
Time is event time: the state "at a decision" is the state after every event stamped at or
before the decision's `ts`.

Also here, because it measures the engine too: `RewardTracker` (reward rates of policy and
control decisions, their lift with a 95 % interval, a learning curve) and the interval maths
(`wilson_interval`, `newcombe_interval`).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from rtim.core.conditions import Condition
from rtim.core.strategy import Channel, Offer, SuppressRule

if TYPE_CHECKING:
    from rtim.core.strategy import Strategy

__all__ = [
    "AUDIT_FEATURES",
    "Z95",
    "Auditor",
    "RewardTracker",
    "Violation",
    "newcombe_interval",
    "welch_interval",
    "wilson_interval",
]

Z95: Final = 1.959963984540054
_DAY: Final = 86_400_000
_WEEK: Final = 7 * _DAY
_MINUTE: Final = 60_000

#: Features the auditor can compute from the ground truth (plus the attr.* and consent.* families).
AUDIT_FEATURES: Final = frozenset(
    {
        "credit_check_status", "days_since_credit_check", "has_open_complaint",
        "open_complaints", "last_complaint_severity", "minutes_since_complaint",
        "complaints_90d", "age", "segment", "tenure_days", "salary_amount", "channel",
    }
)  # fmt: skip
_FAMILIES: Final = ("attr.", "consent.")
_CART_TYPES: Final = frozenset(("add_to_cart", "remove_from_cart", "purchase_complete"))


def _auditable(cond: Condition) -> bool:
    return all(f in AUDIT_FEATURES or f.startswith(_FAMILIES) for f in cond.features)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule in one decision."""

    kind: str
    decision_id: str
    customer_id: str
    ts: int
    channel: str
    offer_id: str | None
    detail: str


@dataclass(slots=True)
class _Truth:
    """What is known about one customer, as time-ordered lists of (ts, …)."""

    first_ts: int = 1 << 62
    credit: list[tuple[int, str]] = field(default_factory=list)
    opened: list[tuple[int, str, str]] = field(default_factory=list)  # ts, complaint id, severity
    resolved: dict[str, int] = field(default_factory=dict)  # complaint id → ts
    consent: dict[str, list[tuple[int, bool, str]]] = field(default_factory=dict)
    attributes: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    salary: list[tuple[int, float]] = field(default_factory=list)
    signals: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    contacts: list[tuple[int, str, frozenset[str]]] = field(default_factory=list)
    cart: dict[str, int] = field(default_factory=dict)  # product → quantity, now
    cart_changes: list[tuple[int, bool]] = field(default_factory=list)  # ts, cart not empty


def _ts_key(item: tuple[Any, ...]) -> Any:
    return item[0]


def _latest(items: list[Any], ts: int) -> Any:
    """The last item of a ts-sorted list of tuples with item[0] <= ts, or None."""
    i = bisect.bisect_right(items, ts, key=_ts_key)
    return items[i - 1] if i else None


class Auditor:
    """Counts rule violations of decisions against the ground truth (see the module doc)."""

    def __init__(self, strategy: Strategy, *, max_examples: int = 5) -> None:
        self.strategy = strategy
        self.max_examples = max_examples
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.decisions_checked = 0
        self._seen: set[str] = set()
        self._truth: dict[str, _Truth] = defaultdict(_Truth)
        suppress = strategy.rules_of_kind("suppress")
        self._suppress = [r for r in suppress if r.when is None or _auditable(r.when)]
        self.unchecked = sorted({r.name for r in suppress} - {r.name for r in self._suppress})
        self._consent_rules = [
            r for r in strategy.rules_of_kind("consent") if r.feature.startswith("consent.")
        ]
        self._caps = strategy.rules_of_kind("contact_cap")
        self._signals = frozenset(r.after for r in self._suppress if r.after)
        self._gates: dict[str, tuple[tuple[str, Condition], ...]] = {
            o.id: tuple((stage, c) for stage, c in o.gates if _auditable(c))
            for o in strategy.offers
        }

    # --- ground truth -----------------------------------------------------------------------
    def observe(self, schema: str, record: Mapping[str, Any]) -> None:
        """Learn from one event the simulator produced (any input schema)."""
        cid = record["customer_id"]
        ts = record["ts"]
        truth = self._truth[cid]
        truth.first_ts = min(truth.first_ts, ts)
        if schema == "ClickstreamEvent":
            kind = record["type"]
            if kind in _CART_TYPES:
                self._cart(truth, kind, record, ts)
            if kind in self._signals:
                self._signal(truth, kind, ts)
        elif schema == "TransactionEvent":
            kind, status = record["type"], record["status"]
            if kind == "credit_check":
                bisect.insort(truth.credit, (ts, status))
                self._signal(truth, f"credit_check_{status}", ts)
            elif kind == "payment" and status == "approved":
                self._signal(truth, "payment", ts)
                if record.get("category") == "salary":
                    bisect.insort(truth.salary, (ts, float(record["amount"])))
                    self._signal(truth, "salary_payment", ts)
            elif kind == "purchase":
                self._signal(truth, "purchase" if status == "approved" else "purchase_declined", ts)
            elif kind == "refund":
                self._signal(truth, "refund", ts)
        elif schema == "ComplaintEvent":
            if record["status"] == "opened":
                bisect.insort(truth.opened, (ts, record["complaint_id"], record["severity"]))
                self._signal(truth, "complaint_opened", ts)
            else:
                truth.resolved[record["complaint_id"]] = ts
                self._signal(truth, "complaint_resolved", ts)
        elif schema == "ProfileEvent":
            kind = record["type"]
            if kind == "consent":
                granted = bool(record["granted"])
                changes = truth.consent.setdefault(record["channel"], [])
                bisect.insort(changes, (ts, granted, "event"))
                self._signal(truth, "consent_granted" if granted else "consent_withdrawn", ts)
            elif kind == "attributes" and record.get("attributes"):
                bisect.insort(truth.attributes, (ts, dict(record["attributes"])), key=_ts_key)

    def observe_outcome(self, outcome: Mapping[str, Any], reported_ts: int | None = None) -> None:
        """Learn from an outcome the adapters reported (unsubscribes withdraw consent).

        `reported_ts`: the event time by which it was reported, when later than its own time
        (an adapter reports what happened a while ago); rules count it from then on, because no
        engine can act on a response before it is reported.
        """
        truth = self._truth[outcome["customer_id"]]
        kind, offer_id = outcome["type"], outcome["offer_id"]
        ts = max(outcome["ts"], reported_ts or 0)
        if kind == "unsubscribe":
            changes = truth.consent.setdefault(outcome["channel"], [])
            bisect.insort(changes, (ts, False, "unsubscribe"))
        if kind in self._signals:
            category = self._category(offer_id, "")
            bisect.insort(truth.signals.setdefault(kind, []), (ts, offer_id, category))

    @staticmethod
    def _cart(truth: _Truth, kind: str, record: Mapping[str, Any], ts: int) -> None:
        cart = truth.cart
        product = record.get("product_id")
        if kind == "purchase_complete":
            cart.clear()
        elif product and kind == "add_to_cart":
            cart[product] = cart.get(product, 0) + max(1, record.get("quantity") or 1)
        elif product in cart:
            left = cart[product] - max(1, record.get("quantity") or cart[product])
            if left > 0:
                cart[product] = left
            else:
                del cart[product]
        bisect.insort(truth.cart_changes, (ts, bool(cart)))

    def context_at(self, customer_id: str, ts: int, window_ms: int = _DAY) -> dict[str, Any]:
        """What the hidden response model takes into account for a decision at `ts`.

        ``recent_contacts``: outbound contacts seen in the `window_ms` before; ``open_complaint``;
        ``cart``: something in the cart.
        """
        truth = self._truth.get(customer_id) or _Truth()
        i = bisect.bisect_left(truth.contacts, ts, key=_ts_key)
        recent = 0
        while i > 0 and ts - truth.contacts[i - 1][0] < window_ms:
            recent += 1
            i -= 1
        cart = _latest(truth.cart_changes, ts)
        opened = truth.opened[: bisect.bisect_right(truth.opened, ts, key=_ts_key)]
        is_open = any(truth.resolved.get(o[1], 1 << 62) > ts for o in opened)
        return {
            "recent_contacts": recent,
            "open_complaint": is_open,
            "cart": bool(cart and cart[1]),
        }

    def _signal(self, truth: _Truth, name: str, ts: int) -> None:
        if name in self._signals:
            bisect.insort(truth.signals.setdefault(name, []), (ts, "", ""))

    def _category(self, offer_id: str, default: str) -> str:
        return (
            self.strategy.offer(offer_id).category if self.strategy.has_offer(offer_id) else default
        )

    def features_at(self, customer_id: str, ts: int, channel: str | None = None) -> dict[str, Any]:
        """The auditable features of a customer at event time `ts` (see AUDIT_FEATURES)."""
        truth = self._truth.get(customer_id) or _Truth()
        f: dict[str, Any] = {"channel": channel}
        credit = _latest(truth.credit, ts)
        f["credit_check_status"] = credit[1] if credit else None
        f["days_since_credit_check"] = round((ts - credit[0]) / _DAY, 3) if credit else None
        i = bisect.bisect_right(truth.opened, ts, key=_ts_key)
        opened = truth.opened[:i]
        open_ = [o for o in opened if truth.resolved.get(o[1], 1 << 62) > ts]
        f["has_open_complaint"] = bool(open_)
        f["open_complaints"] = len(open_)
        f["last_complaint_severity"] = opened[-1][2] if opened else None
        f["minutes_since_complaint"] = round((ts - opened[-1][0]) / _MINUTE, 2) if opened else None
        f["complaints_90d"] = sum(1 for o in opened if o[0] > ts - 90 * _DAY)
        for topic, changes in truth.consent.items():
            latest = _latest(changes, ts)
            if latest is not None:
                f["consent." + topic] = latest[1]
        attributes: dict[str, str] = {}
        for at, values in truth.attributes:
            if at > ts:
                break
            attributes.update(values)
        for name, value in attributes.items():
            f["attr." + name] = value
        try:
            f["age"] = float(attributes["age"]) if "age" in attributes else None
        except ValueError:
            f["age"] = None
        f["segment"] = attributes.get("segment")
        f["tenure_days"] = round((ts - truth.first_ts) / _DAY, 3) if truth.first_ts <= ts else None
        salary = _latest(truth.salary, ts)
        f["salary_amount"] = salary[1] if salary else 0.0
        return f

    # --- decisions --------------------------------------------------------------------------
    def check(self, decision: Mapping[str, Any]) -> list[Violation]:
        """The violations of one decision (each decision id is checked once)."""
        decision_id = decision["decision_id"]
        actions = decision.get("actions") or ()
        if decision_id in self._seen:
            return []
        self._seen.add(decision_id)
        self.decisions_checked += 1
        if not actions:
            return []
        cid, ts, channel = decision["customer_id"], decision["ts"], decision["channel"]
        truth = self._truth[cid]
        features = self.features_at(cid, ts, channel)
        found: list[Violation] = []

        def flag(kind: str, offer_id: str | None, detail: str) -> None:
            found.append(Violation(kind, decision_id, cid, ts, channel, offer_id, detail))

        offers = [self._offer(a) for a in actions]
        for offer in offers:
            for rule in self._suppress:
                if not rule.targets(offer, channel):
                    continue
                if rule.when is not None and not rule.when.evaluate(features):
                    continue
                if rule.after is not None:
                    since = self._since(truth, rule, offer, ts)
                    if since is None:
                        continue
                    flag(
                        rule.name, offer.id, f"{offer.id} {since // _MINUTE} min after {rule.after}"
                    )
                else:
                    flag(
                        rule.name,
                        offer.id,
                        f"{offer.id} while {rule.when.source if rule.when else ''}",
                    )
            for crule in self._consent_rules:
                if crule.targets(offer, channel) and not crule.allows(features):
                    flag(crule.name, offer.id, f"{offer.id} without {crule.feature}")
            for stage, cond in self._gates.get(offer.id, ()):
                if not cond.evaluate(features):
                    flag(f"{offer.id}.{stage}", offer.id, f"{cond.source} does not hold")
        spec = self.strategy.channels.get(channel)
        if spec is not None and spec.outbound:
            categories = frozenset(o.category for o in offers)
            self._check_contact(truth, features, spec, categories=categories, ts=ts, flag=flag)
            bisect.insort(truth.contacts, (ts, channel, categories), key=_ts_key)
            if "contact" in self._signals:
                for offer in offers:
                    bisect.insort(
                        truth.signals.setdefault("contact", []), (ts, offer.id, offer.category)
                    )
        for v in found:
            self.counts[v.kind] += 1
            examples = self.examples[v.kind]
            if len(examples) < self.max_examples and decision_id not in examples:
                examples.append(decision_id)
        return found

    def _offer(self, action: Mapping[str, Any]) -> Offer:
        offer_id = action["offer_id"]
        if self.strategy.has_offer(offer_id):
            return self.strategy.offer(offer_id)
        return Offer(offer_id, action.get("category") or "", 0.0, ())

    def _since(self, truth: _Truth, rule: SuppressRule, offer: Offer, ts: int) -> int | None:
        """How long before `ts` the latest matching `after` signal was, if within the rule."""
        assert rule.after is not None
        assert rule.within_ms is not None
        signals = truth.signals.get(rule.after, ())
        i = bisect.bisect_right(signals, ts, key=_ts_key)
        while i > 0:
            i -= 1
            at, offer_id, category = signals[i]
            if ts - at >= rule.within_ms:
                return None
            if (
                rule.scope == "customer"
                or (rule.scope == "offer" and offer_id == offer.id)
                or (rule.scope == "category" and category == offer.category)
            ):
                return ts - at
        return None

    def _check_contact(
        self,
        truth: _Truth,
        features: Mapping[str, Any],
        spec: Channel,
        *,
        categories: frozenset[str],
        ts: int,
        flag: Callable[[str, str | None, str], None],
    ) -> None:
        channel = spec.name
        if spec.consent_required and features.get(f"consent.{channel}") is not True:
            latest = _latest(truth.consent.get(channel, []), ts)
            kind = "after_unsubscribe" if latest and latest[2] == "unsubscribe" else "no_consent"
            flag(kind, None, f"{channel} consent is {features.get(f'consent.{channel}')}")
        day = self._local_day(ts)
        before = truth.contacts[: bisect.bisect_right(truth.contacts, ts, key=_ts_key)]
        same = [c for c in before if c[1] == channel]
        today = sum(1 for c in same if self._local_day(c[0]) == day)
        week = sum(1 for c in same if ts - c[0] < _WEEK)
        if spec.max_per_day is not None and today >= spec.max_per_day:
            flag("channel_cap_day", None, f"{today + 1} {channel} contacts on one day")
        if spec.max_per_week is not None and week >= spec.max_per_week:
            flag("channel_cap_week", None, f"{week + 1} {channel} contacts in 7 days")
        for rule in self._caps:
            if channel not in rule.channels:
                continue
            if rule.categories and not rule.categories & categories:
                continue
            counted = [c for c in before if c[1] in rule.channels
                       and (not rule.categories or rule.categories & c[2])]  # fmt: skip
            n_day = sum(1 for c in counted if self._local_day(c[0]) == day)
            n_week = sum(1 for c in counted if ts - c[0] < _WEEK)
            if rule.max_per_day is not None and n_day >= rule.max_per_day:
                flag(rule.name, None, f"{n_day + 1} contacts on one day")
            elif rule.max_per_week is not None and n_week >= rule.max_per_week:
                flag(rule.name, None, f"{n_week + 1} contacts in 7 days")
        if self.strategy.in_quiet_hours(channel, ts):
            flag("quiet_hours", None, f"{channel} contact in quiet hours")

    def _local_day(self, ts: int) -> int:
        return datetime.fromtimestamp(ts / 1000, tz=self.strategy.zone).toordinal()

    def summary(self) -> dict[str, Any]:
        """Violations by kind with example decision ids, for reports."""
        return {
            "decisions_checked": self.decisions_checked,
            "total": sum(self.counts.values()),
            "by_kind": dict(self.counts.most_common()),
            "examples": {k: list(v) for k, v in self.examples.items() if self.counts[k]},
            "unchecked_rules": list(self.unchecked),
        }


# --- measurement --------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when n = 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def welch_interval(
    group1: tuple[float, float, int], group2: tuple[float, float, int], z: float = Z95
) -> tuple[float, float, float] | None:
    """Difference of two means and its normal 95 % interval; groups as (sum, sum of squares, n)."""
    (sum1, sumsq1, n1), (sum2, sumsq2, n2) = group1, group2
    if n1 < 2 or n2 < 2:
        return None
    m1, m2 = sum1 / n1, sum2 / n2
    v1 = max(0.0, (sumsq1 - n1 * m1 * m1) / (n1 - 1))
    v2 = max(0.0, (sumsq2 - n2 * m2 * m2) / (n2 - 1))
    half = z * math.sqrt(v1 / n1 + v2 / n2)
    d = m1 - m2
    return round(d, 6), round(d - half, 6), round(d + half, 6)


def newcombe_interval(
    x1: int, n1: int, x2: int, n2: int, z: float = Z95
) -> tuple[float, float, float] | None:
    """Difference p1 - p2 of two proportions and its Newcombe hybrid score interval.

    Newcombe (1998), method 10: combines the Wilson intervals of each proportion; good coverage
    even for small counts and rates near 0. Returns (difference, low, high); None if a sample
    is empty.
    """
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (d, low, high)


class RewardTracker:
    """Reward of decisions with actions, split into policy and control group, over time.

    `add(ts, control, reward, expected)`: reward 1 if the customer responded positively;
    `expected` the hidden model's probability of that (an oracle-side, low-noise view). The
    time series buckets decisions by event time: bucket i covers
    [start_ms + i * bucket_ms, start_ms + (i + 1) * bucket_ms); the last one takes the rest.
    """

    def __init__(self, start_ms: int, bucket_ms: int, buckets: int = 20) -> None:
        # business value per decision (offer value of positive responses, minus contact cost):
        # per group [sum, sum of squares, expected sum, expected sum of squares];
        # per bucket [sum, expected sum]
        self.value = {"policy": [0.0, 0.0, 0.0, 0.0], "control": [0.0, 0.0, 0.0, 0.0]}
        self.value_series = {
            "policy": [[0.0, 0.0] for _ in range(max(1, buckets))],
            "control": [[0.0, 0.0] for _ in range(max(1, buckets))],
        }
        self.start_ms = start_ms
        self.bucket_ms = max(1, bucket_ms)
        self.buckets = max(1, buckets)
        # per group: [n, rewards, expected sum]; per bucket: the same for policy and control
        self.totals = {"policy": [0, 0, 0.0], "control": [0, 0, 0.0]}
        self.series = {
            "policy": [[0, 0, 0.0] for _ in range(self.buckets)],
            "control": [[0, 0, 0.0] for _ in range(self.buckets)],
        }

    def add(
        self,
        ts: int,
        control: bool,
        reward: int,
        expected: float = 0.0,
        *,
        value: float = 0.0,
        expected_value: float = 0.0,
    ) -> None:
        """Count one decision (`value`: business value it earned net of contact cost)."""
        group = "control" if control else "policy"
        i = min(self.buckets - 1, max(0, (ts - self.start_ms) // self.bucket_ms))
        totals = self.value[group]
        totals[0] += value
        totals[1] += value * value
        totals[2] += expected_value
        totals[3] += expected_value * expected_value
        cell = self.value_series[group][i]
        cell[0] += value
        cell[1] += expected_value
        for cell in (self.totals[group], self.series[group][i]):
            cell[0] += 1
            cell[1] += reward
            cell[2] += expected

    def summary(self) -> dict[str, Any]:
        """Rates, lift with its 95 % interval (Newcombe), expected rates and the time series."""
        pn, pr, pe = self.totals["policy"]
        cn, cr, ce = self.totals["control"]
        lift = newcombe_interval(int(pr), int(pn), int(cr), int(cn))
        series = []
        for i in range(self.buckets):
            p, c = self.series["policy"][i], self.series["control"][i]
            series.append({
                "t_ms": self.start_ms + i * self.bucket_ms,
                "policy_n": p[0], "policy_rate": _rate(p[1], p[0]),
                "control_n": c[0], "control_rate": _rate(c[1], c[0]),
                "policy_expected": _rate(p[2], p[0]), "control_expected": _rate(c[2], c[0]),
                "policy_value": _rate(self.value_series["policy"][i][0], p[0]),
                "control_value": _rate(self.value_series["control"][i][0], c[0]),
            })  # fmt: skip
        value_lift = welch_interval(
            (self.value["policy"][0], self.value["policy"][1], int(pn)),
            (self.value["control"][0], self.value["control"][1], int(cn)),
        )
        return {
            "policy_value_per_decision": _rate(self.value["policy"][0], pn),
            "control_value_per_decision": _rate(self.value["control"][0], cn),
            "value_lift": value_lift[0] if value_lift else None,
            "value_lift_ci95": [value_lift[1], value_lift[2]] if value_lift else None,
            "value_lift_method": "difference of means, Welch normal-approximation 95% interval",
            "expected_value_lift_ci95": _interval(
                welch_interval(
                    (self.value["policy"][2], self.value["policy"][3], int(pn)),
                    (self.value["control"][2], self.value["control"][3], int(cn)),
                )
            ),
            "policy_expected_value": _rate(self.value["policy"][2], pn),
            "control_expected_value": _rate(self.value["control"][2], cn),
            "policy_decisions": int(pn),
            "policy_rewards": int(pr),
            "policy_reward_rate": _rate(pr, pn),
            "control_decisions": int(cn),
            "control_rewards": int(cr),
            "control_reward_rate": _rate(cr, cn),
            "lift": lift[0] if lift else None,
            "lift_ci95": [lift[1], lift[2]] if lift else None,
            "lift_method": "difference of rates, Newcombe hybrid score (Wilson) 95% interval",
            "policy_expected_rate": _rate(pe, pn),
            "control_expected_rate": _rate(ce, cn),
            "expected_lift": (pe / pn - ce / cn) if pn and cn else None,
            "series": series,
        }


def _interval(got: tuple[float, float, float] | None) -> list[float] | None:
    return [got[1], got[2]] if got else None


def _rate(x: float, n: float) -> float | None:
    return round(x / n, 6) if n else None
