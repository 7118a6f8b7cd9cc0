"""Soak: a fixed input rate for a while, worker memory and consumer lag sampled; both bounded.

The short version runs in `make test`; `make test-slow` runs ten minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from rtim.kafka.config import consumer_config
from rtim.settings import Settings
from rtim.sim.driver import SimDriver

pytestmark = pytest.mark.integration


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lag(settings: Settings) -> int:
    """Records on the input topics not yet committed by the customer group."""
    consumer = Consumer(consumer_config(settings, settings.group(settings.group_id)))
    try:
        topics = [settings.topic(t) for t in (
            "rtim.events.clickstream", "rtim.events.transactions", "rtim.events.complaints",
            "rtim.events.profile", "rtim.requests", "rtim.outcomes")]  # fmt: skip
        tps = [TopicPartition(t, p) for t in topics for p in range(6)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, 10)}
        total = 0
        for tp in tps:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            total += max(0, high - max(committed[(tp.topic, tp.partition)], 0))
        return total
    finally:
        consumer.close()


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(40, id="short"),
        pytest.param(600, id="ten-minutes", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
def test_memory_and_lag_stay_bounded_at_a_fixed_rate(
    rtim_settings: Callable[..., Settings], applied_topics: Any, tmp_path: Path, seconds: int
) -> None:
    settings = applied_topics(rtim_settings(timer_clock="event"))
    env = {
        **os.environ,
        "RTIM_BROKER": settings.broker,
        "RTIM_TOPIC_PREFIX": settings.topic_prefix,
        "RTIM_DATA_DIR": str(settings.data_dir),
        "RTIM_TIMER_CLOCK": "event",
        "RTIM_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
        "RTIM_LOG_FORMAT": "json",
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "rtim", "worker", "--stats-every", "0"],
                              env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "partition ready" not in log.read_text():
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        driver = SimDriver(settings, customers=3000, rate=400, seed=9, duration_s=seconds,
                           speedup=120, drain_s=5, wait_for_workers=True)  # fmt: skip
        thread = threading.Thread(target=driver.run, daemon=True)
        thread.start()
        samples: list[tuple[float, float, int]] = []
        started = time.monotonic()
        while thread.is_alive():
            thread.join(max(2.0, seconds / 20))
            samples.append((time.monotonic() - started, rss_mb(worker.pid), lag(settings)))
        assert worker.poll() is None, log.read_text()[-2000:]
    finally:
        worker.terminate()
        worker.wait(60)
    paced = [s for s in samples if s[0] <= seconds]
    half = len(paced) // 2
    first, second = paced[:half], paced[half:]
    growth = max(s[1] for s in second) - max(s[1] for s in first)
    print({"samples": [(round(t), round(m), n) for t, m, n in samples]})
    # memory: the second half of the run may not keep growing like a leak would
    assert growth < 40, f"RSS grew by {growth:.0f} MiB in the second half"
    # lag: the worker keeps up with 400 events/s (a second or two of input at most)
    assert max(s[2] for s in second) < 1500, samples
