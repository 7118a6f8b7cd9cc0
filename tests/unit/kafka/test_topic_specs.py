"""Loading and validating topics.yaml: pure, no broker."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rtim.errors import ConfigError, TopicError
from rtim.kafka.topics import (
    CUSTOMER_GROUP,
    TopicSpec,
    default_topics_path,
    format_retention,
    load_topics,
    physical_name,
)

CONTRACT_TOPICS = {
    "rtim.events.clickstream",
    "rtim.events.transactions",
    "rtim.events.complaints",
    "rtim.events.profile",
    "rtim.requests",
    "rtim.decisions.web",
    "rtim.decisions.push",
    "rtim.decisions.email",
    "rtim.decisions.sms",
    "rtim.decisions.call_center",
    "rtim.decisions.outbound_call",
    "rtim.outcomes",
    "rtim.decision-log",
    "rtim.dlq",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


VALID = """\
defaults:
  replication_factor: 1
  retention_ms: 1000
  cleanup_policy: delete
co_partition_groups:
  g: 4
topics:
  - {name: a, group: g, key: customer_id, schema: A}
  - {name: b, partitions: 2, key: k, schema: B, cleanup_policy: compact, retention_ms: -1}
"""


def test_shipped_file_declares_the_public_contract() -> None:
    catalog = load_topics()
    assert catalog.path == default_topics_path()
    assert set(catalog.names) >= CONTRACT_TOPICS
    assert len(catalog.names) == len(set(catalog.names))
    customer = catalog.group(CUSTOMER_GROUP)
    assert {spec.partitions for spec in customer} == {catalog.groups[CUSTOMER_GROUP]}
    # everything the worker reads together, keyed by customer, is co-partitioned
    inputs = {n for n in CONTRACT_TOPICS if n.startswith("rtim.events.")}
    assert inputs | {"rtim.requests", "rtim.outcomes"} <= {s.name for s in customer}
    assert catalog.get("rtim.models").cleanup_policy == "compact"
    assert catalog.get("rtim.models").retention_ms == -1


def test_group_gives_its_count_and_defaults_apply(tmp_path: Path) -> None:
    catalog = load_topics(write(tmp_path, VALID))
    assert catalog.get("a") == TopicSpec(
        name="a",
        partitions=4,
        replication_factor=1,
        retention_ms=1000,
        cleanup_policy="delete",
        schema="A",
        key="customer_id",
        group="g",
    )
    b = catalog.get("b")
    assert (b.partitions, b.cleanup_policy, b.retention_ms, b.group) == (2, "compact", -1, None)
    assert b.config() == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert catalog.group("g") == (catalog.get("a"),)


def test_unknown_topic_and_group_are_topic_errors(tmp_path: Path) -> None:
    catalog = load_topics(write(tmp_path, VALID))
    with pytest.raises(TopicError, match="'nope' is not declared"):
        catalog.get("nope")
    with pytest.raises(TopicError, match="group 'nope'"):
        catalog.group("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            VALID.replace("schema: A}", "schema: A, partitons: 3}"),
            r":8: topic 'a': unknown key 'partitons'",
        ),
        (VALID.replace("group: g,", "group: h,"), r"topic 'a': unknown co-partition group 'h'"),
        (VALID.replace("group: g,", "group: g, partitions: 4,"), r"topic 'a': set either"),
        (VALID.replace("partitions: 2", "partitions: 0"), r"topic 'b': partitions must be"),
        (VALID.replace("partitions: 2", "partitions: true"), r"topic 'b': partitions must be"),
        (VALID.replace("partitions: 2", "partitions: '2'"), r"topic 'b': partitions must be"),
        (VALID.replace("partitions: 2, ", ""), r"topic 'b': missing `partitions`"),
        (VALID.replace("cleanup_policy: compact", "cleanup_policy: keep"), "cleanup_policy must"),
        (VALID.replace("retention_ms: -1", "retention_ms: 0"), "retention_ms must be -1"),
        (VALID.replace("{name: b", "{name: a"), r"topic 'a': declared twice"),
        (VALID.replace("name: b", "name: 'b c'"), r"topic #2: `name` must be a topic name"),
        (VALID.replace("key: k, ", ""), r"topic 'b': `key` must be a non-empty string"),
        (VALID.replace("schema: B, ", "schema: '', "), r"topic 'b': `schema` must be"),
        (VALID.replace("g: 4", "g: -4"), r"co_partition_groups: 'g' must map"),
        (VALID.replace("defaults:", "default:"), r"top level: unknown key 'default'"),
        (VALID.replace("  cleanup_policy: delete\n", ""), r"topic 'a': missing `cleanup_policy`"),
        (VALID.replace("  retention_ms: 1000\n", "  retention: 1000\n"), "defaults: unknown key"),
        ("topics: []\n", r"`topics` must be a non-empty list"),
        ("- a\n- b\n", r"expected a mapping with `topics:`"),
        ("", r"expected a mapping with `topics:`"),
        ("topics:\n  - 3\n", r"topic #1: expected a mapping"),
        (VALID + "topics: []\n", r":10: invalid YAML: .*duplicate key 'topics'"),
        ("topics: [\n", r"invalid YAML"),
    ],
)
def test_invalid_files_give_located_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_topics(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("group: g,", "group: h,").replace("partitions: 2", "partitions: -1")
    with pytest.raises(ConfigError, match=r"^2 errors: .*group 'h'.*partitions must be"):
        load_topics(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read topics file"):
        load_topics(tmp_path / "absent.yaml")


def test_physical_names_carry_the_prefix_and_stay_valid() -> None:
    assert physical_name("", "rtim.requests") == "rtim.requests"
    assert physical_name("staging.", "rtim.requests") == "staging.rtim.requests"
    with pytest.raises(ConfigError, match="RTIM_TOPIC_PREFIX='a b'"):
        physical_name("a b", "rtim.requests")
    with pytest.raises(ConfigError, match="at most 249"):
        physical_name("x" * 240, "rtim.requests")


@pytest.mark.parametrize(
    ("ms", "text"),
    [(-1, "forever"), (604_800_000, "7d"), (7_200_000, "2h"), (90_000, "90s"), (1500, "1500ms")],
)
def test_format_retention(ms: int, text: str) -> None:
    assert format_retention(ms) == text


def test_a_partition_cap_keeps_co_partitioning_and_smaller_topics() -> None:
    catalog = load_topics()
    capped = catalog.with_max_partitions(2)
    assert capped.groups == {name: min(n, 2) for name, n in catalog.groups.items()}
    for before, after in zip(catalog, capped, strict=True):
        assert after.partitions == min(before.partitions, 2)
        assert (after.name, after.cleanup_policy, after.group) == (
            before.name, before.cleanup_policy, before.group,
        )  # fmt: skip
    customer = {t.partitions for t in capped if t.group == "customer"}
    assert customer == {2}
    with pytest.raises(ConfigError, match="at least 1"):
        catalog.with_max_partitions(0)
