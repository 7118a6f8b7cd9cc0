"""rtim's own decision log as logged bandit feedback, for off-policy evaluation.

Each decision with one action on `rtim.decision-log` is a logged decision: the context is the
model features of its feature snapshot (what a candidate policy could have used), the action its
offer, the propensity the one it logged (the whole logging policy, control group included), the
available actions its eligible candidates. Its reward comes from the training example the
attribution emitted for it on `rtim.training` (1 for a response, 0 for none; or the business
value). Decisions still waiting for their outcome are left out and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from rtim.core.attribution import model_features
from rtim.core.banditlog import BanditLog, LoggedDecision
from rtim.errors import RtimError
from rtim.replay.reader import RecordedMessage
from rtim.serde.codec import Codec

__all__ = ["DecisionLogStats", "bandit_log_from_records"]


@dataclass
class DecisionLogStats:
    """What the conversion kept and left out."""

    decisions: int = 0
    slates: int = 0  # more than one action: not a single-action bandit decision
    no_action: int = 0
    unresolved: int = 0  # no training example (yet): outcome window still open
    kept: int = 0


def bandit_log_from_records(
    decision_log: Iterable[RecordedMessage],
    training: Iterable[RecordedMessage],
    codec: Codec,
    reward: Literal["response", "value"] = "response",
) -> tuple[BanditLog, DecisionLogStats]:
    """Join decision records with their training examples into a BanditLog."""
    rewards: dict[tuple[str, str], float] = {}
    for message in training:
        try:
            _name, example = codec.decode(message.value or b"", expected="TrainingExample")
        except RtimError:
            continue
        value = float(example["reward"]) if reward == "response" else float(example["value"])
        rewards.setdefault((example["decision_id"], example["offer_id"]), value)
    stats = DecisionLogStats()
    decisions: list[LoggedDecision] = []
    for message in decision_log:
        try:
            _name, record = codec.decode(message.value or b"", expected="DecisionRecord")
        except RtimError:
            continue
        stats.decisions += 1
        decision = record["decision"]
        actions = decision["actions"]
        if not actions:
            stats.no_action += 1
            continue
        if len(actions) > 1:
            stats.slates += 1
            continue
        action = actions[0]
        got = rewards.get((decision["decision_id"], action["offer_id"]))
        if got is None:
            stats.unresolved += 1
            continue
        context: dict[str, Any] = {
            k: (float(v) if isinstance(v, bool) else v)
            for k, v in model_features(record["features"]).items()
            if v is not None
        }
        available = tuple(c["offer_id"] for c in record["candidates"] if c["eligible"])
        decisions.append(
            LoggedDecision(
                ts=decision["ts"],
                context=context,
                action=action["offer_id"],
                propensity=float(action["propensity"]),
                reward=got,
                actions=available or None,
            )
        )
        stats.kept += 1
    decisions.sort(key=lambda d: d.ts)
    names = sorted({d.action for d in decisions} | {a for d in decisions for a in d.actions or ()})
    return BanditLog(tuple(decisions), tuple(names), source="rtim.decision-log"), stats
