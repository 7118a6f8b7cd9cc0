"""The decision core: rules are never bypassed, requests always answered, triggers and timers,
caps and consent, exact propensities, determinism, and valid Avro for everything emitted."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtim.core.decisioning import (
    DECISION_LOG_TOPIC,
    DecisionTrigger,
    NoModels,
    StrategyDecider,
    decide,
    decision_id_for,
    decision_rng,
    event_signals,
)
from rtim.core.engine import Emit, Engine, StepContext
from rtim.core.events import make_event
from rtim.core.features import CHANNELS, FeatureValue, compute_features
from rtim.core.profile import DAY_MS, Profile, decode_profile, encode_profile, new_profile
from rtim.core.strategy import Strategy, parse_strategy
from rtim.paths import contract_dir
from rtim.serde.codec import Codec

EXAMPLE_TEXT = (contract_dir("strategies") / "example.yaml").read_text()
EXAMPLE = parse_strategy(EXAMPLE_TEXT, "example.yaml")
HOUR = 3_600_000
MINUTE = 60_000
T0 = 1_741_078_800_000  # 2025-03-04 10:00 in Amsterdam (09:00 UTC), a Tuesday
CODEC = Codec()
SALES = {"credit_card", "loan", "savings", "insurance", "upsell", "cross_sell", "cart_recovery"}


def example_with(*pairs: tuple[str, str]) -> Strategy:
    text = EXAMPLE_TEXT
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return parse_strategy(text, "example-variant.yaml")


GREEDY = example_with(
    ("policy: epsilon_greedy", "policy: greedy"), ("  share: 0.10\n", "  share: 0.0\n")
)
WILD = example_with(("epsilon: 0.05", "epsilon: 1.0"), ("share: 0.10", "share: 0.5"))


class FakeModels:
    """A model per (offer, channel) with fixed probabilities; `examples` learned each."""

    def __init__(self, p: Mapping[tuple[str, str], float], examples: int = 1_000_000) -> None:
        self.p = dict(p)
        self.examples = examples
        self.version = "fake-1"
        self.seen: list[Mapping[str, FeatureValue]] = []

    def model_id(self, offer_id: str, channel: str) -> str:
        return f"offer.{offer_id}"

    def predict(
        self, offer_id: str, channel: str, x: Mapping[str, FeatureValue]
    ) -> tuple[float, int] | None:
        self.seen.append(x)
        p = self.p.get((offer_id, channel))
        return None if p is None else (p, self.examples)


class Sim:
    """One customer through the real engine and decider; every emit is Avro-encoded."""

    def __init__(
        self,
        strategy: Strategy = EXAMPLE,
        models: Any = None,
        *,
        seed: int = 0,
        t0: int = T0,
        customer: str = "c1",
    ) -> None:
        self.decider = StrategyDecider(strategy, models, seed=seed)
        self.engine = Engine(self.decider)
        self.profile: Profile = new_profile(customer)
        self.customer = customer
        self.now = t0
        self.n = 0
        self.ctx = StepContext(partition=3, input_offsets={"rtim.requests": 7})
        self.log: list[Emit] = []

    def _keep(self, emits: list[Emit]) -> list[Emit]:
        for e in emits:
            CODEC.encode(e.schema, e.record)
            assert e.key == (
                e.record["model_id"] if e.schema == "TrainingExample" else self.customer
            )
        self.log.extend(emits)
        return emits

    def advance(self, ms: int = 0, *, to: int | None = None) -> list[Emit]:
        """Let event time pass, firing due timers (like the worker on an event clock)."""
        target = to if to is not None else self.now + ms
        result = self.engine.on_timers(self.profile, target, self.ctx)
        self.profile = result.profile
        self.now = max(self.now, target)
        return self._keep(result.emits)

    def event(self, kind: str, *, after: int = 1000, at: int | None = None, **r: Any) -> list[Emit]:
        out = self.advance(after, to=at)
        self.n += 1
        r.setdefault("event_id", f"{kind}-{self.n}")
        r.setdefault("customer_id", self.customer)
        r.setdefault("ts", self.now)
        result = self.engine.on_event(self.profile, make_event(kind, r, self.n), self.ctx)
        self.profile = result.profile
        return out + self._keep(result.emits)

    # --- shorthands ---
    def attrs(self, **a: str) -> list[Emit]:
        return self.event("profile", type="attributes", attributes=a)

    def consent(self, channel: str, granted: bool = True, **kw: Any) -> list[Emit]:
        return self.event("profile", type="consent", channel=channel, granted=granted, **kw)

    def click(self, type_: str, **kw: Any) -> list[Emit]:
        return self.event("click", session_id="s1", type=type_, **kw)

    def txn(self, type_: str, amount: float, status: str = "approved", **kw: Any) -> list[Emit]:
        kw.setdefault("transaction_id", f"t{self.n}")
        return self.event("txn", type=type_, amount=amount, currency="EUR", status=status, **kw)

    def complaint(self, status: str = "opened", severity: str = "medium", **kw: Any) -> list[Emit]:
        kw.setdefault("complaint_id", "k1")
        return self.event("complaint", status=status, severity=severity, category="billing", **kw)

    def request(
        self, channel: str = "web", max_actions: int = 1, **kw: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        kw.setdefault("request_id", f"r-{self.n + 1}")
        kw.setdefault("placement", "home")
        emits = self.event("request", channel=channel, max_actions=max_actions, **kw)
        answers = [
            e for e in emits if e.topic == f"rtim.decisions.{channel}" and e.record["request_id"]
        ]
        assert len(answers) == 1
        decision_id = answers[0].record["decision_id"]
        logs = [
            e
            for e in emits
            if e.topic == DECISION_LOG_TOPIC and e.record["decision"]["decision_id"] == decision_id
        ]
        assert len(logs) == 1
        return answers[0].record, logs[0].record


def decisions(emits: list[Emit]) -> list[dict[str, Any]]:
    return [e.record for e in emits if e.schema == "Decision"]


def logged(emits: list[Emit]) -> list[dict[str, Any]]:
    return [e.record for e in emits if e.schema == "DecisionRecord"]


def offers(decision: Mapping[str, Any]) -> list[str]:
    return [a["offer_id"] for a in decision["actions"]]


def known_customer(sim: Sim, *, since_days: int = 800, **attributes: str) -> None:
    """An adult customer known for `since_days`, then time jumps to T0."""
    sim.now = T0 - since_days * DAY_MS
    sim.attrs(age="40", segment="gold", **attributes)
    sim.advance(to=T0)


# --- seed cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [EXAMPLE, WILD], ids=["example", "explore-everything"])
def test_no_credit_offer_after_a_failed_credit_check(strategy: Strategy) -> None:
    sim = Sim(strategy)
    known_customer(sim, homeowner="true")
    sim.txn("payment", 5000.0, category="salary")
    for category in ("credit_card", "credit_card", "auto", "auto", "mortgage", "mortgage"):
        sim.click("product_view", category=category)
    sim.txn("credit_check", 0.0, status="failed")
    credit = {"credit_card", "loan"}
    for i in range(60):
        decision, record = sim.request(max_actions=3, placement=f"p{i % 4}")
        assert not {a["category"] for a in decision["actions"]} & credit
        for c in record["candidates"]:
            if c["category"] in credit:
                assert not c["eligible"]
                assert c["removed_by"] in (
                    "no_credit_after_failed_check", "eligibility", "applicability", "suitability"
                )  # fmt: skip
                assert c["propensity"] == 0.0
    removed = {c["removed_by"] for c in record["candidates"] if c["category"] in credit}
    assert "no_credit_after_failed_check" in removed


def test_no_sales_offer_within_30_minutes_of_a_complaint() -> None:
    sim = Sim(GREEDY)
    known_customer(sim)
    sim.txn("payment", 5000.0, category="salary")
    sim.txn("purchase", 400.0)
    before, _ = sim.request()
    assert before["actions"][0]["category"] in SALES
    sim.complaint(severity="low")
    opened = sim.profile["last_complaint_ts"]
    for minutes in (1, 10, 29):
        decision, record = sim.request(at=opened + minutes * MINUTE)
        assert not {a["category"] for a in decision["actions"]} & SALES
        removed = {c["removed_by"] for c in record["candidates"] if c["category"] in SALES}
        assert "no_upsell_after_complaint" in removed
    after, _ = sim.request(at=opened + 31 * MINUTE)
    assert after["actions"][0]["category"] in SALES


def test_complaint_starts_service_recovery_on_the_best_channel() -> None:
    sim = Sim(GREEDY)
    known_customer(sim)
    sim.consent("email")
    emits = sim.complaint(severity="high")
    (decision,) = decisions(emits)
    assert decision["trigger"]["name"] == "service_recovery"
    assert decision["trigger"]["type"] == "event"
    # callback value 40, prior 0.5, lever 3: on the agent's list (cost 2) beats an apology email
    assert decision["channel"] == "call_center"
    assert offers(decision) == ["complaint_callback"]


def winback_customer(sim: Sim) -> list[Emit]:
    """A long-standing customer whose complaint was resolved a day ago: the winback fires."""
    sim.now = T0 - 800 * DAY_MS
    sim.attrs(age="40", segment="silver")
    sim.consent("email")
    sim.consent("outbound_call")
    sim.txn("purchase", 500.0, at=T0 - 100 * DAY_MS)
    sim.txn("payment", 3000.0, category="salary", at=T0 - 20 * DAY_MS)
    sim.complaint(severity="low", at=T0)
    sim.complaint(status="resolved", at=T0 + HOUR)
    return sim.advance(to=T0 + HOUR + DAY_MS)


def test_outbound_call_is_chosen_only_when_it_earns_its_cost() -> None:
    # priors: call 0.15 x 150 - 4.50 = 18.0 beats email 0.02 x 150 - 0.005 = 2.995
    sim = Sim(GREEDY)
    emits = winback_customer(sim)
    (decision,) = decisions(emits)
    assert decision["trigger"]["name"] == "winback_after_resolution"
    assert decision["channel"] == "outbound_call"
    assert offers(decision) == ["winback_call"]
    (record,) = logged(emits)
    winback = next(c for c in record["candidates"] if c["offer_id"] == "winback_call")
    assert winback["channel_scores"] == pytest.approx({"email": 2.995, "outbound_call": 18.0})

    # a model that knows calls work less well (0.03): 4.5 - 4.5 = 0 < 2.995, email wins
    models = FakeModels({("winback_call", "outbound_call"): 0.03, ("winback_call", "email"): 0.02})
    sim = Sim(GREEDY, models)
    (decision,) = decisions(winback_customer(sim))
    assert decision["channel"] == "email"
    assert offers(decision) == ["winback_call"]
    assert decision["model_version"] == "fake-1"


# --- requests -----------------------------------------------------------------------------------

_events = st.lists(
    st.sampled_from(
        [
            "view_card",
            "view_travel",
            "add_to_cart",
            "purchase_complete",
            "salary",
            "big_purchase",
            "credit_failed",
            "credit_passed",
            "complaint",
            "resolve",
            "consent_email",
            "consent_push",
            "withdraw_push",
            "request",
            "click_last",
            "dismiss_last",
            "wait",
        ]
    ),
    max_size=25,
)


def run_script(script: list[str], seed: int = 0, strategy: Strategy = EXAMPLE) -> Sim:
    sim = Sim(strategy, seed=seed)
    known_customer(sim, since_days=400)
    last: dict[str, Any] | None = None
    for step in script:
        if step == "view_card":
            sim.click("product_view", category="credit_card")
        elif step == "view_travel":
            sim.click("product_view", category="travel")
        elif step == "add_to_cart":
            sim.click("add_to_cart", product_id="p1", price=90.0, category="travel")
        elif step == "purchase_complete":
            sim.click("purchase_complete", category="travel")
        elif step == "salary":
            sim.txn("payment", 3500.0, category="salary")
        elif step == "big_purchase":
            sim.txn("purchase", 1500.0, category="electronics")
        elif step in ("credit_failed", "credit_passed"):
            sim.txn("credit_check", 0.0, status=step.split("_")[1])
        elif step == "complaint":
            sim.complaint(severity="high", complaint_id=f"k{sim.n}")
        elif step == "resolve":
            for cid in list(sim.profile.get("open_complaints", {})):
                sim.complaint(status="resolved", complaint_id=cid)
        elif step.startswith(("consent_", "withdraw_")):
            sim.consent(step.split("_")[1], granted=step.startswith("consent"))
        elif step == "request":
            last, _ = sim.request(max_actions=2)
        elif step in ("click_last", "dismiss_last") and last and last["actions"]:
            sim.event(
                "outcome",
                decision_id=last["decision_id"],
                channel=last["channel"],
                offer_id=last["actions"][0]["offer_id"],
                type=step.split("_")[0],
                value=None,
            )
        elif step == "wait":
            sim.advance(7 * HOUR)
    sim.advance(5 * DAY_MS)
    return sim


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    channel=st.sampled_from(CHANNELS),
    max_actions=st.integers(1, 4),
    placement=st.text("abcdefgh_", min_size=1, max_size=12),
    script=_events,
)
def test_every_request_is_answered_on_its_channel(
    channel: str, max_actions: int, placement: str, script: list[str]
) -> None:
    sim = run_script(script)
    decision, record = sim.request(
        channel, max_actions, placement=placement, request_id="req-42", context={"device": "app"}
    )
    assert decision["request_id"] == "req-42"
    assert decision["channel"] == channel
    assert decision["placement"] == placement
    assert decision["trigger"] == {"type": "request", "id": "req-42", "name": None}
    assert decision["decision_id"] == decision_id_for("request", "req-42")
    assert len(decision["actions"]) <= max_actions
    assert decision["reasons"]
    assert [a["rank"] for a in decision["actions"]] == list(range(1, len(decision["actions"]) + 1))
    assert record["decision"] == decision
    assert record["partition"] == 3
    assert record["input_offsets"] == {"rtim.requests": 7}
    assert record["features"]["channel"] == channel
    assert record["features"]["context.device"] == "app"
    for c in record["candidates"]:
        assert c["eligible"] == (c["removed_by"] is None)
        if not c["eligible"]:
            assert c["removed_reason"]
            assert c["propensity"] == 0.0
    chosen = {a["offer_id"]: a["propensity"] for a in decision["actions"]}
    for c in record["candidates"]:
        if c["offer_id"] in chosen:
            assert c["propensity"] == chosen[c["offer_id"]]
            assert 0.0 < c["propensity"] <= 1.0


def test_nothing_eligible_is_an_explicit_no_action_with_reasons() -> None:
    sim = Sim()
    sim.attrs(age="16")
    decision, record = sim.request("sms")
    assert decision["actions"] == []
    assert decision["reasons"] == [
        "no action: none of 1 candidates eligible",
        "removed by applicability",
    ]
    (reminder,) = record["candidates"]
    assert (reminder["removed_by"], reminder["removed_reason"]) == (
        "applicability",
        "cart_value > 0",
    )
    sim.click("add_to_cart", product_id="p1", price=50.0)
    decision, record = sim.request("sms")  # a cart now, but no consent for sms
    assert decision["actions"] == []
    (reminder,) = record["candidates"]
    assert reminder["removed_by"] == "channel_consent"
    assert reminder["removed_reason"] == "no consent for sms"


def test_a_channel_without_offers_or_configuration_still_gets_an_answer() -> None:
    strategy = parse_strategy(
        {
            "strategy_version": "tiny",
            "channels": {"web": {"cost": 0.0}},
            "offers": [{"id": "a", "category": "x", "value": 1, "channels": ["web"]}],
        }
    )
    sim = Sim(strategy)
    decision, record = sim.request("email")
    assert decision["actions"] == []
    assert decision["reasons"] == ["no action: channel email not enabled"]
    assert record["candidates"] == []
    decision, _ = sim.request("web")
    assert offers(decision) == ["a"]


def test_below_min_score_is_deliberately_no_action() -> None:
    strategy = parse_strategy(
        {
            "strategy_version": "tiny",
            "channels": {"web": {"cost": 0.001}},
            "offers": [
                {"id": "meh", "category": "x", "value": 1, "channels": ["web"], "prior": 0.01}
            ],
            "arbitration": {"min_score": 0.05},
        }
    )
    decision, record = Sim(strategy).request()
    assert decision["actions"] == []
    assert decision["reasons"] == [
        "no action: none of 1 candidates eligible",
        "removed by min_score",
    ]
    (meh,) = record["candidates"]
    assert meh["removed_by"] == "min_score"
    assert meh["removed_reason"] == "score 0.009 below min_score 0.05"
    assert meh["channel"] == "web"
    assert meh["score"] == pytest.approx(0.009)


def test_explanations_quote_the_failing_clause_with_values() -> None:
    sim = Sim()
    sim.attrs(age="16")
    _, record = sim.request()
    gold = next(c for c in record["candidates"] if c["offer_id"] == "gold_card")
    assert gold["removed_by"] == "eligibility"
    assert gold["removed_reason"] == "age >= 18 and tenure_days >= 180"
    strategy = EXAMPLE
    p = sim.profile
    features = compute_features(p, sim.now, channel="web", placement="home", tz=strategy.zone)
    trigger = DecisionTrigger("request", "rx", ("web",), request_id="rx")
    result = decide(p, features, trigger, strategy, None, sim.now, random_for("rx"), explain=True)
    gold_c = next(c for c in result.candidates if c.offer_id == "gold_card")
    assert gold_c.removed_reason == "age >= 18 (age = 16.0)"


def test_a_candidate_removed_by_a_gate_and_its_record_are_shared_between_decisions() -> None:
    sim = Sim()
    sim.attrs(age="16")
    p = sim.profile
    features = compute_features(p, sim.now, channel="web", placement="home", tz=EXAMPLE.zone)
    gold = []
    for rid in ("r1", "r2"):
        trigger = DecisionTrigger("request", rid, ("web",), request_id=rid)
        result = decide(p, features, trigger, EXAMPLE, None, sim.now, random_for(rid))
        gold.append(next(c for c in result.candidates if c.offer_id == "gold_card"))
    assert gold[0].removed_by == "eligibility"
    assert gold[0] is gold[1]
    records = [c.to_record() for c in gold]
    assert records[0] is records[1]  # built once; read-only like the candidate itself
    fresh = dataclasses.replace(gold[0])  # a candidate of this decision only: its own record
    assert fresh.to_record() == records[0]
    assert fresh.to_record() is not fresh.to_record()


def random_for(decision_id: str, seed: int = 0) -> Any:
    return decision_rng(decision_id_for("request", decision_id), seed)


# --- outbound: triggers, caps, consent, quiet hours --------------------------------------------


def cart_customer(sim: Sim, *channels: str) -> None:
    known_customer(sim)
    for ch in channels:
        sim.consent(ch)


def test_cart_abandonment_fires_after_the_wait_with_the_scheduling_event_id() -> None:
    sim = Sim(GREEDY)
    cart_customer(sim, "push")
    added = sim.click("add_to_cart", product_id="p1", price=90.0, category="shoes")
    assert not decisions(added)
    (timer,) = [t for t in sim.profile["timers"] if t[3] == "t"]
    event_id = f"click-{sim.n}"
    assert timer == (sim.now + 30 * MINUTE, "cart_abandonment", event_id, "t")
    assert not decisions(sim.advance(30 * MINUTE - 1))
    (decision,) = decisions(sim.advance(1))
    assert decision["trigger"] == {"type": "event", "id": event_id, "name": "cart_abandonment"}
    assert decision["decision_id"] == decision_id_for("event", event_id, "cart_abandonment")
    assert decision["ts"] == timer[0]
    assert decision["channel"] == "push"
    assert offers(decision) == ["cart_reminder"]
    assert decision["request_id"] is None
    assert sim.profile["contacts"][-1] == (timer[0], "push", "cart_reminder")
    assert sim.profile["trigger_fired"] == {"cart_abandonment": timer[0]}


def test_the_unless_event_cancels_the_pending_trigger() -> None:
    sim = Sim(GREEDY)
    cart_customer(sim, "push", "email")
    sim.click("add_to_cart", product_id="p1", price=90.0, category="shoes")
    sim.click("purchase_complete", after=10 * MINUTE)
    assert not [t for t in sim.profile.get("timers", ()) if t[3] == "t"]
    assert not decisions(sim.advance(DAY_MS))
    assert sim.decider.counters["triggers_cancelled"] == 1


def test_a_repeated_on_event_restarts_the_wait_and_small_carts_do_not_trigger() -> None:
    sim = Sim(GREEDY)
    cart_customer(sim, "push")
    sim.click("add_to_cart", product_id="cheap", price=5.0)  # cart_value 5 < 20: `when` fails
    assert not sim.profile.get("timers")
    sim.click("add_to_cart", product_id="p1", price=90.0)
    first = sim.now
    sim.click("add_to_cart", product_id="p2", price=10.0, after=20 * MINUTE)
    (timer,) = [t for t in sim.profile["timers"] if t[3] == "t"]
    assert timer[0] == sim.now + 30 * MINUTE
    assert not decisions(sim.advance(to=first + 30 * MINUTE))
    (decision,) = decisions(sim.advance(to=timer[0]))
    assert decision["trigger"]["id"] == f"click-{sim.n}"


def test_trigger_and_offer_cooldowns() -> None:
    sim = Sim(GREEDY)
    cart_customer(sim, "push", "email")
    sim.click("add_to_cart", product_id="p1", price=90.0)
    (first,) = decisions(sim.advance(30 * MINUTE))
    sim.click("remove_from_cart", product_id="p1", after=HOUR)
    sim.click("add_to_cart", product_id="p2", price=90.0)
    assert not decisions(sim.advance(30 * MINUTE))  # cart_abandonment cooldown 1d
    assert sim.decider.counters["triggers_cooling"] >= 1
    sim.advance(to=first["ts"] + DAY_MS + HOUR)
    sim.click("add_to_cart", product_id="p3", price=90.0)
    (second,) = decisions(sim.advance(30 * MINUTE))
    # cart_reminder (cooldown 1d) is back; the 5% discount (cooldown 14d) not yet used
    assert offers(first) == ["cart_reminder"]
    assert offers(second) == ["cart_reminder"]


def test_offer_cooldown_counts_inbound_decisions_too() -> None:
    sim = Sim(GREEDY)
    known_customer(sim)
    sim.txn("payment", 5000.0, category="salary")
    first, _ = sim.request()
    assert offers(first) == ["gold_card"]  # 0.03 x 120 = 3.6, the best on the web
    second, record = sim.request()
    gold = next(c for c in record["candidates"] if c["offer_id"] == "gold_card")
    assert gold["removed_by"] == "offer_caps"
    assert gold["removed_reason"].startswith("cooldown 2w")
    assert offers(second) != ["gold_card"]
    third, _ = sim.request(at=first["ts"] + 14 * DAY_MS)
    assert offers(third) == ["gold_card"]


CAPS = """
strategy_version: caps
timezone: Europe/Amsterdam
channels:
  web: {cost: 0.001}
  email: {cost: 0.005, max_per_day: 1}
  push: {cost: 0.002, quiet_hours: "21:00-08:00"}
  sms: {cost: 0.05}
