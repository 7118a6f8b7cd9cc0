"""Erasure: `rtim forget` removes a customer's data, later events stay minimal; logs hold no PII."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from rtim.serde.jsonio import record_from_json
from rtim.settings import Settings

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
SECRET_EMAIL = "alice.secret@example.org"
SECRET_PAGE = "/account/alice-secret-statement"


def records(cid: str, tag: str, ts: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("rtim.events.profile", "ProfileEvent", {
            "event_id": f"{tag}-a", "customer_id": cid, "ts": ts, "type": "attributes",
            "attributes": {"email": SECRET_EMAIL, "age": "33"}}),
        ("rtim.events.profile", "ProfileEvent", {
            "event_id": f"{tag}-c", "customer_id": cid, "ts": ts + 1, "type": "consent",
            "channel": "email", "granted": True}),
        ("rtim.events.clickstream", "ClickstreamEvent", {
            "event_id": f"{tag}-p", "customer_id": cid, "ts": ts + 2, "session_id": "s",
            "type": "add_to_cart", "page": SECRET_PAGE, "product_id": "sku", "price": 99.0,
            "quantity": 1}),
        ("rtim.events.transactions", "TransactionEvent", {
            "event_id": f"{tag}-t", "customer_id": cid, "ts": ts + 3, "transaction_id": f"{tag}-x",
            "type": "payment", "amount": 4200.0, "currency": "EUR", "status": "approved",
            "category": "salary"}),
        ("rtim.requests", "DecisionRequest", {
            "request_id": f"{tag}-r", "customer_id": cid, "ts": ts + 4, "channel": "web",
            "placement": "home"}),
    ]  # fmt: skip


def send(io: Any, items: list[tuple[str, str, dict[str, Any]]]) -> None:
    for topic, schema, fields in items:
        io.send(topic, schema, [record_from_json(schema, fields)])


def test_forget_erases_and_later_events_stay_minimal(  # noqa: PLR0917 - fixtures
    rtim_settings: Callable[..., Settings], applied_topics: Any, topic_io: Any,
    run_worker: Any, stored_profiles: Any, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    settings = applied_topics(rtim_settings(log_format="json"))
    io = topic_io(settings)
    cid = "erase-me"
    send(io, records(cid, "before", NOW - 60_000))
    worker = run_worker(settings)
    worker.wait_for(lambda s: s.applied == 5)

    env = {**os.environ, "RTIM_BROKER": settings.broker, "RTIM_TOPIC_PREFIX": settings.topic_prefix}
    done = subprocess.run([sys.executable, "-m", "rtim", "forget", cid], env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    worker.wait_for(lambda s: s.applied == 6)
    send(io, records(cid, "after", NOW))  # later events: ignored, the request answered empty
    worker.wait_for(lambda s: s.applied + s.skipped >= 11)
    answers = io.read(
        "rtim.decisions.web",
        until=lambda rs: any(r["request_id"] == "after-r" for r in rs),
    )
    worker.stop()

    after = next(r for r in answers if r["request_id"] == "after-r")
    assert after["actions"] == []
    assert any("erased" in reason for reason in after["reasons"])
    profile = stored_profiles(settings)[cid]
    assert profile["erased_ts"] > 0
    assert set(profile) <= {"customer_id", "version", "applied", "recent_ids", "erased_ts",
                            "updated_ts"}, profile  # fmt: skip
    blob = json.dumps(profile, default=str)
    assert SECRET_EMAIL not in blob
    assert SECRET_PAGE not in blob

    logs = capfd.readouterr()
    for secret in (SECRET_EMAIL, SECRET_PAGE, "4200"):
        assert secret not in logs.out
        assert secret not in logs.err
