"""`rtim bench --quick`: every phase runs against the real worker and the result is complete.

The numbers of a quick run mean little (tiny sizes, a shared machine); this checks that the
command measures everything it promises, reports each target as met or missed, and cleans up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rtim.bench.memory import murmur2_partition
from rtim.kafka.admin import admin_client
from rtim.kafka.broker import EmbeddedBroker
from rtim.settings import Settings

pytestmark = pytest.mark.integration

REQUIRED = (
    "ingest_events_per_s",
    "decisions_per_s",
    "request_latency_ms",
    "outcome_to_model_ms_p99",
    "bytes_per_profile",
    "baseline_raw_consume_per_s",
    "baseline_faust_table_events_per_s",
    "cpu_count",
    "ratios",
    "sizes",
    "targets",
)


def test_quick_bench_measures_every_figure_and_cleans_up(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, RTIM_BROKER=broker.bootstrap, RTIM_LOG_FORMAT="json")
    args = ["--quick", "--json", str(out), "--memory-profiles", "5000", "--memory-touch", "500"]
    proc = subprocess.run(
        [sys.executable, "-m", "rtim", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rtim bench — targets" in proc.stdout

    result = json.loads(out.read_text())
    missing = [key for key in REQUIRED if result.get(key) is None]
    assert not missing, f"missing figures: {missing}"
    assert result["cpu_count"] >= 1
    assert set(result["request_latency_ms"]) >= {"p50", "p99", "p999", "offered_requests_per_s"}
    assert result["ingest_events_per_s"] > 0
    assert result["decisions_per_s"] > 0
    assert result["baseline_faust_table_events_per_s"] > 0
    assert result["ratios"]["ingest_vs_faust_table"] > 0
    for phase in ("ingest", "decisions"):  # the worker's CPU split by thread
        split = result[phase]["worker_cpu_us_per_record_by_thread"]
        assert set(split) == {"pipeline", "kafka_client", "other"}
        assert 0 < result[phase]["ack_wait_share"] < 1, "every batch waits for its acks a while"
        assert result[phase]["flushes"] > 0
    assert result["ingest"]["worker_cpu_us_per_record_by_thread"]["pipeline"] > 0

    latency = result["request_latency"]
    assert latency["answered"] == latency["measured"] > 0, "every timed request is answered"
    assert result["outcome_to_model"]["learned"] > 0, "outcomes reach a model snapshot"
    assert result["worker_counters"]["dead_letters"] == 0, "the workload is valid input"
    assert result["worker_counters"]["records"] == result["sizes"]["input_records"]
    assert result["memory"]["rocksdb"]["profiles"] == 5000
    assert result["memory"]["worker_rss_bytes"] > 0

    statuses = {t["name"]: t["status"] for t in result["targets"]}
    assert len(statuses) == 6
    assert set(statuses.values()) <= {"met", "missed"}, "every target measured in a full run"

    # the run's topics (under its own prefix) are gone from the shared broker
    settings = Settings(broker=broker.bootstrap)
    prefix = result["topic_prefix"]
    left = [
        t for t in admin_client(settings).list_topics(timeout=10).topics if t.startswith(prefix)
    ]
    assert not left


def test_murmur2_partition_matches_the_producer(rtim_settings: Any, applied_topics: Any) -> None:
    """Profiles written straight into a PartitionStore land where the worker will look."""
    from confluent_kafka import Producer

    from rtim.kafka.config import producer_config

    settings = applied_topics(rtim_settings())
    topic = settings.topic("rtim.events.clickstream")
    producer = Producer(producer_config(settings))
    delivered: dict[bytes, int] = {}
    keys = [f"m{i:07d}".encode() for i in range(300)] + [b"x", b"ab", b"abc", b"c0000001"]
    for key in keys:
        producer.produce(
            topic, b"v", key, on_delivery=lambda _e, m: delivered.update({m.key(): m.partition()})
        )
    assert producer.flush(30) == 0
    assert all(delivered[key] == murmur2_partition(key, 6) for key in keys)
