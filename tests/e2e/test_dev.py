"""`rtim dev` end to end: a short run writes the summary and report; Ctrl-C leaves no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTIM_")}
    env["RTIM_RUN_DIR"] = str(tmp_path / "runs")
    env["RTIM_LOG_FORMAT"] = "json"
    return env


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True, check=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines()[1:]:
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive


def test_a_short_run_writes_the_summary_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtim", "dev", "--duration", "25", "--customers", "800",
         "--rate", "300", "--out", str(out), "--no-live"],
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    children: set[int] = set()
    while proc.poll() is None and len(children) < 2:  # the broker and the worker
        children |= _descendants(proc.pid)
        time.sleep(0.2)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] > 3000
    assert sum(summary["decisions_by_channel"].values()) > 50
    assert set(summary["decisions_by_channel"]) <= {
        "web", "push", "email", "sms", "call_center", "outbound_call"
    }  # fmt: skip
    assert summary["suppressed_by_reason"], "the funnel shows what rules removed"
    assert isinstance(summary["policy_reward_rate"], float)
    # audited against the simulator's ground truth (docs/reliability.md, "Order across input
    # topics")
    assert summary["rule_violations"] == 0, summary["violations_by_kind"]
    assert summary["latency_ms"]["p50"] is not None
    assert summary["latency_ms"]["p99"] >= summary["latency_ms"]["p50"]
    for key in ("control_reward_rate", "lift_ci95", "report_html"):
        assert key in summary
    html = Path(summary["report_html"]).read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert "summary" in stdout
    assert len(children) >= 2
    assert not _alive(children), "no orphan worker or broker"


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtim", "dev", "--duration", "300", "--customers", "300",
         "--out", str(out), "--no-live"],
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while (
        not (out / "worker.log").exists()
        or "partition ready" not in (out / "worker.log").read_text()
    ):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(3)
    children = _descendants(proc.pid)
    assert len(children) >= 2  # the broker and the worker
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    assert (out / "summary.json").exists(), "a stopped run still writes its summary"
    time.sleep(1)
    assert not _alive(children), "no orphan worker or broker"
