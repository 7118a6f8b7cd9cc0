"""The bench's per-thread CPU reading (/proc) that splits the worker's CPU by thread."""

from __future__ import annotations

import os
import threading
import time

from rtim.bench.workerproc import cpu_seconds, thread_cpu


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
