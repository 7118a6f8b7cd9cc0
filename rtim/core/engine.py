"""One step of the customer pipeline, pure: (profile, event or clock) → (profile, emits).

The worker (imperative shell) decodes records, loads profiles, calls `Engine.on_event` /
`Engine.on_timers`, and persists and routes what comes back. The backtest calls the very same
methods, so a replay of the same topics reproduces live decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from rtim.core.events import Event
from rtim.core.profile import Profile, apply

__all__ = ["Decider", "Emit", "Engine", "StepContext", "StepResult"]


_NO_OFFSETS: Mapping[str, int] = MappingProxyType({})


class Emit(NamedTuple):
    """A record to produce: logical topic, key, Avro schema name, record (immutable)."""

    topic: str
    key: str
    schema: str
    record: dict[str, Any]


class StepContext(NamedTuple):
    """What a step may know about its surroundings (all of it deterministic input).

    ``input_offsets`` may be the caller's live mapping: read it during the step, copy what
    is kept (the worker passes its partition's offsets without copying them per event).
    """

    partition: int = -1
    input_offsets: Mapping[str, int] = _NO_OFFSETS


@dataclass(slots=True)
class StepResult:
    """The new profile (the same object if nothing changed) and the records to emit."""

    profile: Profile
    emits: list[Emit]
    applied: bool = True


class Decider(Protocol):
    """The decision logic behind the engine (see rtim.core.decisioning)."""

    def on_applied(
        self, before: Profile, after: Profile, event: Event, ctx: StepContext
    ) -> tuple[Profile, list[Emit]]:
        """React to an applied event: answer requests, fire triggers, attribute outcomes."""
        ...

    def on_timers(self, profile: Profile, now: int, ctx: StepContext) -> tuple[Profile, list[Emit]]:
        """Handle the profile's timers due at `now` (event time)."""
        ...

    def answer_erased(self, profile: Profile, event: Event) -> list[Emit]:
        """The answer to a request of an erased customer (no action, no personal data)."""
        ...


class Engine:
    """Applies events to profiles and lets the decider react; pure given its decider."""

    def __init__(self, decider: Decider, dedup_window: int = 16) -> None:
        self.decider = decider
        self.dedup_window = dedup_window

    def on_event(self, profile: Profile, event: Event, ctx: StepContext) -> StepResult:
        """Apply `event` (once) and return the new profile and what to emit."""
        after = apply(profile, event, self.dedup_window)
        if after is profile:  # a redelivery or duplicate
            return StepResult(profile, [], applied=False)
        if after.get("erased_ts"):
            return StepResult(after, self._erased_answer(after, event))
        after, emits = self.decider.on_applied(profile, after, event, ctx)
        return StepResult(after, emits)

    def on_timers(self, profile: Profile, now: int, ctx: StepContext) -> StepResult:
        """Fire the profile's timers that are due at `now`."""
        timers = profile.get("timers", ())
        if not timers or timers[0][0] > now:
            return StepResult(profile, [], applied=False)
        after, emits = self.decider.on_timers(profile, now, ctx)
        return StepResult(after, emits)

    def _erased_answer(self, profile: Profile, event: Event) -> list[Emit]:
        return self.decider.answer_erased(profile, event) if event.kind == "request" else []
