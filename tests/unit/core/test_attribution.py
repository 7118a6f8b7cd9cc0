"""Reward attribution: outcomes matched by id or by offer and channel in the window, expiry and
complaint negatives, late and neutral outcomes, decision-time features, a bounded and compact
pending list."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.core.attribution import (
    MAX_PENDING,
    MODEL_FEATURES,
    TIMER_ATTRIBUTION,
    _compress,
    add_pending,
    model_features,
    pack_features,
    pending_attributions,
    pending_entry,
    unpack_features,
)
from rtim.core.decisioning import StrategyDecider
from rtim.core.engine import Emit, Engine, StepContext
from rtim.core.events import make_event
from rtim.core.profile import DAY_MS, Profile, decode_profile, encode_profile, new_profile
from rtim.core.strategy import parse_strategy
from rtim.serde.codec import Codec

MINUTE = 60_000
T0 = 1_741_078_800_000
CODEC = Codec()
STRATEGY = parse_strategy(
    """
strategy_version: attribution-test
channels:
  web: {cost: 0.001, expires_after: 30m}
  email: {cost: 0.005}
  push: {cost: 0.002}
offers:
  - {id: banner, category: x, value: 10, channels: [web], prior: 0.2}
  - {id: long, category: z, value: 5, channels: [web], prior: 0.1}
  - {id: mail, category: y, value: 20, channels: [email], prior: 0.2}
triggers:
  - {name: on_purchase, on: purchase, channels: [email], offers: [mail]}
exploration: {policy: greedy}
attribution:
  default: 3d
  channels: {web: 30m}
  offers: {long: 14d}
