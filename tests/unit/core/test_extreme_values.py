"""Valid but extreme input (huge amounts, absurd attribute numbers) never breaks a profile.

The contract only asks amounts to be finite and >= 0, and attributes are free text: a profile
built from such values must still be stored (msgpack) and every output encoded (Avro). A
profile that cannot be stored would stop the worker at every restart on the same record.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtim.core.decisioning import StrategyDecider
from rtim.core.engine import Engine, StepContext
from rtim.core.events import make_event
from rtim.core.profile import Profile, decode_profile, encode_profile, new_profile
from rtim.core.strategy import parse_strategy
from rtim.paths import contract_dir
from rtim.serde.codec import Codec

T0 = 1_741_078_800_000
STRATEGY = parse_strategy((contract_dir("strategies") / "example.yaml").read_text(), "example.yaml")
CODEC = Codec()

_amounts = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
_numbers = st.one_of(_amounts, st.floats(allow_nan=False, allow_infinity=False), st.integers())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=_amounts,
    price=_amounts,
    quantity=st.integers(0, 2**31 - 1),
    age=_numbers,
    value=_amounts,
)
def test_a_profile_with_extreme_values_is_stored_and_its_decisions_encode(
    amount: float, price: float, quantity: int, age: float | int, value: float
) -> None:
    engine = Engine(StrategyDecider(STRATEGY, None, seed=0))
    profile: Profile = new_profile("c1")
    ctx = StepContext(partition=0, input_offsets={})
    steps: list[tuple[str, dict[str, Any]]] = [
        ("profile", {"type": "attributes", "attributes": {"age": repr(age), "segment": "x"}}),
        ("profile", {"type": "consent", "channel": "email", "granted": True}),
        ("txn", {"transaction_id": "t1", "type": "payment", "amount": amount,
                 "currency": "EUR", "status": "approved", "category": "salary"}),
        ("txn", {"transaction_id": "t2", "type": "purchase", "amount": amount,
                 "currency": "EUR", "status": "approved"}),
        ("click", {"session_id": "s", "type": "add_to_cart", "product_id": "p",
                   "price": price, "quantity": quantity, "category": "travel"}),
        ("request", {"request_id": "r1", "channel": "web", "placement": "home"}),
        ("request", {"request_id": "r2", "channel": "email", "placement": "home"}),
    ]  # fmt: skip
    decision_ids = []
    for n, (kind, fields) in enumerate(steps, start=1):
        record = {"event_id": f"e{n}", "customer_id": "c1", "ts": T0 + n * 1000, **fields}
        result = engine.on_event(profile, make_event(kind, record, n), ctx)
        profile = result.profile
        for emit in result.emits:
            CODEC.encode(emit.schema, emit.record)
            if emit.schema == "Decision":
                decision_ids.append(emit.record["decision_id"])
        decode_profile(encode_profile(profile))  # stored and read back
    for n, decision_id in enumerate(decision_ids, start=len(steps) + 1):
        outcome = {"event_id": f"e{n}", "customer_id": "c1", "ts": T0 + n * 1000,
                   "decision_id": decision_id, "channel": "web", "offer_id": "gold_card",
                   "type": "convert", "value": value}  # fmt: skip
        result = engine.on_event(profile, make_event("outcome", outcome, n), ctx)
        profile = result.profile
        for emit in result.emits:
            CODEC.encode(emit.schema, emit.record)
        encode_profile(profile)
