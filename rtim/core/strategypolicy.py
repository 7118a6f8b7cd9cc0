"""A strategy file as a target policy over a generic bandit log (for off-policy evaluation).

Each logged decision is replayed through the real `decide` as an inbound request: the logged
context becomes the feature snapshot (names the strategy knows keep their meaning, others are
available as ``context.<name>``), the logged actions that are offers of the strategy are the
candidates, and the policy's probability of each action is the propensity `decide` computes —
exploration and control group included. A logged action that is not an offer of the strategy
gets probability 0; "no action" goes to the action named ``none`` when the log has one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rtim.core.decisioning import DecisionTrigger, decide
from rtim.core.features import FEATURE_NAMES, Features
from rtim.core.profile import new_profile
from rtim.core.strategy import Strategy

__all__ = ["NO_ACTION", "StrategyPolicy"]

NO_ACTION = "none"


@dataclass
class StrategyPolicy:
    """`decide` over logged contexts, on the inbound channel that serves most logged actions."""

    strategy: Strategy
    channel: str | None = None
    seed: int = 0
    _calls: int = field(default=0, init=False)

    @property
    def name(self) -> str:
        """Shown in reports."""
        return f"strategy({self.strategy.version})"

    def _channel_for(self, actions: Sequence[str]) -> str:
        if self.channel is not None:
            return self.channel
        inbound = [name for name, ch in self.strategy.channels.items() if not ch.outbound]
        counts = {
            name: sum(1 for a in actions if self.strategy.has_offer(a)
                      and name in self.strategy.offer(a).channels)
            for name in inbound
        }  # fmt: skip
        return max(inbound, key=lambda n: (counts[n], -inbound.index(n)))

    def probabilities(
        self, context: Mapping[str, float | str], actions: Sequence[str], ts: int
    ) -> Mapping[str, float]:
        """The strategy's probability of each logged action in this context."""
        self._calls += 1
        features: Features = {name: None for name in FEATURE_NAMES}
        for name, value in context.items():
            key = name if name in FEATURE_NAMES or "." in name else f"context.{name}"
            features[key] = value
        channel = self._channel_for(actions)
        features["channel"] = channel
        trigger = DecisionTrigger("request", f"bt-{ts}-{self._calls}", (channel,), None, 1)
        digest = hashlib.blake2b(f"{self.seed}:{trigger.id}".encode(), digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "little"))
        result = decide(new_profile("backtest"), features, trigger, self.strategy, None, ts, rng)
        probs = dict.fromkeys(actions, 0.0)
        chosen = 0.0
        for candidate in result.candidates:
            if candidate.offer_id in probs and candidate.eligible:
                probs[candidate.offer_id] = candidate.propensity
                chosen += candidate.propensity
        rest = max(0.0, 1.0 - chosen)
        if rest > 1e-12:
            if NO_ACTION in probs:
                probs[NO_ACTION] += rest
            else:
                probs[NO_ACTION] = rest  # counted as unsupported mass by the estimators
        return probs
