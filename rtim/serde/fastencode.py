"""A specialised encoder for the hottest output records, `DecisionRecord` and `Decision`.

The decision log record is the largest thing the worker writes for every decision: the feature
snapshot (a map of a five-branch union) and every candidate. fastavro spends most of that time
resolving the union branch of each feature value and re-encoding candidates that are identical
from one decision to the next (most are removed by the same gate). This encoder writes the same
bytes — Avro binary is canonical, and a test checks byte equality against `Codec.encode` — with
a `type(value)` dispatch for the features, a memo of encoded candidates and one of encoded
feature (name, value) pairs other than floats: 117 → 41 µs per record measured on the bench
workload, the feature map 38-44 → 17-18 µs with the pair memo (docs/performance.md). A
Decision and the DecisionRecord that carries the same dict share one encoding of its body;
the body and candidates not seen before are written by the generated writers (fastwrite).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from fastavro import parse_schema, schemaless_writer

from rtim.serde.codec import Codec
from rtim.serde.fastwrite import compile_writer
from rtim.serde.fastwrite import zigzag as _varint

__all__ = ["DecisionRecordEncoder", "OutputEncoder"]

_PACK_DOUBLE: Final = struct.Struct("<d").pack
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_SAME_LIMIT: Final = 4096  # candidate dicts remembered by identity


def _string(s: str) -> bytes:
    data = s.encode()
    return _varint(len(data)) + data


class DecisionRecordEncoder:
    """`Codec.encode` of DecisionRecord and Decision for single-object framing, faster.

    Not thread-safe. Records must not change between being encoded as a Decision and as the
    `decision` of a DecisionRecord, nor a candidate dict once encoded (the engine builds them
    once and never mutates them).
    """

    def __init__(self, codec: Codec, memo_limit: int = 50_000) -> None:
        header, parsed = codec.writer("DecisionRecord")
        self._header = header
        fields = {f["name"]: f["type"] for f in parsed["fields"]}
        named = parsed.get("__named_schemas", {})
        self._decision_header = codec.writer("Decision")[0]
        self._last_decision: tuple[Mapping[str, Any], bytes] | None = None  # (record, body)
        self._codec = codec
        candidate: Any = parse_schema(fields["candidates"]["items"], named_schemas=dict(named))
        self._candidate = candidate
        self._candidate_writer = compile_writer(candidate)
        self._buffer = io.BytesIO()
        self._memo: dict[tuple[Any, ...], bytes] = {}
        self._memo_limit = memo_limit
        # candidate dicts seen again by content, by identity: a decider shares the record of a
        # candidate removed for a fixed reason between decisions. The entry holds the dict, so
        # its id cannot be reused while remembered.
        self._same: dict[int, tuple[Mapping[str, Any], bytes]] = {}
        self._keys: dict[str, bytes] = {}
        # encoded (name, value) of the feature map for values other than floats, most of
        # which repeat from one decision to the next: (type, bytes) since True == 1
        self._pairs: dict[tuple[str, Any], tuple[type, bytes]] = {}

    def _write(self, schema: Any, datum: Any) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        schemaless_writer(buffer, schema, datum)
        return buffer.getvalue()

    def _key(self, name: str) -> bytes:
        """The encoded map key ``name``, remembered (names of context features are data:
        the memo is bounded like the others)."""
        key = _string(name)
        if len(self._keys) < self._memo_limit:
            self._keys[name] = key
        return key

    def _features(self, features: Mapping[str, Any]) -> bytes:
        # map of union [null, boolean, long, double, string]: branch index, then the value
        if not features:
            return b"\x00"
        keys, pairs = self._keys, self._pairs
        parts = [_varint(len(features))]
        for pair in features.items():
            name, value = pair
            kind = type(value)
            if kind is float:
                key = keys.get(name)
                if key is None:
                    key = self._key(name)
                parts.append(key + b"\x06" + _PACK_DOUBLE(value))
                continue
            known = pairs.get(pair)
            if known is not None and known[0] is kind:
                parts.append(known[1])
                continue
            key = keys.get(name)
            if key is None:
                key = self._key(name)
            if value is None:
                data = key + b"\x00"
            elif kind is bool:
                data = key + (b"\x02\x01" if value else b"\x02\x00")
            elif kind is int:
                if not _LONG_MIN <= value <= _LONG_MAX:  # fastavro writes it as a double
                    raise TypeError(f"feature {name!r}: {value} is beyond a long")
                data = key + b"\x04" + _varint(value)
            elif kind is str:
                data = key + b"\x08" + _string(value)
            else:  # anything unusual: the caller falls back to the codec
                raise TypeError(f"feature {name!r}: unsupported value {value!r}")
            if len(pairs) < self._memo_limit:
                pairs[pair] = (kind, data)
            parts.append(data)
        parts.append(b"\x00")
        return b"".join(parts)

    def _offsets(self, offsets: Mapping[str, Any]) -> bytes:
        """The input offsets: a map of longs (the names are few: their encoding is kept)."""
        if not offsets:
            return b"\x00"
        keys = self._keys
        parts = [_varint(len(offsets))]
        for name, offset in offsets.items():
            if type(offset) is not int:  # beyond a long: zigzag raises ValueError
                raise TypeError(f"input offset {name!r}: {offset!r}")
            key = keys.get(name)
            if key is None:
                key = self._key(name)
            parts.append(key + _varint(offset))
        parts.append(b"\x00")
        return b"".join(parts)

    def _candidates(self, candidates: Sequence[Mapping[str, Any]]) -> bytes:
        if not candidates:
            return b"\x00"
        memo = self._memo
        parts = [_varint(len(candidates))]
        same = self._same
        for c in candidates:
            seen = same.get(id(c))
            if seen is not None and seen[0] is c:
                parts.append(seen[1])
                continue
            key = (
                c["offer_id"], c["category"], c["channel"], c["eligible"], c["removed_by"],
                c["removed_reason"], c["propensity_model"], c["value"], c["expected_value"],
                c["channel_cost"], c["score"], c["propensity"],
                tuple(c["channel_scores"].items()) if c["channel_scores"] else (),
            )  # fmt: skip
            data = memo.get(key)
            if data is None:
                data = self._write_candidate(c)
                if len(memo) < self._memo_limit:
                    memo[key] = data
            elif len(same) < _SAME_LIMIT:
                same[id(c)] = (c, data)
            parts.append(data)
        parts.append(b"\x00")
        return b"".join(parts)

    def _write_candidate(self, candidate: Mapping[str, Any]) -> bytes:
        if self._candidate_writer is not None:
            try:
                return self._candidate_writer(candidate)
            except (TypeError, ValueError, KeyError):  # an unusual value: fastavro writes it
                pass
        return self._write(self._candidate, candidate)

    def encode_decision(self, decision: Mapping[str, Any]) -> bytes:
        """The single-object encoded Decision; the next DecisionRecord of it reuses its body."""
        body = self._codec.body("Decision", decision)
        self._last_decision = (decision, body)
        return self._decision_header + body

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The single-object encoded DecisionRecord. TypeError for values it does not handle."""
        decision, last = record["decision"], self._last_decision
        self._last_decision = None
        body = last[1] if last is not None and last[0] is decision else None
        return b"".join(
            (
                self._header,
                body if body is not None else self._codec.body("Decision", decision),
                self._features(record["features"]),
                self._candidates(record["candidates"]),
                _string(record["policy"]),
                self._offsets(record["input_offsets"]),
                _varint(record["partition"]),
            )
        )


class OutputEncoder:
    """Encodes output records as the worker does: the specialised encoder for DecisionRecord
    and Decision (single-object framing only; with a schema registry, the codec), the codec for
    everything else and for any value the specialised one does not handle."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._fast: dict[str, Callable[[Mapping[str, Any]], bytes]] = {}
        if codec.registry is None:
            fast = DecisionRecordEncoder(codec)
            self._fast = {"DecisionRecord": fast.encode, "Decision": fast.encode_decision}

    def encode(self, schema: str, record: Mapping[str, Any], topic: str | None = None) -> bytes:
        """The encoded record (``topic``: the physical topic, for a schema registry)."""
        fast = self._fast.get(schema)
        if fast is not None:
            try:
                return fast(record)
            except (TypeError, ValueError, OverflowError):  # unusual values: the full codec
                pass
        return self.codec.encode(schema, record, topic=topic)
