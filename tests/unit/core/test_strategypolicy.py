"""A strategy as an off-policy target: exact probabilities from decide, rules respected."""

from __future__ import annotations

import pytest

from rtim.core.strategy import load_strategy
from rtim.core.strategypolicy import StrategyPolicy
from rtim.paths import contract_dir
from rtim.worker.service import known_features

ACTIONS = ["gold_card", "classic_card", "savings_boost", "none"]


@pytest.fixture(scope="module")
def policy() -> StrategyPolicy:
    return StrategyPolicy(
        load_strategy(contract_dir("strategies") / "example.yaml", known_features())
    )


def test_probabilities_are_a_distribution(policy: StrategyPolicy) -> None:
    context = {"age": 40, "tenure_days": 900, "segment": "gold", "credit_check_status": "passed"}
    probs = policy.probabilities(context, ACTIONS, 1_700_000_000_000)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert all(p >= 0 for p in probs.values())
    assert probs["gold_card"] > 0


def test_a_failed_credit_check_gets_no_card(policy: StrategyPolicy) -> None:
    context = {"age": 40, "tenure_days": 900, "segment": "gold", "credit_check_status": "failed"}
    probs = policy.probabilities(context, ACTIONS, 1_700_000_000_000)
    assert probs["gold_card"] == probs["classic_card"] == 0.0
