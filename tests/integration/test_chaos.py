"""Crash safety: SIGKILL the worker at random points, restart it, compare with an uncrashed run.

The short version runs in `make test`; `make test-slow` runs more customers and more kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from rtim.core.profile import Profile
from rtim.kafka.config import consumer_config
from rtim.serde.jsonio import record_from_json
from rtim.settings import Settings

pytestmark = pytest.mark.integration

# Profile sections excluded from the comparison: none. The worker processes each partition's
# inputs in event-time order (waiting for lagging inputs), so a crashed run reproduces the
# reference run exactly, decisions, contacts, timers and pending attributions included.
DECISION_DEPENDENT: set[str] = set()
INPUTS = {
    "rtim.events.clickstream": "ClickstreamEvent",
    "rtim.events.transactions": "TransactionEvent",
    "rtim.events.complaints": "ComplaintEvent",
    "rtim.events.profile": "ProfileEvent",
    "rtim.requests": "DecisionRequest",
}


def workload(customers: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """A fixed, realistic event sequence (time order) for `customers` customers."""
    rng = random.Random(seed)
    start = int(time.time() * 1000) - 3_600_000
    out: list[tuple[int, str, dict[str, Any]]] = []
    for c in range(customers):
        cid = f"cust-{c}"
        t = start + rng.randint(0, 60_000)
        n = 0

        def add(topic: str, cid: str = cid, **fields: Any) -> None:
            nonlocal t, n
            n += 1
            t += rng.randint(1_000, 30_000)
            base: dict[str, Any] = {"customer_id": cid, "ts": t}
            if topic != "rtim.requests":
                base["event_id"] = f"{cid}-{n}"
            out.append((t, topic, {**base, **fields}))

        for channel in ("email", "push", "sms"):
            add("rtim.events.profile", type="consent", channel=channel, granted=rng.random() < 0.8)
        attributes = {"age": str(rng.randint(18, 80)), "segment": rng.choice(["gold", "basic"])}
        add("rtim.events.profile", type="attributes", attributes=attributes)
        for i in range(rng.randint(5, 15)):
            kind = rng.choice(["page_view", "product_view", "add_to_cart", "search"])
            add("rtim.events.clickstream", session_id=f"{cid}-s", type=kind, page=f"/p{i}",
                product_id=f"sku{rng.randint(1, 9)}", price=float(rng.randint(5, 300)),
                quantity=1, category=rng.choice(["shoes", "credit_card", "auto"]))  # fmt: skip
            if rng.random() < 0.25:
                channel = rng.choice(["web", "call_center"])
                add("rtim.requests", request_id=f"{cid}-r{i}", channel=channel, placement="home")
        for i in range(rng.randint(1, 4)):
            add("rtim.events.transactions", transaction_id=f"{cid}-x{i}",
                type=rng.choice(["purchase", "purchase", "payment", "credit_check"]),
                amount=float(rng.randint(10, 2500)), currency="EUR",
                status=rng.choice(["approved", "passed", "failed"]),
                category=rng.choice([None, "salary"]))  # fmt: skip
        if rng.random() < 0.3:
            add("rtim.events.complaints", complaint_id=f"{cid}-k", category="billing",
                severity=rng.choice(["low", "high"]), status="opened")  # fmt: skip
    out.sort(key=lambda item: item[0])
    typed: list[tuple[str, dict[str, Any]]] = []
    for _ts, topic, fields in out:
        record = record_from_json(INPUTS[topic], fields)
        if topic == "rtim.events.transactions" and record["type"] == "credit_check":
            record["status"] = rng.choice(["passed", "failed"])
        elif topic == "rtim.events.transactions":
            record["status"] = "approved"
        typed.append((topic, record))
    return typed


def preload(
    io: Any, items: list[tuple[str, dict[str, Any]]], *, pace_s: float | None = None
) -> dict[tuple[str, int], int]:
    """Produce the workload; return the end offset of every (physical topic, partition).

    With `pace_s`, each record is acknowledged before the next is sent, `pace_s` later — a
    stream arriving over time, in the order of its event times, as from upstream systems
    minutes apart: a worker reading while it arrives must reproduce a run on preloaded input.
    """
    ends: dict[tuple[str, int], int] = {}

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        key = (msg.topic(), msg.partition())
        ends[key] = max(ends.get(key, 0), msg.offset() + 1)

    for topic, record in items:
        physical = io.settings.topic(topic)
        value = io.codec.encode(INPUTS[topic], record, topic=physical)
        io.produce(topic, value, record["customer_id"].encode(), on_delivery=delivered)
        if pace_s is not None:
            io.flush()
            time.sleep(pace_s)
    io.flush()
    return ends


def committed_all(settings: Settings, ends: dict[tuple[str, int], int]) -> bool:
    consumer = Consumer(consumer_config(settings, settings.group(settings.group_id)))
    try:
        got = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
    finally:
        consumer.close()
    return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in got)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rtim", "worker", "--no-learner", "--stats-every", "0"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_ready(log: Path, proc: subprocess.Popen[bytes], after: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count("partition ready") > after:
            return
        assert proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.05)
    raise AssertionError("worker never became ready")


def wait_owns(
    log: Path, proc: subprocess.Popen[bytes], partitions: set[int], timeout: float = 60
) -> None:
    """Wait until the worker's last assignment covers `partitions`, restored and ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assigned: set[int] = set()
        for line in log.read_text(errors="replace").splitlines():
            if '"partitions assigned"' in line:
                assigned = set(json.loads(line)["partitions"])
        if partitions <= assigned:
            return
        assert proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.05)
    raise AssertionError(f"the worker never owned partitions {sorted(partitions)}")


