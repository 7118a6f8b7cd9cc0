"""Garbage at volume: random and mutated messages on every input topic, floods, oversize."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from rtim.core.events import KIND_BY_TOPIC, SCHEMA_BY_KIND
from rtim.core.validation import validate_record
from rtim.errors import RtimError
from rtim.serde.jsonio import record_from_json
from rtim.settings import Settings

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


def valid_records(rng: random.Random, cid: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        ts = NOW - 100_000 + i
        kind = rng.choice(["click", "txn", "complaint", "profile", "request", "outcome"])
        base = {"customer_id": cid, "ts": ts, "event_id": f"{cid}-{i}"}
        fields: dict[str, Any] = {
            "click": {"session_id": "s", "type": "page_view", "page": "/x"},
            "txn": {"transaction_id": f"t{i}", "type": "purchase", "amount": 12.5,
                    "currency": "EUR", "status": "approved"},
            "complaint": {"complaint_id": f"k{i}", "category": "billing", "severity": "low",
                          "status": "opened"},
            "profile": {"type": "consent", "channel": "email", "granted": True},
            "request": {"request_id": f"{cid}-r{i}", "channel": "web", "placement": "home"},
            "outcome": {"decision_id": None, "channel": "email", "offer_id": "gold_card",
                        "type": "dismiss"},
        }[kind]  # fmt: skip
        topic = next(t for t, k in KIND_BY_TOPIC.items() if k == kind)
        out.append((topic, record_from_json(SCHEMA_BY_KIND[kind], {**base, **fields})))
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(5)
    b = bytearray(data)
    if choice == 0:  # flip bits
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif choice == 1:  # truncate
        del b[rng.randrange(1, len(b)) :]
    elif choice == 2:  # insert junk
        i = rng.randrange(len(b))
        b[i:i] = rng.randbytes(rng.randint(1, 20))
    elif choice == 3:  # random bytes
        return rng.randbytes(rng.randint(0, 200))
    else:  # overwrite a run
        i = rng.randrange(len(b))
        b[i : i + 8] = rng.randbytes(8)
    return bytes(b)


def send_and_time(io: Any, worker: Any, items: list[tuple[str, bytes, bytes | None]]) -> float:
    """Send raw records, wait until the worker has consumed them all; records per second."""
    before = worker.stats.records
    started = time.monotonic()
    for topic, value, key in items:
        io.send_raw(topic, value, key)
    io.flush()
    worker.wait_for(lambda s: s.records >= before + len(items), timeout=120)
    return len(items) / (time.monotonic() - started)


def clean(io: Any, rng: random.Random, tag: str) -> list[tuple[str, bytes, bytes | None]]:
    """3 000 valid records of 30 customers, encoded."""
    records = [r for c in range(30) for r in valid_records(rng, f"{tag}{c}", 100)]
    return [
        (t, io.codec.encode(SCHEMA_BY_KIND[KIND_BY_TOPIC[t]], r), r["customer_id"].encode())
        for t, r in records
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_and_mutated_input_never_stops_the_worker(
    rtim_settings: Callable[..., Settings], applied_topics: Any, topic_io: Any,
    run_worker: Any, seed: int,
) -> None:  # fmt: skip
    """Every invalid message goes to the DLQ with a reason; valid ones are applied; throughput
    on clean input after the garbage is what it was before."""
    rng = random.Random(seed)
    settings = applied_topics(rtim_settings())
    io = topic_io(settings)
    codec = io.codec
    worker = run_worker(settings, learner=False)
    send_and_time(io, worker, clean(io, rng, "warm"))  # group join, first batches: not timed
    # best of three: one round is easily slowed by whatever else runs on the machine
    rate_before = max(send_and_time(io, worker, clean(io, rng, f"before{i}-")) for i in range(3))

    expected_bad = 0
    fuzz: list[tuple[str, bytes, bytes | None]] = []
    for i, (topic, record) in enumerate(valid_records(rng, f"fz{seed}", 400)):
        kind = KIND_BY_TOPIC[topic]
        value = codec.encode(SCHEMA_BY_KIND[kind], record)
        key: bytes | None = record["customer_id"].encode()
        if i % 2:
            value = mutate(rng, value)
            if rng.random() < 0.1:
                key = rng.choice([b"", b"other", None])
        try:  # the oracle: what the contract says about this message
            _name, decoded = codec.decode(value, expected=SCHEMA_BY_KIND[kind])
            validate_record(SCHEMA_BY_KIND[kind], decoded, now_ms=int(time.time() * 1000),
                            max_future_ms=settings.max_future_ms, key=key)  # fmt: skip
        except RtimError:
            expected_bad += 1
        except Exception:
            expected_bad += 1
        fuzz.append((topic, value, key))
    before = (worker.stats.applied, worker.stats.skipped, worker.stats.dead_letters)
    send_and_time(io, worker, fuzz)
    stats = worker.stats
    assert stats.dead_letters - before[2] == expected_bad
    assert stats.applied + stats.skipped + stats.dead_letters - sum(before) == len(fuzz), (
        "every message applied, skipped as a duplicate or dead-lettered"
    )
    dlq = io.read("rtim.dlq", count=expected_bad)
    assert len(dlq) == expected_bad
    assert all(r["error"] and r["source_topic"] for r in dlq)

    rate_after = max(send_and_time(io, worker, clean(io, rng, f"after{i}-")) for i in range(3))
    print({"clean_before_per_s": round(rate_before), "clean_after_per_s": round(rate_after),
           "fuzz": len(fuzz), "dead_letters": expected_bad})  # fmt: skip
    assert worker.stats.dead_letters - before[2] == expected_bad, "clean input stays clean"
    assert rate_after > 0.5 * rate_before, "throughput recovers after the garbage"
    worker.stop()


def test_a_flood_and_oversized_messages_do_not_stall_other_customers(
    rtim_settings: Callable[..., Settings], applied_topics: Any, topic_io: Any, run_worker: Any
) -> None:
    settings = applied_topics(rtim_settings())
    io = topic_io(settings)
    worker = run_worker(settings, learner=False)
    flood = [
        record_from_json("ClickstreamEvent", {"event_id": f"flood-{i}", "customer_id": "flooder",
                         "ts": NOW - 50_000 + i, "session_id": "s", "type": "page_view"})
        for i in range(20_000)
    ]  # fmt: skip
    io.send("rtim.events.clickstream", "ClickstreamEvent", flood)
    for _ in range(20):
        io.send_raw("rtim.events.clickstream", b"\xc3\x01" + bytes(settings.max_message_bytes),
                    b"flooder")  # fmt: skip
    io.flush()
    started = time.monotonic()
    request = record_from_json("DecisionRequest", {"request_id": "calm-r", "customer_id": "calm",
                               "ts": NOW, "channel": "web", "placement": "home"})  # fmt: skip
    io.send("rtim.requests", "DecisionRequest", [request])
    io.read("rtim.decisions.web", until=lambda rs: any(r["request_id"] == "calm-r" for r in rs))
    answered_after = time.monotonic() - started
    worker.wait_for(lambda s: s.applied >= 20_001 and s.dead_letters >= 20, timeout=120)
    worker.stop()
    assert answered_after < 15, f"the calm customer waited {answered_after:.1f}s"
