"""The specialised DecisionRecord encoder writes exactly the codec's bytes."""

from __future__ import annotations

import math

import pytest

from rtim.bench.workload import WorkloadSpec, generate
from rtim.core.engine import StepContext
from rtim.core.events import KIND_BY_TOPIC, make_event
from rtim.core.learning import ModelSet
from rtim.core.profile import Profile, new_profile
from rtim.errors import ValidationError
from rtim.serde.codec import Codec
from rtim.serde.fastencode import DecisionRecordEncoder, OutputEncoder
from rtim.settings import Settings
from rtim.worker.service import build_engine, load_configured_strategy


def decision_records(events: int = 4000) -> list[dict[str, object]]:
    settings = Settings()
    strategy = load_configured_strategy(settings)
    engine = build_engine(settings, strategy, ModelSet())
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    spec = WorkloadSpec(events, 300, 3, 1_790_000_000_000, offers=offers)
    profiles: dict[str, Profile] = {}
    records: list[dict[str, object]] = []
    offsets: dict[str, int] = {}
    for n, item in enumerate(generate(spec)):
        kind = KIND_BY_TOPIC[item.topic]
        offsets[kind] = offsets.get(kind, -1) + 1
        event = make_event(kind, item.record, offsets[kind])
        step = engine.on_event(
            profiles.get(event.customer_id) or new_profile(event.customer_id),
            event,
            StepContext(n % 6, dict(offsets)),
        )
        profiles[event.customer_id] = step.profile
        records.extend(e.record for e in step.emits if e.schema == "DecisionRecord")
    return records


def test_byte_identical_to_the_codec_on_real_decision_records() -> None:
    codec = Codec()
    fast = DecisionRecordEncoder(codec)
    records = decision_records()
    assert len(records) > 200
    for record in records:
        assert fast.encode(record) == codec.encode("DecisionRecord", record)
    # every record decodes back to itself through the normal reader
    _name, back = codec.decode(fast.encode(records[0]), expected="DecisionRecord")
    assert back["decision"]["decision_id"] == records[0]["decision"]["decision_id"]  # type: ignore[index]


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**40,
        2**63 - 1,
        -(2**63),
        0.5,
        -1e300,
        math.inf,
        "",
        "ü€",
        "x" * 300,
    ],
)
def test_every_feature_value_kind(value: object) -> None:
    codec = Codec()
    record = decision_records(800)[0]
    record = {**record, "features": {"f": value, "g": 1}}
    assert DecisionRecordEncoder(codec).encode(record) == codec.encode("DecisionRecord", record)


def test_unusual_values_are_refused_so_the_caller_falls_back() -> None:
    record = decision_records(800)[0]
    with pytest.raises(TypeError):
        DecisionRecordEncoder(Codec()).encode({**record, "features": {"f": [1, 2]}})


def test_a_decision_and_its_record_share_one_encoding_of_the_body() -> None:
    codec = Codec()
    fast = DecisionRecordEncoder(codec)
    records = decision_records(800)
    for record in records:
        decision = record["decision"]
        assert fast.encode_decision(decision) == codec.encode("Decision", decision)  # type: ignore[arg-type]
        assert fast.encode(record) == codec.encode("DecisionRecord", record)
    # a record of another decision than the one encoded last does not reuse its body
    first, second = records[0], records[1]
    fast.encode_decision(first["decision"])  # type: ignore[arg-type]
    assert fast.encode(second) == codec.encode("DecisionRecord", second)


def test_remembered_feature_values_keep_their_type() -> None:
    # True == 1 and hash(True) == hash(1): the memo of encoded (name, value) pairs must not
    # write one as the other
    codec = Codec()
    fast = DecisionRecordEncoder(codec)
    record = decision_records(800)[0]
    for value in (1, True, 1, 0, False, 0, None, "1", 1.0, True):
        variant = {**record, "features": {"f": value}}
        assert fast.encode(variant) == codec.encode("DecisionRecord", variant), value


def test_the_memos_stop_growing_at_their_limit() -> None:
    codec = Codec()
    fast = DecisionRecordEncoder(codec, memo_limit=10)
    record = decision_records(800)[0]
    for n in range(50):
        variant = {**record, "features": {"n": n, "s": str(n)}}
        assert fast.encode(variant) == codec.encode("DecisionRecord", variant)
    assert len(fast._pairs) == 10
    # feature names are data too (context.<name> comes from the request), and so are the
    # names of input offsets to the encoder
    for n in range(50):
        variant = {**record, "features": {f"context.k{n}": 0.5}, "input_offsets": {f"i{n}": n}}
        assert fast.encode(variant) == codec.encode("DecisionRecord", variant)
    assert len(fast._keys) == 10


def test_a_candidate_dict_seen_again_is_written_from_memory_with_the_same_bytes() -> None:
    codec = Codec()
    fast = DecisionRecordEncoder(codec)
    records = decision_records(800)
    shared = records[0]["candidates"][0]  # type: ignore[index]
    for record in records[:50]:
        variant = {**record, "candidates": [shared, *record["candidates"]]}  # type: ignore[misc]
        assert fast.encode(variant) == codec.encode("DecisionRecord", variant)
    assert fast._same[id(shared)][0] is shared


def test_the_output_encoder_writes_the_codecs_bytes_for_every_output() -> None:
    codec = Codec()
    outputs = OutputEncoder(codec)
    records = decision_records(800)
    for record in records[:40]:
        decision = record["decision"]
        assert outputs.encode("Decision", decision) == codec.encode("Decision", decision)  # type: ignore[arg-type]
        assert outputs.encode("DecisionRecord", record) == codec.encode("DecisionRecord", record)
    # values the specialised encoder refuses go to the codec, which judges them
    beyond_a_long = {**records[0], "features": {"f": 2**70}}  # the codec writes a double
    assert outputs.encode("DecisionRecord", beyond_a_long) == codec.encode(
        "DecisionRecord", beyond_a_long
    )
    with pytest.raises(ValidationError):
        outputs.encode("DecisionRecord", {**records[0], "features": {"f": [1]}})