"""
)


class Sim:
    """One customer through the real engine; every emit is Avro-encoded."""

    def __init__(self) -> None:
        self.decider = StrategyDecider(STRATEGY)
        self.engine = Engine(self.decider)
        self.profile: Profile = new_profile("c1")
        self.now = T0
        self.n = 0
        self.ctx = StepContext()
        self.last_record: dict[str, Any] = {}

    def keep(self, emits: list[Emit]) -> list[Emit]:
        for e in emits:
            CODEC.encode(e.schema, e.record)
        return emits

    def advance(self, ms: int) -> list[Emit]:
        self.now += ms
        result = self.engine.on_timers(self.profile, self.now, self.ctx)
        self.profile = result.profile
        return self.keep(result.emits)

    def event(self, kind: str, *, fire_timers: bool = True, **r: Any) -> list[Emit]:
        out = self.advance(1000) if fire_timers else []
        if not fire_timers:
            self.now += 1000
        self.n += 1
        r.update(event_id=f"{kind}-{self.n}", customer_id="c1", ts=self.now)
        result = self.engine.on_event(self.profile, make_event(kind, r, self.n), self.ctx)
        self.profile = result.profile
        return out + self.keep(result.emits)

    def request(self, max_actions: int = 1) -> dict[str, Any]:
        emits = self.event(
            "request", request_id=f"r{self.n}", channel="web", placement="home",
            max_actions=max_actions,
        )  # fmt: skip
        (decision,) = [e.record for e in emits if e.schema == "Decision"]
        (self.last_record,) = [e.record for e in emits if e.schema == "DecisionRecord"]
        return decision

    def outcome(
        self, type_: str, offer_id: str, channel: str = "web", decision_id: str | None = None,
        value: float | None = None, *, fire_timers: bool = True,
    ) -> list[Emit]:  # fmt: skip
        return self.event(
            "outcome", fire_timers=fire_timers, decision_id=decision_id, channel=channel,
            offer_id=offer_id, type=type_, value=value,
        )  # fmt: skip


def examples(emits: list[Emit]) -> list[dict[str, Any]]:
    out = [e.record for e in emits if e.schema == "TrainingExample"]
    for e in emits:
        if e.schema == "TrainingExample":
            assert e.topic == "rtim.training"
            assert e.key == e.record["model_id"]
    return out


def test_an_outcome_with_its_decision_id_teaches_the_decision_time_features() -> None:
    sim = Sim()
    sim.event("profile", type="attributes", attributes={"age": "30", "segment": "silver"})
    decision = sim.request(max_actions=2)
    assert [a["offer_id"] for a in decision["actions"]] == ["banner", "long"]
    at_decision = model_features(sim.last_record["features"])
    sim.event("profile", type="attributes", attributes={"age": "31", "segment": "gold"})
    sim.event("click", session_id="s", type="page_view", page="/x")
    emits = sim.outcome("click", "banner", decision_id=decision["decision_id"])
    (example,) = examples(emits)
    assert example == {
        "model_id": "offer.banner",
        "example_id": f"{decision['decision_id']}:banner:click",
        "decision_id": decision["decision_id"],
        "customer_id": "c1",
        "ts": sim.now,
        "decision_ts": decision["ts"],
        "offer_id": "banner",
        "channel": "web",
        "features": example["features"],
        "propensity": decision["actions"][0]["propensity"],
        "reward": 1.0,
        "value": 10.0,  # no value reported: the offer's
        "outcome": "click",
        "control_group": False,
    }
    assert example["features"] == at_decision
    assert example["features"]["age"] == 30
    assert example["features"]["segment"] == "silver"
    (left,) = pending_attributions(sim.profile)
    assert left[3] == "long"
    assert sim.profile["timers"] == ((left[1] + 14 * DAY_MS, "", "", TIMER_ATTRIBUTION),)
    # the same click again (or a convert after it) is late: not learned twice
    assert not examples(sim.outcome("convert", "banner", decision_id=decision["decision_id"]))
    assert sim.decider.counters["outcome_late"] == 1
    assert sim.decider.counters["outcome_learned"] == 1


def test_without_an_id_the_latest_decision_for_the_offer_and_channel_in_its_window() -> None:
    sim = Sim()
    first = sim.request()
    sim.advance(5 * MINUTE)
    second = sim.request()
    assert first["actions"][0]["offer_id"] == second["actions"][0]["offer_id"] == "banner"
    (example,) = examples(sim.outcome("accept", "banner", value=12.5))
    assert example["decision_id"] == second["decision_id"]
    assert example["value"] == 12.5
    # a response on another channel or for another offer matches nothing: late
    assert not examples(sim.outcome("click", "banner", channel="push"))
    assert not examples(sim.outcome("click", "mail"))
    assert sim.decider.counters["outcome_late"] == 2
    # the first decision's window passes without a response
    emits = sim.advance(30 * MINUTE)
    (expired,) = examples(emits)
    assert expired["decision_id"] == first["decision_id"]
    assert (expired["outcome"], expired["reward"], expired["value"]) == ("no_response", 0.0, 0.0)
    assert expired["ts"] == first["ts"] + 30 * MINUTE


def test_an_outcome_after_the_window_is_late_even_before_the_timer_fires() -> None:
    sim = Sim()
    decision = sim.request()
    sim.now += 31 * MINUTE
    emits = sim.outcome("click", "banner", decision_id=decision["decision_id"], fire_timers=False)
    (example,) = examples(emits)
    assert example["outcome"] == "no_response"  # the expiry, in event time
    assert sim.decider.counters["outcome_late"] == 1
    assert not sim.profile["pending"]
    assert not sim.profile["timers"]


def test_negative_and_neutral_outcomes() -> None:
    sim = Sim()
    decision = sim.request()
    (example,) = examples(sim.outcome("dismiss", "banner", decision_id=decision["decision_id"]))
    assert (example["reward"], example["value"], example["outcome"]) == (0.0, 0.0, "dismiss")

    sim.event("profile", type="consent", channel="email", granted=True)
    emits = sim.event(
        "txn", transaction_id="t1", type="purchase", amount=10.0, currency="EUR",
        status="approved",
    )  # fmt: skip
    (mail,) = [e.record for e in emits if e.schema == "Decision"]
    assert not examples(sim.outcome("delivered", "mail", "email", mail["decision_id"]))
    assert not examples(sim.outcome("impression", "mail", "email", mail["decision_id"]))
    assert [e[3] for e in pending_attributions(sim.profile)] == ["mail"]
    assert sim.decider.counters["outcome_exposure"] == 2
    # a bounce: the mail never arrived, so it is neither a success nor a failure
    assert not examples(sim.outcome("bounce", "mail", "email", mail["decision_id"]))
    assert not sim.profile["pending"]
    assert not examples(sim.advance(4 * DAY_MS))
    assert sim.decider.counters["outcome_neutral"] == 1


def test_a_complaint_soon_after_a_contact_is_a_negative_for_it() -> None:
    sim = Sim()
    sim.event("profile", type="consent", channel="email", granted=True)
    web = sim.request()
    emits = sim.event(
        "txn", transaction_id="t1", type="purchase", amount=10.0, currency="EUR",
        status="approved",
    )  # fmt: skip
    (mail,) = [e.record for e in emits if e.schema == "Decision"]
    emits = sim.event(
        "complaint", complaint_id="k1", category="spam", severity="high", status="opened"
    )
    (example,) = examples(emits)
    assert (example["decision_id"], example["outcome"], example["reward"]) == (
        mail["decision_id"],
        "complaint",
        0.0,
    )
    assert [e[0] for e in pending_attributions(sim.profile)] == [web["decision_id"]]
    # a day later a complaint does not blame the contact any more
    emits = sim.event(
        "txn", transaction_id="t2", type="purchase", amount=10.0, currency="EUR",
        status="approved",
    )  # fmt: skip
    sim.advance(DAY_MS + MINUTE)
    emits = sim.event(
        "complaint", complaint_id="k2", category="spam", severity="high", status="opened"
    )
    assert not examples(emits)


def test_the_pending_list_is_bounded_by_evicting_the_oldest_as_negatives() -> None:
    sim = Sim()
    decisions = [sim.request() for _ in range(MAX_PENDING + 4)]
    pending = pending_attributions(sim.profile)
    assert len(pending) == MAX_PENDING
    assert [e[0] for e in pending] == [d["decision_id"] for d in decisions[4:]]
    evicted = [x for x in _all_examples(sim) if x["outcome"] == "evicted"]
    assert [x["decision_id"] for x in evicted] == [d["decision_id"] for d in decisions[:4]]
    assert all(x["reward"] == 0.0 for x in evicted)


def _all_examples(sim: Sim) -> list[dict[str, Any]]:
    # replay the same inputs on a fresh simulation and collect everything it emitted
    other = Sim()
    out: list[Emit] = []
    for _ in range(MAX_PENDING + 4):
        out += other.event(
            "request", request_id=f"r{other.n}", channel="web", placement="home", max_actions=1
        )
    assert other.profile == sim.profile
    return examples(out)


def test_pending_features_are_stored_as_changes_and_read_back_whole() -> None:
    base = {"age": 30, "segment": "gold", "session_page_views": 3, "placement": "home"}
    entries = [
        pending_entry(
            f"d{i}",
            T0 + i,
            "web",
            "banner",
            propensity=0.5,
            control_group=False,
            window_ms=1800_000,
            x=model_features({**base, "session_page_views": 3 + i}),
        )
        for i in range(5)
    ]
    p, emits = add_pending(new_profile("c"), entries, T0, lambda o, c: o)
    assert not emits
    stored = p["pending"]
    assert stored[0][7] == entries[0][7]
    assert all(len(e[7]) < len(entries[0][7]) for e in stored[1:])  # deltas
    assert pending_attributions(p) == entries
    assert pending_attributions(decode_profile(encode_profile(p))) == entries


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-3, 3), st.sampled_from(["a", "b"])
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({name: _values for name in MODEL_FEATURES}), max_size=8))
def test_any_feature_sequence_survives_the_compact_storage(xs: list[dict[str, Any]]) -> None:
    entries = [
        pending_entry(
            f"d{i}",
            T0 + i,
            "email",
            "mail",
            propensity=0.25,
            control_group=i % 2 == 0,
            window_ms=DAY_MS,
            x=x,
        )
        for i, x in enumerate(xs)
    ]
    p, _ = add_pending(new_profile("c"), entries, T0, lambda o, c: o)
    one_by_one = new_profile("c")  # each added to the stored (decoded) list: the same storage
    for entry in entries:
        stored = decode_profile(encode_profile(one_by_one))
        one_by_one, _ = add_pending(stored, [entry], T0, lambda o, c: o)
    assert one_by_one.get("pending", ()) == p["pending"]
    restored = pending_attributions(decode_profile(encode_profile(p)))
    assert [unpack_features(e[7]) for e in restored] == [unpack_features(e[7]) for e in entries]
    for got, want in zip(restored, entries, strict=True):
        got_x, want_x = unpack_features(got[7]), unpack_features(want[7])
        assert [type(v) for v in got_x.values()] == [type(v) for v in want_x.values()]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3, 40), st.integers(0, 3), st.integers(1, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_a_full_list_evicts_the_oldest_and_stays_in_its_compact_form(
    steps: list[tuple[int, int, int]],
) -> None:
    # (time step, page views, entries added at once): mostly in time order, sometimes not
    profile, expected, n = new_profile("c"), [], 0
    for step, views, count in steps:
        added = []
        for _ in range(count):
            x = model_features({"age": 30, "session_page_views": views + n % 2})
            added.append(
                pending_entry(
                    f"d{n}", T0 + step * MINUTE, "web", "banner", propensity=0.5,
                    control_group=False, window_ms=DAY_MS, x=x,
                )
            )  # fmt: skip
            n += 1
        profile, emits = add_pending(profile, added, T0, lambda o, c: o)
        expected = [*expected, *added]  # appended; sorted by time only once over the bound
        evicted = []
        if len(expected) > MAX_PENDING:
            expected.sort(key=lambda e: e[1])
            evicted, expected = expected[:-MAX_PENDING], expected[-MAX_PENDING:]
        assert [e.record["decision_id"] for e in emits] == [e[0] for e in evicted]
        assert pending_attributions(profile) == expected
        # stored exactly as compressing the whole list afresh would store it
        assert profile["pending"] == _compress(expected)
        assert profile["pending"][0][7] == expected[0][7]


def test_model_features_are_compact_and_independent_of_offer_and_channel() -> None:
    features = {
        "age": 41.0,
        "segment": "gold",
        "tenure_days": 812.4,
        "customer_value": 123.456,
        "cart_value": 99.99,
        "trigger": "cart_abandonment",
        "placement": None,
        "category_interest.travel": 3,
        "category_interest.auto": 5,
        "consent.email": True,
    }
    x = model_features(features, "gold_card", "web")
    assert list(x) == list(MODEL_FEATURES)
    assert len(x) <= 20
    assert x["age"] == 41
    assert x["tenure_days"] == 812
    assert x["customer_value"] == 123
    assert x["top_interest"] == "auto"
    assert x["occasion"] == "cart_abandonment"
    assert x == model_features(features, "other", "email")
    assert all(v is None or isinstance(v, bool | int | float | str) for v in x.values())
    assert unpack_features(pack_features(x)) == x
    assert unpack_features((99, 1, 2)) == {}
    assert unpack_features(()) == {}


@pytest.mark.parametrize("outcome", ["click", "accept", "convert"])
def test_every_positive_outcome_type_rewards_one(outcome: str) -> None:
    sim = Sim()
    decision = sim.request()
    (example,) = examples(sim.outcome(outcome, "banner", decision_id=decision["decision_id"]))
    assert example["reward"] == 1.0
    assert example["outcome"] == outcome
