"""`rtim simulate`: customers, channels and their adapters, simulated against the broker."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rtim.sim import (
    DEFAULT_CUSTOMERS,
    DEFAULT_DURATION_S,
    DEFAULT_RATE,
    DEFAULT_SEED,
    DEFAULT_SPEEDUP,
)

if TYPE_CHECKING:
    from rtim.sim.driver import SimReport

__all__ = ["format_summary", "register"]

_PROGRESS_S = 5.0


def register(app: typer.Typer) -> None:
    """Add `rtim simulate`."""
    app.command("simulate")(simulate)


def simulate(  # noqa: PLR0917 - typer options
    customers: Annotated[
        int, typer.Option("--customers", "-n", min=1, help="Population size.")
    ] = DEFAULT_CUSTOMERS,
    rate: Annotated[
        float, typer.Option("--rate", "-r", min=0.001, help="Events per wall-clock second.")
    ] = DEFAULT_RATE,
    duration: Annotated[
        float, typer.Option("--duration", "-d", min=0.001, help="Wall-clock seconds to run.")
    ] = DEFAULT_DURATION_S,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: same seed, same customers and events.")
    ] = DEFAULT_SEED,
    speedup: Annotated[
        float,
        typer.Option("--speedup", min=0.001, help="Simulated seconds per wall-clock second."),
    ] = DEFAULT_SPEEDUP,
    strategy: Annotated[
        Path | None,
        typer.Option(
            "--strategy",
            help="Strategy file for offer values and the audit (default: RTIM_STRATEGY).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON to this file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Simulate customers and channel adapters against rtim, and measure it.

    A seeded population sends clickstream, transactions, complaints and requests, like upstream.

    Its channel adapters answer every decision as customers would (outcomes on rtim.outcomes).

    Reports latency, policy vs control reward with the lift's 95% interval, and rule violations.

    Simulated time runs --speedup times faster and ends before now: use RTIM_TIMER_CLOCK=event.

    Topics must exist (`rtim topics apply`). Ctrl-C stops cleanly and still reports.
    """
    from rtim.settings import get_settings
    from rtim.sim.driver import SimDriver

    if json_out is not None and json_out.exists() and json_out.is_dir():
        from rtim.errors import ConfigError

        raise ConfigError(f"--json {json_out} is a directory")
    driver = SimDriver(
        get_settings(), customers=customers, rate=rate, seed=seed, duration_s=duration,
        speedup=speedup, strategy=strategy,
    )  # fmt: skip
    report = _run(driver, quiet=quiet)
    print(format_summary(report))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            from rtim.errors import ConfigError

            raise ConfigError(f"cannot write {json_out}: {exc.strerror or exc}") from None


def _run(driver: Any, *, quiet: bool) -> SimReport:
    """Run the driver in a thread; print progress; Ctrl-C asks it to stop and still reports."""
    stop = threading.Event()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["report"] = driver.run(stop)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="rtim-sim", daemon=True)
    thread.start()
    next_progress = time.monotonic() + _PROGRESS_S
    try:
        while thread.is_alive():
            thread.join(0.2)
            if not quiet and time.monotonic() >= next_progress and thread.is_alive():
                next_progress += _PROGRESS_S
                print(_progress(driver.snapshot()), file=sys.stderr)
    except KeyboardInterrupt:
        print("rtim: stopping the simulation…", file=sys.stderr)
        stop.set()
        thread.join()
    if "error" in result:
        raise result["error"]
    report: SimReport = result["report"]
    return report


def _progress(s: dict[str, Any]) -> str:
    parts = [
        f"[{s['elapsed_s']:.0f}s {s['phase']}]",
        f"{s['events_sent']:,} events ({s['events_per_s']:,.0f}/s)",
        f"{s['requests']:,} requests",
        f"{s['decisions']:,} decisions",
        f"{s['outcomes_sent']:,} outcomes",
    ]
    if s.get("latency_p50_ms") is not None:
        parts.append(f"p50 {s['latency_p50_ms']:.0f} ms")
    if s.get("violations"):
        parts.append(f"{s['violations']} violations")
    return " · ".join(parts)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def format_summary(report: SimReport) -> str:
    """A short human summary of a report (a few lines)."""
    r = report
    lines = [
        f"rtim simulate: {r.events_total:,} events ({r.onboarding_events:,} joining) in "
        f"{r.wall_s:.1f}s, {r.events_per_s:,.0f} events/s"
        + (" — stopped early" if r.stopped_early else ""),
        f"  requests {r.requests:,} (answered {r.requests_answered:,}), decisions "
        f"{r.decisions:,} (no action {r.no_action:,}, control {r.control_group:,}), outcomes "
        f"{r.outcomes_sent:,}",
    ]
    lat = r.latency_ms
    if lat.get("samples"):
        lines.append(
            f"  latency request→decision: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms "
            f"({lat['samples']:,} samples)"
        )
    rw = r.rewards
    if rw.get("policy_decisions") or rw.get("control_decisions"):
        ci = rw.get("lift_ci95")
        lift = (
            f", lift {100 * rw['lift']:+.2f} pts [95% CI {100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
            if ci
            else ""
        )
        lines.append(
            f"  reward rate: policy {_pct(rw['policy_reward_rate'])} "
            f"({rw['policy_decisions']:,}), control {_pct(rw['control_reward_rate'])} "
            f"({rw['control_decisions']:,}){lift}"
        )
    v = r.violations
    if v.get("total"):
        kinds = ", ".join(f"{k} {n}" for k, n in list(v["by_kind"].items())[:6])
        lines.append(f"  violations: {v['total']} ({kinds})")
    elif r.decisions:
        lines.append("  violations: none")
    if r.requests and not r.decisions:
        lines.append("  no decisions received: is `rtim worker` running on these topics?")
    return "\n".join(lines)
