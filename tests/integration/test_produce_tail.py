"""`rtim produce` and `rtim tail` as subprocesses against the embedded broker."""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

pytestmark = pytest.mark.integration

RTIM = str(Path(sys.executable).with_name("rtim"))
TS = 1763798400000  # 2025-11-22T08:00:00Z

Env = dict[str, str]


def rtim(env: Env, *args: str, stdin: str | None = None, timeout: float = 60) -> Any:
    return subprocess.run(
        [RTIM, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_lines(path: Path, lines: list[Any]) -> Path:
    """Objects become JSON lines; strings are written as they are (to make bad lines)."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def tail(env: Env, topic: str, count: int, *extra: str) -> list[dict[str, Any]]:
    done = rtim(env, "tail", topic, "--from-beginning", "--max", str(count), "--timeout", "20",
                *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == count, done.stdout
    return [json.loads(line) for line in lines]


def records_on(env: Env, topic: str) -> int:
    """How many records the physical topic holds, counted by reading it to its end.

    Not from the watermarks: Tansu reports the end offset of a partition as the base offset
    of its last batch + 1, short of the true end when that batch holds several records.
    """
    physical = env["RTIM_TOPIC_PREFIX"] + topic
    consumer = Consumer({"bootstrap.servers": env["RTIM_BROKER"], "group.id": "unused",
                         "enable.partition.eof": True})  # fmt: skip
    try:
        partitions = consumer.list_topics(timeout=10).topics[physical].partitions
        consumer.assign([TopicPartition(physical, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        count = 0
        deadline = time.monotonic() + 20
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, "reading the topic to its end took too long"
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                assert message.error().code() == KafkaError._PARTITION_EOF
                at_end.add(message.partition())
            else:
                count += 1
        return count
    finally:
        consumer.close()


@pytest.fixture
def env(rtim_env: Callable[..., Env]) -> Env:
    return rtim_env()


# --- produce, then tail from the beginning -------------------------------------------------

REQUESTS: list[Any] = [
    {"request_id": "r-1", "customer_id": "c-1", "ts": "2025-11-22T08:00:00", "channel": "web",
     "placement": "home_banner"},
    {"request_id": "r-2", "customer_id": "c-1", "ts": TS, "channel": "web",
     "placement": "home_banner", "colour": "red"},
    "",
    {"request_id": "r-3", "customer_id": "c-2", "ts": TS + 1, "channel": "call_center",
     "placement": "agent_desktop", "context": {"reason": "billing"}, "max_actions": 3},
    {"request_id": "r-4", "customer_id": "c-3", "ts": TS, "channel": "web",
     "placement": "home_banner", "max_actions": 0},
    '{"request_id": "r-5", ',
    {"request_id": "r-6", "customer_id": "c-4", "ts": "2025-11-22T09:00:00+01:00",
     "channel": "push", "placement": "inbox", "event_id": "ev-6"},
    {"request_id": "r-7", "customer_id": "c-5", "ts": "2096-01-01T00:00:00Z", "channel": "web",
     "placement": "home_banner"},
    {"request_id": "r-8", "customer_id": "", "ts": TS, "channel": "web", "placement": "p"},
]  # fmt: skip
REQUEST_DEFAULTS = {"context": None, "max_actions": 1, "event_id": None}


def test_produce_reports_invalid_lines_and_tail_returns_exactly_the_valid_records(
    env: Env, tmp_path: Path
) -> None:
    done = rtim(env, "produce", "--topic", "rtim.requests", str(write_lines(tmp_path / "r.jsonl",
                                                                            REQUESTS)))  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "line 2: unknown field 'colour'",
        "line 5: 'max_actions' must be in 1..20, got 0",
        "line 6: not valid JSON at column 23: Expecting property name enclosed in double quotes",
        "line 8: timestamp 2096-01-01T00:00:00Z is more than 24h ahead of the clock",
        "line 9: 'customer_id' must not be empty",
        "sent 3 records to rtim.requests, 5 invalid lines",
    ]
    assert records_on(env, "rtim.requests") == 3

    got = sorted(tail(env, "rtim.requests", 3), key=lambda r: r["request_id"])
    expected = [
        {**REQUESTS[0], **REQUEST_DEFAULTS, "ts": TS},
        {**REQUESTS[3], "event_id": None, "ts": TS + 1},
        {**REQUESTS[6], "context": None, "max_actions": 1, "ts": TS},
    ]
    assert got == [{k: r[k] for k in got[0]} for r in expected]
    assert [list(r) for r in got] == [list(got[0])] * 3  # every field, in schema order


CLICKS: list[Any] = [
    {"event_id": "e-1", "customer_id": "c-1", "ts": "2025-11-22T08:00:00.250Z",
     "session_id": "s-1", "type": "product_view", "product_id": "p-9", "price": 19.99},
    {"event_id": "e-2", "customer_id": "c-1", "ts": TS, "session_id": "s-1",
     "type": "add_to_cart", "price": -1},
    {"event_id": "e-3", "customer_id": "c-2", "ts": TS, "session_id": "s-2", "type": "search",
     "page": "/search?q=loan"},
]  # fmt: skip
CLICK_DEFAULTS = {"page": None, "product_id": None, "category": None, "price": None,
                  "quantity": None, "anonymous_id": None}  # fmt: skip


def test_clickstream_from_stdin_with_keys_and_timestamps(env: Env) -> None:
    stdin = "".join(json.dumps(x) + "\n" for x in CLICKS)
    done = rtim(env, "produce", "-t", "rtim.events.clickstream", "-", stdin=stdin)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "line 2: 'price' must be >= 0, got -1.0",
        "sent 2 records to rtim.events.clickstream, 1 invalid line",
    ]
    got = sorted(tail(env, "rtim.events.clickstream", 2, "--meta"), key=lambda r: r["offset"])
    by_id = {r["value"]["event_id"]: r for r in got}
    assert by_id["e-1"]["value"] == {**CLICK_DEFAULTS, **CLICKS[0], "ts": TS + 250}
    assert by_id["e-3"]["value"] == {**CLICK_DEFAULTS, **CLICKS[2]}
    for event_id, meta in by_id.items():
        assert meta["key"] == meta["value"]["customer_id"], event_id
        assert meta["timestamp"] == meta["value"]["ts"], event_id
        assert set(meta) == {"partition", "offset", "timestamp", "key", "value"}


def test_dead_letters_and_decisions(env: Env, tmp_path: Path) -> None:
    letter = {"source_topic": "rtim.outcomes", "partition": 2, "offset": 41,
              "key": base64.b64encode(b"c-9").decode(),
              "value": base64.b64encode(b"\xc3\x01\x00\xffgarbage").decode(),
              "error": "unknown schema fingerprint 00ff676172626167", "ts": TS,
              "error_kind": "decode"}  # fmt: skip
    done = rtim(env, "produce", "-t", "rtim.dlq", str(write_lines(tmp_path / "d.jsonl", [letter])))
    assert (done.returncode, done.stderr) == (0, "sent 1 record to rtim.dlq\n")
    [meta] = tail(env, "rtim.dlq", 1, "--meta")
    assert meta["value"] == letter  # bytes come back as the same base64
    assert meta["key"] == "c-9"  # the DLQ record is keyed by the source key

    decision = {
        "decision_id": "d-1", "customer_id": "c-7", "ts": TS, "channel": "web",
        "trigger": {"type": "event", "id": "e-1", "name": "cart_abandonment"},
        "actions": [{"offer_id": "card", "category": "credit", "rank": 1, "score": 2.5,
                     "propensity": 0.95, "payload": {"headline": "Ready when you are"}}],
        "control_group": False, "strategy_version": "s1", "model_version": "m1",
        "reasons": ["cart abandoned"], "expires_at": "2025-11-22T09:00:00Z",
    }  # fmt: skip
    bad = {**decision, "decision_id": "d-2", "actions": [{**decision["actions"][0], "score": "x"}]}
    path = write_lines(tmp_path / "dec.jsonl", [bad, decision])
    done = rtim(env, "produce", "-t", "rtim.decisions.web", str(path))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "line 1: field 'actions[0].score': expected a number, got 'x'"
    )
    [got] = tail(env, "rtim.decisions.web", 1)
    assert got == {**decision, "request_id": None, "placement": None,
                   "expires_at": TS + 3_600_000}  # fmt: skip


# --- tail: undecodable records, the end of the topic, errors ---------------------------------


def test_tail_prints_undecodable_records_as_error_lines(env: Env, tmp_path: Path) -> None:
    physical = env["RTIM_TOPIC_PREFIX"] + "rtim.outcomes"
    # the partitioner of rtim (and of the Java client), so that key c-1 lands where rtim puts it
    producer = Producer({"bootstrap.servers": env["RTIM_BROKER"], "partitioner": "murmur2_random"})
    producer.produce(physical, key=b"c-1", value=b"not avro")
    producer.produce(physical, key=b"c-1", value=b"")
    assert producer.flush(10) == 0
    outcome = {"event_id": "o-1", "customer_id": "c-1", "ts": TS, "channel": "email",
               "offer_id": "card", "type": "click"}  # fmt: skip
    done = rtim(env, "produce", "-t", "rtim.outcomes", str(write_lines(tmp_path / "o", [outcome])))
    assert done.returncode == 0, done.stderr
    first, second, third = tail(env, "rtim.outcomes", 3)  # one key: one partition, in order
    assert first == {"error": "unknown magic byte 0x6e (not rtim Avro)",
                     "partition": first["partition"], "offset": 0, "key": "c-1",
                     "value": base64.b64encode(b"not avro").decode()}  # fmt: skip
    assert second["error"] == "empty message"
    assert third == {**outcome, "decision_id": None, "value": None}


def test_tail_without_from_beginning_starts_at_the_end(env: Env, tmp_path: Path) -> None:
    def outcome(i: int) -> dict[str, Any]:
        return {"event_id": f"o-{i}", "customer_id": f"c-{i}", "ts": TS, "channel": "sms",
                "offer_id": "card", "type": "delivered"}  # fmt: skip

    # one customer, sent at once: one partition, typically one batch of several records — the
    # case where Tansu reports an end offset short of the true end
    before = [{**outcome(0), "event_id": f"o-0-{i}"} for i in range(5)]
    done = rtim(env, "produce", "-t", "rtim.outcomes", str(write_lines(tmp_path / "o", before)))
    assert done.returncode == 0, done.stderr
    assert records_on(env, "rtim.outcomes") == 5

    quiet = rtim(env, "tail", "rtim.outcomes", "--timeout", "1.5")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")

    # a running tail shows records produced after it started, and only those
    process = subprocess.Popen([RTIM, "tail", "rtim.outcomes", "--max", "1", "--timeout", "30"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout or ()],
                     daemon=True).start()  # fmt: skip
    from rtim.kafka.config import producer_config
    from rtim.serde.codec import Codec
    from rtim.settings import Settings

    settings = Settings(broker=env["RTIM_BROKER"], topic_prefix=env["RTIM_TOPIC_PREFIX"])
    producer = Producer(producer_config(settings))
    codec = Codec()
    produced = []
    deadline = time.monotonic() + 30
    line = None
    try:
        while line is None and time.monotonic() < deadline:
            record = {**outcome(len(produced) + 1), "decision_id": None, "value": None}
            producer.produce(settings.topic("rtim.outcomes"), key=record["customer_id"].encode(),
                             value=codec.encode("Outcome", record))  # fmt: skip
            producer.flush(10)
            produced.append(record)
            try:
                line = lines.get(timeout=0.25)
            except queue.Empty:
                continue
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert line is not None, "the tail printed nothing"
    assert json.loads(line) in produced  # not one of `before`


def test_errors_are_one_line(env: Env, rtim_env: Callable[..., Env], tmp_path: Path) -> None:
    done = rtim(env, "tail", "rtim.nope", "--timeout", "1")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "rtim: error: unknown topic 'rtim.nope' (not declared in topics/topics.yaml)\n"
    )
    done = rtim(env, "produce", "-t", "rtim.nope", str(tmp_path / "missing.jsonl"))
    assert done.stderr.startswith("rtim: error: unknown topic 'rtim.nope'")
    assert done.returncode == 1
    done = rtim(env, "produce", "-t", "rtim.requests", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 1
    assert done.stderr == (
        f"rtim: error: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory\n"
    )
    done = rtim(env, "produce", "-t", "rtim.changelog.customer", "-", stdin="{}\n")
    assert done.returncode == 1
    assert "internal state" in done.stderr
    assert len(done.stderr.splitlines()) == 1

    fresh = rtim_env(apply_topics=False, topic_prefix="never-applied.")
    for args in (("tail", "rtim.requests", "--timeout", "1"),
                 ("produce", "-t", "rtim.requests", "-")):  # fmt: skip
        done = rtim(fresh, *args, stdin="")
        assert done.returncode == 1
        assert done.stderr == (
            "rtim: error: topic never-applied.rtim.requests does not exist on the broker "
            "(run `rtim topics apply`)\n"
        )


def test_tail_stops_after_timeout_with_fewer_records(env: Env) -> None:
    started = time.monotonic()
    done = rtim(env, "tail", "rtim.decisions.sms", "--from-beginning", "--max", "5",
                "--timeout", "1")  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert time.monotonic() - started < 15
