"""`rtim dev`: the whole product on one machine — broker, topics, worker, simulator, live view.

Starts the embedded broker (unless RTIM_BROKER is set), applies the topics, starts a worker
process (`rtim worker --timer-clock event`, because the simulation runs faster than the wall
clock), runs the simulator (customers, channels asking for decisions, channel adapters that
deliver and report outcomes), shows live progress, and writes a summary (JSON + HTML) into the
run directory. Ctrl-C stops everything cleanly, children included.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from rtim.dev import DEV_PARTITIONS

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim dev`."""
    app.command("dev")(dev)


def dev(  # noqa: PLR0917 - typer maps parameters to options
    duration: Annotated[
        float, typer.Option("--duration", min=1.0, help="Seconds of simulated traffic.")
    ] = 180.0,
    customers: Annotated[
        int, typer.Option("--customers", min=1, help="Simulated customers.")
    ] = 5000,
    rate: Annotated[
        float, typer.Option("--rate", min=1.0, help="Simulated events per second (wall clock).")
    ] = 400.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulation.")] = 7,
    speedup: Annotated[
        float,
        typer.Option("--speedup", min=1.0, help="Simulated seconds per wall-clock second."),
    ] = 600.0,
    partitions: Annotated[
        int,
        typer.Option(
            "--partitions",
            min=1,
            help="Partitions per topic on the embedded broker (at most as declared in "
            "topics.yaml; ignored with RTIM_BROKER).",
        ),
    ] = DEV_PARTITIONS,
    out: Annotated[
        Path | None,
        typer.Option("--out", file_okay=False, help="Run directory (default: under RTIM_RUN_DIR)."),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live/--no-live", help="Live progress table (default: on a TTY).")
    ] = sys.stdout.isatty(),
) -> None:
    """Run broker + topics + worker + simulator, show progress, write summary.json + report.html."""
    from rtim.dev.session import DevSession
    from rtim.settings import get_settings

    settings = get_settings()
    run_dir = out or settings.run_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    session = DevSession(
        settings,
        run_dir=run_dir,
        duration_s=duration,
        customers=customers,
        rate=rate,
        seed=seed,
        speedup=speedup,
        external_broker="RTIM_BROKER" in os.environ,
        partitions=partitions,
    )
    stop = threading.Event()

    def on_signal(*_: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = session.run(stop, live=live)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rtim dev — summary", show_header=False)
    latency = summary.get("latency_ms", {})
    lift = summary.get("lift_ci95") or [None, None]
    expected = summary.get("expected_lift_ci95") or [None, None]
    rows = [
        ("events sent", f"{summary.get('events', 0):,}"),
        ("decisions", f"{summary.get('decisions', 0):,}"),
        ("decisions by channel", _fmt_counts(summary.get("decisions_by_channel", {}))),
        ("suppressed by reason", _fmt_counts(summary.get("suppressed_by_reason", {}), 6)),
        ("policy reward / decision", _money(summary.get("policy_reward_rate"))),
        ("control reward / decision", _money(summary.get("control_reward_rate"))),
        ("lift, 95% CI", f"{_money(summary.get('lift'))}  [{_money(lift[0])}, {_money(lift[1])}]"),
        (
            "expected lift, 95% CI",
            f"[{_money(expected[0])}, {_money(expected[1])}]  under the simulator's hidden truth",
        ),
        (
            "response rate policy / control",
            f"{_pct(summary.get('policy_response_rate'))} / "
            f"{_pct(summary.get('control_response_rate'))}",
        ),
        ("rule violations", str(summary.get("rule_violations"))),
        ("latency p50 / p99", f"{latency.get('p50', 0):.1f} ms / {latency.get('p99', 0):.1f} ms"),
        ("dead letters", str(summary.get("dead_letters", 0))),
        ("report", str(summary.get("report_html"))),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _fmt_counts(counts: dict[str, int], top: int = 6) -> str:
    items = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return ", ".join(f"{k} {v:,}" for k, v in items) or "—"


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"