def run_to_end(
    settings: Settings, env: dict[str, str], ends: Any, log: Path, *, kills: int, rng: random.Random
) -> int:
    """Run a worker until everything is committed, SIGKILLing it `kills` times on the way."""
    proc = start_worker(env, log)
    readies = 0
    for _ in range(kills):
        wait_ready(log, proc, readies)
        readies = log.read_text(errors="replace").count("partition ready")
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start_worker(env, log)
    wait_ready(log, proc, log.read_text(errors="replace").count("partition ready") if kills else 0)
    deadline = time.monotonic() + 180
    while not committed_all(settings, ends):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the worker did not finish the input"
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    return kills


def stopped(log: Path) -> dict[str, Any]:
    """The counters of a worker's last "worker stopped" log line."""
    lines = [line for line in log.read_text().splitlines() if '"worker stopped"' in line]
    return dict(json.loads(lines[-1]))


def decisions(io: Any) -> list[dict[str, Any]]:
    records = io.read("rtim.decision-log", settle=1.0)
    return [r["decision"] for r in records]


def comparable(profile: Profile) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k not in DECISION_DEPENDENT and k != "applied"}


@pytest.mark.parametrize(
    ("customers", "kills"),
    [pytest.param(60, 3, id="short"), pytest.param(600, 8, id="long", marks=pytest.mark.slow)],
)
def test_sigkill_loses_nothing_and_applies_nothing_twice(  # noqa: PLR0917 - fixtures
    rtim_settings: Callable[..., Settings],
    rtim_env: Callable[..., dict[str, str]],
    applied_topics: Any,
    topic_io: Any,
    tmp_path: Path,
    stored_profiles: Callable[[Settings], dict[str, Profile]],
    customers: int,
    kills: int,
) -> None:
    items = workload(customers, seed=customers)
    sent_per_customer = Counter(r["customer_id"] for _t, r in items)
    runs = {}
    for name, n_kills in (("reference", 0), ("chaos", kills)):
        run = {"topic_prefix": f"{name}{os.urandom(3).hex()}.", "data_dir": tmp_path / name,
               "timer_clock": "event"}  # fmt: skip
        settings = applied_topics(rtim_settings(**run))
        io = topic_io(settings)
        ends = preload(io, items)
        run_to_end(
            settings,
            rtim_env(apply_topics=False, **run),
            ends,
            tmp_path / f"{name}.log",
            kills=n_kills,
            rng=random.Random(kills),
        )
        runs[name] = (stored_profiles(settings), decisions(io))

    (ref_profiles, ref_decisions), (chaos_profiles, chaos_decisions) = (
        runs["reference"],
        runs["chaos"],
    )
    for name in runs:  # the last process of each run applied nothing out of event-time order
        assert stopped(tmp_path / f"{name}.log")["late"] == 0, name
    assert set(chaos_profiles) == set(ref_profiles) == set(sent_per_customer)
    for cid, sent in sent_per_customer.items():
        # every input event applied exactly once: nothing lost, nothing twice
        assert ref_profiles[cid]["version"] == sent
        assert chaos_profiles[cid]["version"] == sent, cid
        assert comparable(chaos_profiles[cid]) == comparable(ref_profiles[cid]), cid
    ref_requests = {d["request_id"] for d in ref_decisions if d["request_id"]}
    chaos_requests = Counter(d["request_id"] for d in chaos_decisions if d["request_id"])
    requests_sent = {r["request_id"] for t, r in items if t == "rtim.requests"}
    assert ref_requests == set(chaos_requests) == requests_sent, "every request answered"
    ref_ids = {d["decision_id"] for d in ref_decisions}
    assert {d["decision_id"] for d in chaos_decisions} == ref_ids, "the same decisions"
    ref_by_id = {d["decision_id"]: d for d in ref_decisions}
    for d in chaos_decisions:  # duplicates only ever repeat a decision, identical in content
        assert d["actions"] == ref_by_id[d["decision_id"]]["actions"]
    # a redelivered step re-emits the same decision id, never a new one for the same trigger
    by_id: dict[str, set[str]] = {}
    for d in chaos_decisions:
        trigger = d["trigger"]
        by_id.setdefault(d["decision_id"], set()).add(f"{trigger['type']}:{trigger['id']}")
    assert all(len(triggers) == 1 for triggers in by_id.values())


