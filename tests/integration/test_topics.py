"""`rtim topics apply|diff|list` and the topics module against the embedded broker."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from rtim.errors import TopicError
from rtim.kafka.admin import admin_client, list_topics
from rtim.kafka.broker import EmbeddedBroker, free_port
from rtim.kafka.config import consumer_config, producer_config
from rtim.kafka.topics import (
    TopicResult,
    apply_topics,
    ensure_topics,
    load_topics,
    verify_copartitioning,
)
from rtim.settings import Settings

pytestmark = pytest.mark.integration

CATALOG = load_topics()


def rtim(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtim", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def create_by_hand(
    bootstrap: str, name: str, partitions: int, config: dict[str, str] | None = None
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(10)


def topic_config(bootstrap: str, name: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {key: entry.value for key, entry in entries.items()}


def cluster_topics(bootstrap: str, prefix: str) -> dict[str, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if name.startswith(prefix)
    }


def declared(prefix: str) -> dict[str, int]:
    return {prefix + spec.name: spec.partitions for spec in CATALOG}


def test_apply_creates_everything_once_then_is_a_no_op(
    broker: EmbeddedBroker, rtim_env: Callable[..., dict[str, str]], topic_prefix: str
) -> None:
    env = rtim_env(apply_topics=False)
    first = rtim(env, "topics", "apply")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [topic_prefix + n for n in CATALOG.names]
    assert all(line.split(": ")[1] == "created" for line in lines)
    # the prefix is honoured: exactly the declared topics exist under it, nothing else
    assert cluster_topics(broker.bootstrap, topic_prefix) == declared(topic_prefix)
    models = topic_config(broker.bootstrap, f"{topic_prefix}rtim.models")
    assert (models["cleanup.policy"], models["retention.ms"]) == ("compact", "-1")

    second = rtim(env, "topics", "apply")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [f"{topic_prefix}{n}: ok" for n in CATALOG.names]

    diff = rtim(env, "topics", "diff")
    assert (diff.returncode, diff.stdout) == (0, "")


def test_partition_drift_is_reported_and_the_data_left_alone(
    broker: EmbeddedBroker,
    rtim_env: Callable[..., dict[str, str]],
    rtim_settings: Callable[..., Settings],
    topic_prefix: str,
) -> None:
    settings = rtim_settings()
    requests = f"{topic_prefix}rtim.requests"
    spec = CATALOG.get("rtim.requests")
    create_by_hand(broker.bootstrap, requests, 2, spec.config())
    delivered: list[int | None] = []
    producer = Producer(producer_config(settings))
    producer.produce(
        requests,
        key=b"customer-1",
        value=b"precious",
        on_delivery=lambda e, m: delivered.append(m.partition()),
    )
    assert producer.flush(10) == 0
    assert len(delivered) == 1

    env = rtim_env(apply_topics=False)
    result = rtim(env, "topics", "apply")
    assert result.returncode != 0
    drift = [line for line in result.stdout.splitlines() if "DRIFT" in line]
    assert drift == [
        f"{requests}: DRIFT: 2 partitions on the cluster, 6 declared — Kafka cannot change this "
        "without moving keys to other partitions: re-create the topic (its data is lost) or "
        "declare the cluster's count"
    ]
    assert result.stderr.strip().splitlines() == [
        "rtim: error: 1 topic differs from its declaration (17 declared in "
        f"{CATALOG.path}): see the DRIFT/FAILED lines; rtim never deletes or re-creates topics"
    ]
    # everything else was still created
    expected = declared(topic_prefix) | {requests: 2}
    assert cluster_topics(broker.bootstrap, topic_prefix) == expected

    diff = rtim(env, "topics", "diff")
    assert diff.returncode == 1
    assert diff.stdout.splitlines() == drift

    consumer = Consumer(consumer_config(settings, None))
    partition = delivered[0]
    assert partition is not None
    consumer.assign([TopicPartition(requests, partition, 0)])
    try:
        deadline = time.monotonic() + 10
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
        assert message is not None, "the record produced before `apply` is gone"
        assert (message.key(), message.value()) == (b"customer-1", b"precious")
    finally:
        consumer.close()


def test_config_drift_is_fixed_on_request(
    broker: EmbeddedBroker, rtim_env: Callable[..., dict[str, str]], topic_prefix: str
) -> None:
    dlq = f"{topic_prefix}rtim.dlq"
    create_by_hand(broker.bootstrap, dlq, 1, {"cleanup.policy": "delete", "retention.ms": "1000"})
    env = rtim_env(apply_topics=False)

    plain = rtim(env, "topics", "apply")
    assert plain.returncode != 0
    assert f"{dlq}: DRIFT: retention.ms is 1000 on the cluster, 2592000000 declared" in plain.stdout
    assert topic_config(broker.bootstrap, dlq)["retention.ms"] == "1000"

    fixed = rtim(env, "topics", "apply", "--fix-config")
    assert fixed.returncode == 0, fixed.stderr
    assert f"{dlq}: fixed: set retention.ms=2592000000" in fixed.stdout.splitlines()
    assert topic_config(broker.bootstrap, dlq)["retention.ms"] == "2592000000"
    assert rtim(env, "topics", "diff").returncode == 0


def test_diff_and_list_show_missing_topics(
    rtim_env: Callable[..., dict[str, str]], topic_prefix: str
) -> None:
    env = rtim_env(apply_topics=False)
    diff = rtim(env, "topics", "diff")
    assert diff.returncode == 1
    assert diff.stdout.splitlines() == [
        f"{topic_prefix}{name}: MISSING: `rtim topics apply` creates it" for name in CATALOG.names
    ]
    listing = rtim(env, "topics", "list")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert [(row[0], row[-1]) for row in rows] == [
        (topic_prefix + name, "missing") for name in CATALOG.names
    ]


def test_list_after_apply(rtim_env: Callable[..., dict[str, str]], topic_prefix: str) -> None:
    env = rtim_env()  # applies the topics first
    listing = rtim(env, "topics", "list")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in listing.stdout.splitlines()}
    assert rows[f"{topic_prefix}rtim.models"] == [
        f"{topic_prefix}rtim.models",
        "1",
        "compact",
        "forever",
        "-",
        "ModelSnapshot",
        "ok",
    ]
    assert rows[f"{topic_prefix}rtim.requests"][1:5] == ["6", "delete", "7d", "customer"]
    assert {row[-1] for row in rows.values()} == {"ok"}


@pytest.mark.parametrize("command", ["apply", "diff", "list"])
def test_unreachable_broker_is_one_line_quickly(
    rtim_env: Callable[..., dict[str, str]], command: str
) -> None:
    port = free_port()
    env = rtim_env(apply_topics=False, broker=f"127.0.0.1:{port}")
    started = time.monotonic()
    result = rtim(env, "topics", command, "--timeout", "2")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stdout == ""
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith(f"rtim: error: cannot reach the Kafka broker at 127.0.0.1:{port}")
    assert "Connection refused" in errors[0]
    assert elapsed < 8  # 2s deadline + interpreter start-up


def test_unreachable_broker_default_deadline(rtim_env: Callable[..., dict[str, str]]) -> None:
    env = rtim_env(apply_topics=False, broker=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = rtim(env, "topics", "apply")
    assert result.returncode == 1
    assert time.monotonic() - started < 12  # the default 5s deadline + start-up


# --- the module API --------------------------------------------------------------------------
def test_concurrent_appliers_agree(rtim_settings: Callable[..., Settings]) -> None:
    settings = rtim_settings()
    results: list[list[TopicResult]] = []

    def run() -> None:
        admin = admin_client(settings)
        results.append(apply_topics(admin, CATALOG, settings.topic_prefix))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3
    for name_index in range(len(CATALOG)):
        statuses = [r[name_index].status for r in results]
        assert set(statuses) <= {"created", "ok"}, statuses
        assert "created" in statuses


def test_ensure_topics_and_copartitioning(
    rtim_settings: Callable[..., Settings],
    applied_topics: Callable[[Settings], Settings],
) -> None:
    settings = rtim_settings()
    admin = admin_client(settings)
    with pytest.raises(TopicError, match=r"7 topic\(s\) of co-partition group 'customer' missing"):
        verify_copartitioning(admin, settings)
    applied_topics(settings)
    assert verify_copartitioning(admin, settings) == 6
    assert all(result.status == "ok" for result in ensure_topics(settings))


def test_broken_copartitioning_is_refused(
    broker: EmbeddedBroker,
    rtim_settings: Callable[..., Settings],
    applied_topics: Callable[[Settings], Settings],
    topic_prefix: str,
) -> None:
    settings = rtim_settings()
    spec = CATALOG.get("rtim.outcomes")
    create_by_hand(broker.bootstrap, f"{topic_prefix}rtim.outcomes", 3, spec.config())
    with pytest.raises(TopicError, match=r"^1 topic differs .* first: .*rtim\.outcomes: DRIFT"):
        applied_topics(settings)
    admin = admin_client(settings)
    with pytest.raises(TopicError, match=r"partition counts differ \(.*rtim\.outcomes=3"):
        verify_copartitioning(admin, settings)
    # the copartitioning check needs only the group's topics
    assert list_topics(admin)[f"{topic_prefix}rtim.outcomes"].partitions == 3
