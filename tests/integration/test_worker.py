"""The customer worker against the embedded broker: profile, answers, DLQ, dedup, restart."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtim.serde.jsonio import record_from_json
from rtim.serde.schemas import get_schemas
from rtim.settings import Settings

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
TOPIC_SCHEMA = {
    "rtim.events.clickstream": "ClickstreamEvent",
    "rtim.events.transactions": "TransactionEvent",
    "rtim.events.complaints": "ComplaintEvent",
    "rtim.events.profile": "ProfileEvent",
    "rtim.requests": "DecisionRequest",
    "rtim.outcomes": "Outcome",
}


def event(topic: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A valid record for `topic` (JSON-ish fields, defaults filled by the schema)."""
    return topic, record_from_json(TOPIC_SCHEMA[topic], fields)


def click(cid: str, n: int, kind: str = "page_view", ts: int = NOW, **extra: Any) -> Any:
    return event(
        "rtim.events.clickstream",
        event_id=f"{cid}-c{n}", customer_id=cid, ts=ts, session_id=f"{cid}-s", type=kind, **extra,
    )  # fmt: skip


def txn(
    cid: str, n: int, kind: str, amount: float, status: str, *, ts: int = NOW, **extra: Any
) -> Any:
    return event(
        "rtim.events.transactions",
        event_id=f"{cid}-t{n}", customer_id=cid, ts=ts, transaction_id=f"{cid}-tx{n}",
        type=kind, amount=amount, currency="EUR", status=status, **extra,
    )  # fmt: skip


def complaint(cid: str, n: int, status: str = "opened", ts: int = NOW) -> Any:
    return event(
        "rtim.events.complaints",
        event_id=f"{cid}-k{n}", customer_id=cid, ts=ts, complaint_id=f"{cid}-cp",
        category="billing", severity="high", status=status,
    )  # fmt: skip


def consent(cid: str, n: int, channel: str, granted: bool, ts: int = NOW) -> Any:
    return event(
        "rtim.events.profile",
        event_id=f"{cid}-p{n}", customer_id=cid, ts=ts, type="consent", channel=channel,
        granted=granted,
    )  # fmt: skip


def request(cid: str, rid: str, channel: str, ts: int = NOW, placement: str = "home") -> Any:
    return event(
        "rtim.requests",
        request_id=rid, customer_id=cid, ts=ts, channel=channel, placement=placement,
    )  # fmt: skip


def send(io: Any, items: list[tuple[str, dict[str, Any]]]) -> None:
    for topic, record in items:
        io.send(topic, TOPIC_SCHEMA[topic], [record])


@pytest.fixture
def settings(rtim_settings: Callable[..., Settings], applied_topics: Any) -> Settings:
    return applied_topics(rtim_settings())