offers:
  - {id: a, category: x, value: 10, channels: [email], prior: 0.5}
  - {id: b, category: y, value: 10, channels: [email, push], prior: 0.4}
  - {id: c, category: y, value: 10, channels: [sms], prior: 0.4}
rules:
  - {name: two_a_day, kind: contact_cap, max_per_day: 2}
triggers:
  - {name: t1, on: purchase, channels: [email], offers: [a]}
  - {name: t2, on: purchase, channels: [email, push], offers: [b]}
  - {name: t3, on: purchase, channels: [sms], offers: [c]}
exploration: {policy: greedy}
"""


def test_every_offer_in_its_cooldown_stays_there_however_many_there_are() -> None:
    # 40 offers with a cooldown, shown one after the other: none comes back before its end
    # (a profile used to remember the last 32 shown)
    lines = ['strategy_version: "many"', "channels:", "  web: {cost: 0.001}", "offers:"]
    lines += [
        f"  - {{id: o{i:02d}, category: c, value: {100 - i}, channels: [web], "
        "caps: {cooldown: 30d}}"
        for i in range(40)
    ]
    lines += ["exploration: {policy: greedy}", "control_group: {share: 0.0}"]
    sim = Sim(parse_strategy("\n".join(lines) + "\n"))
    shown = [offers(sim.request(after=HOUR)[0]) for _ in range(40)]
    assert sorted(o for one in shown for o in one) == [f"o{i:02d}" for i in range(40)]
    last, record = sim.request(after=HOUR)
    assert last["actions"] == []
    assert {c["removed_by"] for c in record["candidates"]} == {"offer_caps"}


def test_a_contact_counts_for_its_rules_as_long_as_they_look_back() -> None:
    # one email a day for 50 days, each about another offer: "no repeat within 90 days" holds
    # for all of them (a profile used to keep the 32 latest contacts, whatever the rules)
    lines = [
        'strategy_version: "contacts"', "channels:", "  web: {cost: 0.001}",
        "  email: {cost: 0.005, max_per_day: 1}", "offers:",
    ]  # fmt: skip
    lines += [
        f"  - {{id: o{i:02d}, category: c, value: {100 - i}, channels: [email]}}" for i in range(60)
    ]
    lines += [
        "rules:",
        "  - {name: no_repeat, kind: suppress, after: contact, scope: offer, within: 90d}",
        "triggers:",
        "  - {name: bought, on: purchase, channels: [email], categories: [c]}",
        "exploration: {policy: greedy}",
        "control_group: {share: 0.0}",
    ]
    sim = Sim(parse_strategy("\n".join(lines) + "\n"))
    known_customer(sim)
    sim.consent("email")
    sent = []
    for _ in range(50):
        emits = sim.txn("purchase", 10.0, after=DAY_MS)
        sent += [o for d in decisions(emits) for o in offers(d)]
    assert sent == [f"o{i:02d}" for i in range(50)]


def test_caps_count_contacts_made_in_the_same_step() -> None:
    sim = Sim(parse_strategy(CAPS))
    sim.consent("email")
    sim.consent("sms")
    emits = sim.txn("purchase", 20.0)
    sent = decisions(emits)
    assert [(d["channel"], offers(d)) for d in sent] == [("email", ["a"]), ("sms", ["c"])]
    records = logged(emits)
    assert len(records) == 3  # every firing is logged, also the one that could not act
    b = next(c for c in records[1]["candidates"] if c["offer_id"] == "b")
    assert b["removed_by"] == "channel_caps"
    assert b["removed_reason"] == "1 email contacts today (max 1 per day); no consent for push"

    # with push consent, b goes by push instead; then the global cap stops the sms
    sim = Sim(parse_strategy(CAPS))
    for ch in ("email", "push", "sms"):
        sim.consent(ch)
    emits = sim.txn("purchase", 20.0)
    assert [(d["channel"], offers(d)) for d in decisions(emits)] == [
        ("email", ["a"]),
        ("push", ["b"]),
    ]
    c = next(c for c in logged(emits)[2]["candidates"] if c["offer_id"] == "c")
    assert c["removed_by"] == "two_a_day"
    # the next local day the caps are open again
    emits = sim.txn("purchase", 20.0, after=DAY_MS)
    assert len(decisions(emits)) == 2


def test_per_day_caps_count_from_local_midnight() -> None:
    sim = Sim(parse_strategy(CAPS), t0=T0 + 12 * HOUR)  # 22:00 in Amsterdam
    sim.consent("email")
    assert len(decisions(sim.txn("purchase", 20.0))) == 1  # t2 finds email capped
    # 23:59 local: still the same day, capped
    emits = sim.txn("purchase", 20.0, at=T0 + 13 * HOUR + 59 * MINUTE)
    assert not decisions(emits)
    # 00:01 local (23:01 UTC, the same UTC day): a new local day
    emits = sim.txn("purchase", 20.0, at=T0 + 14 * HOUR + MINUTE)
    assert len(decisions(emits)) == 1


def test_consent_withdrawal_and_unsubscribe_take_effect_immediately() -> None:
    sim = Sim(parse_strategy(CAPS))
    sim.consent("email")
    sim.consent("email", granted=False)
    emits = sim.txn("purchase", 20.0)
    assert not decisions(emits)
    a = next(c for c in logged(emits)[0]["candidates"] if c["offer_id"] == "a")
    assert (a["removed_by"], a["removed_reason"]) == ("channel_consent", "no consent for email")

    sim = Sim(GREEDY)
    cart_customer(sim, "push", "email")
    sim.click("add_to_cart", product_id="p1", price=90.0)
    (decision,) = decisions(sim.advance(30 * MINUTE))
    assert decision["channel"] == "push"
    sim.event(
        "outcome",
        decision_id=decision["decision_id"],
        channel="push",
        offer_id="cart_reminder",
        type="unsubscribe",
        after=MINUTE,
    )
    assert sim.profile["consent"]["push"][0] is False
    sim.click("add_to_cart", product_id="p2", price=90.0, at=decision["ts"] + 2 * DAY_MS)
    emits = sim.advance(30 * MINUTE)
    assert not decisions(emits)
    (record,) = logged(emits)
    assert record["features"]["consent.push"] is False
    reminder = next(c for c in record["candidates"] if c["offer_id"] == "cart_reminder")
    # sales are calmed everywhere for 30 days after an unsubscribe, push lacks consent anyway
    assert reminder["removed_by"] == "calm_after_unsubscribe"


def test_quiet_hours_defer_to_their_end_when_no_other_channel_can_act() -> None:
    evening = T0 + 11 * HOUR + 45 * MINUTE  # 21:45 local
    sim = Sim(GREEDY)
    cart_customer(sim, "push")
    sim.click("add_to_cart", product_id="p1", price=90.0, at=evening)
    assert not decisions(sim.advance(to=evening + 30 * MINUTE))  # 22:15: push is quiet
    (deferred,) = [t for t in sim.profile["timers"] if t[3] == "q"]
    morning = T0 + 22 * HOUR  # 08:00 local the next day
    assert deferred[0] == morning
    assert sim.decider.counters["triggers_deferred"] == 1
    assert not decisions(sim.advance(to=morning - 1))
    (decision,) = decisions(sim.advance(to=morning))
    assert decision["channel"] == "push"
    assert decision["ts"] == morning
    assert decision["trigger"]["id"] == f"click-{sim.n}"


def test_quiet_hours_do_not_wait_when_another_channel_can_act_now() -> None:
    evening = T0 + 11 * HOUR + 45 * MINUTE
    sim = Sim(GREEDY)
    cart_customer(sim, "push", "email")
    sim.click("add_to_cart", product_id="p1", price=90.0, at=evening)
    (decision,) = decisions(sim.advance(to=evening + 30 * MINUTE))
    assert decision["channel"] == "email"  # push would be cheaper but is quiet
    (record,) = logged(sim.log[-2:])
    reminder = next(c for c in record["candidates"] if c["offer_id"] == "cart_reminder")
    assert set(reminder["channel_scores"]) == {"email"}


def test_a_deferred_firing_that_still_cannot_act_is_logged_as_no_action() -> None:
    evening = T0 + 11 * HOUR + 45 * MINUTE
    sim = Sim(GREEDY)
    cart_customer(sim, "push")
    sim.click("add_to_cart", product_id="p1", price=90.0, at=evening)
    sim.advance(to=evening + 30 * MINUTE)
    sim.consent("push", granted=False, at=evening + 2 * HOUR)
    emits = sim.advance(to=T0 + 22 * HOUR)
    assert not decisions(emits)
    (record,) = logged(emits)
    assert record["decision"]["actions"] == []
    assert not [t for t in sim.profile.get("timers", ()) if t[3] in "tq"]


def test_timers_survive_a_restart() -> None:
    sim = Sim(GREEDY)
    cart_customer(sim, "push")
    sim.click("add_to_cart", product_id="p1", price=90.0)
    restored = Sim(GREEDY)
    restored.profile = decode_profile(encode_profile(sim.profile))
    restored.now, restored.n = sim.now, sim.n
    assert decisions(sim.advance(HOUR)) == decisions(restored.advance(HOUR))
    assert sim.profile == restored.profile


CHANNEL_READING = parse_strategy(
    """
