"""`rtim worker`: the customer pipeline, learner and model registry, until Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim worker`."""
    app.command("worker")(worker)


def worker(
    strategy: Annotated[
        Path | None,
        typer.Option("--strategy", help="Strategy file. Default: RTIM_STRATEGY."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", file_okay=False, help="State directory (RTIM_DATA_DIR)."),
    ] = None,
    timer_clock: Annotated[
        str | None,
        typer.Option(
            "--timer-clock",
            help="`wall` (live) or `event` (replays, accelerated simulations). "
            "Default: RTIM_TIMER_CLOCK.",
        ),
    ] = None,
    learner: Annotated[
        bool,
        typer.Option(
            "--learner/--no-learner",
            help="Also run a learner: a child process (`rtim learner`), or a thread of the "
            "worker with RTIM_LEARNER_PROCESS=false.",
        ),
    ] = True,
    stats_every: Annotated[
        float,
        typer.Option("--stats-every", min=0.0, help="Log progress every N seconds (0: never)."),
    ] = 10.0,
) -> None:
    """Run a customer worker: consume events, keep profiles, decide, learn.

    Start several with the same settings to spread the partitions; each keeps the state of
    its partitions under RTIM_DATA_DIR and restores it from the changelog when it moves.
    """
    from rtim.errors import ConfigError
    from rtim.kafka.admin import admin_client
    from rtim.kafka.topics import verify_copartitioning
    from rtim.logs import get_logger
    from rtim.settings import get_settings
    from rtim.worker.collector import tune_collector
    from rtim.worker.service import WorkerService

    log = get_logger("worker")
    settings = get_settings()
    overrides: dict[str, object] = {}
    if strategy is not None:
        overrides["strategy"] = strategy
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if timer_clock is not None:
        if timer_clock not in ("wall", "event"):
            raise ConfigError(f"--timer-clock must be `wall` or `event`, not {timer_clock!r}")
        clock: Literal["wall", "event"] = "wall" if timer_clock == "wall" else "event"
        overrides["timer_clock"] = clock
    if overrides:
        settings = settings.model_copy(update=overrides)
    verify_copartitioning(admin_client(settings), settings)

    last_log = [time.monotonic()]

    def on_batch(stats: object) -> None:
        now = time.monotonic()
        if stats_every and now - last_log[0] >= stats_every:
            last_log[0] = now
            s = service.worker.stats
            log.info("progress", **s.counters(), batch_ms=round(s.last_batch_ms, 2))

    service = WorkerService(settings, learner=learner, on_batch=on_batch)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.stop())
    log.info("worker starting", pid=os.getpid(), strategy=str(settings.strategy))
    frozen = tune_collector(settings.gc_tuned)  # process-wide: here, not in the service
    if frozen:
        log.info("garbage collector tuned", frozen_objects=frozen)
    service.run()