def test_two_workers_share_then_hand_over_without_losing_anything(  # noqa: PLR0917 - fixtures
    rtim_settings: Callable[..., Settings],
    rtim_env: Callable[..., dict[str, str]],
    applied_topics: Any,
    topic_io: Any,
    tmp_path: Path,
    stored_profiles: Callable[[Settings], dict[str, Profile]],
) -> None:
    """A second worker joins mid-stream, then the first leaves: partitions and state move.

    Compared with an uncrashed single-worker run of the same input: identical profiles and
    decisions, every event applied exactly once, every request answered, and no record applied
    out of event-time order by either worker.
    """
    items = workload(80, seed=5)
    sent_per_customer = Counter(r["customer_id"] for _t, r in items)
    ref_run = {"topic_prefix": f"ref{os.urandom(3).hex()}.", "data_dir": tmp_path / "ref",
               "timer_clock": "event"}  # fmt: skip
    ref = applied_topics(rtim_settings(**ref_run))
    ref_io = topic_io(ref)
    ref_ends = preload(ref_io, items)
    ref_env = rtim_env(apply_topics=False, **ref_run)
    run_to_end(ref, ref_env, ref_ends, tmp_path / "ref.log", kills=0, rng=random.Random())
    ref_profiles, ref_decisions = stored_profiles(ref), decisions(ref_io)

    shared = {"topic_prefix": f"two{os.urandom(3).hex()}.", "timer_clock": "event"}
    settings = applied_topics(rtim_settings(**shared))
    io = topic_io(settings)

    def env(name: str) -> dict[str, str]:
        return rtim_env(apply_topics=False, data_dir=tmp_path / name, **shared)

    third = len(items) // 3
    ends = preload(io, items[:third])
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = start_worker(env("a"), a_log)
    wait_ready(a_log, a, 0)
    ends.update(preload(io, items[third : 2 * third], pace_s=0))
    b = start_worker(env("b"), b_log)
    wait_ready(b_log, b, 0)  # the group rebalances: each worker now owns some partitions
    # a leaves while the last third is arriving: b takes everything over mid-stream
    with ThreadPoolExecutor(1) as pool:
        last = pool.submit(preload, io, items[2 * third :], pace_s=0.004)
        time.sleep(0.5)
        a.send_signal(signal.SIGTERM)
        assert a.wait(60) == 0, a_log.read_text()[-2000:]
        for key, end in last.result().items():
            ends[key] = max(ends.get(key, 0), end)
    # a may have finished and committed its partitions before it left, so "everything
    # committed" alone does not show that b took them over: wait for b to own all of them
    wait_owns(b_log, b, {p for _topic, p in ends})
    deadline = time.monotonic() + 120
    while not committed_all(settings, ends):
        assert b.poll() is None, b_log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the remaining worker did not finish the input"
        time.sleep(0.3)
    b.send_signal(signal.SIGTERM)
    assert b.wait(60) == 0, b_log.read_text()[-2000:]

    final = stored_profiles(settings.model_copy(update={"data_dir": tmp_path / "b"}))
    missing = set(sent_per_customer) - set(final)
    assert set(final) == set(sent_per_customer), (sorted(missing), b_log.read_text()[-3000:])
    for cid, sent in sent_per_customer.items():
        assert final[cid]["version"] == sent, cid  # every event applied exactly once
        assert comparable(final[cid]) == comparable(ref_profiles[cid]), cid
    two_decisions = decisions(io)
    assert {d["decision_id"] for d in two_decisions} == {d["decision_id"] for d in ref_decisions}
    answered = {d["request_id"] for d in two_decisions if d["request_id"]}
    assert answered == {r["request_id"] for t, r in items if t == "rtim.requests"}
    for log in (a_log, b_log):  # each worker's own count of records applied out of order
        assert stopped(log)["late"] == 0, log.read_text()[-3000:]
