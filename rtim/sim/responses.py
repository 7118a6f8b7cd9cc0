"""The hidden response model: how a simulated customer reacts to what rtim proposes.

`response_probability` is the ground truth the engine has to learn — the probability that a
customer with these (hidden) traits responds positively (click, accept or convert) to an offer
on a channel. It is *never* sent anywhere; tests and reports use it as an oracle (the best
achievable policy, the expected reward of a decision).

`respond` plays a decision out: delivered / impression, then click → convert (with the offer's
value), accept, dismiss, unsubscribe or bounce, each with a realistic delay. Every draw is
seeded by hash(seed, decision_id, offer_id), so a decision always gets the same outcomes
whenever and however often it is answered. Control-group decisions use the same model — that is
what makes the lift of the learned policy over random measurable.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from rtim.sim.population import Customer, Traits

if TYPE_CHECKING:
    from rtim.core.strategy import Strategy

__all__ = [
    "POSITIVE",
    "SALES_CATEGORIES",
    "OfferInfo",
    "best_offer",
    "expected_reward",
    "offer_catalog",
    "respond",
    "response_probability",
]

#: (category, value) of an offer, as the strategy declares it.
OfferInfo = tuple[str, float]

POSITIVE: Final = frozenset(("click", "accept", "convert"))
SALES_CATEGORIES: Final = frozenset(
    ("credit_card", "loan", "savings", "insurance", "upsell", "cross_sell", "cart_recovery")
)
OUTBOUND: Final = frozenset(("push", "email", "sms", "outbound_call"))

_CATEGORY_BASE: Final = {
    "credit_card": -3.5,
    "loan": -3.9,
    "savings": -3.2,
    "insurance": -3.4,
    "upsell": -3.4,
    "cross_sell": -3.3,
    "cart_recovery": -2.6,
    "retention": -3.0,
    "service_recovery": -1.0,
    "service": -2.4,
}
_CHANNEL_BASE: Final = {
    "web": -0.2,
    "push": 0.0,
    "email": -0.3,
    "sms": 0.1,
    "call_center": 1.0,
    "outbound_call": 1.1,
}
# browsing categories (rtim.sim.population.CATEGORIES) that make an offer interesting
_CATEGORY_AFFINITY: Final[dict[str, tuple[str, ...]]] = {
    "credit_card": ("credit_card",),
    "loan": ("loan", "auto", "mortgage"),
    "savings": ("savings",),
    "insurance": ("insurance", "travel", "home"),
    "upsell": ("electronics", "fashion"),
    "cross_sell": ("electronics", "home", "travel", "savings"),
}
_TOKEN_AFFINITY: Final[dict[str, tuple[str, ...]]] = {
    "travel": ("travel",),
    "car": ("auto",),
    "auto": ("auto",),
    "mortgage": ("mortgage",),
    "home": ("home",),
    "gadget": ("electronics",),
    "accessory": ("electronics", "fashion"),
    "shipping": ("fashion", "groceries", "electronics"),
    "investing": ("savings",),
}
_DEFAULT_VALUE: Final = 30.0
_CONVERT_SHARE: Final = {"web": 0.25, "push": 0.3, "email": 0.3, "sms": 0.3}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _offset(offer_id: str) -> float:
    """A fixed, offer-specific taste in [-0.4, 0.4]: offers of one category still differ."""
    h = int.from_bytes(hashlib.blake2b(offer_id.encode(), digest_size=4).digest(), "little")
    return (h / 0xFFFFFFFF - 0.5) * 0.8


def response_probability(
    traits: Traits,
    offer_id: str,
    category: str,
    channel: str,
    context: Mapping[str, Any] | None = None,
    *,
    value: float | None = None,
) -> float:
    """P(positive response) of a customer to an offer on a channel — the hidden truth.

    Depends on the customer's traits (interests, value, price sensitivity, credit risk, temper,
    channel preference, age/children/home), the offer (category, id words, business value) and
    the channel. `context` (optional): ``recent_contacts`` (outbound contacts in the last day:
    fatigue), ``open_complaint`` (bool), ``cart`` (bool: something in the cart).
    """
    ctx = context or {}
    x = _CATEGORY_BASE.get(category, -3.4) + _CHANNEL_BASE.get(channel, 0.0)
    x += 2.2 * (traits.pref(channel) - 0.5)
    tokens = offer_id.split("_")
    liked = set(_CATEGORY_AFFINITY.get(category, ()))
    for token in tokens:
        liked.update(_TOKEN_AFFINITY.get(token, ()))
    if liked.intersection(traits.interests):
        x += 1.3
    v = traits.value
    premium = math.log10(max(value if value is not None else _DEFAULT_VALUE, 1.0)) / 3.0
    x += 4.0 * (v - 0.3) * (premium - 0.3)  # valuable customers for valuable offers
    ps = traits.price_sensitivity
    if category in ("credit_card", "loan"):
        x += 1.5 * (traits.credit_risk - 0.25)  # adverse selection: the risky want credit
    elif category == "savings":
        x += 2.0 * (v - 0.3)
    elif category == "upsell":
        x += 2.0 * (v - 0.3) - 1.5 * (ps - 0.4)
    elif category == "cart_recovery":
        x += 1.5 * (ps - 0.3) + (0.8 if ctx.get("cart") else -0.5)
    elif category == "insurance" and traits.homeowner:
        x += 0.4
    elif category == "service_recovery":
        x += 1.0 if ctx.get("open_complaint") else -1.5
    if "gold" in tokens or "premium" in tokens or "platinum" in tokens:
        x += 2.0 * (v - 0.4)
    if "student" in tokens:
        x += 1.2 if traits.age < 26 else -1.5
    if "kids" in tokens:
        x += 1.2 if traits.has_children else -2.0
    if "home" in tokens:
        x += 0.8 if traits.homeowner else -1.5
    if "discount" in tokens:
        x += 2.0 * (ps - 0.4)
    if "loyalty" in tokens or "winback" in tokens:
        x += 1.0 * (0.5 - traits.temper)
    if category in SALES_CATEGORIES:
        x -= 1.2 * traits.temper
        if ctx.get("open_complaint"):
            x -= 1.5
    if channel in OUTBOUND:
        x -= 0.35 * float(ctx.get("recent_contacts", 0))
    x += _offset(offer_id)
    return min(0.95, max(0.001, _sigmoid(x)))


def offer_catalog(strategy: Strategy) -> dict[str, OfferInfo]:
    """offer id → (category, value) for every offer of a strategy."""
    return {offer.id: (offer.category, float(offer.value)) for offer in strategy.offers}


def _draw_seed(seed: int, decision_id: str, offer_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}|{decision_id}|{offer_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def _ranked(actions: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(actions, key=lambda a: (a.get("rank", 1), a.get("offer_id", "")))


def expected_reward(
    decision: Mapping[str, Any],
    traits: Traits,
    offers: Mapping[str, OfferInfo] | None = None,
    context: Mapping[str, Any] | None = None,
) -> float:
    """P(at least one positive response) to a decision: what `respond` draws against."""
    miss = 1.0
    for action in decision.get("actions") or ():
        oid = action["offer_id"]
        info = offers.get(oid) if offers else None
        p = response_probability(
            traits, oid, action["category"], decision["channel"], context,
            value=info[1] if info else None,
        )  # fmt: skip
        miss *= 1.0 - p
    return 1.0 - miss if decision.get("actions") else 0.0


def best_offer(
    traits: Traits,
    offers: Mapping[str, OfferInfo],
    channel: str,
    context: Mapping[str, Any] | None = None,
    *,
    by_value: bool = False,
) -> tuple[str, float] | None:
    """The oracle: the offer with the highest response probability (or expected value) here.

    Returns (offer_id, probability or probability x value); None without offers.
    """
    best: tuple[str, float] | None = None
    for oid, (category, value) in offers.items():
        p = response_probability(traits, oid, category, channel, context, value=value)
        score = p * value if by_value else p
        if best is None or score > best[1]:
            best = (oid, score)
    return best


def respond(
    decision: Mapping[str, Any],
    customer: Customer,
    seed: int,
    *,
    offers: Mapping[str, OfferInfo] | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """The outcomes a customer produces for a decision, as (delay after decision ts, Outcome).

    No action → nothing. The customer engages with at most one action (the first, by rank,
    whose draw succeeds). Deterministic in (seed, decision_id, offer_id, traits, context).
    """
    actions = decision.get("actions") or ()
    if not actions:
        return []
    channel = decision["channel"]
    decision_id = decision["decision_id"]
    trigger = decision.get("trigger") or {}
    in_app = channel == "push" and trigger.get("type") == "request"
    traits = customer.traits
    out: list[tuple[int, dict[str, Any]]] = []
    engaged = False
    for action in _ranked(actions):
        offer_id = action["offer_id"]
        info = offers.get(offer_id) if offers else None
        value = info[1] if info else None
        p = response_probability(traits, offer_id, action["category"], channel, context,
                                 value=value)  # fmt: skip
        rng = random.Random(_draw_seed(seed, decision_id, offer_id))
        positive = not engaged and rng.random() < p
        engaged = engaged or positive
        events = _play(channel, in_app, positive, rng, traits=traits, context=context)
        for delay, kind in events:
            out.append((delay, _outcome(decision, offer_id, kind, delay, value)))
    out.sort(key=lambda item: item[0])
    return out


def _unsubscribe_p(traits: Traits, channel: str, context: Mapping[str, Any] | None) -> float:
    recent = float((context or {}).get("recent_contacts", 0))
    scale = {"sms": 1.5, "outbound_call": 2.0}.get(channel, 1.0)
    return min(0.5, 0.003 * scale * (1 + 3 * traits.temper) * (1 + 0.8 * recent))


def _play(
    channel: str,
    in_app: bool,
    positive: bool,
    rng: random.Random,
    *,
    traits: Traits,
    context: Mapping[str, Any] | None,
) -> Sequence[tuple[int, str]]:
    """The sequence (delay ms, outcome type) of one action on one channel."""
    u = rng.uniform
    exp = rng.expovariate
    temper = traits.temper
    events: list[tuple[int, str]] = []
    if channel == "web" or in_app:
        seen = int(u(300, 2000))
        events.append((seen, "impression"))
        if positive:
            click = seen + int(u(2_000, 60_000))
            events.append((click, "click"))
            if rng.random() < _CONVERT_SHARE["web"]:
                events.append((click + int(u(60_000, 1_200_000)), "convert"))
        elif rng.random() < 0.15 + 0.3 * temper:
            events.append((seen + int(u(2_000, 30_000)), "dismiss"))
        return events
    if channel == "call_center":
        seen = int(u(5_000, 40_000))
        events.append((seen, "impression"))
        if positive:
            accept = seen + int(u(30_000, 240_000))
            events.append((accept, "accept"))
            if rng.random() < 0.5:
                events.append((accept + int(u(3_600_000, 20 * 3_600_000)), "convert"))
        elif rng.random() < 0.5:
            events.append((seen + int(u(30_000, 240_000)), "dismiss"))
        return events
    if channel == "outbound_call":
        connected = int(u(60_000, 7_200_000))
        if positive:
            events.append((connected, "delivered"))
            accept = connected + int(u(60_000, 300_000))
            events.append((accept, "accept"))
            if rng.random() < 0.5:
                events.append((accept + int(u(3_600_000, 24 * 3_600_000)), "convert"))
        elif rng.random() < 0.6:  # 40 %: nobody answers
            events.append((connected, "delivered"))
            if rng.random() < _unsubscribe_p(traits, channel, context):
                events.append((connected + int(u(30_000, 180_000)), "unsubscribe"))
            elif rng.random() < 0.7:
                events.append((connected + int(u(30_000, 180_000)), "dismiss"))
        return events
    # push, email, sms: delivered, maybe seen, then the response
    if channel == "email" and not positive and rng.random() < 0.015:
        return [(int(u(2_000, 20_000)), "bounce")]
    delivered = int(u(500, 5_000) if channel == "push" else u(2_000, 30_000))
    events.append((delivered, "delivered"))
    open_mean = {"push": 600_000, "email": 7_200_000, "sms": 300_000}.get(channel, 600_000)
    if positive:
        seen = delivered + 1_000 + int(exp(1.0) * open_mean)
        events.append((seen, "impression"))
        click = seen + int(u(5_000, 300_000))
        events.append((click, "click"))
        if rng.random() < _CONVERT_SHARE.get(channel, 0.3):
            events.append((click + int(u(60_000, 7_200_000)), "convert"))
        return events
    open_p = {"push": 0.6, "email": 0.3 + 0.3 * traits.pref("email"), "sms": 0.9}.get(channel, 0.5)
    if rng.random() < open_p:
        seen = delivered + 1_000 + int(exp(1.0) * open_mean * 2)
        events.append((seen, "impression"))
        if rng.random() < _unsubscribe_p(traits, channel, context):
            events.append((seen + int(u(5_000, 120_000)), "unsubscribe"))
        elif rng.random() < 0.2 + 0.3 * temper:
            events.append((seen + int(u(5_000, 120_000)), "dismiss"))
    return events


def _outcome(
    decision: Mapping[str, Any], offer_id: str, kind: str, delay: int, value: float | None
) -> dict[str, Any]:
    decision_id = decision["decision_id"]
    return {
        "event_id": f"{decision_id}:{offer_id}:{kind}",
        "decision_id": decision_id,
        "customer_id": decision["customer_id"],
        "ts": decision["ts"] + delay,
        "channel": decision["channel"],
        "offer_id": offer_id,
        "type": kind,
        "value": (value if value is not None else 0.0) if kind == "convert" else None,
    }
