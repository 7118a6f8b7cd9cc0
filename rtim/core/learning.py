"""Online response models: River learns, deciders score with a fast linear view of it.

One model per offer (`model_id(offer)` = ``offer.<offer_id>``), shared by the offer's channels:
the channel enters the model as a one-hot feature and as a cross with the customer's segment.
Why per offer: offers differ most in *who* responds (a credit card and a cart reminder attract
different customers), which a shared additive model cannot express; channels differ mostly by
an additive preference, which one model per offer learns from all of its channels' responses —
six times the data of a model per offer and channel, so it leaves the prior sooner.

The learner owns the River pipeline (`StandardScaler | LogisticRegression`, progressive ROC AUC
and log loss measured before each `learn_one`). A decider never runs River on the hot path: it
scores with `LinearScorer`, the same function folded into one weight pair per feature,
`z = b + Σ_{k∈x} (a_k·x_k + c_k)`, which equals River's prediction up to float rounding.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from river import linear_model, metrics, optim, preprocessing

from rtim.core.events import event_hash
from rtim.core.features import FeatureValue
from rtim.errors import RtimError

__all__ = [
    "MODEL_FORMAT",
    "LinearScorer",
    "ModelIntegrityError",
    "ModelSet",
    "ResponseModel",
    "model_id_for",
    "sign_state",
    "vectorize",
    "verify_state",
]

MODEL_FORMAT: Final = "river-pickle/1"
_LEARNING_RATE: Final = 0.05
RECENT_EXAMPLES: Final = 256  # > the examples of one model in one worker batch, in practice


class ModelIntegrityError(RtimError):
    """A model snapshot whose signature does not match: it is never unpickled."""


def model_id_for(offer_id: str, channel: str) -> str:
    """The model that scores `offer_id` on any channel."""
    return "offer." + offer_id


def vectorize(x: Mapping[str, FeatureValue], channel: str) -> dict[str, float]:
    """Turn a model-feature dict into River's input: numbers squashed, strings one-hot."""
    return _with_channel(_base_vector(x), x, channel)


def _with_channel(
    base: dict[str, float], x: Mapping[str, FeatureValue], channel: str
) -> dict[str, float]:
    return {**base, **dict.fromkeys(_channel_indicators(x, channel), 1.0)}


def _channel_indicators(x: Mapping[str, FeatureValue], channel: str) -> tuple[str, ...]:
    """The one-hot names the channel adds: the channel, and its cross with the segment."""
    segment = x.get("segment")
    if segment is None:
        return ("channel=" + channel,)
    return ("channel=" + channel, f"channel={channel}|segment={segment}")


def _base_vector(x: Mapping[str, FeatureValue]) -> dict[str, float]:
    out: dict[str, float] = {}
    # once per scored decision (15 model features): the plain types by identity first
    log1p, copysign, isfinite = math.log1p, math.copysign, math.isfinite
    for name, value in x.items():
        kind = type(value)
        if kind is str:
            out[f"{name}={value}"] = 1.0
        elif value is None:
            continue
        elif kind is bool:
            out[name] = 1.0 if value else 0.0
        elif kind is float or kind is int or isinstance(value, int | float):
            # amounts and durations are heavy-tailed: a signed log keeps one whale from owning
            # the scaler
            number = float(value)
            if isfinite(number):
                out[name] = copysign(log1p(abs(number)), number)
        else:
            out[f"{name}={value}"] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class LinearScorer:
    """River's scaler + logistic regression folded into per-feature (a, c) pairs."""

    intercept: float
    terms: Mapping[str, tuple[float, float]]
    examples: int

    @classmethod
    def from_model(cls, model: ResponseModel) -> LinearScorer:
        """Fold the current state of a learner's model."""
        means, variances = model.scaler.means, model.scaler.vars
        terms: dict[str, tuple[float, float]] = {}
        for name, weight in model.lr.weights.items():
            if _is_indicator(name):
                terms[name] = (weight, 0.0)
                continue
            var = variances.get(name, 0.0)
            if var > 0:
                a = weight / math.sqrt(var)
                terms[name] = (a, -a * means.get(name, 0.0))
            else:
                terms[name] = (0.0, 0.0)  # River scales a constant feature to 0
        return cls(float(model.lr.intercept), terms, model.examples)

    def predict(self, x: Mapping[str, float]) -> float:
        """P(response) for a vectorized input."""
        return self.predict_with(x, ())

    def predict_with(self, base: Mapping[str, float], indicators: tuple[str, ...]) -> float:
        """`predict` of ``base`` with the one-hot ``indicators`` (value 1.0) added, without
        building that dict: the same terms summed in the same order, so the same float."""
        z = self.intercept
        get = self.terms.get
        for name, value in base.items():
            term = get(name)
            if term is not None:
                z += term[0] * value + term[1]
        for name in indicators:
            term = get(name)
            if term is not None:
                z += term[0] + term[1]  # value 1.0: the same float as term[0] * 1.0
        if z < -30:
            return math.exp(z)
        return 1.0 / (1.0 + math.exp(-z))


def _is_indicator(name: str) -> bool:
    return "=" in name


