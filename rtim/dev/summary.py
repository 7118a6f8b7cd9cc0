"""The dev run's report: figures from the simulator and the decision log, as HTML + JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtim.dev.report import bar_chart, histogram, line_chart, write_report

__all__ = ["HEADLINE", "write_dev_report"]

GROUPS = ("policy", "control")
HEADLINE = (
    "events",
    "decisions",
    "decisions_by_channel",
    "policy_reward_rate",
    "control_reward_rate",
    "lift_ci95",
    "policy_expected_reward",
    "control_expected_reward",
    "expected_lift_ci95",
    "policy_response_rate",
    "control_response_rate",
    "response_lift_ci95",
    "rule_violations",
    "latency_ms",
    "dead_letters",
    "suppressed_by_reason",
    "duration_s",
    "customers",
    "seed",
)


def write_dev_report(
    run_dir: Path, summary: dict[str, Any], report: Any, latency_samples: list[float]
) -> None:
    """Render the plots and write summary.json + report.html; sets summary['report_html']."""
    sim = report.to_dict()
    curve = sim.get("learning_curve") or []
    t0 = curve[0]["t_ms"] if curve else 0
    hours = [(point["t_ms"] - t0) / 3_600_000 for point in curve]

    def policy_vs_control(title: str, suffix: str, ylabel: str) -> str:
        return line_chart(
            title,
            hours,
            {group: [point[f"{group}_{suffix}"] for point in curve] for group in GROUPS},
            "simulated hours since start",
            ylabel,
        )

    figures = [
        (
            "Learning curve: reward per decision (value of responses minus contact cost) of "
            "policy vs control decisions over time",
            policy_vs_control(
                "reward per decision, per time bucket", "value", "reward per decision"
            ),
        ),
        (
            "Response rate (click, accept, convert) of policy vs control decisions over time",
            policy_vs_control(
                "response rate per time bucket",
                "rate",
                "share of decisions with a positive response",
            ),
        ),
        (
            "Decisions per channel",
            bar_chart("decisions per channel", summary["decisions_by_channel"]),
        ),
        ("Actions per offer", bar_chart("actions per offer", summary["actions_by_offer"])),
        (
            "Suppression funnel: candidates removed, by the rule that removed them",
            bar_chart("candidates removed by rule", summary["suppressed_by_reason"]),
        ),
        (
            "Response rate per offer and channel, from the training examples (responses / "
            "attributed decisions)",
            bar_chart(
                "response rate by offer@channel",
                {
                    k: v["response_rate"]
                    for k, v in summary.get("learning_by_offer_channel", {}).items()
                    if v["examples"] >= 20
                },
            ),
        ),
        (
            "Progressive ROC AUC of each offer's River model (scored before learning each "
            "example); 0.5 = no better than chance",
            bar_chart(
                "model AUC",
                {
                    k: v.get("auc", 0.0)
                    for k, v in summary.get("models", {}).items()
                    if v.get("examples", 0) >= 50
                },
            ),
        ),
        (
            "Request → decision latency (ms), measured by the channel adapters",
            histogram("request → decision latency", latency_samples, "ms"),
        ),
    ]
    notes = [
        "Reward = the business value of the offers the customer responded to (click, accept, "
        "convert) minus the contact cost — what the arbitration maximises; response rates are "
        "shown separately.",
        "Control group: decisions chosen uniformly among eligible actions (rules still apply).",
        "Expected reward: the same reward in expectation under the simulator's hidden response "
        "probabilities (which the engine never sees) — the comparison without the noise of "
        "which customers happened to respond.",
        "Rule violations are counted by an independent auditor that knows what the simulator sent.",
    ]
    _json, html_path = write_report(
        run_dir, "rtim dev — run report", summary, figures, HEADLINE, notes=notes
    )
    summary["report_html"] = str(html_path)
