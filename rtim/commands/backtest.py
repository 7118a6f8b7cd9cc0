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
        Path | None,
        typer.Option(
            "--bandit-log",
            help="Logged bandit feedback: JSON lines or CSV (ts, context, action, propensity, "
            "reward, actions); see docs/ope.md. Without it: re-run the engine over the recorded "
            "topics (--from/--to).",
        ),
    ] = None,
    start: Annotated[
        str, typer.Option("--from", help="Recorded range start: ISO-8601 or epoch ms.")
    ] = "0",
    end: Annotated[str | None, typer.Option("--to", help="Recorded range end (exclusive).")] = None,
    strategy_file: Annotated[
        Path | None,
        typer.Option("--strategy", help="Candidate strategy (default: RTIM_STRATEGY)."),
    ] = None,
    decision_log: Annotated[
        bool,
        typer.Option(
            "--decision-log",
            help="Off-policy estimates from rtim's own decision log (--from/--to) joined with "
            "the outcomes' training examples, instead of a --bandit-log file.",
        ),
    ] = False,
    reward: Annotated[
        str, typer.Option("--reward", help="With --decision-log: `response` (1/0) or `value`.")
    ] = "response",
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
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed: of the decision draws for recorded backtests (default RTIM_SEED), of "
            "folds and bootstrap for --bandit-log (default 0).",
        ),
    ] = None,
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

    if bandit_log is None and not decision_log:
        _recorded(start, end, strategy_file, seed=seed, json_out=json_out, report=report)
        return
    seed = seed or 0
    if decision_log:
        log = _decision_log(start, end, reward)
    else:
        assert bandit_log is not None
        log = read_bandit_log(bandit_log)
    target = _policy(policy, log, epsilon)
    result = evaluate(log, target, np.random.default_rng(seed), n_bootstrap=bootstrap).to_dict()
    result["source"] = str(bandit_log) if bandit_log else "rtim.decision-log"
    result["seed"] = seed
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    if report is not None:
        _write_report(report, result)
    _print(result)


def _decision_log(start: str, end: str | None, reward: str) -> Any:
    """The decision log of a recorded range as a BanditLog (rewards from training examples)."""
    from rtim.errors import ConfigError, ValidationError
    from rtim.replay.decisionlog import bandit_log_from_records
    from rtim.replay.reader import read_range, time_range
    from rtim.serde.codec import Codec
    from rtim.settings import get_settings

    if reward not in ("response", "value"):
        raise ConfigError(f"--reward must be response or value, not {reward!r}")
    settings = get_settings()
    start_ms, end_ms = time_range(start, end)
    codec = Codec.from_settings(settings)
    log, stats = bandit_log_from_records(
        read_range(settings, ("rtim.decision-log",), start_ms, end_ms),
        # outcomes arrive after their decision: read the training examples to the end
        read_range(settings, ("rtim.training",), start_ms, None),
        codec,
        "value" if reward == "value" else "response",
    )
    print(
        f"decision log: {stats.decisions} decisions, {stats.kept} with a known outcome, "
        f"{stats.unresolved} still open, {stats.no_action} no action, {stats.slates} slates"
    )
    if not log.decisions:
        raise ValidationError("no decision with a known outcome in that range")
    return log


def _recorded(
    start: str,
    end: str | None,
    strategy_file: Path | None,
    *,
    seed: int | None,
    json_out: Path | None,
    report: Path | None,
) -> None:
    """Re-run the engine over recorded topics and compare with the logged decisions."""
    from rtim.core.decisioning import NoModels
    from rtim.core.events import INPUT_TOPICS
    from rtim.replay.backtest import run_backtest
    from rtim.replay.reader import read_range, time_range
    from rtim.serde.codec import Codec
    from rtim.settings import get_settings
    from rtim.worker.service import build_engine, load_configured_strategy

    settings = get_settings()
    if strategy_file is not None:
        settings = settings.model_copy(update={"strategy": strategy_file})
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    seed = settings.seed
    start_ms, end_ms = time_range(start, end)
    strategy = load_configured_strategy(settings)
    codec = Codec.from_settings(settings)
    engine = build_engine(settings, strategy, NoModels())
    result = run_backtest(read_range(settings, INPUT_TOPICS, start_ms, end_ms), engine, codec)
    logged: dict[str, dict[str, Any]] = {}
    for message in read_range(settings, ("rtim.decision-log",), start_ms, end_ms):
        try:
            _name, record = codec.decode(message.value or b"", expected="DecisionRecord")
        except Exception:
            continue
        logged[record["decision"]["decision_id"]] = record["decision"]
    ours = {d["decision_id"]: d for d in result.decisions}
    same = sum(1 for i, d in ours.items() if i in logged and _same(d, logged[i]))
    summary: dict[str, Any] = {
        "strategy_version": strategy.version,
        "seed": seed,
        "records": result.records,
        "invalid_records": result.invalid,
        "decisions": len(result.decisions),
        "decisions_by_channel": dict(result.decisions_by_channel),
        "actions_by_offer": dict(result.actions_by_offer),
        "no_action": result.no_action,
        "suppressed_by_reason": dict(result.suppressed_by_reason.most_common()),
        "logged_decisions": len(logged),
        "identical_to_logged": same,
        "different_from_logged": sum(1 for i in ours if i in logged) - same,
        "only_in_backtest": sum(1 for i in ours if i not in logged),
        "only_in_log": sum(1 for i in logged if i not in ours),
    }
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    if report is not None:
        from rtim.dev.report import bar_chart, write_report

        figures = [
            ("Decisions per channel", bar_chart("decisions per channel",
                                                summary["decisions_by_channel"])),
            ("Actions per offer", bar_chart("actions per offer", summary["actions_by_offer"])),
            ("Suppression funnel", bar_chart("candidates removed by rule",
                                             summary["suppressed_by_reason"])),
        ]  # fmt: skip
        headline = ("strategy_version", "decisions", "logged_decisions", "identical_to_logged",
                    "different_from_logged", "only_in_backtest", "only_in_log")  # fmt: skip
        write_report(report, "rtim backtest — recorded range", summary, figures, headline)
    for key, value in summary.items():
        print(f"{key}: {value}")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("channel", "actions", "control_group", "reasons", "ts", "trigger")
    return all(a.get(k) == b.get(k) for k in keys)


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
