"""The bench's per-thread CPU reading (/proc) that splits the worker's CPU by thread, and its
stack sampler."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

from rtim.bench.workerproc import (
    _COLLECTIONS,
    _GC_S,
    _collector_clock,
    _Sampler,
    cpu_seconds,
    thread_cpu,
)


def test_a_busy_thread_is_charged_its_own_cpu_and_a_waiting_one_none() -> None:
    pid = os.getpid()
    spun, done = threading.Event(), threading.Event()

    def spin() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.3:
            pass
        spun.set()
        done.wait()

    busy = threading.Thread(target=spin)
    idle = threading.Thread(target=done.wait)
    before = thread_cpu(pid)
    busy.start()
    idle.start()
    try:
        assert spun.wait(30)
        after = thread_cpu(pid)
    finally:
        done.set()
        busy.join()
        idle.join()
    assert busy.native_id is not None
    assert idle.native_id is not None
    assert busy.native_id not in before, "a thread started later is not in the earlier reading"
    assert 0.2 <= after[busy.native_id][1] <= 1.0  # /proc counts in clock ticks (10 ms)
    assert after[idle.native_id][1] < 0.05, "waiting costs no CPU"
    assert threading.get_native_id() in after, "every live thread is listed"
    assert cpu_seconds(pid) >= sum(seconds for _name, seconds in after.values()) - 0.02


def test_a_process_that_is_gone_has_no_threads() -> None:
    assert thread_cpu(2**22 + 12345) == {}


def test_the_sampler_lands_where_the_time_goes_not_where_the_gil_is_let_go() -> None:
    """A thread spends ~20 % of its time in a blocking call (the GIL let go) and the rest in
    Python: the sampled share of the blocking call is near 20 %, not near all of it (with the
    default 5 ms switch interval, samples wait for the next blocking call)."""
    switch = sys.getswitchinterval()

    def blocking() -> None:
        time.sleep(0.001)

    def python(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def work() -> None:
        end = time.perf_counter() + 1.5
        while time.perf_counter() < end:
            python(0.004)
            blocking()

    target = threading.Thread(target=work)
    target.start()
    sampler = _Sampler(target, 0.001)
    target.join()
    sampler.join(10)
    assert sys.getswitchinterval() == switch  # restored when the target ended
    result = sampler.result(top=50)
    shares = dict(result["exclusive_pct"])
    blocked = sum(v for k, v in shares.items() if k.endswith(":blocking"))
    assert result["samples"] > 200
    assert 5 < blocked < 50, shares


def test_the_collector_clock_adds_each_collections_time_and_count() -> None:
    shared = [0.0] * 13
    clock = _collector_clock(shared)
    gc.callbacks.append(clock)
    try:
        gc.collect()
        gc.collect()
    finally:
        gc.callbacks.remove(clock)
    assert shared[_COLLECTIONS] == 2
    assert shared[_GC_S] > 0
