"""The replays' event-time timers: only new timers are noted, and they come out by due time."""

from __future__ import annotations

from typing import Any

from rtim.bench.timerheap import ReplayTimers


def _with(*dues: int) -> Any:
    return {"customer_id": "c", "timers": tuple((d, "t", 0, "x") for d in dues)}


def test_only_the_timers_a_step_added_are_due_and_in_order() -> None:
    timers = ReplayTimers()
    timers.note("a", None, _with(30, 10))
    timers.note("a", _with(30, 10), _with(30, 10, 20))  # 30 and 10 were known already
    timers.note("b", None, _with(15))
    assert list(timers.due_by(25)) == ["a", "b", "a"]  # 10, 15, 20
    assert list(timers.due_by(25)) == []
    assert list(timers.due_by(30)) == ["a"]


def test_a_timer_noted_while_draining_is_taken_if_already_due() -> None:
    timers = ReplayTimers()
    timers.note("a", None, _with(5))
    taken = []
    for customer in timers.due_by(10):
        taken.append(customer)
        if len(taken) == 1:
            timers.note("b", None, _with(7))  # a step set a timer due before the clock
    assert taken == ["a", "b"]
