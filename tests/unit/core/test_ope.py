"""Off-policy estimators against a simulator whose true policy values are known exactly.

The simulated world is a finite population of contexts (two numeric features and a segment),
each with a true expected reward per action (logistic) and known logging propensities (a floored
softmax of a noisy score, all ≥ 0.05). Logs draw contexts uniformly from the population, so a
target policy's true value is an exact finite average.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.core.banditlog import BanditLog, Context, LoggedDecision, parse_bandit_log
from rtim.core.ope import (
    LearningPolicy,
    OpeResult,
    TargetPolicy,
    effective_sample_size,
    evaluate,
    fixed,
    uniform,
)
from rtim.errors import ConfigError, ValidationError

K = 4
ACTIONS = tuple(f"offer{j}" for j in range(K))
SEGMENTS = ("north", "south", "west")
FLOOR = 0.05


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


@dataclass(frozen=True)
class World:
    x: np.ndarray  # (M, 2) numeric features
    segment: np.ndarray  # (M,) segment index
    mu: np.ndarray  # (M, K) true expected reward
    logging: np.ndarray  # (M, K) logging propensities

    def context(self, m: int) -> dict[str, float | str]:
        return {
            "x1": float(self.x[m, 0]),
            "x2": float(self.x[m, 1]),
            "segment": SEGMENTS[self.segment[m]],
        }

    def truth(self, target: np.ndarray) -> float:
        return float((target * self.mu).sum(axis=1).mean())


def make_world(seed: int = 7, size: int = 200) -> World:
    g = np.random.default_rng(seed)
    x = g.normal(size=(size, 2))
    segment = g.integers(0, len(SEGMENTS), size=size)
    theta = g.normal(size=(2, K))
    bias = g.normal(-1.0, 0.5, size=K)
    segment_effect = g.normal(scale=0.5, size=(len(SEGMENTS), K))
    logit = x @ theta + bias + segment_effect[segment]
    mu = 1.0 / (1.0 + np.exp(-logit))
    noisy_score = logit + g.normal(size=(size, K))
    logging = FLOOR + (1.0 - K * FLOOR) * _softmax(noisy_score)
    return World(x, segment, mu, logging)


def simulate(world: World, n: int, rng: np.random.Generator) -> BanditLog:
    m = rng.integers(0, len(world.x), size=n)
    cdf = np.cumsum(world.logging[m], axis=1)
    a = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), K - 1)
    r = (rng.random(n) < world.mu[m, a]).astype(float)
    decisions = tuple(
        LoggedDecision(
            ts=1_700_000_000_000 + 1000 * i,
            context=world.context(int(mm)),
            action=ACTIONS[aa],
            propensity=float(world.logging[mm, aa]),
            reward=float(rr),
        )
        for i, (mm, aa, rr) in enumerate(zip(m, a, r, strict=True))
    )
    return BanditLog(decisions, ACTIONS)


class TablePolicy:
    """A target policy given on the population, found by the context's (unique) x1."""

    def __init__(self, name: str, world: World, table: np.ndarray) -> None:
        self._name = name
        self.table = table
        self.member = {float(world.x[i, 0]): i for i in range(len(world.x))}

    @property
    def name(self) -> str:
        return self._name

    def probabilities(
        self, context: Context, actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        row = self.table[self.member[float(context["x1"])]]
        return {a: float(p) for a, p in zip(ACTIONS, row, strict=True)}


WORLD = make_world()
TARGETS = {
    "uniform": np.full((len(WORLD.x), K), 1.0 / K),
    "greedy": np.eye(K)[WORLD.mu.argmax(axis=1)],
    "softmax": _softmax(4.0 * WORLD.mu),
}
ESTIMATORS = ("ips", "snips", "dm", "dr")
REPLICATIONS = 100
N = 600
BOOTSTRAP = 300


@pytest.fixture(scope="module")
def replications() -> dict[str, np.ndarray]:
    """(replication, estimator, [value, low, high]) per target, from independent logs."""
    out: dict[str, list[list[tuple[float, float, float]]]] = {t: [] for t in TARGETS}
    policies = {t: TablePolicy(t, WORLD, table) for t, table in TARGETS.items()}
    for seed in range(REPLICATIONS):
        rng = np.random.default_rng(10_000 + seed)
        log = simulate(WORLD, N, rng)
        for t, policy in policies.items():
            res = evaluate(log, policy, rng, n_bootstrap=BOOTSTRAP)
            out[t].append([(e.value, e.low, e.high) for e in (res.ips, res.snips, res.dm, res.dr)])
    return {t: np.array(v) for t, v in out.items()}


def test_world_is_a_fair_test_bed() -> None:
    assert WORLD.logging.min() >= FLOOR
    np.testing.assert_allclose(WORLD.logging.sum(axis=1), 1.0)
    truths = [WORLD.truth(t) for t in TARGETS.values()]
    assert len({round(v, 3) for v in truths}) == len(truths)  # targets are distinguishable
    assert WORLD.truth(TARGETS["greedy"]) > WORLD.truth(WORLD.logging) + 0.1


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("estimator", ["ips", "dr"])
def test_ips_and_dr_are_unbiased(
    replications: dict[str, np.ndarray], target: str, estimator: str
) -> None:
    values = replications[target][:, ESTIMATORS.index(estimator), 0]
    truth = WORLD.truth(TARGETS[target])
    standard_error = values.std(ddof=1) / math.sqrt(len(values))
    assert abs(values.mean() - truth) < 4 * standard_error
    assert abs(values.mean() - truth) < 0.01


@pytest.mark.parametrize("target", list(TARGETS))
def test_dm_is_close_with_a_well_specified_reward_model(
    replications: dict[str, np.ndarray], target: str
) -> None:
    values = replications[target][:, ESTIMATORS.index("dm"), 0]
    assert abs(values.mean() - WORLD.truth(TARGETS[target])) < 0.01


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate(
    replications: dict[str, np.ndarray], target: str, estimator: str
) -> None:
    runs = replications[target][:, ESTIMATORS.index(estimator)]
    truth = WORLD.truth(TARGETS[target])
    assert (runs[:, 1] <= runs[:, 0]).all()
    assert (runs[:, 0] <= runs[:, 2]).all()
    coverage = float(np.mean((runs[:, 1] <= truth) & (truth <= runs[:, 2])))
    print(f"coverage {target}/{estimator}: {coverage:.2f}")
    # Nominal 0.95; with 100 replications the binomial sd is ≈ 0.02.
    assert coverage >= 0.85
    assert coverage <= 0.995  # intervals that always cover are too wide to be useful


@pytest.mark.parametrize(("target", "max_ratio"), [("greedy", 0.8), ("softmax", 1.0)])
def test_dr_has_lower_variance_than_ips_with_a_decent_reward_model(
    replications: dict[str, np.ndarray], target: str, max_ratio: float
) -> None:
    runs = replications[target]
    var_ips = runs[:, ESTIMATORS.index("ips"), 0].var(ddof=1)
    var_dr = runs[:, ESTIMATORS.index("dr"), 0].var(ddof=1)
    assert var_dr < max_ratio * var_ips


def test_snips_of_the_logging_policy_is_the_logged_mean() -> None:
    rng = np.random.default_rng(3)
    log = simulate(WORLD, 400, rng)
    res = evaluate(log, TablePolicy("logging", WORLD, WORLD.logging), rng, n_bootstrap=50)
    logged = float(np.mean([d.reward for d in log.decisions]))
    assert res.logged_reward.value == pytest.approx(logged, rel=1e-12)
    assert res.snips.value == pytest.approx(logged, rel=1e-12)
    assert res.ips.value == pytest.approx(logged, rel=1e-12)
    assert res.effective_sample_size == pytest.approx(400)
    assert res.max_weight == pytest.approx(1.0)
    assert res.warnings == ()


def _log(rows: Sequence[tuple[str, float, float]], **extra: object) -> BanditLog:
    """A hand-made log: (action, propensity, reward) per decision, one numeric feature."""
    lines = [
        json.dumps(
            {"ts": i, "context": {"f": float(i % 3)}, "action": a, "propensity": p, "reward": r}
            | extra
        )
        for i, (a, p, r) in enumerate(rows)
    ]
    return parse_bandit_log(lines, "jsonl")


def test_hand_made_example() -> None:
    log = _log([("a", 0.5, 1.0), ("a", 0.5, 0.0), ("b", 0.25, 1.0), ("a", 1.0, 1.0)])
    res = evaluate(log, fixed("a"), np.random.default_rng(0), n_bootstrap=200)
    # weights 2, 2, 0, 1
    assert res.effective_sample_size == pytest.approx(25 / 9)
    assert res.max_weight == 2.0
    assert res.ips.value == pytest.approx(0.75)
    assert res.snips.value == pytest.approx(3 / 5)
    assert res.logged_reward.value == pytest.approx(0.75)
    assert res.unsupported_mass == 0.0
    assert any(w.startswith("only 4 logged decisions") for w in res.warnings)


def test_snips_stays_a_weighted_mean_of_the_rewards_with_subnormal_weights() -> None:
    # 1.75 times the smallest subnormal rounds to two of them: the plain ratio is 2.0
    log = _log([("a", 1.0, 1.75)])

    class Tiny:
        name = "tiny"

        def probabilities(
            self, context: Context, actions: Sequence[str], ts: int
        ) -> Mapping[str, float]:
            return {"a": 5e-324, "b": 1.0}

    res = evaluate(log, Tiny(), np.random.default_rng(0), n_bootstrap=20)
    assert (res.snips.value, res.snips.low, res.snips.high) == (1.75, 1.75, 1.75)


def test_target_on_an_action_the_logger_never_took_is_reported() -> None:
    log = _log([(a, 0.5, float(i % 2)) for i, a in enumerate(["a", "b"] * 100)])
    res = evaluate(log, fixed("new-offer"), np.random.default_rng(0), n_bootstrap=50)
    assert res.unsupported_mass == 1.0
    assert res.ips.value == 0.0
    assert math.isnan(res.snips.value)
    assert res.dr.value == pytest.approx(res.dm.value)
    assert res.effective_sample_size == 0.0
    text = " | ".join(res.warnings)
    assert "100.0% of its probability on actions the logging policy could not take" in text
    assert "(new-offer)" in text
    assert "SNIPS is undefined" in text
    data = res.to_dict()
    assert data["estimates"]["snips"] == {"value": None, "ci95": [None, None]}
    json.dumps(data, allow_nan=False)


def test_mass_on_an_unavailable_action_is_unsupported_even_if_logged_elsewhere() -> None:
    rows = [("a", 0.5, 1.0), ("b", 0.5, 0.0)] * 60
    lines = [
        json.dumps(
            {"ts": i, "context": {}, "action": a, "propensity": p, "reward": r}
            | ({"actions": ["a", "b"]} if i % 2 == 0 else {"actions": ["b", "c"]})
        )
        for i, (a, p, r) in enumerate(rows)
    ]
    log = parse_bandit_log(lines, "jsonl")
    assert log.actions == ("a", "b", "c")
    # "a" is available on even decisions only; "c" is available but never taken.
    res = evaluate(log, fixed("a"), np.random.default_rng(0), n_bootstrap=20)
    assert res.unsupported_mass == pytest.approx(0.5)
    res = evaluate(log, fixed("c"), np.random.default_rng(0), n_bootstrap=20)
    assert res.unsupported_mass == pytest.approx(1.0)
    res = evaluate(log, uniform(), np.random.default_rng(0), n_bootstrap=20)
    assert res.unsupported_mass == pytest.approx(0.25)  # half of the odd decisions' mass


def test_poor_support_warnings_fire_and_stay_quiet_on_a_benign_log() -> None:
    rows = [("a", 0.99, 1.0)] * 199 + [("b", 0.005, 1.0)]
    res = evaluate(_log(rows), fixed("b"), np.random.default_rng(0), n_bootstrap=50)
    assert res.max_weight == pytest.approx(200.0)
    assert res.effective_sample_size == pytest.approx(1.0)
    text = " | ".join(res.warnings)
    assert "logging propensity below 0.01 (lowest 0.005)" in text
    assert "one decision carries 100.0% of the total importance weight" in text
    assert "effective sample size 1.0 is below 10% of the 200 decisions" in text

    benign = _log([("a", 0.5, 1.0), ("b", 0.5, 0.0)] * 100)
    assert evaluate(benign, uniform(), np.random.default_rng(0), n_bootstrap=50).warnings == ()


def test_constant_rewards_make_every_model_based_estimate_exact() -> None:
    log = _log([("a", 0.5, 3.0), ("b", 0.5, 3.0)] * 60)
    res = evaluate(log, fixed("a"), np.random.default_rng(0), n_bootstrap=50)
    assert res.dm.value == pytest.approx(3.0)
    assert res.dr.value == pytest.approx(3.0)
    assert res.snips.value == pytest.approx(3.0)
    assert (res.dr.low, res.dr.high) == pytest.approx((3.0, 3.0))


def test_result_has_the_public_json_shape_and_is_deterministic() -> None:
    log = simulate(WORLD, 300, np.random.default_rng(5))
    policy = TablePolicy("softmax", WORLD, TARGETS["softmax"])
    first = evaluate(log, policy, np.random.default_rng(42), n_bootstrap=100).to_dict()
    again = evaluate(log, policy, np.random.default_rng(42), n_bootstrap=100).to_dict()
    other = evaluate(log, policy, np.random.default_rng(43), n_bootstrap=100).to_dict()
    assert first == again
    assert first["estimates"]["ips"]["ci95"] != other["estimates"]["ips"]["ci95"]
    assert first["estimates"]["ips"]["value"] == other["estimates"]["ips"]["value"]
    assert json.loads(json.dumps(first, allow_nan=False)) == first
    assert list(first)[:5] == [
        "n",
        "logged_reward_mean",
        "estimates",
        "effective_sample_size",
        "warnings",
    ]
    assert first["n"] == 300
    assert set(first["estimates"]) == {"ips", "snips", "dm", "dr"}
    for est in first["estimates"].values():
        assert set(est) == {"value", "ci95"}
        low, high = est["ci95"]
        assert isinstance(est["value"], float)
        assert low <= est["value"] <= high
    assert first["target_policy"] == "softmax"
    assert isinstance(first["effective_sample_size"], float)


def test_uniform_and_fixed_policies() -> None:
    assert uniform().probabilities({}, ["a", "b", "c", "d"], 0) == {
        "a": 0.25,
        "b": 0.25,
        "c": 0.25,
        "d": 0.25,
    }
    assert fixed("b").probabilities({}, ["a", "b"], 0) == {"b": 1.0}
    assert (uniform().name, fixed("b").name) == ("uniform", "fixed(b)")


class CountingLearner:
    """Greedy on observed mean reward per action (ties → uniform); records its calls."""

    name = "counting-learner"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def probabilities(
        self, context: Context, actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        self.calls.append(("predict", ts))
        means = {a: self.total.get(a, 0.0) / max(self.count.get(a, 0), 1) for a in actions}
        best = [a for a in actions if means[a] == max(means.values())]
        return dict.fromkeys(best, 1.0 / len(best))

    def learn(self, context: Context, action: str, reward: float, propensity: float) -> None:
        self.calls.append(("learn", int(context["ts"])))
        self.total[action] = self.total.get(action, 0.0) + reward
        self.count[action] = self.count.get(action, 0) + 1


def test_a_learning_policy_predicts_then_learns_in_time_order() -> None:
    lines = [
        json.dumps(
            {
                "ts": ts,
                "context": {"ts": ts},
                "action": "a" if ts % 2 else "b",
                "propensity": 0.5,
                "reward": 1.0 if ts % 2 else 0.0,
            }
        )
        for ts in [5, 1, 4, 2, 3, 6]
    ]
    learner = CountingLearner()
    assert isinstance(learner, LearningPolicy)
    assert not isinstance(uniform(), LearningPolicy)
    res = evaluate(parse_bandit_log(lines, "jsonl"), learner, np.random.default_rng(0))
    expected = [(kind, ts) for ts in range(1, 7) for kind in ("predict", "learn")]
    assert learner.calls == expected
    # ts 1: uniform (w 1, a pays 1); ts 2: greedy on a, logged b → w 0; then always a.
    assert res.ips.value == pytest.approx((1.0 + 0 + 2.0 + 0 + 2.0 + 0) / 6)


class BrokenPolicy:
    def __init__(self, probs: Mapping[str, float]) -> None:
        self.probs = probs

    @property
    def name(self) -> str:
        return "broken"

    def probabilities(
        self, context: Context, actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        return self.probs


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        ({"a": 0.5}, "target policy broken at line 1: probabilities sum to 0.5, not 1"),
        ({"a": 1.5, "b": -0.5}, "probability of 'b' is -0.5"),
        ({"a": math.nan, "b": 1.0}, "probability of 'a' is nan"),
        ({}, "probabilities sum to 0, not 1"),
    ],
)
def test_invalid_target_probabilities_are_rejected(
    probs: Mapping[str, float], message: str
) -> None:
    log = _log([("a", 0.5, 1.0), ("b", 0.5, 0.0)])
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(log, BrokenPolicy(probs), np.random.default_rng(0))


def test_bad_settings_are_rejected() -> None:
    log = _log([("a", 0.5, 1.0)])
    with pytest.raises(ConfigError, match="n_bootstrap must be at least 1"):
        evaluate(log, uniform(), np.random.default_rng(0), n_bootstrap=0)
    with pytest.raises(ConfigError, match="ridge must be positive"):
        evaluate(log, uniform(), np.random.default_rng(0), ridge=0.0)


def test_in_sample_reward_model_is_flagged() -> None:
    log = _log([("a", 0.5, 1.0), ("b", 0.5, 0.0)] * 60)
    res = evaluate(log, uniform(), np.random.default_rng(0), n_bootstrap=20, n_folds=1)
    assert any("in-sample" in w for w in res.warnings)


def test_string_and_missing_features_are_used_by_the_reward_model() -> None:
    # The reward depends on a string feature only; DM must find it (a model blind to strings
    # would predict the overall mean 0.5 for both actions).
    rows = []
    for i in range(400):
        segment = "gold" if i % 2 else "basic"
        action = "a" if (i // 2) % 2 else "b"
        reward = 1.0 if (segment == "gold") == (action == "a") else 0.0
        context = {"segment": segment} | ({"age": float(i % 7)} if i % 3 else {"age": None})
        rows.append(
            json.dumps(
                {"ts": i, "context": context, "action": action, "propensity": 0.5, "reward": reward}
            )
        )
    log = parse_bandit_log(rows, "jsonl")

    class Matching:
        name = "matching"

        def probabilities(
            self, context: Context, actions: Sequence[str], ts: int
        ) -> Mapping[str, float]:
            return {"a" if context["segment"] == "gold" else "b": 1.0}

    res = evaluate(log, Matching(), np.random.default_rng(0), n_bootstrap=50)
    assert res.dm.value > 0.95
    assert res.dr.value == pytest.approx(1.0, abs=0.02)
    assert res.ips.value == pytest.approx(1.0)


# --- properties -------------------------------------------------------------------------


@st.composite
def logs_and_targets(draw: st.DrawFn) -> tuple[BanditLog, TargetPolicy]:
    k = draw(st.integers(2, 4))
    actions = tuple(f"a{j}" for j in range(k))
    n = draw(st.integers(1, 30))
    decisions = tuple(
        LoggedDecision(
            ts=i,
            context={"f": draw(st.floats(-5, 5)), "g": draw(st.sampled_from(["x", "y"]))},
            action=draw(st.sampled_from(actions)),
            propensity=draw(st.floats(0.01, 1.0)),
            reward=draw(st.floats(-10, 10)),
        )
        for i in range(n)
    )
    weights = draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))
    if sum(weights) == 0:
        weights[0] = 1.0
    probs = {a: w / sum(weights) for a, w in zip(actions, weights, strict=True)}

    class Static:
        name = "static"

        def probabilities(
            self, context: Context, actions: Sequence[str], ts: int
        ) -> Mapping[str, float]:
            return probs

    return BanditLog(decisions, actions), Static()