strategy_version: "1"
channels:
  email: {direction: outbound, cost: 0.01}
  push: {direction: outbound, cost: 0.01}
  sms: {direction: outbound, cost: 0.01}
offers:
  - {id: push_only, category: upsell, value: 1, channels: [email, push, sms],
     applicability: channel == "push"}
  - {id: adult, category: upsell, value: 2, channels: [email, push, sms], eligibility: age >= 18}
  - {id: senior, category: upsell, value: 3, channels: [email, push, sms], eligibility: age >= 65}
rules:
  - {name: no_sms_to_adults, kind: suppress, channels: [sms, push], when: channel == "sms"}
triggers:
  - {name: hello, on: login, channels: [email, push, sms]}
""",
    "channel-reading.yaml",
)


_GATE_FEATURES = sorted(
    {name for offer in EXAMPLE.offers for _stage, cond in offer.gates for name in cond.features}
)
_GATE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 4_000),
    st.floats(-5.0, 4_000.0, allow_nan=False),
    st.sampled_from(["gold", "platinum", "silver", "passed", "failed", "medium", "high", "true"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CHANNELS),
    st.fixed_dictionaries({}, optional={name: _GATE_VALUES for name in _GATE_FEATURES}),
)
def test_a_one_channel_decision_removes_by_the_same_gate_with_explain_on_or_off(
    channel: str, values: dict[str, Any]
) -> None:
    # without `explain`, a request's gates hand out their shared candidates directly (a fast
    # path); what they remove, by which gate and why, is what the checks with `explain` find
    features = {"channel": channel, "placement": "home", **values}
    trigger = DecisionTrigger("request", "rx", (channel,), request_id="rx")
    fast, explained = (
        decide(new_profile("c1"), features, trigger, EXAMPLE, None, T0, random_for("rx"),
               explain=explain)
        for explain in (False, True)
    )  # fmt: skip
    assert len(fast.candidates) == len(explained.candidates)
    gates = {o.id: dict(o.gates) for o in EXAMPLE.offers}
    for a, b in zip(fast.candidates, explained.candidates, strict=True):
        assert (a.offer_id, a.eligible, a.removed_by, a.channel, a.score) == (
            b.offer_id, b.eligible, b.removed_by, b.channel, b.score,
        )  # fmt: skip
        gate = gates[a.offer_id].get(a.removed_by or "")
        if gate is not None:
            assert a.removed_reason == gate.source
            assert not gate.evaluate(features)
        elif b.removed_reason is not None and b.removed_reason.startswith("while "):
            # a rule's `when`: with explain, its values are quoted too
            assert a.removed_reason == "while " + next(
                r.when.source for r in EXAMPLE.rules if r.name == a.removed_by and r.when
            )
        else:
            assert a.removed_reason == b.removed_reason
    assert [x.offer.id for x in fast.actions] == [x.offer.id for x in explained.actions]


@pytest.mark.parametrize("explain", [False, True])
def test_a_decision_over_several_channels_evaluates_what_reads_the_channel_per_channel(
    explain: bool,
) -> None:
    # the gates and rules that do not read `channel` are evaluated once for all channels
    # (a shortcut); those that do must still see each channel
    (trigger,) = CHANNEL_READING.triggers
    features = {"age": 30, **{f"consent.{ch}": True for ch in ("email", "push", "sms")}}
    trigger_of = DecisionTrigger.for_trigger(trigger, "login-1")
    result = decide(
        new_profile("c1"), features, trigger_of, CHANNEL_READING, None, T0, decision_rng("d"),
        explain=explain,
    )  # fmt: skip
    by_offer = {c.offer_id: c for c in result.candidates}
    assert set(by_offer["push_only"].channel_scores) == {"push"}
    assert set(by_offer["adult"].channel_scores) == {"email", "push"}  # suppressed on sms only
    senior = by_offer["senior"]
    assert (senior.eligible, senior.removed_by) == (False, "eligibility")
    assert senior.removed_reason == ("age >= 65 (age = 30)" if explain else "age >= 65")


def test_outbound_slate_goes_out_on_one_channel() -> None:
    strategy = example_with(
        ("    categories: [cross_sell, insurance, loan]\n    cooldown: 7d",
         "    categories: [cross_sell, insurance, loan]\n    max_actions: 3\n    cooldown: 7d"),
        ("policy: epsilon_greedy", "policy: greedy"),
    )  # fmt: skip
    sim = Sim(strategy)
    known_customer(sim)
    sim.consent("email")
    sim.consent("push")
    sim.click("product_view", category="travel")
    sim.txn("purchase", 1500.0)
    (decision,) = decisions(sim.advance(2 * HOUR))
    assert decision["trigger"]["name"] == "large_purchase_cross_sell"
    assert 1 < len(decision["actions"]) <= 3
    (record,) = logged(sim.log[-2:])
    for c in record["candidates"]:
        if c["removed_by"] == "decision_channel":
            assert c["channel"] != decision["channel"]
    assert sum(c["propensity"] for c in record["candidates"]) == pytest.approx(
        len(decision["actions"])
    )


# --- exploration, control group, propensities ----------------------------------------------


def busy_profile() -> tuple[Profile, int]:
    sim = Sim()
    known_customer(sim, homeowner="true")
    sim.consent("email")
    sim.txn("payment", 4000.0, category="salary")
    sim.txn("purchase", 1200.0, category="travel")
    sim.txn("credit_check", 0.0, status="passed")
    for i in range(30):
        sim.click("product_view", category=("credit_card", "travel", "auto")[i % 3], page=f"/{i}")
    sim.click("add_to_cart", product_id="p1", price=200.0, category="travel")
    return sim.profile, sim.now + 1000


def web_decisions(
    strategy: Strategy, seeds: range, max_actions: int = 1, models: Any = None
) -> list[Any]:
    profile, now = busy_profile()
    features = compute_features(profile, now, channel="web", placement="home", tz=strategy.zone)
    trigger = DecisionTrigger("request", "req", ("web",), None, max_actions, "home", "req")
    return [
        decide(profile, features, trigger, strategy, models, now, decision_rng("d", seed))
        for seed in seeds
    ]


POLICIES = {
    "epsilon_greedy": example_with(
        ("epsilon: 0.05", "epsilon: 0.3"), ("share: 0.10", "share: 0.1")
    ),
    "softmax": example_with(
        ("policy: epsilon_greedy\n  epsilon: 0.05", "policy: softmax\n  temperature: 1.5"),
        ("share: 0.10", "share: 0.1"),
    ),
    "greedy": example_with(
        ("policy: epsilon_greedy", "policy: greedy"), ("share: 0.10", "share: 0.2")
    ),
    "thompson": example_with(("policy: epsilon_greedy", "policy: thompson")),
}  # fmt: skip


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("max_actions", [1, 2])
def test_logged_propensities_match_the_empirical_frequencies(policy: str, max_actions: int) -> None:
    n = 3000 if policy != "thompson" else 500
    results = web_decisions(POLICIES[policy], range(n), max_actions)
    eligible = [c.offer_id for c in results[0].candidates if c.eligible]
    assert len(eligible) >= 5
    counts: Counter[str] = Counter()
    logged_p: dict[str, float] = dict.fromkeys(eligible, 0.0)
    for r in results:
        assert len(r.actions) == max_actions
        assert math.fsum(c.propensity for c in r.candidates) == pytest.approx(max_actions)
        assert all(c.propensity == 0.0 for c in r.candidates if not c.eligible)
        for c in r.candidates:
            if c.eligible:
                logged_p[c.offer_id] += c.propensity / n
        for a in r.actions:
            counts[a.offer_id] += 1
            cand = next(c for c in r.candidates if c.offer_id == a.offer_id)
            assert a.propensity == cand.propensity > 0.0
    for offer_id in eligible:
        p = logged_p[offer_id]
        sigma = math.sqrt(max(p * (1 - p), 1e-4) / n)
        slack = 4.5 * sigma + (0.03 if policy == "thompson" else 0.0)
        assert abs(counts[offer_id] / n - p) <= slack, (offer_id, counts[offer_id] / n, p)


def test_softmax_pair_propensities_are_exact_plackett_luce_mixtures() -> None:
    strategy = POLICIES["softmax"]
    (result,) = web_decisions(strategy, range(1), max_actions=2)
    pool = [c for c in result.candidates if c.eligible]
    weights = [math.exp(c.score / 1.5) for c in pool]
    total = sum(weights)
    m = len(pool)
    for i, c in enumerate(pool):
        pl = 0.0
        for a, b in itertools.permutations(range(m), 2):
            if i in (a, b):
                pl += weights[a] / total * weights[b] / (total - weights[a])
        assert c.propensity == pytest.approx(0.1 * 2 / m + 0.9 * pl, rel=1e-9)


def test_control_group_share_and_uniform_choice_among_the_eligible() -> None:
    strategy = POLICIES["greedy"]  # share 0.2
    results = web_decisions(strategy, range(3000))
    control = [r for r in results if r.control_group]
    assert abs(len(control) / 3000 - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 3000)
    assert all(r.policy == "control" for r in control)
    eligible = [c for c in results[0].candidates if c.eligible]
    assert control[0].reasons[1].startswith(f"control group: uniform among {len(eligible)} ")
    best = max(eligible, key=lambda c: c.score).offer_id
    counts = Counter(r.actions[0].offer_id for r in control)
    assert set(counts) == {c.offer_id for c in eligible}  # every eligible action, nothing else
    assert all(r.actions[0].offer_id == best for r in results if not r.control_group)

    example = web_decisions(EXAMPLE, range(4000))
    share = sum(r.control_group for r in example) / 4000
    assert abs(share - 0.10) < 4 * math.sqrt(0.10 * 0.90 / 4000)


def test_propensity_blends_model_and_prior_by_experience() -> None:
    profile, now = busy_profile()
    strategy = GREEDY
    features = compute_features(profile, now, channel="web", placement="home", tz=strategy.zone)
    trigger = DecisionTrigger("request", "req", ("web",), request_id="req")

    def gold_p(models: Any) -> float:
        r = decide(profile, features, trigger, strategy, models, now, decision_rng("x"))
        return next(c.propensity_model for c in r.candidates if c.offer_id == "gold_card")

    assert gold_p(None) == 0.03
    assert gold_p(FakeModels({("gold_card", "web"): 0.2}, examples=0)) == pytest.approx(0.03)
    assert gold_p(FakeModels({("gold_card", "web"): 0.2}, examples=20)) == pytest.approx(0.115)
    assert gold_p(FakeModels({("gold_card", "web"): 0.2}, examples=10**9)) == pytest.approx(0.2)
    models = FakeModels({("gold_card", "web"): 0.2})
    gold_p(models)
    assert len({id(x) for x in models.seen}) == 1  # one model-feature dict per decision
    assert 0 < len(models.seen[0]) <= 20


def test_no_models_ids_match_the_learning_module() -> None:
    from rtim.core.learning import model_id_for

    assert NoModels().model_id("gold_card", "web") == model_id_for("gold_card", "web")


# --- determinism --------------------------------------------------------------------------------


def _normalised(emits: list[Emit]) -> list[tuple[str, str, str, Any]]:
    return [(e.topic, e.key, e.schema, e.record) for e in emits]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=_events, seed=st.integers(0, 3))
def test_the_same_inputs_give_the_same_emits(script: list[str], seed: int) -> None:
    a = run_script(script, seed, WILD)
    b = run_script(script, seed, WILD)
    assert _normalised(a.log) == _normalised(b.log)
    assert a.profile == b.profile
    assert decode_profile(encode_profile(a.profile)) == a.profile
    ids = [d["decision_id"] for d in decisions(a.log)]
    assert len(ids) == len(set(ids))


def test_decision_ids_and_draws_derive_from_the_trigger() -> None:
    assert decision_id_for("request", "r1") == decision_id_for("request", "r1")
    assert decision_id_for("request", "r1") != decision_id_for("event", "r1")
    assert decision_id_for("event", "e1", "a") != decision_id_for("event", "e1", "b")
    assert len(decision_id_for("event", "e" * 300, "cart_abandonment")) == 16
    assert decision_rng("d", 1).random() == decision_rng("d", 1).random()
    assert decision_rng("d", 1).random() != decision_rng("d", 2).random()


def test_event_signals() -> None:
    def signals(kind: str, **r: Any) -> tuple[str, ...]:
        base = {"event_id": "e", "customer_id": "c", "ts": 1}
        return event_signals(make_event(kind, {**base, **r}))

    assert signals("click", type="add_to_cart", session_id="s") == ("add_to_cart",)
    assert signals("txn", type="purchase", status="approved") == ("purchase",)
    assert signals("txn", type="purchase", status="declined") == ("purchase_declined",)
    assert signals("txn", type="payment", status="approved", category="salary") == (
        "payment",
        "salary_payment",
    )
    assert signals("txn", type="payment", status="declined", category="salary") == ()
    assert signals("txn", type="credit_check", status="failed") == ("credit_check_failed",)
    assert signals("complaint", status="opened") == ("complaint_opened",)
    assert signals("profile", type="consent", channel="sms", granted=False) == (
        "consent_withdrawn",
    )
    assert signals("outcome", type="dismiss") == ("dismiss",)
    assert signals("request", request_id="r") == ()


def test_a_dismissed_offer_is_not_repeated_for_a_week() -> None:
    sim = Sim(GREEDY)
    known_customer(sim)
    sim.txn("payment", 5000.0, category="salary")
    first, _ = sim.request()
    assert offers(first) == ["gold_card"]
    sim.event(
        "outcome", decision_id=first["decision_id"], channel="web", offer_id="gold_card",
        type="dismiss",
    )  # fmt: skip
    assert sim.profile["signals"] == {"dismiss:gold_card": sim.now}
    _, record = sim.request(at=sim.now + 6 * DAY_MS)
    gold = next(c for c in record["candidates"] if c["offer_id"] == "gold_card")
    assert gold["removed_by"] == "no_repeat_after_dismiss"
    assert gold["removed_reason"].startswith("dismiss 6d")
    later, _ = sim.request(at=first["ts"] + 15 * DAY_MS)  # after the 14d cooldown too
    assert offers(later) == ["gold_card"]


def test_every_dismissal_within_the_week_suppresses_however_many_offers_were_dismissed() -> None:
    # a busy customer who dismissed every offer of the strategy in a day: all are remembered
    # (the signals a strategy can count from are bounded by the strategy, so none is dropped)
    sim = Sim(GREEDY)
    known_customer(sim)
    sim.txn("payment", 5000.0, category="salary")
    sim.complaint("opened")
    sim.complaint("resolved")
    ids = [o.id for o in GREEDY.offers]
    assert len(ids) == 25  # more than the 24 signals a profile used to keep
    for offer_id in ids:
        sim.event("outcome", after=60_000, decision_id="d-" + offer_id, channel="web",
                  offer_id=offer_id, type="dismiss")  # fmt: skip
    assert {f"dismiss:{o}" for o in ids} <= set(sim.profile["signals"])
    decision, record = sim.request(at=sim.now + DAY_MS)
    assert decision["actions"] == []
    removed = {c["offer_id"]: c["removed_by"] for c in record["candidates"]}
    assert removed["gold_card"] == "no_repeat_after_dismiss"  # the first one dismissed
    gates = {"eligibility", "applicability", "suitability"}
    assert set(removed.values()) - gates == {"no_repeat_after_dismiss"}


def test_outcomes_naming_unknown_offers_leave_no_signal() -> None:
    # offer ids in outcomes are input data: only the strategy's offers are remembered
    sim = Sim(GREEDY)
    known_customer(sim)
    for i in range(100):
        sim.event("outcome", decision_id=f"d{i}", channel="web", offer_id=f"nope{i}",
                  type="dismiss")  # fmt: skip
    assert not sim.profile.get("signals")
    sim.event("outcome", decision_id="d", channel="web", offer_id="gold_card", type="dismiss")
    assert set(sim.profile["signals"]) == {"dismiss:gold_card"}


# --- erasure and size -------------------------------------------------------------------------


def test_requests_of_an_erased_customer_get_no_action_and_no_features() -> None:
    sim = Sim()
    known_customer(sim)
    sim.consent("push")
    sim.click("add_to_cart", product_id="p1", price=90.0)
    sim.event("profile", type="erasure")
    assert not sim.profile.get("timers")
    decision, record = sim.request()
    assert decision["actions"] == []
    assert decision["reasons"] == ["customer erased"]
    assert record["features"] == {}
    assert record["candidates"] == []
    assert not decisions(sim.advance(DAY_MS))


def busy_with_pending(requests: int) -> Profile:
    """A busy customer (attributes, consent, 40 clicks, a cart, a failed credit check, a purchase,
    a complaint opened and resolved) with a contact and `requests` answered web requests."""
    sim = Sim()
    known_customer(sim, homeowner="true")
    sim.consent("email")
    sim.consent("push")
    sim.txn("credit_check", 0.0, status="failed")
    for i in range(40):
        sim.click("product_view", category=("travel", "shoes", "auto")[i % 3], page=f"/p/{i}")
    sim.click("add_to_cart", product_id="p1", price=120.0, category="travel")
    sim.advance(31 * MINUTE)  # cart abandonment: a contact, a pending attribution
    sim.txn("purchase", 300.0, category="electronics")
    sim.complaint(severity="low")
    sim.complaint(status="resolved", after=2 * HOUR)
    for i in range(requests):
        sim.click("page_view", page=f"/q/{i}")
        sim.request(after=MINUTE)
    assert len(sim.profile["pending"]) == min(requests + 1, 16)
    return sim.profile


def test_a_busy_profile_stays_small() -> None:
    sizes = {n: len(encode_profile(busy_with_pending(n))) for n in (0, 2, 15)}
    assert sizes[0] < 850
    assert sizes[2] < 1000  # three pending decisions
    assert (sizes[15] - sizes[0]) / 15 < 70  # bytes per further pending decision