def test_events_of_all_kinds_update_the_profile_and_requests_are_answered(
    settings: Settings, topic_io: Any, run_worker: Any, stored_profiles: Any
) -> None:
    io = topic_io(settings)
    worker = run_worker(settings, learner=False)
    cid = "cust-1"
    send(io, [
        consent(cid, 1, "email", True, ts=NOW - 5000),
        click(cid, 1, ts=NOW - 4000, page="/home"),
        click(cid, 2, "add_to_cart", ts=NOW - 3000, product_id="sku-1", price=40.0, quantity=2,
              category="shoes"),
        txn(cid, 1, "purchase", 120.0, "approved", ts=NOW - 2000),
        txn(cid, 2, "credit_check", 0.0, "failed", ts=NOW - 1500),
        complaint(cid, 1, ts=NOW - 1000),
        request(cid, "req-web-1", "web", ts=NOW),
        request(cid, "req-cc-1", "call_center", ts=NOW + 1),
    ])  # fmt: skip

    def answer(request_id: str) -> Callable[[list[dict[str, Any]]], bool]:
        return lambda records: any(r["request_id"] == request_id for r in records)

    web = [
        r for r in io.read("rtim.decisions.web", until=answer("req-web-1"))
        if r["request_id"] == "req-web-1"
    ]  # fmt: skip
    cc = [
        r for r in io.read("rtim.decisions.call_center", until=answer("req-cc-1"))
        if r["request_id"] == "req-cc-1"
    ]  # fmt: skip
    assert len(web) == len(cc) == 1
    assert web[0]["channel"] == "web"
    assert cc[0]["channel"] == "call_center"
    assert web[0]["_key"] == cid.encode()
    for decision in (web[0], cc[0]):
        assert decision["actions"] or decision["reasons"], "a no-action answer carries reasons"
        for action in decision["actions"]:
            assert action["category"] != "credit_card", "failed credit check must exclude cards"
    log = io.read(
        "rtim.decision-log",
        until=lambda rs: {"req-web-1", "req-cc-1"} <= {r["decision"]["request_id"] for r in rs},
    )
    explained = next(r for r in log if r["decision"]["request_id"] == "req-web-1")
    assert explained["features"]["credit_check_status"] == "failed"
    removed = {c["offer_id"]: c["removed_by"] for c in explained["candidates"]}
    assert removed.get("gold_card"), "every removed candidate keeps the rule that removed it"
    worker.wait_for(lambda s: s.applied == 8)
    worker.stop()

    profile = stored_profiles(settings)[cid]
    assert profile["version"] == 8
    assert profile["consent"]["email"][0] is True
    assert profile["cart"]["sku-1"][:2] == (2, 40.0)
    assert profile["last_purchase_amount"] == 120.0
    assert profile["credit_check"][0] == "failed"
    assert f"{cid}-cp" in profile["open_complaints"]
    assert profile["recent_pages"] == ("/home",)


