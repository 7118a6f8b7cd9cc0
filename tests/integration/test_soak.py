"""Soak: a fixed input rate for a while, worker memory and consumer lag sampled; both bounded.

The short version (40 s at 400 events/s) runs in `make test`; `make test-slow` runs ten
minutes at 100 events/s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from rtim.core.events import INPUT_TOPICS
from rtim.dev import DEV_PARTITIONS
from rtim.kafka.broker import EmbeddedBroker
from rtim.kafka.config import consumer_config
from rtim.kafka.topics import ensure_topics
from rtim.settings import Settings
from rtim.sim.driver import SimDriver

pytestmark = pytest.mark.integration

# The embedded broker (memory storage) lists every batch a partition holds on each fetch that
# returns data, so its CPU grows with runtime and with the square of the batch rate: at 400
# events/s it saturates a core after 3-8.5 minutes, whatever the worker does
# (docs/reliability.md). With `rtim dev`'s partition count, upstream sending once a second, a
# broker of its own and 100 events/s, ten minutes stay clear of it (200 events/s saturated it
# after eight minutes on a slow day of this machine).
PARTITIONS = DEV_PARTITIONS
WAVE_S = 1.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lag(settings: Settings) -> int:
    """Records on the input topics not yet committed by the customer group."""
    consumer = Consumer(consumer_config(settings, settings.group(settings.group_id)))
    try:
        topics = [settings.topic(t) for t in INPUT_TOPICS]
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, 10)}
        total = 0
        for tp in tps:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            total += max(0, high - max(committed[(tp.topic, tp.partition)], 0))
        return total
    finally:
        consumer.close()


def soak(  # noqa: PLR0917 - the soak's parameters
    settings: Settings,
    env: dict[str, str],
    broker: EmbeddedBroker,
    tmp_path: Path,
    seconds: int,
    rate: int,
) -> tuple[list[tuple[float, float, int]], list[float]]:
    """Run a worker under the simulator at `rate` events/s; (t, RSS MiB, lag), broker CPU."""
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "rtim", "worker", "--stats-every", "0"],
                              env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "partition ready" not in log.read_text():
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        driver = SimDriver(settings, customers=3000, rate=rate, seed=9, duration_s=seconds,
                           speedup=120, drain_s=5, wait_for_workers=True,
                           wave_s=WAVE_S)  # fmt: skip
        thread = threading.Thread(target=driver.run, daemon=True)
        thread.start()
        samples: list[tuple[float, float, int]] = []
        broker_share: list[float] = []  # of a core, per sampling interval: the broker's load
        started = time.monotonic()
        assert broker.pid is not None
        last = (started, cpu_s(broker.pid))
        while thread.is_alive():
            thread.join(max(2.0, seconds / 20))
            samples.append((time.monotonic() - started, rss_mb(worker.pid), lag(settings)))
            now = (time.monotonic(), cpu_s(broker.pid))
            broker_share.append((now[1] - last[1]) / (now[0] - last[0]))
            last = now
        assert worker.poll() is None, log.read_text()[-2000:]
    finally:
        worker.terminate()
        worker.wait(60)
    return samples, broker_share


@pytest.mark.parametrize(
    ("seconds", "rate"),
    [
        pytest.param(40, 400, id="short"),
        pytest.param(
            600, 100, id="ten-minutes", marks=[pytest.mark.slow, pytest.mark.timeout(1200)]
        ),
    ],
)
def test_memory_and_lag_stay_bounded_at_a_fixed_rate(
    rtim_settings: Callable[..., Settings],
    rtim_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    seconds: int,
    rate: int,
) -> None:
    # a broker of its own: the shared one carries what earlier tests left, and costs more for it
    with EmbeddedBroker(0, log_dir=tmp_path / "broker") as broker:
        settings = rtim_settings(broker=broker.bootstrap, timer_clock="event")
        ensure_topics(settings, max_partitions=PARTITIONS)
        env = rtim_env(apply_topics=False, broker=broker.bootstrap, timer_clock="event")
        samples, broker_share = soak(settings, env, broker, tmp_path, seconds, rate)
    paced = [s for s in samples if s[0] <= seconds]
    half = len(paced) // 2
    first, second = paced[:half], paced[half:]
    growth = max(s[1] for s in second) - max(s[1] for s in first)
    print({"samples (s, worker RSS MiB, lag)": [(round(t), round(m), n) for t, m, n in samples],
           "broker CPU share": [round(b, 2) for b in broker_share]})  # fmt: skip
    # memory: the second half of the run may not keep growing like a leak would
    assert growth < 40, f"RSS grew by {growth:.0f} MiB in the second half"
    # lag: the worker keeps up (a few seconds of input at most)
    assert max(s[2] for s in second) < 1500, samples
