"""The simulated population and its event stream (rtim.sim.population)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from rtim.core.validation import validate_record
from rtim.serde.codec import Codec
from rtim.sim.population import (
    CHANNELS,
    Population,
    SimRecord,
    Simulation,
    customer_id_of,
    mean_episode_size,
)

START = 1_763_798_400_000  # 2025-11-22T08:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR


def stream(seed: int = 7, customers: int = 50, rate: float = 2.0) -> Simulation:
    return Simulation(Population(seed, customers), start_ms=START, events_per_sim_s=rate)


def as_data(records: list[SimRecord]) -> list[tuple[str, str, str, dict]]:
    return [(r.topic, r.key, r.schema, r.record) for r in records]


def test_same_seed_same_events_however_the_stream_is_chunked() -> None:
    end = START + 6 * HOUR
    whole = stream().events_until(end)
    chunked_sim = stream()
    rng = random.Random(3)
    t = START - 3000 * DAY
    chunked: list[SimRecord] = []
    while t < end:
        t = min(end, t + rng.choice([1, 999, 60_000, 7 * HOUR, 400 * DAY]))
        chunked.extend(chunked_sim.events_until(t))
    assert len(whole) > 1000
    assert as_data(chunked) == as_data(whole)


def test_another_seed_gives_other_events() -> None:
    a = stream(seed=1).events_until(START + HOUR)
    b = stream(seed=2).events_until(START + HOUR)
    assert as_data(a) != as_data(b)


def test_records_come_in_time_order_with_unique_ids() -> None:
    sim = stream()
    records = sim.events_until(START + 12 * HOUR)
    times = [r.record["ts"] for r in records]
    assert times == sorted(times)
    ids = [r.record.get("event_id") or r.record["request_id"] for r in records]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(sim.tag + ".") for i in ids)
    assert sim.events_until(START) == []  # time does not go back


def test_every_record_is_valid_avro_and_passes_the_contract_checks() -> None:
    records = stream(customers=80).events_until(START + 12 * HOUR)
    codec = Codec()
    now = max(r.record["ts"] for r in records)
    kinds = Counter(r.kind for r in records)
    assert set(kinds) == {"click", "txn", "complaint", "profile", "request"}
    for r in records:
        assert r.key == r.record["customer_id"]
        _name, decoded = codec.decode(codec.encode(r.schema, r.record), expected=r.schema)
        assert decoded == r.record
        validate_record(r.schema, r.record, now_ms=now, max_future_ms=0, key=r.key.encode())


def test_customers_join_before_the_start_and_behave_after_it() -> None:
    sim = stream(customers=30)
    joining = sim.events_until(START - 1)
    assert {r.kind for r in joining} == {"profile"}
    first = {}
    for r in joining:
        first.setdefault(r.key, r.record)
    assert len(first) == 30
    assert all(rec["type"] == "attributes" and rec["attributes"]["age"] for rec in first.values())
    later = sim.events_until(START + 3 * HOUR)
    assert all(r.record["ts"] >= START for r in later)


def test_behaviour_mix_and_rate_are_as_configured() -> None:
    rate = 1.5
    sim = stream(seed=11, customers=400, rate=rate)
    sim.events_until(START + DAY)  # warm up: complaints get resolved, carts fill
    window = sim.events_until(START + 2 * DAY)
    kinds = Counter(r.kind for r in window)
    behaviour = sum(n for k, n in kinds.items() if k != "profile")
    share = {k: kinds[k] / behaviour for k in ("click", "txn", "complaint", "request")}
    assert share["click"] == pytest.approx(0.80, abs=0.025)
    assert share["txn"] == pytest.approx(0.10, abs=0.015)
    assert share["complaint"] == pytest.approx(0.02, abs=0.007)
    assert share["request"] == pytest.approx(0.08, abs=0.015)
    assert kinds["profile"] / len(window) < 0.01
    assert len(window) / (DAY / 1000) == pytest.approx(rate, rel=0.1)


def test_traits_depend_only_on_seed_and_index() -> None:
    small, large = Population(5, 10), Population(5, 200)
    assert small.customers[3].traits == large.customers[3].traits
    assert Population(6, 10).customers[3].traits != small.customers[3].traits
    assert large.get(customer_id_of(42)) is large.customers[42]
    assert large.get("nobody") is None


def test_observable_attributes_correlate_with_hidden_traits() -> None:
    people = Population(9, 3000).customers
    by_segment: dict[str, list[float]] = {}
    for c in people:
        by_segment.setdefault(c.traits.segment, []).append(c.traits.value)
    means = {s: sum(v) / len(v) for s, v in by_segment.items()}
    assert means["basic"] < means["silver"] < means["gold"] < means["platinum"]
    email = CHANNELS.index("email")
    yes = [c.traits.channel_pref[email] for c in people if c.consent.get("email")]
    no = [c.traits.channel_pref[email] for c in people if not c.consent.get("email")]
    assert sum(yes) / len(yes) > sum(no) / len(no) + 0.03
    sms = sum(1 for c in people if c.consent.get("sms")) / len(people)
    mail = sum(1 for c in people if c.consent.get("email")) / len(people)
    assert mail > 0.6
    assert 0.1 < sms < 0.4


def test_some_consent_is_revoked_during_the_run() -> None:
    records = stream(customers=200, rate=1).events_until(START + DAY)
    revoked = [r for r in records if r.record["ts"] >= START and r.kind == "profile"
               and r.record["type"] == "consent" and r.record["granted"] is False]  # fmt: skip
    assert revoked


def test_credit_checks_fail_for_risky_customers() -> None:
    population = Population(4, 300)
    records = Simulation(population, start_ms=START, events_per_sim_s=1).events_until(START + DAY)
    risk = {c.customer_id: c.traits.credit_risk for c in population}
    failed = [risk[r.key] for r in records if r.kind == "txn" and r.record["status"] == "failed"]
    passed = [risk[r.key] for r in records if r.kind == "txn" and r.record["status"] == "passed"]
    assert failed
    assert passed
    assert sum(failed) / len(failed) > sum(passed) / len(passed)


def test_take_returns_at_least_n_records() -> None:
    records = stream().take(5000)
    assert len(records) >= 5000
    assert mean_episode_size() > 1