@settings(max_examples=60, deadline=None)
@given(logs_and_targets(), st.integers(0, 2**32 - 1))
def test_estimates_stay_in_range(case: tuple[BanditLog, TargetPolicy], seed: int) -> None:
    log, policy = case
    res: OpeResult = evaluate(log, policy, np.random.default_rng(seed), n_bootstrap=20)
    rewards = [d.reward for d in log.decisions]
    low, high = min(rewards) - 1e-9, max(rewards) + 1e-9
    if math.isnan(res.snips.value):
        assert res.effective_sample_size == 0.0
    else:
        assert low <= res.snips.value <= high
        assert low <= res.snips.low <= res.snips.high <= high
        assert 1 - 1e-9 <= res.effective_sample_size <= res.n + 1e-9
    assert low <= res.dm.value <= high  # q̂ never leaves the observed reward range
    assert low <= res.logged_reward.value <= high
    for est in (res.ips, res.dm, res.dr):
        assert math.isfinite(est.value)
        assert est.low <= est.high
    json.dumps(res.to_dict(), allow_nan=False)


@given(
    st.lists(st.one_of(st.just(0.0), st.floats(1e-200, 1e200)), min_size=1, max_size=50),
    st.floats(1e-3, 1e3),
)
def test_effective_sample_size_bounds(weights: list[float], scale: float) -> None:
    ess = effective_sample_size(weights)
    if not any(w > 0 for w in weights):
        assert ess == 0.0
        return
    assert 1 - 1e-9 <= ess <= len(weights) + 1e-9
    assert effective_sample_size([w * scale for w in weights]) == pytest.approx(ess, rel=1e-9)
    assert effective_sample_size([1.0] * len(weights)) == pytest.approx(len(weights))
