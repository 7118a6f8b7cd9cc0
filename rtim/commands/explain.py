"""`rtim explain DECISION_ID`: why a decision came out as it did, from the decision log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim explain`."""
    app.command("explain")(explain)


def explain(
    decision_id: Annotated[str, typer.Argument(help="The decision (or request id) to explain.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the DecisionRecord as JSON.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Give up after this many seconds.")
    ] = 30.0,
) -> None:
    """Print a decision's explanation: features used, every candidate and the rule that removed
    it, scores, propensities and the reasons sent to the channel."""
    from rtim.errors import RtimError
    from rtim.replay.reader import read_range
    from rtim.serde.codec import Codec
    from rtim.serde.jsonio import record_to_json
    from rtim.settings import get_settings

    settings = get_settings()
    codec = Codec.from_settings(settings)
    found: dict[str, Any] | None = None
    for message in read_range(settings, ("rtim.decision-log",), timeout_s=timeout):
        try:
            _name, record = codec.decode(message.value or b"", expected="DecisionRecord")
        except RtimError:
            continue
        decision = record["decision"]
        if decision_id in (decision["decision_id"], decision.get("request_id")):
            found = record
            break
    if found is None:
        from rtim.errors import ValidationError

        raise ValidationError(f"no decision {decision_id!r} on rtim.decision-log")
    if as_json:
        print(json.dumps(record_to_json(found), indent=2))
        return
    _print(found)


def _print(record: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    d = record["decision"]
    console = Console()
    trigger = d["trigger"]
    console.print(
        f"[b]decision {d['decision_id']}[/b] for customer {d['customer_id']} on {d['channel']} "
        f"({trigger['type']} {trigger.get('name') or ''} {trigger['id']}), "
        f"strategy {d['strategy_version']}, models {d['model_version']}, "
        f"policy {record['policy']}{', CONTROL GROUP' if d['control_group'] else ''}"
    )
    if d["actions"]:
        for a in d["actions"]:
            console.print(
                f"  → {a['offer_id']} ({a['category']}) score {a['score']:.4f} "
                f"propensity {a['propensity']:.3f}"
            )
    else:
        console.print("  → no action")
    for reason in d["reasons"]:
        console.print(f"  reason: {reason}")
    table = Table(title="candidates")
    for column in (
        "offer",
        "channel",
        "removed by",
        "why",
        "p(response)",
        "value",
        "score",
        "p(chosen)",
    ):
        table.add_column(column)
    for c in record["candidates"]:
        table.add_row(
            c["offer_id"], c["channel"] or "", c["removed_by"] or "", c["removed_reason"] or "",
            f"{c['propensity_model']:.4f}", f"{c['value']:.2f}", f"{c['score']:.4f}",
            f"{c['propensity']:.3f}",
        )  # fmt: skip
    console.print(table)
    shown = {k: v for k, v in sorted(record["features"].items()) if v is not None}
    console.print("features: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
