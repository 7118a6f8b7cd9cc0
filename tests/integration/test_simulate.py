"""The simulator against the embedded broker: events on the topics, adapters, the command."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from rtim.core.validation import validate_record
from rtim.kafka.config import consumer_config, producer_config
from rtim.serde.codec import Codec
from rtim.settings import Settings
from rtim.sim.driver import SimDriver, SimReport
from rtim.sim.responses import respond

pytestmark = pytest.mark.integration

RTIM = str(Path(sys.executable).with_name("rtim"))
TOPIC_OF_KIND = {
    "click": "rtim.events.clickstream",
    "txn": "rtim.events.transactions",
    "complaint": "rtim.events.complaints",
    "profile": "rtim.events.profile",
    "request": "rtim.requests",
}


def read_all(settings: Settings, logical: str, timeout: float = 20) -> list[Any]:
    """Every message of a topic, read to its end (partition EOF), in partition order."""
    physical = settings.topic(logical)
    consumer = Consumer(consumer_config(settings, None, **{"enable.partition.eof": True}))
    try:
        partitions = consumer.list_topics(timeout=10).topics[physical].partitions
        consumer.assign([TopicPartition(physical, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        messages = []
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"reading {physical} to its end took too long"
            for message in consumer.consume(500, 0.5):
                if message.error():
                    assert message.error().code() == KafkaError._PARTITION_EOF
                    at_end.add(message.partition())
                else:
                    messages.append(message)
        return messages
    finally:
        consumer.close()


def test_a_run_without_worker_puts_valid_events_on_the_topics(
    rtim_settings: Callable[..., Settings], applied_topics: Callable[[Settings], Settings]
) -> None:
    settings = applied_topics(rtim_settings())
    driver = SimDriver(settings, customers=100, rate=200, duration_s=2, speedup=60, seed=5,
                       drain_s=0.5)  # fmt: skip
    report = driver.run()
    assert report.onboarding_events >= 100
    assert report.events_total == sum(report.events_sent.values()) > report.onboarding_events
    assert report.requests > 0
    assert report.decisions == report.outcomes_sent == 0
    assert report.requests_unanswered == report.requests
    assert report.delivery_errors == 0
    assert report.end_ms < time.time() * 1000  # the simulated clock stayed behind the wall
    codec = Codec()
    now = int(time.time() * 1000)
    for kind, topic in TOPIC_OF_KIND.items():
        messages = read_all(settings, topic)
        assert len(messages) == report.events_sent.get(kind, 0), topic
        for message in messages:
            name, record = codec.decode(message.value())
            validate_record(name, record, now_ms=now, max_future_ms=0, key=message.key())
            assert message.timestamp()[1] == record["ts"]
            assert (record.get("event_id") or record["request_id"]).startswith(driver.tag)


def _decision(driver: SimDriver, decision_id: str, offers: list[str], trigger_id: str) -> dict:
    return {
        "decision_id": decision_id,
        "customer_id": "c0000003",
        "ts": driver.start_ms + 1_000,
        "channel": "web",
        "trigger": {"type": "request", "id": trigger_id, "name": None},
        "request_id": None,
        "actions": [
            {
                "offer_id": o,
                "category": driver.catalog[o][0],
                "rank": 1,
                "score": 1.0,
                "propensity": 0.9,
                "payload": {},
            }
            for o in offers
        ],
        "control_group": False,
        "strategy_version": "test",
        "model_version": "test",
        "reasons": ["hand-made"],
        "expires_at": driver.start_ms + 3_600_000,
        "placement": "home_banner",
    }


def test_the_adapters_answer_a_decision_with_outcomes(
    rtim_settings: Callable[..., Settings], applied_topics: Callable[[Settings], Settings]
) -> None:
    settings = applied_topics(rtim_settings())
    driver = SimDriver(settings, customers=20, rate=20, duration_s=20, speedup=60, seed=9,
                       drain_s=0)  # fmt: skip
    stop = threading.Event()
    result: dict[str, SimReport] = {}
    thread = threading.Thread(target=lambda: result.update(report=driver.run(stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while driver.snapshot()["phase"] != "running":
            assert time.monotonic() < deadline, "the driver did not start"
            time.sleep(0.05)
        answered = _decision(driver, "d-test-1", ["travel_insurance"], driver.tag + ".x1")
        silent = _decision(driver, "d-test-2", [], driver.tag + ".x2")
        foreign = _decision(driver, "d-test-3", ["travel_insurance"], "someone-else")
        codec = Codec()
        producer = Producer(producer_config(settings))
        for d in (answered, silent, foreign):
            producer.produce(settings.topic("rtim.decisions.web"), key=b"c0000003",
                             value=codec.encode("Decision", d), timestamp=d["ts"])  # fmt: skip
        assert producer.flush(10) == 0
        deadline = time.monotonic() + 15
        while "impression" not in driver.snapshot()["outcomes_by_type"]:
            assert time.monotonic() < deadline, "no outcome for the decision"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    report = result["report"]
    assert report.stopped_early
    assert (report.decisions, report.no_action, report.decisions_foreign) == (2, 1, 1)
    assert report.decisions_by_offer == {"travel_insurance": 1}
    outcomes = [codec.decode(m.value())[1] for m in read_all(settings, "rtim.outcomes")]
    assert outcomes
    assert {o["decision_id"] for o in outcomes} == {"d-test-1"}
    customer = driver.population["c0000003"]
    context = driver.auditor.context_at("c0000003", answered["ts"])
    played = respond(answered, customer, driver.seed, offers=driver.catalog, context=context)
    expected = {o["event_id"]: o for _delay, o in played}
    for outcome in outcomes:
        assert outcome == expected[outcome["event_id"]]
    assert len(outcomes) == report.outcomes_sent


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> Any:
    return subprocess.run([RTIM, "simulate", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def test_the_command_reports_and_writes_json(
    rtim_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    # long enough that some requests are sent whatever the machine's load
    done = run_cli(rtim_env(), "--customers", "30", "--rate", "100", "--duration", "3", "-q",
                   "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rtim simulate:" in done.stdout
    assert "no decisions received" in done.stdout
    report = json.loads(out.read_text())
    assert report["customers"] == 30
    assert report["requests_unanswered"] == report["requests"]
    assert len(report["learning_curve"]) == 20


def test_the_command_refuses_missing_topics_and_bad_arguments(
    rtim_env: Callable[..., dict[str, str]],
) -> None:
    env = rtim_env(apply_topics=False)
    done = run_cli(env, "--duration", "1")
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "does not exist on the broker (run `rtim topics apply`)" in done.stderr
    for bad in (["--customers", "0"], ["--rate", "-1"], ["--strategy", "/nonexistent.yaml"]):
        done = run_cli(env, *bad)
        assert done.returncode != 0, bad
        assert done.stderr.startswith("rtim: error:"), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
