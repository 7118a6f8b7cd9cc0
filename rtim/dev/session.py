"""One `rtim dev` run: start the parts in order, watch them, stop them in reverse, report."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtim.dev import DEV_PARTITIONS
from rtim.dev.monitor import DecisionMonitor
from rtim.errors import RtimError
from rtim.kafka.broker import EmbeddedBroker
from rtim.kafka.topics import ensure_topics
from rtim.logs import get_logger
from rtim.settings import Settings

__all__ = ["DevSession", "start_worker_process", "wait_for_line"]

log = get_logger("dev")


@dataclass
class DevSession:
    """Everything `rtim dev` starts, and the order it stops them in."""

    settings: Settings
    run_dir: Path
    duration_s: float
    customers: int
    rate: float
    seed: int
    speedup: float
    external_broker: bool = False
    partitions: int = DEV_PARTITIONS  # per topic, on the session's embedded broker
    _latency_samples: list[float] = field(default_factory=list)

    def run(self, stop: threading.Event, live: bool = False) -> dict[str, Any]:
        """Run to the end of the duration (or until `stop`); return the summary."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            settings = self.settings
            if not self.external_broker:
                broker = stack.enter_context(EmbeddedBroker(0, log_dir=self.run_dir))
                settings = settings.model_copy(update={"broker": broker.bootstrap})
                log.info("embedded broker started", bootstrap=broker.bootstrap)
            settings = settings.model_copy(
                update={"data_dir": self.run_dir / "data", "timer_clock": "event"}
            )
            # one worker needs no more partitions, and the embedded broker's fetch cost grows with
            # the produce batches of each partition (docs/reliability.md)
            ensure_topics(
                settings, max_partitions=None if self.external_broker else self.partitions
            )
            worker_log = self.run_dir / "worker.log"
            proc = start_worker_process(self._child_env(settings), worker_log)
            stack.callback(_stop_process, proc)
            wait_for_line(worker_log, "partition ready", 60, proc)
            log.info("worker ready", pid=proc.pid, log=str(worker_log))

            monitor = DecisionMonitor(settings)
            monitor.start()
            stack.callback(monitor.stop)
            report = self._simulate(settings, monitor, stop, live, proc)
            monitor.wait_idle(quiet_s=1.0, timeout_s=10)
            monitor.read_models()
            snapshot = monitor.snapshot()
        summary = self._summary(report, snapshot, time.monotonic() - started)
        from rtim.dev.summary import write_dev_report

        write_dev_report(self.run_dir, summary, report, self._latency_samples)
        return summary

    def _child_env(self, settings: Settings) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RTIM_BROKER": settings.broker,
                "RTIM_TOPIC_PREFIX": settings.topic_prefix,
                "RTIM_DATA_DIR": str(settings.data_dir),
                "RTIM_TIMER_CLOCK": "event",
                "RTIM_LOG_FORMAT": "json",
                "RTIM_STRATEGY": str(settings.strategy),
            }
        )
        return env

    def _simulate(
        self,
        settings: Settings,
        monitor: DecisionMonitor,
        stop: threading.Event,
        live: bool,
        proc: subprocess.Popen[bytes],
    ) -> Any:
        from rtim.dev.progress import Progress
        from rtim.sim.driver import SimDriver

        driver = SimDriver(
            settings,
            customers=self.customers,
            rate=self.rate,
            seed=self.seed,
            duration_s=self.duration_s,
            speedup=self.speedup,
            wait_for_workers=True,
        )
        result: list[Any] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                result.append(driver.run(stop))
            except BaseException as exc:
                failure.append(exc)
                stop.set()

        thread = threading.Thread(target=run, name="rtim-sim", daemon=True)
        thread.start()
        progress = Progress(driver, monitor, live=live, duration_s=self.duration_s)
        with progress:
            while thread.is_alive():
                thread.join(0.5)
                progress.update()
                if proc.poll() is not None and not stop.is_set():
                    log.error("the worker exited; stopping", code=proc.returncode)
                    stop.set()
        if failure:
            raise failure[0]
        self._latency_samples = driver.latency_samples()
        return result[0]

    def _summary(self, report: Any, monitor: dict[str, Any], elapsed: float) -> dict[str, Any]:
        sim = report.to_dict()
        rewards = sim.get("rewards", {})
        latency = sim.get("latency_ms", {})
        violations = sim.get("violations", {})
        return {
            "events": sim.get("events_total", 0),
            "events_by_kind": sim.get("events_sent", {}),
            "events_per_s": sim.get("events_per_s"),
            "requests": sim.get("requests", 0),
            "requests_unanswered": sim.get("requests_unanswered", 0),
            "decisions": monitor["decisions"],
            "decisions_by_channel": monitor["decisions_by_channel"],
            "actions_by_offer": monitor["actions_by_offer"],
            "decisions_by_trigger": monitor["decisions_by_trigger"],
            "no_action": monitor["no_action"],
            "control_group_decisions": monitor["control_group"],
            "suppressed_by_reason": monitor["suppressed_by_reason"],
            "top_reasons": monitor["reasons"],
            "dead_letters": sum(monitor["dead_letters"].values()),
            "learning_by_offer_channel": monitor["learning_by_offer_channel"],
            "models": monitor["models"],
            # reward = business value a decision earned (offer value of a positive response)
            # minus its contact cost: what arbitration maximises. Per decision with an action.
            "reward_definition": "offer value of positive responses minus contact cost, "
            "per decision with an action",
            "policy_reward_rate": rewards.get("policy_value_per_decision"),
            "control_reward_rate": rewards.get("control_value_per_decision"),
            "lift": rewards.get("value_lift"),
            "lift_ci95": rewards.get("value_lift_ci95"),
            "lift_method": rewards.get("value_lift_method"),
            "policy_expected_reward": rewards.get("policy_expected_value"),
            "control_expected_reward": rewards.get("control_expected_value"),
            # the same, in expectation under the simulator's hidden truth: far less noisy
            "expected_lift_ci95": rewards.get("expected_value_lift_ci95"),
            # the response rate (click/accept/convert) is shown too, with its own interval
            "policy_response_rate": rewards.get("policy_reward_rate"),
            "control_response_rate": rewards.get("control_reward_rate"),
            "response_lift_ci95": rewards.get("lift_ci95"),
            "policy_decisions": rewards.get("policy_decisions"),
            "control_decisions": rewards.get("control_decisions"),
            "oracle_response_rate": sim.get("oracle_rate"),
            "rule_violations": int(violations.get("total", 0)),
            "violations_by_kind": violations.get("by_kind", {}),
            "violation_examples": violations.get("examples", {}),
            "latency_ms": {
                "p50": latency.get("p50"),
                "p99": latency.get("p99"),
                "max": latency.get("max"),
                "samples": latency.get("samples"),
            },
            "outcomes": sim.get("outcomes_by_type", {}),
            "duration_s": round(elapsed, 1),
            "customers": self.customers,
            "rate": self.rate,
            "seed": self.seed,
            "speedup": self.speedup,
            "run_dir": str(self.run_dir),
        }


def _stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in time; killing it", pid=proc.pid)
            proc.kill()
            proc.wait(5)


def start_worker_process(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `rtim worker` as a child that dies with us (no orphans even on SIGKILL)."""
    log_file = log_path.open("ab")

    def die_with_parent() -> None:  # Linux: SIGTERM to the child when the parent dies
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    return subprocess.Popen(
        [sys.executable, "-m", "rtim", "worker", "--timer-clock", "event", "--stats-every", "5"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads touch this before exec
        start_new_session=True,  # Ctrl-C goes to us; we stop the worker in order
    )


def wait_for_line(path: Path, needle: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Wait until `needle` appears in a log file (raises if the process dies first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            tail = (
                path.read_text(errors="replace").strip().splitlines()[-3:] if path.exists() else []
            )
            raise RtimError(f"the worker exited (code {proc.returncode}): {' | '.join(tail)}")
        time.sleep(0.1)
    raise RtimError(f"the worker did not get ready in {timeout_s:.0f}s (see {path})")
