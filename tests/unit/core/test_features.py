"""Feature snapshot details: what the decision log's bytes depend on; partial snapshots."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.bench.workload import TOPIC_BY_KIND, WorkloadSpec, generate
from rtim.core.decisioning import StrategyDecider
from rtim.core.engine import Engine, StepContext
from rtim.core.events import make_event
from rtim.core.features import (
    FEATURE_FAMILIES,
    FEATURE_NAMES,
    FeatureSubset,
    compute_features,
)
from rtim.core.profile import DAY_MS, Profile, new_profile
from rtim.core.strategy import load_strategy
from rtim.paths import contract_dir
from rtim.worker.service import known_features

NOW = 1_790_000_000_000


def test_aggregates_of_nothing_are_the_int_zero() -> None:
    # the log writes an int as a long and a float as a double: the type is part of the output
    f = compute_features(new_profile("c1"), NOW)
    for name in ("cart_value", "cart_items", "purchases_30d", "purchase_amount_30d",
                 "refunds_30d", "complaints_90d", "contacts_today", "contacts_7d"):  # fmt: skip
        assert f[name] == 0
        assert type(f[name]) is int, name


def test_aggregates_count_only_their_window() -> None:
    p = {
        **new_profile("c1"),
        "purchase_days": ((NOW // DAY_MS - 40, 1, 99.0), (NOW // DAY_MS - 2, 2, 30.5)),
        "refund_days": ((NOW // DAY_MS - 1, 1, 5.0),),
        "cart": {"sku": (2, 10.25, "toys", NOW - 1000)},
        "complaint_times": (NOW - 100 * DAY_MS, NOW - 3 * DAY_MS),
        "contacts": ((NOW - 8 * DAY_MS, "email", "o1"), (NOW - 1000, "web", "o2")),
    }
    f = compute_features(p, NOW)  # type: ignore[arg-type]
    assert (f["purchases_30d"], f["purchase_amount_30d"], f["refunds_30d"]) == (2, 30.5, 1)
    assert (f["cart_value"], f["cart_items"]) == (20.5, 2)
    assert f["complaints_90d"] == 1
    assert (f["contacts_7d"], f["contacts_today"], f["contacts_today.web"]) == (1, 1, 1)


# --- a partial snapshot (FeatureSubset) -------------------------------------------------------

EXAMPLE = load_strategy(
    contract_dir("strategies") / "example.yaml", known_features=known_features()
)
# members of every feature family, present in some of the profiles below and absent in others
_FAMILY_MEMBERS = (
    "attr.segment", "attr.homeowner", "attr.none", "consent.email", "consent.push",
    "contacts_today.email", "contacts_today.push", "category_interest.mortgage",
    "category_interest.fashion", "context.page", "context.none",
)  # fmt: skip
_KIND_OF = {topic: kind for kind, (topic, _schema) in TOPIC_BY_KIND.items()}


@functools.cache
def _profiles() -> tuple[Profile, ...]:
    """Profiles of 60 customers after 4 000 events of the bench mix, decisions included."""
    engine = Engine(StrategyDecider(EXAMPLE, seed=3))
    profiles: dict[str, Profile] = {}
    ctx = StepContext(0, {})
    spec = WorkloadSpec(events=4000, customers=60, seed=11, now_ms=NOW)
    for offset, item in enumerate(generate(spec)):
        event = make_event(_KIND_OF[item.topic], item.record, offset)
        before = profiles.get(event.customer_id) or new_profile(event.customer_id)
        result = engine.on_event(before, event, ctx)
        profiles[event.customer_id] = result.profile
        timers = engine.on_timers(result.profile, event.ts, ctx)
        profiles[event.customer_id] = timers.profile
    return tuple(profiles.values())


def test_every_feature_belongs_to_a_group_or_the_request() -> None:
    for name in sorted(FEATURE_NAMES | {f + "x" for f in FEATURE_FAMILIES}):
        subset = FeatureSubset({name})
        assert subset.groups or name in {"channel", "placement", "trigger"} or name == "context.x"


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(0, 59),
    later_ms=st.integers(0, 40 * DAY_MS),
    zone=st.sampled_from([None, ZoneInfo("Europe/Amsterdam"), ZoneInfo("Pacific/Kiritimati")]),
    names=st.sets(st.sampled_from(sorted(FEATURE_NAMES)), max_size=3),
    family=st.sampled_from(_FAMILY_MEMBERS),
)
def test_a_partial_snapshot_has_the_full_snapshots_values(
    index: int, later_ms: int, zone: ZoneInfo | None, names: set[str], family: str
) -> None:
    profile = _profiles()[index % len(_profiles())]
    now = NOW + 2 * 3600 * 1000 + later_ms
    args = {"trigger": "t1", "context": {"page": "home"}, "tz": zone}
    full = compute_features(profile, now, **args)  # type: ignore[arg-type]
    wanted = names | {family}
    part = compute_features(profile, now, only=FeatureSubset(wanted), **args)  # type: ignore[arg-type]
    for name in wanted:
        assert (name in part) == (name in full), name
        assert type(part.get(name)) is type(full.get(name)), name
        assert part.get(name) == full.get(name), name
    assert part.items() <= full.items()


def test_profiles_of_the_partial_snapshot_test_are_not_trivial() -> None:
    # the property above means little over empty profiles
    profiles = _profiles()
    assert sum(bool(p.get("cart")) for p in profiles) >= 5
    assert sum(bool(p.get("contacts")) for p in profiles) >= 5
    assert sum(bool(p.get("purchase_days")) for p in profiles) >= 5
    assert sum(bool(p.get("consent")) for p in profiles) >= 5
    assert sum(bool(p.get("category_interest")) for p in profiles) >= 5
