"""`rtim backtest`: what would another policy have earned? Off-policy estimates from a log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim backtest`."""
    app.command("backtest")(backtest)


def backtest(  # noqa: PLR0917 - typer maps parameters to options
    bandit_log: Annotated[
        Path,
        typer.Option(
            "--bandit-log",
            help="Logged bandit feedback: JSON lines or CSV (ts, context, action, propensity, "
            "reward, actions); see docs/ope.md.",
        ),
    ],
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="`uniform`, `learner` (rtim's online learner, trained progressively on the "
            "log), `fixed:ACTION`, or a strategy file (STRATEGY.yaml).",
        ),
    ] = "learner",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the estimates as JSON here.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", file_okay=False, help="Write report.html + summary.json here."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of folds and bootstrap.")] = 0,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=10, help="Bootstrap resamples per estimate.")
    ] = 500,
    epsilon: Annotated[
        float, typer.Option("--epsilon", min=0.0, max=1.0, help="Exploration of `learner`.")
    ] = 0.05,
) -> None:
    """Estimate a candidate policy's reward from logged decisions (IPS, SNIPS, DM, DR).

    Prints the estimates next to the logged policy's observed reward, with 95% bootstrap
    intervals, the effective sample size and warnings when the log supports it poorly.
    """
    import numpy as np

    from rtim.core.banditlog import read_bandit_log
    from rtim.core.ope import evaluate

    log = read_bandit_log(bandit_log)
    target = _policy(policy, log, epsilon)
    result = evaluate(log, target, np.random.default_rng(seed), n_bootstrap=bootstrap).to_dict()
    result["source"] = str(bandit_log)
    result["seed"] = seed
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    if report is not None:
        _write_report(report, result)
    _print(result)


def _policy(spec: str, log: Any, epsilon: float) -> Any:
    from rtim.core import ope
    from rtim.core.learnerpolicy import OnlineLearnerPolicy
    from rtim.errors import ConfigError

    if spec == "uniform":
        return ope.uniform()
    if spec == "learner":
        rewards = {d.reward for d in log.decisions}
        return OnlineLearnerPolicy(epsilon=epsilon, binary=rewards <= {0.0, 1.0})
    if spec.startswith("fixed:"):
        return ope.fixed(spec.removeprefix("fixed:"))
    if spec.endswith((".yaml", ".yml")):
        from rtim.core.strategy import load_strategy
        from rtim.core.strategypolicy import StrategyPolicy
        from rtim.worker.service import known_features

        return StrategyPolicy(load_strategy(spec, known_features()))
    raise ConfigError(
        f"unknown --policy {spec!r}: use uniform, learner, fixed:ACTION or a strategy .yaml file"
    )


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"off-policy estimates of {result['target_policy']} (n={result['n']:,})")
    for column in ("estimator", "value", "95% CI"):
        table.add_column(column)
    low, high = result["logged_reward_ci95"]
    table.add_row("logged policy (observed)", _num(result["logged_reward_mean"]), _ci(low, high))
    for name, estimate in result["estimates"].items():
        table.add_row(name.upper(), _num(estimate["value"]), _ci(*estimate["ci95"]))
    console = Console()
    console.print(table)
    console.print(f"effective sample size: {_num(result['effective_sample_size'])}")
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _ci(low: float | None, high: float | None) -> str:
    return f"[{_num(low)}, {_num(high)}]"


def _write_report(out_dir: Path, result: dict[str, Any]) -> None:
    from rtim.dev.report import estimates_chart, write_report

    figures = [
        (
            "Estimated reward per decision of the candidate policy, with 95% bootstrap intervals, "
            "next to the logged policy's observed reward",
            estimates_chart(result),
        )
    ]
    headline = ("n", "target_policy", "logged_reward_mean", "estimates", "effective_sample_size")
    write_report(
        out_dir,
        "rtim backtest — off-policy evaluation",
        result,
        figures,
        headline,
        notes=result["warnings"],
    )
