"""`rtim backtest --bandit-log`: the public JSON shape, learning beats uniform, clear errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest


def rtim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtim", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def uniform_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of a uniform logger where the best action depends on the context."""
    rng = random.Random(11)
    path = tmp_path_factory.mktemp("bt") / "log.jsonl"
    actions = ["card", "loan", "savings"]
    best = {"young": "card", "family": "loan", "senior": "savings"}
    with path.open("w") as f:
        for i in range(3000):
            segment = rng.choice(list(best))
            action = rng.choice(actions)
            p = 0.45 if action == best[segment] else 0.08
            row = {
                "ts": 1_700_000_000_000 + i * 1000,
                "context": {"segment": segment, "age": rng.randint(18, 80)},
                "action": action,
                "propensity": 1 / 3,
                "reward": int(rng.random() < p),
                "actions": actions,
            }
            f.write(json.dumps(row) + "\n")
    return path


def test_learner_beats_the_uniform_logger_and_the_json_has_the_contract_shape(
    uniform_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    report = tmp_path / "report"
    done = rtim(
        "backtest", "--bandit-log", str(uniform_log), "--policy", "learner", "--json", str(out),
        "--report", str(report), "--bootstrap", "200",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for key in ("n", "logged_reward_mean", "estimates", "effective_sample_size", "warnings"):
        assert key in result
    assert result["n"] == 3000
    for name in ("ips", "snips", "dm", "dr"):
        low, high = result["estimates"][name]["ci95"]
        assert low <= result["estimates"][name]["value"] <= high
    # true values: uniform ≈ (0.45 + 2·0.08)/3 ≈ 0.203; the learned policy approaches 0.45
    assert result["estimates"]["dr"]["ci95"][0] > result["logged_reward_ci95"][1]
    assert (report / "report.html").read_text().count("data:image/png") == 1


def test_uniform_policy_on_a_uniform_log_estimates_the_logged_reward(
    uniform_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "u.json"
    done = rtim("backtest", "--bandit-log", str(uniform_log), "--policy", "uniform",
                "--json", str(out), "--bootstrap", "100")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["estimates"]["ips"]["value"] == pytest.approx(result["logged_reward_mean"])


def test_bad_input_is_one_line(tmp_path: Path, uniform_log: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ts": 1, "context": {}, "action": "a", "propensity": 2, "reward": 1}\n')
    for args in (
        ("--bandit-log", str(bad)),
        ("--bandit-log", str(tmp_path / "missing.jsonl")),
        ("--bandit-log", str(uniform_log), "--policy", "nonsense"),
    ):
        done = rtim("backtest", *args)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("rtim: error:")
