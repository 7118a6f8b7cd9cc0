"""`rtim topics apply|list|diff`: the declared topics (topics/topics.yaml) against the cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

topics_app = typer.Typer(
    name="topics",
    help="Create and check the declared topics (topics/topics.yaml) on the cluster.",
    no_args_is_help=True,
)

_File = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        dir_okay=False,
        help="Topics file (default: the topics/topics.yaml shipped with rtim).",
    ),
]
_Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.5, help="Seconds to wait for the broker before giving up."),
]


@topics_app.command("apply")
def apply(
    file: _File = None,
    fix_config: Annotated[
        bool,
        typer.Option(
            "--fix-config",
            help="Also set cleanup.policy / retention.ms where they differ from the declaration.",
        ),
    ] = False,
    timeout: _Timeout = 5.0,
) -> None:
    """Create missing topics (idempotent). One line per topic: created, ok or DRIFT.

    Exits 1 when a topic differs from its declaration; rtim never deletes or re-creates topics.
    """
    from rtim.errors import TopicError
    from rtim.kafka.admin import admin_client
    from rtim.kafka.topics import apply_topics, load_topics, problem_summary
    from rtim.settings import get_settings

    settings = get_settings()
    catalog = load_topics(file)
    admin = admin_client(settings, timeout=timeout)
    results = apply_topics(admin, catalog, settings.topic_prefix, fix_config=fix_config)
    for result in results:
        print(result.line(), flush=True)
    if any(result.problem for result in results):
        raise TopicError(problem_summary(results, catalog.path))


@topics_app.command("diff")
def diff(file: _File = None, timeout: _Timeout = 5.0) -> None:
    """Print only the differences between the declaration and the cluster.

    Exits 0 when in sync, 1 when anything differs (missing topics included).
    """
    from rtim.kafka.admin import admin_client
    from rtim.kafka.topics import load_topics, read_plan
    from rtim.settings import get_settings

    settings = get_settings()
    catalog = load_topics(file)
    admin = admin_client(settings, timeout=timeout)
    differences = 0
    for plan in read_plan(admin, catalog, settings.topic_prefix):
        if plan.action == "create":
            differences += 1
            print(f"{plan.physical}: MISSING: `rtim topics apply` creates it", flush=True)
        for drift in plan.drifts:
            differences += 1
            print(f"{plan.physical}: DRIFT: {drift.describe()}", flush=True)
    if differences:
        # SystemExit, not typer.Exit: cli.main runs click with standalone_mode=False, where
        # typer.Exit(1) is returned as a value and the process would exit 0
        raise SystemExit(1)


@topics_app.command("list")
def list_(file: _File = None, timeout: _Timeout = 5.0) -> None:
    """Show the declared topics and their state on the cluster."""
    from rtim.kafka.admin import admin_client
    from rtim.kafka.topics import format_retention, load_topics, read_plan
    from rtim.settings import get_settings

    settings = get_settings()
    catalog = load_topics(file)
    admin = admin_client(settings, timeout=timeout)
    plans = read_plan(admin, catalog, settings.topic_prefix)
    states = {"create": "missing", "ok": "ok", "drift": "DRIFT"}
    header = ("topic", "partitions", "cleanup", "retention", "group", "schema", "state")
    rows = []
    for plan in plans:
        spec = plan.spec
        if plan.state is None or plan.state.partitions == spec.partitions:
            partitions = str(spec.partitions)
        else:
            partitions = f"{plan.state.partitions}≠{spec.partitions}"
        rows.append(
            (
                plan.physical,
                partitions,
                spec.cleanup_policy,
                format_retention(spec.retention_ms),
                spec.group or "-",
                spec.schema,
                states[plan.action],
            )
        )
    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"topics on {settings.broker}", title_justify="left", box=box.SIMPLE)
        shown = [i for i, name in enumerate(header) if name != "schema"]  # narrow terminals
        for i in shown:
            # names, counts and states are never cut; the other columns give way
            table.add_column(header[i], no_wrap=header[i] in ("topic", "partitions", "state"))
        for row in rows:
            style = {"missing": "yellow", "DRIFT": "red"}.get(row[-1])
            table.add_row(*(row[i] for i in shown), style=style)
        Console().print(table)
    else:
        for row in rows:
            print("\t".join(row))


def register(app: typer.Typer) -> None:
    """Add `rtim topics …`."""
    app.add_typer(topics_app, name="topics")
