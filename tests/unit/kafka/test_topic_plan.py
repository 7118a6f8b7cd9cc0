"""Planning `rtim topics apply` from the cluster's state, given as data (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtim.kafka.topics import Drift, TopicPlan, TopicSpec, TopicState, plan_topics

SPEC = TopicSpec(
    name="rtim.requests",
    partitions=6,
    replication_factor=1,
    retention_ms=604_800_000,
    cleanup_policy="delete",
    schema="DecisionRequest",
    key="customer_id",
    group="customer",
)
COMPACT = TopicSpec(
    name="rtim.models",
    partitions=1,
    replication_factor=1,
    retention_ms=-1,
    cleanup_policy="compact,delete",
    schema="ModelSnapshot",
    key="model id",
)


def state(
    name: str = "p.rtim.requests",
    partitions: int = 6,
    rf: int = 1,
    config: dict[str, str] | None = None,
) -> TopicState:
    if config is None:
        config = {"cleanup.policy": "delete", "retention.ms": "604800000"}
    return TopicState(name, partitions, rf, config)


def only(plans: list[TopicPlan]) -> TopicPlan:
    assert len(plans) == 1
    return plans[0]


def test_missing_topic_is_created_under_the_prefix() -> None:
    plan = only(plan_topics([SPEC], {"rtim.requests": state("rtim.requests")}, "p."))
    assert (plan.physical, plan.action, plan.state, plan.drifts) == (
        "p.rtim.requests",
        "create",
        None,
        (),
    )


def test_matching_topic_is_ok() -> None:
    plan = only(plan_topics([SPEC], {"p.rtim.requests": state()}, "p."))
    assert plan.action == "ok"
    assert plan.config_fixes == {}


def test_partition_drift_is_reported_as_not_fixable() -> None:
    plan = only(plan_topics([SPEC], {"p.rtim.requests": state(partitions=3)}, "p."))
    assert plan.action == "drift"
    assert plan.drifts == (Drift("partitions", "6", "3", fixable=False),)
    assert plan.config_fixes == {}
    assert "re-create the topic" in plan.drifts[0].describe()


def test_replication_factor_drift_is_reported() -> None:
    plan = only(plan_topics([SPEC], {"p.rtim.requests": state(rf=3)}, "p."))
    assert plan.drifts == (Drift("replication_factor", "1", "3", fixable=False),)


def test_config_drift_is_fixable() -> None:
    config = {"cleanup.policy": "compact", "retention.ms": "1000"}
    plan = only(plan_topics([SPEC], {"p.rtim.requests": state(config=config)}, "p."))
    assert plan.config_fixes == {"cleanup.policy": "delete", "retention.ms": "604800000"}
    assert [d.actual for d in plan.drifts] == ["compact", "1000"]
    assert "--fix-config" in plan.drifts[0].describe()


def test_configs_not_set_on_the_topic_are_drift() -> None:
    plan = only(plan_topics([SPEC], {"p.rtim.requests": state(config={})}, "p."))
    assert [(d.setting, d.actual) for d in plan.drifts] == [
        ("cleanup.policy", None),
        ("retention.ms", None),
    ]
    assert "not set" in plan.drifts[0].describe()


def test_configs_not_fetched_are_not_compared() -> None:
    existing = {"p.rtim.requests": TopicState("p.rtim.requests", 6, 1, None)}
    assert only(plan_topics([SPEC], existing, "p.")).action == "ok"


def test_equivalent_config_spellings_match() -> None:
    config = {"cleanup.policy": "delete, compact", "retention.ms": "-1"}
    existing = {"rtim.models": TopicState("rtim.models", 1, 1, config)}
    assert only(plan_topics([COMPACT], existing)).action == "ok"


@given(
    present=st.booleans(),
    partitions=st.integers(1, 12),
    rf=st.integers(1, 3),
    policy=st.sampled_from(["delete", "compact", "compact,delete", None]),
    retention=st.sampled_from(["604800000", "-1", "1000", None]),
)
def test_plan_is_ok_exactly_when_everything_matches(
    present: bool, partitions: int, rf: int, policy: str | None, retention: str | None
) -> None:
    config = {
        key: value
        for key, value in (("cleanup.policy", policy), ("retention.ms", retention))
        if value is not None
    }
    existing = {"p.rtim.requests": state(partitions=partitions, rf=rf, config=config)}
    plan = only(plan_topics([SPEC], existing if present else {}, "p."))
    matches = (partitions, rf, policy, retention) == (6, 1, "delete", "604800000")
    if not present:
        assert plan.action == "create"
    else:
        assert plan.action == ("ok" if matches else "drift")
        assert {d.setting for d in plan.drifts} == {
            setting
            for setting, same in (
                ("partitions", partitions == 6),
                ("replication_factor", rf == 1),
                ("cleanup.policy", policy == "delete"),
                ("retention.ms", retention == "604800000"),
            )
            if not same
        }
        # only configs are ever changed in place
        assert set(plan.config_fixes) <= {"cleanup.policy", "retention.ms"}
