"""Off-policy evaluation: what a target policy would have earned, estimated from a bandit log.

For logged decisions (x_i, a_i, p_i, r_i) and a target policy π, with importance weights
w_i = π(a_i|x_i) / p_i:
- IPS    mean(w_i r_i)                                  unbiased when p_i > 0 wherever π > 0;
- SNIPS  Σ w_i r_i / Σ w_i                               slightly biased, much lower variance;
- DM     mean_i Σ_a π(a|x_i) q̂(x_i, a)                   only as good as the reward model q̂;
- DR     DM + mean(w_i (r_i - q̂(x_i, a_i)))              unbiased if either p or q̂ is right.

The reward model q̂ is ridge regression on the context (numeric features standardised and
clipped, string features one-hot): a model pooled over actions plus a per-action residual model
shrunk towards it, so rarely logged actions borrow strength and never logged ones fall back to
the pooled model. It is cross-fitted: each decision's q̂ comes from a model that never saw it.

Intervals are percentile bootstraps over decisions (with replacement), one set of resamples for
all estimators; q̂ and the target's probabilities are held fixed across resamples, so the DM/DR
intervals leave out the reward model's own fitting noise. Everything is deterministic given the
`numpy.random.Generator` passed in.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rtim.core.banditlog import BanditLog, Context
from rtim.errors import ConfigError, ValidationError

__all__ = [
    "Estimate",
    "LearningPolicy",
    "OpeResult",
    "TargetPolicy",
    "effective_sample_size",
    "evaluate",
    "fixed",
    "uniform",
]

Array = NDArray[np.float64]

# Warning thresholds (documented in docs/ope.md).
SMALL_N: Final = 100
LOW_ESS_FRACTION: Final = 0.10
TINY_PROPENSITY: Final = 0.01
HEAVY_WEIGHT_SHARE: Final = 0.05

_PROBABILITY_TOLERANCE: Final = 1e-6
_MAX_LEVELS: Final = 50  # one-hot levels kept per string feature (most frequent)
_CLIP_SD: Final = 5.0  # numeric features are clipped to ±5 standard deviations
_NEWTON_STEPS: Final = 50
_BOOTSTRAP_CELLS: Final = 4_000_000  # resamples x n per vectorised chunk


class TargetPolicy(Protocol):
    """A policy to evaluate: a probability for each available action in a context.

    Probabilities must be ≥ 0 and sum to 1; missing actions get 0. Mass on an action that is
    not in `actions` is allowed but counts as unsupported (the logger could not take it).
    """

    @property
    def name(self) -> str: ...

    def probabilities(
        self, context: Context, actions: Sequence[str], ts: int
    ) -> Mapping[str, float]: ...


@runtime_checkable
class LearningPolicy(TargetPolicy, Protocol):
    """A target policy that learns as it goes: `evaluate` asks for its probabilities for a
    decision, then shows it that decision's logged outcome (predict, then learn), in ts order."""

    def learn(self, context: Context, action: str, reward: float, propensity: float) -> None: ...


