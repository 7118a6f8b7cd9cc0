"""`rtim bench`: measured performance of the real worker, with baselines, in one run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["register", "render"]


def register(app: typer.Typer) -> None:
    """Add `rtim bench`."""
    app.command("bench")(bench)


def bench(  # noqa: PLR0917 - typer maps parameters to options
    json_path: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="Write the result as JSON here.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="A small run through every phase (about 30 s).")
    ] = False,
    events: Annotated[
        int | None, typer.Option("--events", min=1, help="Input events (default 200 000).")
    ] = None,
    customers: Annotated[
        int | None, typer.Option("--customers", min=1, help="Customers (default 10 000).")
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option("--requests", min=1, help="Decision requests in the backlog (20 000)."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=1, help="Offered requests/s for the latency (1 000)."),
    ] = None,
    latency_seconds: Annotated[
        float | None,
        typer.Option("--latency-seconds", min=0.5, help="Measured seconds at --rate (10)."),
    ] = None,
    outcomes: Annotated[
        int | None, typer.Option("--outcomes", min=1, help="Outcomes sent for learning (400).")
    ] = None,
    faust_seconds: Annotated[
        float | None,
        typer.Option("--faust-seconds", min=0.5, help="Longest Faust baseline run (20 s)."),
    ] = None,
    memory_profiles: Annotated[
        int | None,
        typer.Option("--memory-profiles", min=1, help="Profiles in RocksDB (1 000 000)."),
    ] = None,
    memory_touch: Annotated[
        int | None,
        typer.Option(
            "--memory-touch", min=1, help="Distinct customers the worker then serves (330 000)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Workload seed.")] = 7,
    workload: Annotated[
        str, typer.Option("--workload", help="`bench` (built in) or `sim` (rtim.sim).")
    ] = "bench",
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile", dir_okay=False, help="Run the worker under cProfile; stats file here."
        ),
    ] = None,
    sample_ms: Annotated[
        float,
        typer.Option(
            "--sample-ms",
            min=0.0,
            help="Sample the worker thread's stack every N ms during ingest and decisions "
            "(a light statistical profile; 0: off).",
        ),
    ] = 0.0,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Measure the baselines.")
    ] = True,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="Measure memory per customer.")
    ] = True,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary state and topics.")
    ] = False,
) -> None:
    """Measure ingest, decisions, latencies and memory of the real worker against baselines.

    Starts its own embedded broker on a free port (unless RTIM_BROKER is set), creates the
    topics under a unique prefix, runs every phase with one worker, and cleans up. Prints a
    table (targets met or missed); --json writes every figure. The default run takes about
    3.5 minutes on two cores; see docs/performance.md for what each figure means.
    """
    from rtim.bench.harness import BenchOptions, run_bench
    from rtim.settings import get_settings

    chosen: dict[str, Any] = {
        "events": events,
        "customers": customers,
        "requests": requests,
        "rate": rate,
        "latency_s": latency_seconds,
        "outcomes": outcomes,
        "faust_budget_s": faust_seconds,
        "memory_profiles": memory_profiles,
        "memory_touch": memory_touch,
    }
    overrides = {k: v for k, v in chosen.items() if v is not None}
    overrides.update(
        seed=seed,
        workload=workload,
        profile=profile.resolve() if profile else None,
        baselines=baselines,
        memory=memory,
        sample_ms=sample_ms,
        keep=keep,
    )
    options = BenchOptions.quick_run(**overrides) if quick else BenchOptions(**overrides)
    options.validate()
    if json_path is not None and not json_path.parent.exists():
        from rtim.errors import ConfigError

        raise ConfigError(f"--json: directory {json_path.parent} does not exist")

    from rich.console import Console

    err = Console(stderr=True)
    with err.status("rtim bench", spinner="dots") as status:

        def progress(message: str) -> None:
            err.log(message)
            status.update(f"rtim bench: {message}")

        result = run_bench(options, get_settings(), progress)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    render(result, Console(file=sys.stdout))


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def _threads(phase: dict[str, Any]) -> str:
    """Where the worker's CPU per record went: its pipeline thread and librdkafka's threads."""
    split = phase.get("worker_cpu_us_per_record_by_thread")
    if not split:
        return ""
    return (
        f", of it {_fmt(split.get('pipeline'))} in the pipeline thread and "
        f"{_fmt(split.get('kafka_client'))} in the Kafka client's; the pipeline thread "
        f"computed {_pct(phase.get('pipeline_busy_share'))} of the time, waited for acks "
        f"{_pct(phase.get('ack_wait_share'))} and collected garbage "
        f"{_pct(phase.get('collector_share'))}"
    )


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def _mb(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f} MiB"


def render(result: dict[str, Any], console: Console) -> None:
    """The result as readable tables: targets, figures with baselines, notes."""
    from rich.table import Table

    status_style = {"met": "green", "missed": "bold red", "not measured": "yellow"}
    targets = Table(title="rtim bench — targets (one worker)", title_justify="left")
    for column in ("target", "required", "measured", "status"):
        targets.add_column(column)
    for t in result.get("targets", []):
        style = status_style.get(t["status"], "")
        targets.add_row(
            t["name"], t["target"], _fmt(t["value"]), f"[{style}]{t['status']}[/{style}]"
        )
    console.print(targets)

    figures = Table(title="figures", title_justify="left")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    figures.add_column("how")
    ingest = result.get("ingest", {})
    decisions = result.get("decisions", {})
    latency = result.get("request_latency", {})
    outcome = result.get("outcome_to_model", {})
    low = result.get("request_latency_low_load", {})
    rows: list[tuple[str, str, str]] = [
        ("ingest", _fmt(result.get("ingest_events_per_s"), "events/s"),
         f"{_fmt(ingest.get('window_events'))} events in {_fmt(ingest.get('window_s'))} s; "
         f"{_fmt(ingest.get('worker_cpu_us_per_record'))} µs worker CPU per event "
         f"(= {_fmt(ingest.get('records_per_worker_cpu_s'))}/s per CPU-second; worker had "
         f"{_fmt(ingest.get('worker_cpu_share'))} of a core{_threads(ingest)}; the learner "
         f"process {_fmt(ingest.get('learner_cpu_s'))} CPU-s)"),
        ("decisions", _fmt(result.get("decisions_per_s"), "requests/s"),
         f"backlog of {_fmt(result.get('sizes', {}).get('decision_backlog'))}; "
         f"{_fmt(decisions.get('worker_cpu_us_per_record'))} µs worker CPU per request "
         f"(= {_fmt(decisions.get('records_per_worker_cpu_s'))}/s per CPU-second"
         f"{_threads(decisions)})"),
        ("request → decision p50 / p99 / p99.9",
         " / ".join(_fmt(latency.get(k)) for k in ("p50", "p99", "p999")) + " ms",
         f"at {_fmt(latency.get('offered_requests_per_s'))} req/s offered, "
         f"{_fmt(latency.get('answered'))} of {_fmt(latency.get('measured'))} answered"),
        ("… at light load p50 / p99",
         f"{_fmt(low.get('p50'))} / {_fmt(low.get('p99'))} ms",
         f"at {_fmt(low.get('offered_requests_per_s'))} req/s offered"),
        ("outcome → model p50 / p99",
         f"{_fmt(outcome.get('p50'))} / {_fmt(outcome.get('p99'))} ms",
         f"{_fmt(outcome.get('learned'))} of {_fmt(outcome.get('sent'))} outcomes learned"),
        ("encoded profile", _fmt(result.get("bytes_per_profile"), "bytes"),
         f"mean of {_fmt(result.get('profiles', {}).get('profiles'))} real profiles, "
         f"p99 {_fmt(result.get('profiles', {}).get('p99_bytes'))} B"),
    ]  # fmt: skip
    memory = result.get("memory")
    if memory:
        rows.append(
            ("RocksDB per customer", _fmt(memory.get("rocksdb_bytes_per_customer"), "bytes"),
             f"{_fmt(memory['rocksdb']['profiles'])} profiles on disk after flush")
        )  # fmt: skip
        rows.append(
            ("worker RSS", _mb(memory.get("worker_rss_bytes")),
             f"{_fmt(memory['rocksdb']['profiles'])} customers stored, "
             f"{_fmt(memory['worker_rss_curve'][-1]['customers_touched'])} served "
             f"(cache cap {_fmt(memory.get('profile_cache_cap'))}); idle "
             f"{_mb(memory.get('worker_rss_idle_bytes'))}")
        )  # fmt: skip
    if "baseline_raw_consume_per_s" in result:
        ratios = result.get("ratios", {})
        faust = result.get("baseline_faust_table", {})
        echo = result.get("baseline_echo_latency_ms", {})
        rows += [
            ("baseline: raw consume", _fmt(result["baseline_raw_consume_per_s"], "events/s"),
             f"confluent-kafka, no decode; ours = {_fmt(ratios.get('ingest_vs_raw_consume'))}x"),
            ("baseline: Faust + table", _fmt(result["baseline_faust_table_events_per_s"],
                                              "events/s"),
             f"{_fmt(faust.get('events'))} events; ours = "
             f"{_fmt(ratios.get('ingest_vs_faust_table'))}x"),
            ("baseline: broker echo p50 / p99",
             f"{_fmt(echo.get('p50'))} / {_fmt(echo.get('p99'))} ms",
             f"bare consume → produce relay at {_fmt(echo.get('offered_requests_per_s'))} req/s"),
        ]  # fmt: skip
        echo_low = result.get("baseline_echo_latency_low_load_ms")
        if echo_low:
            rows.append(
                ("… echo at light load p50 / p99",
                 f"{_fmt(echo_low.get('p50'))} / {_fmt(echo_low.get('p99'))} ms",
                 f"at {_fmt(echo_low.get('offered_requests_per_s'))} req/s")
            )  # fmt: skip
    for name, value, how in rows:
        figures.add_row(name, value, how)
    console.print(figures)
    console.print(
        f"cpu_count={result.get('cpu_count')}  load average at start "
        f"{result.get('load_average_at_start')}, at end {result.get('load_average_at_end')}"
        f"  elapsed={result.get('elapsed_s')} s  strategy: "
        f"{result.get('strategy', {}).get('offers')} offers, "
        f"{result.get('strategy', {}).get('channels')} channels"
    )
    for note in result.get("notes", []):
        console.print(f"• {note}")
