"""One worker: the customer pipeline, the learner and the model registry together.

`rtim worker` runs this; scaling out means starting more of them with the same settings (they
share the consumer groups, so partitions and models spread over them). The learner runs as a
child process (`rtim learner`, RTIM_LEARNER_PROCESS) or as a thread of the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rtim.core.engine import Engine
from rtim.core.features import FEATURE_FAMILIES, FEATURE_NAMES
from rtim.core.strategy import Strategy, load_strategy
from rtim.learning.learner import Learner
from rtim.learning.registry import ModelRegistry
from rtim.logs import get_logger
from rtim.settings import Settings, settings_env
from rtim.worker.runtime import CustomerWorker, WorkerStats

__all__ = ["WorkerService", "build_engine", "known_features", "load_configured_strategy"]

log = get_logger("worker")


def known_features() -> list[str]:
    """The feature catalogue a strategy may read (families as ``prefix.*``)."""
    return sorted(FEATURE_NAMES) + [family + "*" for family in FEATURE_FAMILIES]


def load_configured_strategy(settings: Settings) -> Strategy:
    """The strategy file of the settings, validated (raises StrategyError with locations)."""
    return load_strategy(settings.strategy, known_features=known_features())


def build_engine(settings: Settings, strategy: Strategy, models: object | None) -> Engine:
    """The pure engine with the strategy decider (what the backtest builds too)."""
    from rtim.core.decisioning import StrategyDecider

    decider = StrategyDecider(strategy, models, seed=settings.seed)  # type: ignore[arg-type]
    return Engine(decider, dedup_window=settings.dedup_window)


@dataclass
class WorkerService:
    """Customer worker + learner thread + model registry, stopped together."""

    settings: Settings
    learner: bool = True
    on_batch: Callable[[WorkerStats], None] | None = None

    def __post_init__(self) -> None:
        self.strategy = load_configured_strategy(self.settings)
        self.registry = ModelRegistry(self.settings)
        in_process = self.learner and not self.settings.learner_process
        self._learner = Learner(self.settings) if in_process else None
        self._learner_thread: threading.Thread | None = None
        self._learner_child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self.worker = CustomerWorker(
            self.settings,
            build_engine(self.settings, self.strategy, self.registry),
            on_batch=self.on_batch,
        )

    def run(self) -> WorkerStats:
        """Start everything and block until `stop()`."""
        started = time.monotonic()
        self.registry.start()
        log.info(
            "models loaded",
            models=len(self.registry.models()),
            strategy_version=self.strategy.version,
            seconds=round(time.monotonic() - started, 2),
        )
        if self._learner is not None:
            self._learner_thread = threading.Thread(
                target=self._run_learner, name="rtim-learner", daemon=True
            )
            self._learner_thread.start()
        elif self.learner:
            self._start_learner_child()
        try:
            return self.worker.run()
        finally:
            self.stop()
            if self._learner_thread is not None:
                self._learner_thread.join(30)
            self._stop_learner_child()
            self.registry.stop()

    @property
    def active_learner(self) -> Learner | None:
        """The learner thread's loop (None without a learner, or with a learner process)."""
        return self._learner

    @property
    def learner_pid(self) -> int | None:
        """The process id of the child learner, while one runs."""
        child = self._learner_child
        return child.pid if child is not None and child.poll() is None else None

    def _start_learner_child(self) -> None:
        env = {**os.environ, **settings_env(self.settings)}
        command = [sys.executable, "-m", "rtim", "learner", "--parent-pid", str(os.getpid())]
        self._learner_child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._watch_learner_child, name="rtim-learner-watch",
                         daemon=True).start()  # fmt: skip

    def _watch_learner_child(self) -> None:
        child = self._learner_child
        assert child is not None
        code = child.wait()
        if not self._stopping.is_set():  # the learner must not take the pipeline down with it
            log.error("learner process ended; decisions continue with the current models",
                      exit_code=code)  # fmt: skip

    def _stop_learner_child(self) -> None:
        child = self._learner_child
        if child is None:
            return
        if child.poll() is None:
            child.terminate()  # it publishes what it learned, commits and leaves its group
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("learner process did not stop in time; killing it", pid=child.pid)
                child.kill()
                child.wait(5)
        if child.returncode not in (0, None):
            log.warning("learner process exited", exit_code=child.returncode)

    def stop(self) -> None:
        """Ask every part to stop after its current batch."""
        self._stopping.set()
        self.worker.stop()
        if self._learner is not None:
            self._learner.stop()

    def _run_learner(self) -> None:
        assert self._learner is not None
        try:
            self._learner.run()
        except Exception:  # the learner must not take the customer pipeline down with it
            log.exception("learner failed; decisions continue with the current models")
