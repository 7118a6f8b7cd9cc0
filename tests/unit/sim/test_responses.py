"""The hidden response model (rtim.sim.responses)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rtim.core.strategy import load_strategy
from rtim.core.validation import validate_record
from rtim.paths import contract_dir
from rtim.serde.codec import Codec
from rtim.sim.population import Customer, Population, Traits
from rtim.sim.responses import (
    POSITIVE,
    best_offer,
    expected_reward,
    offer_catalog,
    respond,
    response_probability,
)

TS = 1_763_798_400_000
CATALOG = offer_catalog(load_strategy(contract_dir("strategies") / "example.yaml"))
BASE = Population(1, 1).customers[0].traits


def traits(**changes: Any) -> Traits:
    return dataclasses.replace(BASE, **changes)


def customer(**changes: Any) -> Customer:
    return Customer(0, "c0000000", traits(**changes), {})


def decision(
    decision_id: str = "d-1",
    channel: str = "web",
    offers: tuple[str, ...] = ("gold_card",),
    *,
    control: bool = False,
    trigger: str = "request",
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "customer_id": "c0000000",
        "ts": TS,
        "channel": channel,
        "trigger": {"type": trigger, "id": "r-1", "name": None},
        "request_id": "r-1" if trigger == "request" else None,
        "actions": [
            {
                "offer_id": o,
                "category": CATALOG[o][0],
                "rank": i + 1,
                "score": 1.0,
                "propensity": 0.5,
                "payload": {},
            }
            for i, o in enumerate(offers)
        ],
        "control_group": control,
        "strategy_version": "v",
        "model_version": "m",
        "reasons": [],
        "expires_at": TS + 60_000,
        "placement": None,
    }


def p(t: Traits, offer: str, channel: str = "web", **ctx: Any) -> float:
    category, value = CATALOG[offer]
    return response_probability(t, offer, category, channel, ctx, value=value)


def test_probabilities_depend_on_traits() -> None:
    fan = traits(interests=("credit_card",), value=0.8)
    other = traits(interests=("groceries",), value=0.8)
    assert p(fan, "classic_card") > 1.5 * p(other, "classic_card")
    assert p(traits(value=0.9), "gold_card") > 1.5 * p(traits(value=0.05), "gold_card")
    assert p(traits(temper=0.9), "premium_account") < p(traits(temper=0.1), "premium_account")
    assert p(traits(has_children=True), "kids_savings") > 3 * p(
        traits(has_children=False), "kids_savings"
    )
    cheap, dear = traits(price_sensitivity=0.9), traits(price_sensitivity=0.1)
    assert p(cheap, "cart_discount_5", "email", cart=True) > p(
        dear, "cart_discount_5", "email", cart=True
    )
    for offer in CATALOG:
        assert 0.0 < p(BASE, offer) < 1.0


def test_probabilities_depend_on_channel_offer_and_context() -> None:
    likes_email = traits(channel_pref=(0.5, 0.5, 0.95, 0.5, 0.5, 0.5))
    hates_email = traits(channel_pref=(0.5, 0.5, 0.05, 0.5, 0.5, 0.5))
    assert p(likes_email, "travel_insurance", "email") > 2 * p(
        hates_email, "travel_insurance", "email"
    )
    assert p(BASE, "travel_insurance") != p(BASE, "gadget_insurance")
    assert p(BASE, "premium_account", open_complaint=True) < p(BASE, "premium_account")
    assert p(BASE, "complaint_apology", "email", open_complaint=True) > 3 * p(
        BASE, "complaint_apology", "email"
    )
    assert p(BASE, "savings_boost", "push", recent_contacts=3) < p(BASE, "savings_boost", "push")
    assert p(BASE, "savings_boost", "web", recent_contacts=3) == p(BASE, "savings_boost", "web")


def test_no_action_means_no_outcome() -> None:
    assert respond(decision(offers=()), customer(), seed=1) == []
    assert expected_reward(decision(offers=()), BASE) == 0.0


def test_responses_are_deterministic_per_decision_and_ignore_the_control_flag() -> None:
    c = customer()
    first = respond(decision("d-7", "email"), c, seed=1, offers=CATALOG)
    assert respond(decision("d-7", "email"), c, seed=1, offers=CATALOG) == first
    assert respond(decision("d-7", "email", control=True), c, 1, offers=CATALOG) == first
    draws = {repr(respond(decision(f"d-{i}", "email"), c, 1, offers=CATALOG)) for i in range(40)}
    assert len(draws) > 5


@pytest.mark.parametrize("channel", ["web", "push", "email", "sms", "call_center", "outbound_call"])
def test_outcomes_are_valid_records_of_the_decision(channel: str) -> None:
    codec = Codec()
    offers = {"web": "gold_card", "push": "classic_card", "email": "gold_card",
              "sms": "cart_reminder", "call_center": "gold_card",
              "outbound_call": "winback_call"}  # fmt: skip
    seen: set[str] = set()
    for i in range(300):
        d = decision(f"d-{i}", channel, (offers[channel],), trigger="event")
        for delay, outcome in respond(d, customer(temper=0.9), seed=3, offers=CATALOG):
            assert delay > 0
            assert outcome["ts"] == TS + delay
            assert outcome["decision_id"] == d["decision_id"]
            assert outcome["channel"] == channel
            assert outcome["event_id"] not in seen
            seen.add(outcome["event_id"])
            assert (outcome["value"] is not None) == (outcome["type"] == "convert")
            codec.encode("Outcome", outcome)
            validate_record("Outcome", outcome, now_ms=TS + 10**9, max_future_ms=0)
            seen_types = outcome["type"]
            assert seen_types in {"delivered", "impression", "click", "accept", "convert",
                                  "dismiss", "unsubscribe", "bounce"}  # fmt: skip
    assert seen


def test_positive_rate_matches_the_hidden_probability() -> None:
    c = customer()
    n = 4000
    hits = 0
    for i in range(n):
        outs = respond(decision(f"d-{i}", "push", ("classic_card",), trigger="event"), c, 5,
                       offers=CATALOG)  # fmt: skip
        hits += any(o["type"] in POSITIVE for _d, o in outs)
    expected = p(c.traits, "classic_card", "push")
    sd = (expected * (1 - expected) / n) ** 0.5
    assert abs(hits / n - expected) < 4 * sd + 1e-9


def test_email_bounces_and_irritated_customers_unsubscribe() -> None:
    calm, angry = customer(temper=0.0), customer(temper=1.0)
    kinds: dict[str, list[str]] = {"calm": [], "angry": []}
    for i in range(3000):
        d = decision(f"d-{i}", "email", ("travel_insurance",), trigger="event")
        for who, c in (("calm", calm), ("angry", angry)):
            ctx = {"recent_contacts": 3}
            kinds[who] += [o["type"] for _d, o in respond(d, c, 1, offers=CATALOG, context=ctx)]
    assert "bounce" in kinds["calm"]
    assert kinds["angry"].count("unsubscribe") > 2 * max(1, kinds["calm"].count("unsubscribe"))


def test_at_most_one_action_gets_a_positive_response() -> None:
    c = customer(interests=("credit_card", "travel"))
    offers = ("classic_card", "travel_insurance", "student_card")
    for i in range(500):
        outs = respond(decision(f"d-{i}", "web", offers), c, 1, offers=CATALOG)
        assert len({o["offer_id"] for _d, o in outs if o["type"] in POSITIVE}) <= 1
        assert sum(1 for _d, o in outs if o["type"] == "impression") == len(offers)


def test_the_oracle_picks_the_best_offer() -> None:
    c = traits(interests=("travel",))
    web = {o: CATALOG[o] for o in ("travel_insurance", "gadget_insurance", "classic_card")}
    best = best_offer(c, web, "web")
    assert best is not None
    assert best[1] == max(p(c, o) for o in web)
    by_value = best_offer(c, web, "web", by_value=True)
    assert by_value is not None
    assert by_value[1] == max(p(c, o) * CATALOG[o][1] for o in web)
    assert best_offer(c, {}, "web") is None
    d = decision(offers=("travel_insurance",))
    assert expected_reward(d, c, CATALOG) == pytest.approx(p(c, "travel_insurance"))
