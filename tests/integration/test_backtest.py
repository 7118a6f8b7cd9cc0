"""Backtest over recorded topics: the live configuration reproduces the live decisions exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtim.settings import Settings
from rtim.sim.driver import preload

pytestmark = pytest.mark.integration


def test_backtest_with_the_live_configuration_reproduces_live_decisions(
    rtim_settings: Callable[..., Settings], applied_topics: Any, run_worker: Any, tmp_path: Path
) -> None:
    settings = applied_topics(rtim_settings(timer_clock="event", seed=3))
    sent = sum(preload(settings, 6000, customers=300, seed=11).values())
    worker = run_worker(settings, learner=False)
    worker.wait_for(lambda s: s.records >= sent, timeout=120)
    worker.stop()
    assert worker.stats.idle_timeouts == 0, "order was exact (no lagging-input timeout)"
    decided = worker.stats.emitted[settings.topic("rtim.decision-log")] or sum(
        n for t, n in worker.stats.emitted.items() if t.endswith("rtim.decision-log")
    )
    assert decided > 100

    out = tmp_path / "bt.json"
    env = {**os.environ, "RTIM_BROKER": settings.broker, "RTIM_TOPIC_PREFIX": settings.topic_prefix,
           "RTIM_SEED": "3"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "rtim", "backtest", "--from", "0", "--json", str(out),
         "--report", str(tmp_path / "report")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["logged_decisions"] == decided
    assert result["decisions"] == decided
    assert result["identical_to_logged"] == decided, result
    assert result["only_in_backtest"] == result["only_in_log"] == 0
    assert (tmp_path / "report" / "report.html").exists()

    # a different seed is a different configuration: some exploration draws change
    done = subprocess.run(
        [sys.executable, "-m", "rtim", "backtest", "--from", "0", "--seed", "4",
         "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text())["different_from_logged"] > 0


def test_off_policy_estimates_from_rtims_own_decision_log(
    rtim_settings: Callable[..., Settings], applied_topics: Any, run_worker: Any, tmp_path: Path
) -> None:
    from rtim.sim.driver import SimDriver

    settings = applied_topics(rtim_settings(timer_clock="event"))
    worker = run_worker(settings)
    report = SimDriver(settings, customers=400, rate=400, seed=2, duration_s=15, speedup=600,
                       drain_s=5, wait_for_workers=True).run()  # fmt: skip
    worker.stop()
    assert report.decisions > 100
    out = tmp_path / "ope.json"
    env = {**os.environ, "RTIM_BROKER": settings.broker, "RTIM_TOPIC_PREFIX": settings.topic_prefix}
    done = subprocess.run(
        [sys.executable, "-m", "rtim", "backtest", "--decision-log", "--from", "0",
         "--policy", "uniform", "--bootstrap", "100", "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "with a known outcome" in done.stdout
    result = json.loads(out.read_text())
    assert result["n"] >= 20
    for name in ("ips", "snips", "dm", "dr"):
        assert result["estimates"][name]["value"] is not None
    assert 0.0 <= result["logged_reward_mean"] <= 1.0