@dataclass(frozen=True, slots=True)
class _Uniform:
    @property
    def name(self) -> str:
        return "uniform"

    def probabilities(
        self, context: Context, actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        return dict.fromkeys(actions, 1.0 / len(actions))


@dataclass(frozen=True, slots=True)
class _Fixed:
    action: str

    @property
    def name(self) -> str:
        return f"fixed({self.action})"

    def probabilities(
        self, context: Context, actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        return {self.action: 1.0}


def uniform() -> TargetPolicy:
    """The policy choosing uniformly among the available actions."""
    return _Uniform()


def fixed(action: str) -> TargetPolicy:
    """The deterministic policy that always chooses `action` (even where it is unavailable,
    which `evaluate` then reports as unsupported mass)."""
    return _Fixed(action)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate and its bootstrap 95 % interval (NaN where undefined)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        """`{"value": v, "ci95": [low, high]}`, NaN as null."""
        return {"value": _json(self.value), "ci95": [_json(self.low), _json(self.high)]}


@dataclass(frozen=True, slots=True)
class OpeResult:
    """Estimates of the target policy's expected reward per decision, next to the logged one.

    `unsupported_mass` is the target's average probability on actions the logger could not
    take or never took; IPS, SNIPS and DR are blind to it.
    """

    n: int
    logged_reward: Estimate
    ips: Estimate
    snips: Estimate
    dm: Estimate
    dr: Estimate
    effective_sample_size: float
    max_weight: float
    unsupported_mass: float
    warnings: tuple[str, ...]
    target_policy: str
    n_bootstrap: int

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape (see docs/ope.md)."""
        return {
            "n": self.n,
            "logged_reward_mean": _json(self.logged_reward.value),
            "estimates": {
                "ips": self.ips.to_dict(),
                "snips": self.snips.to_dict(),
                "dm": self.dm.to_dict(),
                "dr": self.dr.to_dict(),
            },
            "effective_sample_size": _json(self.effective_sample_size),
            "warnings": list(self.warnings),
            "logged_reward_ci95": [_json(self.logged_reward.low), _json(self.logged_reward.high)],
            "max_weight": _json(self.max_weight),
            "unsupported_mass": _json(self.unsupported_mass),
            "target_policy": self.target_policy,
            "n_bootstrap": self.n_bootstrap,
        }


def _json(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def effective_sample_size(weights: ArrayLike) -> float:
    """Kish's effective sample size (Σw)² / Σw² of importance weights; in [1, n] when some
    weight is positive, 0 when all are 0."""
    w = np.asarray(weights, dtype=np.float64)
    top = float(w.max(initial=0.0))
    if top == 0.0:
        return 0.0
    w = w / top  # scale-free, and keeps w² from underflowing or overflowing
    return float(w.sum()) ** 2 / float(np.dot(w, w))


def evaluate(
    log: BanditLog,
    policy: TargetPolicy,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 500,
    n_folds: int = 5,
    ridge: float = 0.1,
) -> OpeResult:
    """Estimate `policy`'s expected reward per decision on `log` with IPS, SNIPS, DM and DR.

    `rng` draws the cross-fitting folds, then the bootstrap resamples. `n_folds` < 2 fits the
    reward model in-sample. Raises ValidationError if the policy returns invalid probabilities.
    """
    if n_bootstrap < 1:
        raise ConfigError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    if ridge <= 0:
        raise ConfigError(f"ridge must be positive, got {ridge}")
    decisions = log.decisions
    n = len(decisions)
    if n == 0:
        raise ValidationError(f"bandit log {log.source}: no logged decisions to evaluate")
    pi, supported, names, taken = _target_probabilities(log, policy)
    p = np.array([d.propensity for d in decisions])
    r = np.array([d.reward for d in decisions])
    at = np.arange(n)
    w = pi[at, taken] / p

    x = _design([d.context for d in decisions])
    q = _cross_fit(x, taken, r, k=len(names), rng=rng, n_folds=n_folds, lam=ridge)
    dm_i = (pi * q).sum(axis=1)
    dr_i = dm_i + w * (r - q[at, taken])

    # Columns: r, w·r, w, dm_i, dr_i — every estimate is a ratio of their (resampled) sums.
    v = np.column_stack([r, w * r, w, dm_i, dr_i])
    sums = v.sum(axis=0)
    boot = _bootstrap_sums(v, rng, n_bootstrap)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a weighted mean of the rewards: in their range, also where tiny (subnormal)
        # weights round the ratio out of it
        snips_boot = np.clip(boot[:, 1] / boot[:, 2], r.min(), r.max())

    def estimate(value: float, draws: Array) -> Estimate:
        draws = draws[~np.isnan(draws)]
        if math.isnan(value) or draws.size == 0:
            return Estimate(value, math.nan, math.nan)
        low, high = np.percentile(draws, [2.5, 97.5])
        return Estimate(value, float(low), float(high))

    total_w = float(sums[2])
    ess = effective_sample_size(w)
    unsupported = float(np.where(supported, 0.0, pi).sum() / n)
    return OpeResult(
        n=n,
        logged_reward=estimate(float(sums[0]) / n, boot[:, 0] / n),
        ips=estimate(float(sums[1]) / n, boot[:, 1] / n),
        snips=estimate(
            _within(float(sums[1]) / total_w, r) if total_w > 0 else math.nan, snips_boot
        ),
        dm=estimate(float(sums[3]) / n, boot[:, 3] / n),
        dr=estimate(float(sums[4]) / n, boot[:, 4] / n),
        effective_sample_size=ess,
        max_weight=float(w.max()),
        unsupported_mass=unsupported,
        warnings=_warnings(
            n=n, w=w, p=p, pi=pi, supported=supported, names=names, ess=ess, n_folds=n_folds
        ),
        target_policy=policy.name,
        n_bootstrap=n_bootstrap,
    )


def _within(value: float, r: Array) -> float:
    """``value``, a weighted mean of ``r``, kept in their range against rounding."""
    return min(max(value, float(r.min())), float(r.max()))


def _target_probabilities(
    log: BanditLog, policy: TargetPolicy
) -> tuple[Array, NDArray[np.bool_], list[str], NDArray[np.intp]]:
    """Ask the policy about every decision in ts order (teaching a learning policy after each
    answer). Returns π as (n, actions), which (decision, action) pairs the logger could have
    taken, the action names (the log's, then any new ones the policy named) and the logged
    action's column per decision."""
    names = list(log.actions)
    column = {a: j for j, a in enumerate(names)}
    learner = policy if isinstance(policy, LearningPolicy) else None
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    listed_rows: list[int] = []
    listed_cols: list[int] = []
    unlisted: list[int] = []
    for i, d in enumerate(log.decisions):
        if d.actions is None:
            unlisted.append(i)
            available = log.actions
        else:
            available = d.actions
            listed_rows.extend([i] * len(available))
            listed_cols.extend(column[a] for a in available)
        probs = policy.probabilities(d.context, available, d.ts)
        for action, prob in _checked(probs, policy.name, d.line, d.ts).items():
            if action not in column:
                column[action] = len(names)
                names.append(action)
            rows.append(i)
            cols.append(column[action])
            values.append(prob)
        if learner is not None:
            learner.learn(d.context, d.action, d.reward, d.propensity)
    n, k = len(log.decisions), len(names)
    pi = np.zeros((n, k))
    pi[rows, cols] = values
    supported = np.zeros((n, k), dtype=bool)
    supported[listed_rows, listed_cols] = True
    supported[np.ix_(unlisted, [column[a] for a in log.actions])] = True
    taken = np.array([column[d.action] for d in log.decisions], dtype=np.intp)
    supported[:, np.bincount(taken, minlength=k) == 0] = False  # never logged: p unknown
    return pi, supported, names, taken


def _checked(probs: Mapping[str, float], name: str, line: int, ts: int) -> dict[str, float]:
    where = f"line {line}" if line else f"ts {ts}"
    out: dict[str, float] = {}
    for action, p in probs.items():
        try:
            x = float(p)
        except (TypeError, ValueError):
            x = math.nan
        if not isinstance(action, str) or not math.isfinite(x) or x < 0:
            raise ValidationError(
                f"target policy {name} at {where}: probability of {action!r} is {p!r}, "
                "expected a number ≥ 0 for a string action id"
            )
        if x > 0:
            out[action] = x
    total = sum(out.values())
    if abs(total - 1.0) > _PROBABILITY_TOLERANCE:
        raise ValidationError(
            f"target policy {name} at {where}: probabilities sum to {total:.6g}, not 1"
        )
    return {a: x / total for a, x in out.items()}


def _bootstrap_sums(v: Array, rng: np.random.Generator, b: int) -> Array:
    """Column sums of `v` over `b` resamples of its rows with replacement, as a (b, cols) array.
    Each resample is turned into per-row counts, so a chunk is one matrix product."""
    n = v.shape[0]
    out = np.empty((b, v.shape[1]))
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    for start in range(0, b, chunk):
        m = min(chunk, b - start)
        idx = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n)
        out[start : start + m] = counts @ v
    return out


def _design(contexts: Sequence[Context]) -> Array:
    """Design matrix: intercept, standardised numeric features (missing → mean, clipped to
    ±5 sd) and one-hot string features (the most frequent levels; others → all zeros).
    A feature with any string value is treated as a string feature throughout.

    Built from the contexts only (no rewards or actions), so using all rows leaks nothing."""
    n = len(contexts)
    values: dict[str, list[tuple[int, float | str]]] = {}
    for i, ctx in enumerate(contexts):
        for name, value in ctx.items():
            values.setdefault(name, []).append((i, value))
    columns: list[Array] = [np.ones(n)]
    for name in sorted(values):
        pairs = values[name]
        if all(isinstance(v, float | int) for _, v in pairs):
            col = np.full(n, np.nan)
            col[[i for i, _ in pairs]] = [float(v) for _, v in pairs]
            present = col[~np.isnan(col)]
            sd = float(present.std())
            if sd == 0.0:
                continue
            z: Array = np.clip((col - float(present.mean())) / sd, -_CLIP_SD, _CLIP_SD)
            columns.append(np.nan_to_num(z, nan=0.0))
        else:
            levels = Counter(_level(v) for _, v in pairs)
            kept = sorted(levels, key=lambda lv: (-levels[lv], lv))[:_MAX_LEVELS]
            if len(kept) == 1 and len(pairs) == n:
                continue  # constant
            for level in kept:
                col = np.zeros(n)
                col[[i for i, v in pairs if _level(v) == level]] = 1.0
                columns.append(col)
    return np.column_stack(columns)


def _level(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _penalty(d: int, lam: float, penalise_intercept: bool) -> Array:
    penalty = np.full(d, lam)
    if not penalise_intercept:
        penalty[0] = 1e-9 * lam  # all but free, yet keeps the system non-singular
    return np.diag(penalty)


def _ridge(x: Array, y: Array, offset: Array, lam: float, penalise_intercept: bool) -> Array:
    """Coefficients β minimising |y - offset - xβ|² + λ|β|² (intercept optionally free)."""
    a = x.T @ x + _penalty(x.shape[1], lam, penalise_intercept)
    return np.linalg.solve(a, x.T @ (y - offset)).astype(np.float64)


def _logistic(x: Array, y: Array, offset: Array, lam: float, penalise_intercept: bool) -> Array:
    """L2-penalised logistic regression with a fixed offset on the logit, by Newton's method
    (strictly convex, so it converges; the penalty keeps separated data finite)."""
    penalty = _penalty(x.shape[1], lam, penalise_intercept)
    beta = np.zeros(x.shape[1])
    for _ in range(_NEWTON_STEPS):
        mu = _sigmoid(offset + x @ beta)
        grad = x.T @ (mu - y) + penalty @ beta
        hess = (x * (mu * (1.0 - mu))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return beta


def _sigmoid(z: Array) -> Array:
    out: Array = 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
    return out


def _fit_predict(
    x_fit: Array,
    a_fit: NDArray[np.intp],
    r_fit: Array,
    x_pred: Array,
    *,
    k: int,
    lam: float,
    binary: bool,
) -> Array:
    """q̂ for every row of `x_pred` and every action: a model pooled over actions plus, per
    action, a model of what the pooled one misses, penalised (intercept included) so that an
    action with little data stays close to the pooled model. Logistic for 0/1 rewards,
    linear otherwise."""
    low, high = float(r_fit.min()), float(r_fit.max())
    if low == high:
        return np.full((len(x_pred), k), low)
    fit = _logistic if binary else _ridge
    pooled = fit(x_fit, r_fit, np.zeros(len(r_fit)), lam, False)
    base = x_fit @ pooled
    coef = np.repeat(pooled[:, None], k, axis=1)
    for a in np.unique(a_fit):
        rows = a_fit == a
        coef[:, a] += fit(x_fit[rows], r_fit[rows], base[rows], lam, True)
    z = x_pred @ coef
    pred: Array = _sigmoid(z) if binary else np.clip(z, low, high)
    return pred


def _cross_fit(
    x: Array,
    taken: NDArray[np.intp],
    r: Array,
    *,
    k: int,
    rng: np.random.Generator,
    n_folds: int,
    lam: float,
) -> Array:
    n = len(r)
    binary = bool(np.isin(r, (0.0, 1.0)).all())
    folds = min(n_folds, n)
    if folds < 2:
        return _fit_predict(x, taken, r, x, k=k, lam=lam, binary=binary)
    fold = rng.permutation(n) % folds
    q = np.empty((n, k))
    for f in range(folds):
        held = fold == f
        q[held] = _fit_predict(
            x[~held], taken[~held], r[~held], x[held], k=k, lam=lam, binary=binary
        )
    return q


def _warnings(
    *,
    n: int,
    w: Array,
    p: Array,
    pi: Array,
    supported: NDArray[np.bool_],
    names: Sequence[str],
    ess: float,
    n_folds: int,
) -> tuple[str, ...]:
    out: list[str] = []
    if n < SMALL_N:
        out.append(
            f"only {n} logged decisions: estimates are noisy and the bootstrap intervals "
            "unreliable; collect more data before trusting them"
        )
    off_support = np.where(supported, 0.0, pi)
    mass = float(off_support.sum() / n)
    if mass > 0:
        per_action = off_support.sum(axis=0)
        worst = [names[j] for j in np.argsort(-per_action) if per_action[j] > 0][:5]
        out.append(
            f"the target puts {mass:.1%} of its probability on actions the logging policy "
            f"could not take or never took ({', '.join(worst)}): IPS, SNIPS and DR cannot see "
            "that part (biased towards 0), DM only extrapolates to it"
        )
    total = float(w.sum())
    if total == 0:
        out.append(
            "the target never gives probability to a logged action (all importance weights "
            "are 0): IPS is 0 by construction, SNIPS is undefined and DR equals DM"
        )
        return tuple(out)
    agree = w > 0
    tiny = agree & (p < TINY_PROPENSITY)
    if tiny.any():
        out.append(
            f"{int(tiny.sum())} decisions the target would repeat had logging propensity below "
            f"{TINY_PROPENSITY} (lowest {float(p[tiny].min()):.3g}): support is poor there"
        )
    max_w = float(w.max())
    if n >= SMALL_N and max_w > HEAVY_WEIGHT_SHARE * total:
        out.append(
            f"one decision carries {max_w / total:.1%} of the total importance weight "
            f"(max weight {max_w:.3g}): IPS and DR hinge on a few decisions"
        )
    if ess < LOW_ESS_FRACTION * n:
        out.append(
            f"effective sample size {ess:.1f} is below {LOW_ESS_FRACTION:.0%} of the {n} "
            "decisions: the target differs a lot from the logging policy; prefer DR or SNIPS "
            "and read the intervals as optimistic"
        )
    if n_folds < 2:
        out.append("reward model fitted in-sample (n_folds < 2): DM and DR may be optimistic")
    return tuple(out)
