"""`rtim replay`: exact time ranges, exports, sandbox republishing, live groups untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest

from rtim.serde.jsonio import record_from_json

pytestmark = pytest.mark.integration

T0 = 1_750_000_000_000


def rtim(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtim", *args],
        env=env, check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _click(event_id: str, customer_id: str, ts: int) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer_id, "ts": ts, "session_id": "s",
            "type": "page_view"}  # fmt: skip


def clicks(n: int, ts: int, tag: str) -> list[dict[str, Any]]:
    return [
        record_from_json(
            "ClickstreamEvent",
            {
                "event_id": f"{tag}-{i}",
                "customer_id": f"c{i % 7}",
                "ts": ts + i,
                "session_id": "s",
                "type": "page_view",
            },
        )
        for i in range(n)
    ]


@pytest.fixture
def recorded(rtim_env: Callable[..., dict[str, str]], rtim_settings: Any, topic_io: Any) -> Any:
    env = rtim_env()
    settings = rtim_settings()
    io = topic_io(settings)
    # message timestamps = event time (the producer sets them from the record's ts)
    for tag, ts in (("before", T0 - 10_000), ("inside", T0), ("after", T0 + 10_000)):
        for record in clicks(30, ts, tag):
            value = io.codec.encode("ClickstreamEvent", record)
            io.produce("rtim.events.clickstream", value, record["customer_id"].encode(),
                       timestamp=record["ts"])  # fmt: skip
    io.flush()
    return env, settings, io


def test_export_jsonl_and_avro_hold_exactly_the_range(recorded: Any, tmp_path: Path) -> None:
    env, _settings, _io = recorded
    args = ("--from", str(T0), "--to", str(T0 + 5000), "--topics", "rtim.events.clickstream")
    done = rtim(env, "replay", *args, "--out", str(tmp_path / "j"))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in (tmp_path / "j" / "rtim.events.clickstream.jsonl").open()]
    assert sorted(x["value"]["event_id"] for x in lines) == sorted(f"inside-{i}" for i in range(30))
    assert all(x["key"] == x["value"]["customer_id"] for x in lines)

    done = rtim(env, "replay", *args, "--out", str(tmp_path / "a"), "--format", "avro")
    assert done.returncode == 0, done.stderr
    with (tmp_path / "a" / "rtim.events.clickstream.avro").open("rb") as f:
        assert len(list(fastavro.reader(f))) == 30


def test_republish_to_a_sandbox_prefix_keeps_keys_and_partitions(recorded: Any) -> None:
    env, settings, io = recorded
    sandbox = f"sb{uuid.uuid4().hex[:6]}."
    done = rtim(env, "replay", "--from", str(T0 - 20_000), "--to-prefix", sandbox,
                "--topics", "rtim.events.clickstream")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rtim.events.clickstream: 90 records" in done.stdout
    original = io.read("rtim.events.clickstream", count=90)
    copy = type(io)(settings.model_copy(update={"topic_prefix": sandbox}))
    copied = copy.read("rtim.events.clickstream", count=90)
    where = {r["event_id"]: (r["_key"], r["_partition"]) for r in original}
    assert {r["event_id"]: (r["_key"], r["_partition"]) for r in copied} == where


def test_bad_arguments_are_one_line(recorded: Any) -> None:
    env, settings, _io = recorded
    for args in (
        ("--from", "yesterday-ish", "--out", "x"),
        ("--topics", "rtim.nope", "--out", "x"),
        ("--from", "0"),
        ("--to-prefix", settings.topic_prefix),
    ):
        done = rtim(env, "replay", *args)
        assert done.returncode != 0, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
