"""The closed loop end to end: a synthetic population with hidden response probabilities,
the engine deciding and learning from outcomes; the policy must beat the random control group
with zero rule violations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtim.paths import contract_dir

pytestmark = pytest.mark.e2e


def test_the_learned_policy_beats_the_control_group_without_violations(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTIM_")}
    # the example strategy with a larger control group: a tighter interval in a short run
    example = (contract_dir("strategies") / "example.yaml").read_text()
    assert "  share: 0.10\n" in example
    strategy = tmp_path / "strategy.yaml"
    strategy.write_text(example.replace("  share: 0.10\n", "  share: 0.25\n"))
    env["RTIM_STRATEGY"] = str(strategy)
    done = subprocess.run(
        [sys.executable, "-m", "rtim", "dev", "--duration", "100", "--customers", "2000",
         "--rate", "600", "--seed", "5", "--out", str(out), "--no-live"],
        env=env, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    figures = {k: s[k] for k in ("policy_reward_rate", "control_reward_rate", "lift_ci95",
                                 "expected_lift_ci95", "policy_decisions", "control_decisions",
                                 "policy_response_rate", "control_response_rate")}  # fmt: skip
    print(json.dumps(figures))  # the numbers, for the record (pytest -s)
    # audited against the simulator's ground truth (docs/reliability.md, "Order across input
    # topics")
    assert s["rule_violations"] == 0, s["violations_by_kind"]
    assert s["control_decisions"] >= 500
    # under the simulator's hidden truth, the policy's chosen actions are worth clearly more
    # than the control group's: the interval of the difference excludes zero. (The realized
    # reward, printed above, is far noisier — rare high-value conversions — and is reported,
    # not asserted: over 75 s runs its interval sometimes spans zero.)
    assert s["expected_lift_ci95"][0] > 0, figures
    # the models learned from the outcomes
    learned = [m for m in s["models"].values() if m.get("examples", 0) >= 50]
    assert learned, "some offers' models learned from at least 50 outcomes"
