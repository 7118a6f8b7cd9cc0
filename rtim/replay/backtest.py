"""Backtest: re-run the same engine over recorded input, in event-time order, deterministically.

The live worker processes each partition's inputs in event-time order across topics (ties: the
input kind's rank, then the offset) with event-time timers; the backtest does exactly that over
the recorded records, with profiles kept in memory. Same input + same strategy + same models +
same seed = the same decisions, id for id.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rtim.core.engine import Emit, Engine, StepContext
from rtim.core.events import KIND_BY_TOPIC, SCHEMA_BY_KIND, Event, make_event, order_key
from rtim.core.profile import Profile, new_profile
from rtim.core.validation import validate_record
from rtim.errors import RtimError
from rtim.replay.reader import RecordedMessage
from rtim.serde.codec import Codec

__all__ = ["BacktestResult", "run_backtest"]


@dataclass
class BacktestResult:
    """Decisions the engine took, with the counts a report needs."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    invalid: int = 0
    decisions_by_channel: Counter[str] = field(default_factory=Counter)
    actions_by_offer: Counter[str] = field(default_factory=Counter)
    suppressed_by_reason: Counter[str] = field(default_factory=Counter)
    no_action: int = 0
    training_examples: int = 0

    def add(self, emit: Emit) -> None:
        """Count one emitted record."""
        if emit.schema == "DecisionRecord":
            decision = emit.record["decision"]
            self.decisions.append(decision)
            self.decisions_by_channel[decision["channel"]] += 1
            if not decision["actions"]:
                self.no_action += 1
            for action in decision["actions"]:
                self.actions_by_offer[action["offer_id"]] += 1
            for candidate in emit.record["candidates"]:
                if candidate["removed_by"]:
                    self.suppressed_by_reason[candidate["removed_by"]] += 1
        elif emit.schema == "TrainingExample":
            self.training_examples += 1


def run_backtest(
    messages: Iterable[RecordedMessage], engine: Engine, codec: Codec | None = None
) -> BacktestResult:
    """Replay recorded input messages through `engine` the way the worker does."""
    codec = codec or Codec()
    result = BacktestResult()
    by_partition: dict[int, list[tuple[tuple[int, int, int], Event]]] = {}
    now_ms = int(time.time() * 1000)
    for message in messages:
        kind = KIND_BY_TOPIC.get(message.topic)
        if kind is None:
            continue
        result.records += 1
        try:
            schema = SCHEMA_BY_KIND[kind]
            _name, record = codec.decode(message.value or b"", expected=schema)
            validate_record(schema, record, now_ms=now_ms, max_future_ms=10**15, key=message.key)
        except RtimError:
            result.invalid += 1  # the live worker dead-lettered it too
            continue
        event = make_event(kind, record, message.offset)
        key = order_key(kind, event.ts, message.offset)
        by_partition.setdefault(message.partition, []).append((key, event))
    for partition in sorted(by_partition):
        _run_partition(partition, sorted(by_partition[partition], key=lambda x: x[0]), engine,
                       result)  # fmt: skip
    return result


def _run_partition(
    partition: int,
    events: list[tuple[tuple[int, int, int], Event]],
    engine: Engine,
    result: BacktestResult,
) -> None:
    profiles: dict[str, Profile] = {}
    timers: list[tuple[int, str]] = []
    inputs: dict[str, int] = {}
    watermark = 0

    def remember(before: Profile, after: Profile) -> None:
        cid = after["customer_id"]
        profiles[cid] = after
        old = {t[0] for t in before.get("timers", ())}
        for timer in after.get("timers", ()):
            if timer[0] not in old:
                heapq.heappush(timers, (timer[0], cid))

    def fire(clock: int) -> None:
        seen: set[str] = set()
        while timers and timers[0][0] <= clock:
            _due, cid = heapq.heappop(timers)
            if cid in seen:
                continue
            seen.add(cid)
            profile = profiles[cid]
            step = engine.on_timers(profile, clock, StepContext(partition, dict(inputs)))
            if step.applied:
                remember(profile, step.profile)
                for emit in step.emits:
                    result.add(emit)

    for _key, event in events:
        if timers and timers[0][0] <= event.ts:
            fire(event.ts)
        inputs[event.kind] = event.offset
        profile = profiles.get(event.customer_id) or new_profile(event.customer_id)
        step = engine.on_event(profile, event, StepContext(partition, dict(inputs)))
        if step.applied:
            remember(profile, step.profile)
            for emit in step.emits:
                result.add(emit)
        watermark = max(watermark, event.ts)
    fire(watermark)