@dataclass
class ResponseModel:
    """One River model with its progressive metrics (measured before each learn).

    Numbers are standardised by River's `StandardScaler`; one-hot indicators are not (a
    scaler only sees the indicators that are present, always 1.0, and would zero them).
    """

    model_id: str
    scaler: Any = field(default_factory=preprocessing.StandardScaler)
    lr: Any = field(default=None)
    auc: Any = field(default_factory=metrics.ROCAUC)
    log_loss: Any = field(default_factory=metrics.LogLoss)
    examples: int = 0
    positives: int = 0
    training_offset: int = -1  # offset of the last training record learned (exactly-once)
    # ids of recently learned examples: a worker that crashed after emitting an example but
    # before persisting its state emits it again (same id); it must not be learned twice
    recent_examples: dict[int, None] = field(default_factory=dict)  # 64-bit id hashes

    def already_learned(self, example_id: str) -> bool:
        """True if this example id was learned recently (within the last RECENT_EXAMPLES)."""
        return event_hash(example_id) in self.recent_examples

    def remember(self, example_id: str) -> None:
        """Record a learned example id, forgetting the oldest beyond RECENT_EXAMPLES."""
        self.recent_examples[event_hash(example_id)] = None
        if len(self.recent_examples) > RECENT_EXAMPLES:
            del self.recent_examples[next(iter(self.recent_examples))]

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = linear_model.LogisticRegression(optimizer=optim.SGD(_LEARNING_RATE), l2=1e-4)

    def _scaled(self, x: Mapping[str, float]) -> dict[str, float]:
        numbers = {k: v for k, v in x.items() if not _is_indicator(k)}
        out: dict[str, float] = self.scaler.transform_one(numbers) if numbers else {}
        out.update((k, v) for k, v in x.items() if _is_indicator(k))
        return out

    def predict(self, x: Mapping[str, float]) -> float:
        """P(response) by River itself (the learner's view; deciders use LinearScorer)."""
        return float(self.lr.predict_proba_one(self._scaled(x)).get(True, 0.5))

    def learn(self, x: Mapping[str, float], reward: float) -> float:
        """Score `x`, update the metrics with that score, then learn. Returns the score."""
        label = reward > 0
        p = self.predict(x)
        self.auc.update(label, p)
        self.log_loss.update(label, p)
        self.scaler.learn_one({k: v for k, v in x.items() if not _is_indicator(k)})
        self.lr.learn_one(self._scaled(x), label)
        self.examples += 1
        self.positives += int(label)
        return p

    def metrics(self) -> dict[str, float]:
        """Progressive metrics as plain numbers."""
        return {
            "examples": float(self.examples),
            "positives": float(self.positives),
            "auc": float(self.auc.get()),
            "log_loss": float(self.log_loss.get()),
        }

    def to_bytes(self) -> bytes:
        """The learner's full state (River objects pickle)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(data: bytes) -> ResponseModel:
        """Inverse of `to_bytes`; only call on verified bytes (see `verify_state`)."""
        model = pickle.loads(data)  # bytes verified by HMAC before this call
        if not isinstance(model, ResponseModel):
            raise ModelIntegrityError("snapshot does not hold a ResponseModel")
        return model


def sign_state(key: bytes, model_id: str, version: int, state: bytes) -> str:
    """HMAC-SHA256 over the identity and bytes of a snapshot."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(f"{model_id}\x00{version}\x00".encode())
    mac.update(state)
    return mac.hexdigest()


def verify_state(key: bytes, model_id: str, version: int, state: bytes, signature: str) -> None:
    """Raise ModelIntegrityError unless `signature` matches."""
    expected = sign_state(key, model_id, version, state)
    if not hmac.compare_digest(expected, signature):
        raise ModelIntegrityError(
            f"model {model_id} v{version}: signature mismatch (wrong RTIM_MODEL_KEY or tampered)"
        )


class ModelSet:
    """The scorers a decider uses, by model id; implements the decider's models protocol."""

    def __init__(
        self, scorers: Mapping[str, LinearScorer] | None = None, version: str = ""
    ) -> None:
        self._scorers = dict(scorers or {})
        self.version = version or ("prior" if not self._scorers else "m0")
        # a decision scores many offers and channels with the same features: vectorize once
        self._last_x: Mapping[str, FeatureValue] | None = None
        self._last_base: dict[str, float] = {}

    def model_id(self, offer_id: str, channel: str) -> str:
        """The model that scores this offer on this channel."""
        return model_id_for(offer_id, channel)

    def predict(
        self, offer_id: str, channel: str, x: Mapping[str, FeatureValue]
    ) -> tuple[float, int] | None:
        """(P(response), examples learned), or None while the offer has no model."""
        scorer = self._scorers.get(model_id_for(offer_id, channel))
        if scorer is None:
            return None
        if x is not self._last_x:
            self._last_x, self._last_base = x, _base_vector(x)
        base = self._last_base
        indicators = _channel_indicators(x, channel)
        if indicators[0] in base or indicators[-1] in base:
            # a feature's one-hot already (the request's channel feature): the dict the
            # scorer means holds it once, where the base has it
            if any(base.get(n, 1.0) != 1.0 for n in indicators):
                return scorer.predict(_with_channel(base, x, channel)), scorer.examples
            indicators = tuple(n for n in indicators if n not in base)
        return scorer.predict_with(base, indicators), scorer.examples

    def with_scorer(self, model_id: str, scorer: LinearScorer, version: str) -> ModelSet:
        """A new set with one model replaced (sets are swapped, never mutated)."""
        return ModelSet({**self._scorers, model_id: scorer}, version)

    def __len__(self) -> int:
        return len(self._scorers)
