"""Applying events exactly once: a redelivered record or a duplicate event id is a no-op."""

from __future__ import annotations

from rtim.core.engine import Emit, Engine, StepContext
from rtim.core.events import Event, event_hash, make_event
from rtim.core.profile import Profile, apply, is_redelivery, new_profile

T0 = 1_741_078_800_000


class _NoDecider:
    def on_applied(
        self, before: Profile, after: Profile, event: Event, ctx: StepContext
    ) -> tuple[Profile, list[Emit]]:
        return after, []

    def on_timers(self, profile: Profile, now: int, ctx: StepContext) -> tuple[Profile, list[Emit]]:
        return profile, []

    def answer_erased(self, profile: Profile, event: Event) -> list[Emit]:
        return []


def _click(event_id: str, offset: int = -1) -> Event:
    record = {"event_id": event_id, "customer_id": "c1", "ts": T0, "session_id": "s1",
              "type": "page_view", "page": "/"}  # fmt: skip
    return make_event("click", record, offset)


def test_apply_returns_the_same_profile_for_a_redelivery_or_a_duplicate() -> None:
    once = apply(new_profile("c1"), _click("e1", offset=3))
    assert once["recent_ids"] == (event_hash("e1"),)
    assert once["applied"] == {"click": 3}
    for again in (_click("e1", offset=3), _click("e2", offset=2), _click("e1", offset=9)):
        assert is_redelivery(once, again, 16)
        assert apply(once, again) is once
    assert apply(once, _click("e2", offset=4)) is not once


def test_engine_reports_a_redelivery_as_not_applied() -> None:
    engine = Engine(_NoDecider())
    first = engine.on_event(new_profile("c1"), _click("e1", offset=1), StepContext())
    assert first.applied
    again = engine.on_event(first.profile, _click("e1"), StepContext())
    assert not again.applied
    assert again.profile is first.profile
    assert again.emits == []