def test_bad_messages_go_to_the_dlq_with_reasons_and_good_ones_are_applied(
    settings: Settings, topic_io: Any, run_worker: Any, stored_profiles: Any
) -> None:
    io = topic_io(settings)
    codec = io.codec
    good_topic, good = click("good", 0)
    valid = codec.encode("ClickstreamEvent", good)
    txn_topic, a_txn = txn("bad", 0, "purchase", 10.0, "approved")

    def txn_bytes(**changes: Any) -> bytes:
        return codec.encode("TransactionEvent", {**a_txn, **changes})

    def bad_enum() -> bytes:
        # the writer's enum has a symbol the contract does not: its index is out of range
        import copy
        import io as bytes_io

        import fastavro

        schema = get_schemas().current("TransactionEvent")
        raw = copy.deepcopy(schema.raw)
        status = next(f for f in raw["fields"] if f["name"] == "status")
        status["type"]["symbols"].append("stolen")
        buffer = bytes_io.BytesIO()
        fastavro.schemaless_writer(
            buffer, fastavro.parse_schema(raw), {**a_txn, "status": "stolen"}
        )
        return b"\xc3\x01" + schema.fingerprint + buffer.getvalue()

    bad: list[tuple[str, bytes | None, bytes | None, str]] = []
    for i in range(12):
        key = f"bad-{i}".encode()
        bad += [
            (good_topic, os.urandom(5 + i * 7), key, "random bytes"),
            (good_topic, valid[: len(valid) // 2], b"good", "truncated avro"),
            (good_topic, b"\xc3\x01" + bytes(8) + valid[10:], b"good", "unknown fingerprint"),
            (good_topic, valid[:10] + b"\x02", b"good", "missing fields"),
            (txn_topic, bad_enum(), b"bad", "bad enum"),
            (txn_topic, txn_bytes(amount=-5.0), b"bad", "negative amount"),
            (txn_topic, txn_bytes(amount=math.nan), b"bad", "nan"),
            (txn_topic, txn_bytes(), None, "null key"),
            (txn_topic, txn_bytes(), b"someone-else", "mismatched key"),
            (txn_topic, txn_bytes(ts=NOW + 400 * 86_400_000), b"bad", "future timestamp"),
        ]
    bad.append((good_topic, None, b"good", "null value"))
    bad.append((good_topic, b"\x00" * (settings.max_message_bytes + 1), b"good", "oversized"))
    assert len(bad) >= 100

    goods = 0
    for i, (topic, value, key, _why) in enumerate(bad):
        io.send_raw(topic, value, key)
        if i % 5 == 0:  # interleave good events of the same customers and topics
            t, record = click("good", i + 1)
            io.send(t, "ClickstreamEvent", [record])
            goods += 1
    io.flush()
    worker = run_worker(settings, learner=False)
    dlq = io.read("rtim.dlq", count=len(bad), timeout=60)
    worker.wait_for(lambda s: s.applied == goods)
    worker.stop()

    assert len(dlq) == len(bad)
    for record in dlq:
        assert record["error"], record
        assert record["source_topic"] in (settings.topic(good_topic), settings.topic(txn_topic))
        assert record["offset"] >= 0
        assert record["partition"] >= 0
    reasons = " | ".join(r["error"] for r in dlq)
    for fragment in ("amount", "NaN", "key", "ahead of the clock", "exceeds", "null"):
        assert fragment.lower() in reasons.lower(), fragment
    # the original bytes are kept, byte for byte
    sent_values = {v for _t, v, _k, _w in bad if v is not None}
    assert {r["value"] for r in dlq if r["value"]} <= sent_values
    assert stored_profiles(settings)["good"]["version"] == goods


def test_a_profile_that_cannot_be_stored_sends_its_events_to_the_dlq_not_the_worker_down(
    settings: Settings, topic_io: Any, run_worker: Any, stored_profiles: Any
) -> None:
    """A fault in the core that makes a profile unencodable is a poison pill, unless caught.

    The customer's events of that batch go to the DLQ with the reason, the customer's state and
    outputs stay as before them, and the worker carries on with everyone, that customer included.
    """
    from rtim.core.engine import Engine, StepResult

    class FaultyEngine(Engine):
        def __init__(self, inner: Engine) -> None:
            super().__init__(inner.decider, inner.dedup_window)

        def on_event(self, profile: Any, event: Any, ctx: Any) -> StepResult:
            result = super().on_event(profile, event, ctx)
            if event.record.get("page") == "/poison":  # msgpack cannot encode an object()
                return StepResult({**result.profile, "recent_pages": (object(),)}, result.emits)
            return result

    io = topic_io(settings)
    worker = run_worker(settings, learner=False, wrap_engine=FaultyEngine)
    send(io, [click("sick", 1, page="/a")])
    worker.wait_for(lambda s: s.applied == 1)
    send(io, [click("sick", 2, page="/poison")])
    dlq = io.read("rtim.dlq", count=1, timeout=30)
    send(io, [click("sick", 3, page="/b"), request("sick", "sick-r1", "web"), click("well", 1)])
    answers = io.read("rtim.decisions.web", count=1, timeout=30)
    worker.wait_for(lambda s: s.applied == 4)
    worker.stop()

    assert len(dlq) == 1
    assert "could not be stored" in dlq[0]["error"], dlq[0]["error"]
    assert dlq[0]["source_topic"] == settings.topic("rtim.events.clickstream")
    assert dlq[0]["error_kind"] == "internal"
    assert answers[0]["request_id"] == "sick-r1"
    profiles = stored_profiles(settings)
    assert profiles["sick"]["version"] == 3  # /a, /b and the request; not the poison
    assert profiles["sick"]["recent_pages"] == ("/a", "/b")
    assert profiles["well"]["version"] == 1


def test_the_same_event_twice_is_applied_once(
    settings: Settings, topic_io: Any, run_worker: Any, stored_profiles: Any
) -> None:
    io = topic_io(settings)
    purchase = txn("dup", 1, "purchase", 50.0, "approved")
    send(io, [purchase, purchase, click("dup", 1), purchase])
    worker = run_worker(settings, learner=False)
    worker.wait_for(lambda s: s.applied + s.skipped == 4)
    worker.stop()
    profile = stored_profiles(settings)["dup"]
    assert profile["version"] == 2
    assert sum(d[1] for d in profile["purchase_days"]) == 1


def _delete_changelog_meta(settings: Settings) -> None:
    """A tombstone for every partition's meta record: the worker never writes one; an
    operator's mistaken cleanup might."""
    from confluent_kafka import Producer

    from rtim.kafka.config import producer_config
    from rtim.worker.changelog import META_KEY

    producer = Producer(producer_config(settings))
    changelog = settings.topic("rtim.changelog.customer")
    for partition in producer.list_topics(changelog, timeout=10).topics[changelog].partitions:
        producer.produce(changelog, None, META_KEY, partition=partition)
    assert producer.flush(10) == 0


@pytest.mark.parametrize(
    "restore", ["local", "from-changelog", "from-changelog-with-a-stray-meta-tombstone"]
)
def test_state_survives_a_worker_restart(
    settings: Settings,
    topic_io: Any,
    run_worker: Any,
    stored_profiles: Any,
    restore: str,
) -> None:
    io = topic_io(settings)
    customers = [f"r{i}" for i in range(40)]
    send(io, [txn(c, 1, "purchase", 10.0, "approved", ts=NOW - 1000) for c in customers])
    first = run_worker(settings, learner=False)
    first.wait_for(lambda s: s.applied == len(customers))
    first.stop()
    before = stored_profiles(settings)
    if restore.endswith("tombstone"):
        _delete_changelog_meta(settings)
    if restore != "local":  # a new machine: everything must come back from the changelog
        import shutil

        shutil.rmtree(Path(settings.data_dir) / "customer")

    send(io, [txn(c, 2, "purchase", 5.0, "approved") for c in customers])
    second = run_worker(settings, learner=False)
    second.wait_for(lambda s: s.applied == len(customers))
    assert second.stats.skipped == 0, "nothing from before the restart is processed again"
    second.stop()
    after = stored_profiles(settings)
    for c in customers:
        assert before[c]["version"] == 1
        assert after[c]["version"] == 2
        assert sum(d[2] for d in after[c]["purchase_days"]) == pytest.approx(15.0)


def test_an_event_acknowledged_before_a_request_is_applied_before_its_decision(
    settings: Settings, topic_io: Any, run_worker: Any
) -> None:
    """The cross-topic guarantee (docs/reliability.md): a complaint the broker acknowledged
    before the request was produced is known to the decision, also under a stream of other
    customers' clicks that keeps the worker's fetches busy."""
    from rtim.serde.codec import Codec

    io = topic_io(settings)
    codec = Codec.from_settings(settings)
    worker = run_worker(settings, learner=False)
    pairs = 80

    def produce(item: tuple[str, dict[str, Any]]) -> None:
        topic, record = item
        value = codec.encode(TOPIC_SCHEMA[topic], record, topic=settings.topic(topic))
        io.produce(topic, value, record["customer_id"].encode(), timestamp=record["ts"])

    for i in range(pairs):
        ts = NOW + i * 10
        for j in range(25):  # other customers' traffic, in flight together with the pair
            produce(click(f"busy-{j}", i * 25 + j, ts=ts))
        cid = f"calm-{i}"
        produce(complaint(cid, 1, ts=ts))
        io.flush()  # acknowledged ...
        produce(request(cid, f"req-{i}", "web", ts=ts + 1))  # ... before the request exists
    io.flush()
    log = io.read(
        "rtim.decision-log",
        until=lambda rs: sum(1 for r in rs if r["decision"]["request_id"]) >= pairs,
        timeout=60,
    )
    decided = {r["decision"]["request_id"]: r for r in log if r["decision"]["request_id"]}
    assert len(decided) == pairs
    unaware = [rid for rid, r in decided.items() if not r["features"]["has_open_complaint"]]
    assert unaware == [], f"decided without the acknowledged complaint: {unaware[:5]}"
    sales = [
        (rid, a["offer_id"])
        for rid, r in decided.items()
        for a in r["decision"]["actions"]
        if a["category"] not in ("service_recovery", "service")
    ]
    assert sales == [], f"sales offers right after a complaint: {sales[:5]}"
    worker.stop()


@pytest.mark.parametrize("learner_process", [True, False], ids=["learner-process", "thread"])
def test_models_survive_a_restart_and_no_example_is_learned_twice(
    settings: Settings, topic_io: Any, run_worker: Any, learner_process: bool
) -> None:
    """Decisions → outcomes → training examples → a model snapshot; a restarted worker serves
    the same model (version and prediction) and its learner learns nothing again."""
    settings = settings.model_copy(update={"learner_process": learner_process})
    io = topic_io(settings)
    first = run_worker(settings)
    customers = [f"m{i}" for i in range(60)]
    # a recent large purchase makes web offers applicable (e.g. the purchase cross-sell)
    send(io, [txn(c, 1, "purchase", 400.0, "approved", ts=NOW - 1000) for c in customers])
    send(io, [request(c, f"req-{c}", "web", ts=NOW + i) for i, c in enumerate(customers)])
    answered = io.read(
        "rtim.decisions.web",
        until=lambda rs: {r["request_id"] for r in rs} >= {f"req-{c}" for c in customers},
        timeout=60,
    )
    outcomes = [
        event(
            "rtim.outcomes",
            event_id=f"o-{d['decision_id']}",
            decision_id=d["decision_id"],
            customer_id=d["customer_id"],
            ts=NOW + 60_000,
            channel="web",
            offer_id=d["actions"][0]["offer_id"],
            type="click" if i % 2 else "dismiss",
        )
        for i, d in enumerate(r for r in answered if r["actions"])
    ]
    assert len(outcomes) >= 10, "enough decisions with an action to learn from"
    send(io, outcomes)
    registry = first.service.registry
    deadline = time.monotonic() + 60
    while not len(registry.models()):
        assert time.monotonic() < deadline, "no model snapshot arrived"
        time.sleep(0.05)
    offers = {o["offer_id"] for _t, o in outcomes}
    x = {"channel": "web", "age": 40.0}

    def learned(reg: Any) -> int:  # examples in the snapshots the registry serves
        return sum((reg.predict(offer, "web", x) or (0.0, 0))[1] for offer in offers)

    first.wait_for(lambda _s: learned(registry) >= len(outcomes), timeout=60)
    assert learned(registry) == len(outcomes)
    if not learner_process:
        assert first.service.active_learner.stats.examples == len(outcomes)
    else:
        assert first.service.learner_pid is not None, "the learner runs as a child process"
    versions = registry.versions()
    offer = outcomes[0][1]["offer_id"]
    before = registry.predict(offer, "web", x)
    child = first.service.learner_pid
    first.stop()
    if child is not None:
        assert not _alive(child), "the learner process stopped with the worker"

    second = run_worker(settings)
    second.wait_for(lambda _s: second.service.registry.versions() == versions, timeout=30)
    assert second.service.registry.predict(offer, "web", x) == before
    time.sleep(1.5)  # a re-learned example would be published within RTIM_MODEL_PUBLISH_MS
    assert second.service.registry.versions() == versions, "an example was learned twice"
    assert learned(second.service.registry) == len(outcomes)
    if not learner_process:
        assert second.service.active_learner.stats.examples == 0, "an example was learned twice"
    second.stop()


def test_the_child_learner_does_not_outlive_a_killed_worker(
    rtim_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    import json
    import signal
    import subprocess
    import sys

    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "rtim", "worker", "--stats-every", "0"],
                              env=rtim_env(), stdout=log.open("ab"),
                              stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        child = None
        while child is None:
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no learner process started"
            for line in log.read_text(errors="replace").splitlines():
                if '"learner process"' in line:
                    child = json.loads(line)
                    break
            time.sleep(0.05)
        assert child["parent"] == worker.pid
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 15
        while _alive(child["pid"]):
            assert time.monotonic() < deadline, "the learner outlived its worker"
            time.sleep(0.05)
    finally:
        if worker.poll() is None:
            worker.kill()


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_an_input_whose_fetched_end_is_stale_still_counts_as_lagging(
    settings: Settings, topic_io: Any
) -> None:
    """The order rule's "this input has nothing more" comes from the broker, asked after the
    records were fetched (docs/reliability.md): a fetch response can report one input's end
    from before a record acknowledged ahead of another input's record. Here the consumer stops
    fetching the clickstream (paused), so its cached end stays stale while a click is
    acknowledged; the lag is still seen, and a lag once seen needs no second question."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from rtim.kafka.config import admin_config, consumer_config
    from rtim.worker.ends import InputEnds

    io = topic_io(settings)
    send(io, [click("stale", 1), complaint("stale", 1)])
    clicks = settings.topic("rtim.events.clickstream")
    complaints = settings.topic("rtim.events.complaints")
    topics = AdminClient(admin_config(settings)).list_topics(timeout=10).topics
    partitions = sorted(topics[clicks].partitions)
    consumer = Consumer(consumer_config(settings, None, **{"enable.partition.eof": True}))
    client = Consumer(consumer_config(settings, None))
    try:
        tps = [TopicPartition(t, p, 0) for t in (clicks, complaints) for p in partitions]
        consumer.assign(tps)
        at_end: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 30
        while len(at_end) < len(tps):  # every input read to its end, and its end reported
            assert time.monotonic() < deadline, at_end
            for m in consumer.consume(100, 0.2):
                if m.error() is not None:
                    at_end.add((m.topic(), m.partition()))
        consumer.pause([TopicPartition(clicks, p) for p in partitions])
        send(io, [click("stale", 2)])  # acknowledged: the broker has it

        def lags(ends: InputEnds, topic: str) -> dict[int, int | None]:
            ends.new_step(partitions)
            return {p: ends.lag(topic, p, fresh=True) for p in partitions}

        cached_only = lags(InputEnds(consumer, None, {}), clicks)
        assert set(cached_only.values()) == {0}  # what the cached ends say: stale
        ends = InputEnds(consumer, client, {})
        found = lags(ends, clicks)
        assert sorted(found.values()) == [0] * (len(partitions) - 1) + [1]
        assert (ends.queries, ends.unanswered) == (1, 0)  # one question for every input
        lagging = next(p for p, n in found.items() if n)
        ends.new_step(partitions)
        assert ends.lag(clicks, lagging, fresh=True) == 1
        assert ends.queries == 1  # a lag once seen is known: no second question
        assert set(lags(ends, complaints).values()) == {0}
        assert ends.queries == 2  # "nothing more" is asked again in a new step
        assert ends.inputs_named == 2 * 2 * len(partitions)  # every input of every partition

        ends.new_step([lagging])  # a step with records of one partition asks about its inputs
        assert ends.lag(complaints, lagging, fresh=True) == 0
        assert (ends.queries, ends.inputs_named) == (3, 4 * len(partitions) + 2)
        other = next(p for p in partitions if p != lagging)
        assert ends.lag(complaints, other, fresh=True) == 0  # another, when it needs to be
        assert ends.lag(clicks, other, fresh=True) == 0
        assert (ends.queries, ends.inputs_named) == (4, 4 * len(partitions) + 4)
    finally:
        consumer.close()
        client.close()
