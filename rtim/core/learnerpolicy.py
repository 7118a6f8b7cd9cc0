"""rtim's online learner as a policy over a generic bandit log (for off-policy evaluation).

What a user gets by deploying rtim on such traffic: one River model per action, scored on the
context, chosen epsilon-greedily, learning progressively from the logged outcomes (predict,
then learn, in time order). Binary rewards use the same logistic response model as the engine;
other rewards (revenue) a River linear regression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from river import linear_model, optim, preprocessing

from rtim.core.learning import ResponseModel, vectorize

__all__ = ["OnlineLearnerPolicy"]


@dataclass
class _Regressor:
    scaler: Any = field(default_factory=preprocessing.StandardScaler)
    lr: Any = field(
        default_factory=lambda: linear_model.LinearRegression(optimizer=optim.SGD(0.01))
    )

    def predict(self, x: Mapping[str, float]) -> float:
        return float(self.lr.predict_one(self.scaler.transform_one(dict(x))))

    def learn(self, x: Mapping[str, float], reward: float) -> None:
        self.scaler.learn_one(dict(x))
        self.lr.learn_one(self.scaler.transform_one(dict(x)), reward)


@dataclass
class OnlineLearnerPolicy:
    """Epsilon-greedy over per-action online models; `binary` picks the model family."""

    epsilon: float = 0.05
    binary: bool = True
    _models: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Shown in reports."""
        return f"learner(epsilon={self.epsilon})"

    def _model(self, action: str) -> Any:
        model = self._models.get(action)
        if model is None:
            model = ResponseModel(action) if self.binary else _Regressor()
            self._models[action] = model
        return model

    def probabilities(
        self, context: Mapping[str, float | str], actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        """Epsilon-greedy: the best predicted action gets 1 - eps + eps/k, the others eps/k."""
        del ts
        x = vectorize(context, "any")
        scores = {a: self._model(a).predict(x) if a in self._models else math.inf for a in actions}
        # an action never tried yet scores +inf: optimism, so each is tried once
        best = max(actions, key=lambda a: (scores[a], -actions.index(a)))
        share = self.epsilon / len(actions)
        probs = dict.fromkeys(actions, share)
        probs[best] += 1.0 - self.epsilon
        return probs

    def learn(
        self, context: Mapping[str, float | str], action: str, reward: float, propensity: float
    ) -> None:
        """Learn the logged outcome of the logged action."""
        del propensity
        self._model(action).learn(vectorize(context, "any"), reward)
