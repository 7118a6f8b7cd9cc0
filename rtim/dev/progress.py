"""Live progress of a dev run in the terminal (rich), or a log line every few seconds."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table

from rtim.dev.monitor import DecisionMonitor
from rtim.logs import get_logger

__all__ = ["Progress"]

log = get_logger("dev")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class Progress:
    """Renders the simulator's and the monitor's figures; `update()` twice a second."""

    def __init__(
        self, driver: Any, monitor: DecisionMonitor, *, live: bool, duration_s: float
    ) -> None:
        self.driver = driver
        self.monitor = monitor
        self.duration_s = duration_s
        self._live = Live(refresh_per_second=2, transient=False) if live else None
        self._started = time.monotonic()
        self._last_log = 0.0
        self._last_events = (self._started, 0)
        self._rate = 0.0

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.update()
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)

    def update(self) -> None:
        """Refresh the view (or log, without a TTY)."""
        sim = self.driver.snapshot()
        mon = self.monitor.snapshot()
        now = time.monotonic()
        events = int(sim.get("events_sent", 0))
        then, before = self._last_events
        if now - then >= 1.0:
            self._rate = (events - before) / (now - then)
            self._last_events = (now, events)
        if self._live is not None:
            self._live.update(self._render(sim, mon, now))
        elif now - self._last_log >= 5.0:
            self._last_log = now
            log.info(
                "progress",
                elapsed_s=round(now - self._started),
                events=events,
                events_per_s=round(self._rate),
                decisions=mon["decisions"],
                policy_reward=sim.get("policy_value"),
                control_reward=sim.get("control_value"),
                p99_ms=sim.get("latency_p99_ms"),
            )

    def _render(self, sim: dict[str, Any], mon: dict[str, Any], now: float) -> Group:
        elapsed = now - self._started
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[b]rtim dev[/b]  {elapsed:5.0f}s / {self.duration_s:.0f}s",
            f"events {int(sim.get('events_sent', 0)):,}  ({self._rate:,.0f}/s)",
            f"decisions {mon['decisions']:,}  (no action {mon['no_action']:,})",
            f"latency p50 {sim.get('latency_p50_ms') or 0:.1f} ms  "
            f"p99 {sim.get('latency_p99_ms') or 0:.1f} ms",
        )
        head.add_row(
            f"policy reward {_num(sim.get('policy_value'))}/decision",
            f"control reward {_num(sim.get('control_value'))}/decision",
            f"rule violations {sim.get('violations', 0)}",
            f"dead letters {sum(mon['dead_letters'].values())}",
        )
        channels = Table(title="decisions per channel", show_edge=False)
        channels.add_column("channel")
        channels.add_column("decisions", justify="right")
        for name, count in sorted(mon["decisions_by_channel"].items()):
            channels.add_row(name, f"{count:,}")
        suppressed = Table(title="suppressions by reason", show_edge=False)
        suppressed.add_column("rule")
        suppressed.add_column("candidates removed", justify="right")
        for name, count in list(mon["suppressed_by_reason"].items())[:8]:
            suppressed.add_row(name, f"{count:,}")
        both = Table.grid(padding=(0, 4))
        both.add_row(channels, suppressed)
        return Group(head, both)
