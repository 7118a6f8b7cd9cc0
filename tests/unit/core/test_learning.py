"""Response models: the folded scorer equals River, learning learns, snapshots are signed."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtim.core.learning import (
    LinearScorer,
    ModelIntegrityError,
    ModelSet,
    ResponseModel,
    sign_state,
    vectorize,
    verify_state,
)

feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 10**6),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["gold", "silver", "basic"]),
)


def _trained(seed: int, n: int = 300) -> ResponseModel:
    rng = random.Random(seed)
    model = ResponseModel("offer.x")
    for _ in range(n):
        x = {
            "age": rng.randint(18, 80),
            "segment": rng.choice(["a", "b"]),
            "vip": rng.random() < 0.2,
        }
        p = 0.1 + 0.6 * (x["segment"] == "a")
        model.learn(vectorize(x, rng.choice(["email", "web"])), float(rng.random() < p))
    return model


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["age", "segment", "vip", "cart", "new"]), feature_values))
def test_folded_scorer_equals_river(x: dict[str, object]) -> None:
    model = _trained(1)
    vec = vectorize(x, "email")  # type: ignore[arg-type]
    river_p = model.predict(vec)
    assert LinearScorer.from_model(model).predict(vec) == pytest.approx(river_p, abs=1e-9)


_CHANNELS = ["email", "web", "sms"]
# the last two: names of the channel's one-hots as numeric features (a snapshot rtim never
# builds; a caller of the public API may): the scorer's dict holds 1.0 there
_SNAPSHOT_NAMES = ["age", "segment", "vip", "cart", "channel", "trigger", "attr.x"]
_SNAPSHOT_NAMES += ["channel=web", "channel=sms|segment=gold"]
snapshot_values = st.one_of(
    feature_values,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**62), 2**62),
    st.sampled_from(_CHANNELS),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(_SNAPSHOT_NAMES), snapshot_values),
    st.lists(st.sampled_from(_CHANNELS), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
def test_a_model_set_scores_exactly_what_the_scorer_gives_the_vectorized_snapshot(
    x: dict[str, object], channels: list[str], rng: random.Random
) -> None:
    # the decider's path (one base vector per snapshot, the channel's one-hots added without a
    # copy) must give the very float the documented vectorize + predict gives, for each channel
    # of one snapshot in turn, also where the request's channel feature is the candidate's
    names = [*vectorize(x, "web"), *(f"channel={c}" for c in _CHANNELS), "age", "cart"]  # type: ignore[arg-type]
    names += [f"channel={c}|segment={s}" for c in _CHANNELS for s in ("gold", "silver", "basic")]
    terms = {n: (rng.uniform(-2, 2), rng.uniform(-1, 1)) for n in names if rng.random() < 0.8}
    scorer = LinearScorer(rng.uniform(-1, 1), terms, 7)
    models = ModelSet({"offer.x": scorer}, "m1")
    for channel in channels:
        assert models.predict("x", channel, x) == (scorer.predict(vectorize(x, channel)), 7)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), snapshot_values), st.sampled_from(_CHANNELS))
def test_vectorize_squashes_numbers_and_one_hots_the_rest(
    x: dict[str, object], channel: str
) -> None:
    expected: dict[str, float] = {}
    for name, value in x.items():
        if isinstance(value, bool):
            expected[name] = float(value)
        elif isinstance(value, int | float):
            if math.isfinite(value):
                expected[name] = math.copysign(math.log1p(abs(value)), value)
        elif value is not None:
            expected[f"{name}={value}"] = 1.0
    expected["channel=" + channel] = 1.0
    if x.get("segment") is not None:
        expected[f"channel={channel}|segment={x['segment']}"] = 1.0
    got = vectorize(x, channel)  # type: ignore[arg-type]
    assert list(got.items()) == list(expected.items())  # the same floats in the same order


def test_learning_separates_responders_from_the_rest() -> None:
    model = _trained(2, n=3000)
    assert model.metrics()["auc"] > 0.7
    models = ModelSet({"offer.x": LinearScorer.from_model(model)}, "m1")
    p_a = models.predict("x", "email", {"age": 40, "segment": "a", "vip": False})
    p_b = models.predict("x", "email", {"age": 40, "segment": "b", "vip": False})
    assert p_a is not None
    assert p_b is not None
    assert p_a[0] > 0.5 > p_b[0]
    assert p_a[1] == 3000


def test_unknown_offer_has_no_model() -> None:
    assert ModelSet().predict("nope", "web", {}) is None
    assert ModelSet().version == "prior"


def test_vectorize_one_hot_and_squash() -> None:
    vec = vectorize({"segment": "gold", "amount": 1e6, "vip": True, "gone": None}, "sms")
    assert vec["segment=gold"] == 1.0
    assert vec["channel=sms"] == 1.0
    assert vec["channel=sms|segment=gold"] == 1.0
    assert vec["vip"] == 1.0
    assert "gone" not in vec
    assert 13 < vec["amount"] < 14  # log1p(1e6)


def test_snapshot_roundtrip_and_signature() -> None:
    model = _trained(3)
    state = model.to_bytes()
    signature = sign_state(b"k", model.model_id, 4, state)
    verify_state(b"k", model.model_id, 4, state, signature)
    restored = ResponseModel.from_bytes(state)
    assert restored.examples == model.examples
    with pytest.raises(ModelIntegrityError):
        verify_state(b"other", model.model_id, 4, state, signature)
    with pytest.raises(ModelIntegrityError):
        verify_state(b"k", model.model_id, 5, state, signature)
    with pytest.raises(ModelIntegrityError):
        verify_state(b"k", model.model_id, 4, state[:-1] + b"\x00", signature)
