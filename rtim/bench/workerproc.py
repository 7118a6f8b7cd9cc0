"""The real worker — `rtim.worker.service.WorkerService`, as `rtim worker` runs it — in a child.

The bench observes it from the parent without slowing it down: after every batch the child
writes its counters into shared memory (records, applied, decisions answered, …, with
`time.perf_counter`, which is the system-wide monotonic clock on Linux and so comparable
between processes) and appends them to a timeline the parent fetches at the end of a phase.
Memory is read from ``/proc/<pid>/status`` by the parent. With `profile_path`, the worker
thread runs under cProfile and the stats are dumped there when it stops.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtim.errors import BrokerError
from rtim.settings import Settings

__all__ = ["Progress", "WorkerProcess", "child_pids", "cpu_seconds", "read_rss", "thread_cpu"]

# slots of the shared progress array (_TID: the pipeline thread's native id; _GC_S and
# _COLLECTIONS: the cyclic collector's time and runs, kept up to date by its callback)
_T, _RECORDS, _APPLIED, _DECISIONS, _DEAD, _TIMERS, _BATCHES, _ACK_WAIT, _FLUSHES = range(9)
_STATE, _TID, _GC_S, _COLLECTIONS = 9, 10, 11, 12
_RUNNING, _STOPPED, _FAILED = 1.0, 2.0, 3.0
_DECISION_PREFIX = "rtim.decisions."


@dataclass(frozen=True, slots=True)
class Progress:
    """The worker's counters after its latest batch (t = perf_counter of that batch)."""

    t: float
    records: int
    applied: int
    decisions: int
    dead_letters: int
    timers: int
    batches: int
    ack_wait_s: float  # waiting for the broker's acknowledgements, in total
    flushes: int
    collector_s: float  # in the cyclic garbage collector (any thread), in total
    collections: int


def read_rss(pid: int) -> dict[str, int]:
    """Resident set size now and at its peak (bytes) of process `pid`, from /proc."""
    out = {"rss": 0, "hwm": 0}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            out["hwm"] = int(line.split()[1]) * 1024
    return out


def _stat(path: Path) -> tuple[str, float] | None:
    """(name, user + system CPU seconds) from a /proc ``stat`` file; None if it is gone."""
    try:
        head, rest = path.read_text().rsplit(")", 1)
        fields = rest.split()
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14, 15
    except (OSError, ValueError, IndexError):
        return None
    return head.partition("(")[2], seconds


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds used so far by process `pid` (all threads), from /proc."""
    stat = _stat(Path(f"/proc/{pid}/stat")) if pid is not None else None
    return stat[1] if stat is not None else 0.0


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """User + system CPU seconds so far of each live thread of process `pid`: {tid: (name,
    seconds)}, from /proc (librdkafka names its threads ``rdk:…``)."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
        stat = _stat(task / "stat")
        if stat is not None:  # else the thread ended
            out[int(task.name)] = stat
    return out


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    children: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:  # ppid (field 4)
            children.append(int(stat.parent.name))
    return children


class WorkerProcess:
    """Start, observe and stop one `WorkerService` in a child process (spawn)."""

    def __init__(
        self,
        settings: Settings,
        *,
        learner: bool = True,
        profile_path: Path | None = None,
        gc_mode: str = "default",
        sample_ms: float = 0.0,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._shared = ctx.Array("d", 13, lock=False)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child,
            args=(settings, child, self._shared, learner, profile_path, gc_mode, sample_ms),
            name="rtim-bench-worker",
            daemon=True,
        )
        self.error: str | None = None

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def start(self) -> WorkerProcess:
        self._proc.start()
        return self

    def progress(self) -> Progress:
        """The counters after the worker's latest batch."""
        s = self._shared
        return Progress(
            s[_T], int(s[_RECORDS]), int(s[_APPLIED]), int(s[_DECISIONS]), int(s[_DEAD]),
            int(s[_TIMERS]), int(s[_BATCHES]), s[_ACK_WAIT], int(s[_FLUSHES]), s[_GC_S],
            int(s[_COLLECTIONS]),
        )  # fmt: skip

    def wait_until(
        self, condition: Callable[[Progress], bool], timeout: float, what: str = "condition"
    ) -> Progress:
        """Poll the counters until `condition` holds; BrokerError on timeout or worker death."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.progress()
            if condition(p):
                return p
            self._check_alive()
            if time.monotonic() > deadline:
                raise BrokerError(f"bench worker: {what} not reached in {timeout:g}s ({p})")
            time.sleep(0.005)

    def wait_ready(self, timeout: float = 60) -> Progress:
        """Wait for the first batch (the worker has its partitions; idle batches tick)."""
        return self.wait_until(lambda p: p.batches > 0, timeout, "partition assignment")

    def timeline(self) -> list[tuple[float, int, int, int]]:
        """(perf_counter, records, applied, decisions) after each batch so far."""
        return self._ask("timeline")  # type: ignore[no-any-return]

    def samples(self) -> dict[str, Any] | None:
        """The stack samples since the last call (None unless started with `sample_ms`)."""
        result: dict[str, Any] | None = self._ask("samples")
        return result

    def rss(self) -> dict[str, int]:
        """The child's RSS now and at its peak, bytes."""
        return read_rss(self.pid)

    def cpu(self) -> float:
        """CPU seconds the worker process has used (every thread: pipeline, registry, and the
        learner when it runs as a thread)."""
        return cpu_seconds(self.pid)

    def cpu_split(self) -> dict[str, float]:
        """CPU seconds so far by kind of thread: the pipeline thread (`WorkerService.run`), the
        Kafka client's (librdkafka's own threads) and the rest of the process (its main thread,
        the registry, threads that have ended)."""
        total = self.cpu()
        tid = int(self._shared[_TID])
        pipeline = kafka = 0.0
        for t, (name, seconds) in thread_cpu(self.pid).items():
            if t == tid:
                pipeline += seconds
            elif name.startswith("rdk:"):
                kafka += seconds
        return {"pipeline": pipeline, "kafka_client": kafka, "other": total - pipeline - kafka}

    def learner_cpu(self) -> float:
        """CPU seconds of the worker's child processes so far: its learner process."""
        return sum(cpu_seconds(pid) for pid in child_pids(self.pid))

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        """Stop the service (finishes its batch, leaves the group); returns its final counters."""
        if not self._proc.is_alive():
            self._check_alive()
            return {}
        final: dict[str, Any] = self._ask("stop", timeout)
        self._proc.join(timeout)
        if self._proc.is_alive():  # pragma: no cover - a hung worker: do not hang the bench
            self._proc.kill()
            self._proc.join(5)
        return final

    def kill(self) -> None:
        """Last resort (cleanup after an error)."""
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)

    def _ask(self, command: str, timeout: float = 30) -> Any:
        self._check_alive()
        self._conn.send(command)
        if not self._conn.poll(timeout):
            raise BrokerError(f"bench worker did not answer {command!r} in {timeout:g}s")
        kind, value = self._conn.recv()
        if kind == "error":
            self.error = value
            raise BrokerError(f"bench worker failed: {value}")
        return value

    def _check_alive(self) -> None:
        if self._shared[_STATE] == _FAILED or not self._proc.is_alive():
            detail = self.error
            if detail is None and self._conn.poll(0):
                kind, value = self._conn.recv()
                detail = value if kind == "error" else None
            raise BrokerError(
                f"bench worker exited (code {self._proc.exitcode}): {detail or 'see its log'}"
            )


GC_MODES = ("default", "tuned", "off")


class _Sampler(threading.Thread):
    """A statistical profiler of one thread: its Python stack every `interval` seconds.

    Far lighter than cProfile (one stack walk per sample, no per-call hook), so the shares
    are those of the undisturbed worker. A C call (consume, flush, fastavro) counts for the
    Python function that made it.

    A sample can only be taken when the worker thread lets go of the GIL: inside a blocking C
    call (flush, consume), or when the interpreter makes it, after the switch interval
    (CPython's default: 5 ms). With the default, a sampler that wakes while Python code runs
    waits up to 5 ms and mostly lands in the next blocking call: the flush showed 15 % of the
    decision phase where its measured wait was 3 %. So while sampling, the switch interval is
    a tenth of the sampling interval, and a sample lands within that of its time.
    """

    def __init__(self, target: threading.Thread, interval: float) -> None:
        super().__init__(name="rtim-bench-sampler", daemon=True)
        self._switch = sys.getswitchinterval()  # restored when the target ends
        sys.setswitchinterval(min(self._switch, max(interval / 10, 1e-5)))
        self.target, self.interval = target, interval
        self.exclusive: dict[str, int] = {}
        self.inclusive: dict[str, int] = {}
        self.samples = 0
        self.start()

    def run(self) -> None:
        try:
            self._sample()
        finally:
            sys.setswitchinterval(self._switch)

    def _sample(self) -> None:
        while self.target.is_alive():
            time.sleep(self.interval)
            frame = sys._current_frames().get(self.target.ident or -1)
            if frame is None:
                continue
            self.samples += 1
            top = True
            seen: set[str] = set()
            while frame is not None:
                code = frame.f_code
                name = f"{_short(code.co_filename)}:{code.co_name}"
                if top:
                    self.exclusive[name] = self.exclusive.get(name, 0) + 1
                    top = False
                if name not in seen:
                    seen.add(name)
                    self.inclusive[name] = self.inclusive.get(name, 0) + 1
                frame = frame.f_back

    def take(self, top: int = 30) -> dict[str, Any]:
        """The result so far, then reset the counts."""
        out = self.result(top)
        self.exclusive, self.inclusive, self.samples = {}, {}, 0
        return out

    def result(self, top: int = 30) -> dict[str, Any]:
        n = max(1, self.samples)

        def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
            best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
            return [(name, round(c / n * 100, 1)) for name, c in best]

        return {
            "samples": self.samples,
            "interval_ms": self.interval * 1000,
            "exclusive_pct": ranked(self.exclusive),
            "inclusive_pct": ranked(self.inclusive),
        }


def _short(filename: str) -> str:
    for marker in ("/rtim/", "/site-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]


def _tune_gc(settings: Settings, mode: str) -> None:
    """Garbage-collector settings of the child (`prototypes` measures what they are worth).

    ``default``: as `rtim worker` does (`RTIM_GC_TUNED`, `tune_collector`); ``untuned``:
    CPython's defaults; ``off``: no cyclic collection at all (an upper bound, not a proposal:
    cycles would leak).
    """
    from rtim.worker.collector import tune_collector

    if mode not in ("default", "untuned", "off"):
        raise ValueError(f"unknown gc mode {mode!r}")
    tune_collector(settings.gc_tuned and mode == "default")
    if mode == "off":
        gc.disable()


def _collector_clock(shared: Any) -> Callable[[str, dict[str, int]], None]:
    """A `gc.callbacks` entry adding each collection's time and count to `shared`."""
    started = [0.0]

    def clock(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            shared[_GC_S] += time.perf_counter() - started[0]
            shared[_COLLECTIONS] += 1

    return clock


def _child(  # noqa: PLR0917 - a multiprocessing target takes positional args
    settings: Settings,
    conn: Any,
    shared: Any,
    learner: bool,
    profile_path: Path | None,
    gc_mode: str = "default",
    sample_ms: float = 0.0,
) -> None:
    from rtim.logs import configure_logging
    from rtim.worker.runtime import WorkerStats
    from rtim.worker.service import WorkerService

    configure_logging(settings.log_level, settings.log_format)
    timeline: list[tuple[float, int, int, int]] = []

    def on_batch(stats: WorkerStats) -> None:
        now = time.perf_counter()
        decisions = 0
        for topic, n in stats.emitted.items():
            if topic.startswith(_DECISION_PREFIX):
                decisions += n
        shared[_RECORDS] = stats.records
        shared[_APPLIED] = stats.applied
        shared[_DECISIONS] = decisions
        shared[_DEAD] = stats.dead_letters
        shared[_TIMERS] = stats.timers_fired
        shared[_BATCHES] = stats.batches
        shared[_ACK_WAIT] = stats.ack_wait_s
        shared[_FLUSHES] = stats.flushes
        shared[_T] = now
        timeline.append((now, stats.records, stats.applied, decisions))

    service = WorkerService(settings, learner=learner, on_batch=on_batch)
    _tune_gc(settings, gc_mode)
    gc.callbacks.append(_collector_clock(shared))
    failure: list[str] = []
    profiler: Any = None

    def run() -> None:
        nonlocal profiler
        shared[_TID] = threading.get_native_id()
        try:
            if profile_path is not None:
                import cProfile

                profiler = cProfile.Profile()
                profiler.runcall(service.run)
            else:
                service.run()
        except BaseException as exc:
            failure.append(f"{type(exc).__name__}: {exc}")
            shared[_STATE] = _FAILED

    thread = threading.Thread(target=run, name="rtim-bench-worker", daemon=True)
    shared[_STATE] = _RUNNING
    thread.start()
    sampler = _Sampler(thread, sample_ms / 1000) if sample_ms > 0 else None
    while True:
        if failure:
            conn.send(("error", failure[0]))
            return
        if not conn.poll(0.05):
            continue
        command = conn.recv()
        if command == "timeline":
            conn.send(("ok", list(timeline)))
        elif command == "samples":  # what was sampled since the last ask; then start afresh
            conn.send(("ok", sampler.take() if sampler is not None else None))
        elif command == "stop":
            service.stop()
            thread.join(60)
            if failure:
                conn.send(("error", failure[0]))
                return
            if profiler is not None and profile_path is not None:
                profiler.dump_stats(str(profile_path))
            s = service.worker.stats
            shared[_STATE] = _STOPPED
            samples = sampler.result() if sampler is not None else None
            conn.send(
                (
                    "ok",
                    {
                        "samples": samples,
                        **s.counters(),  # the worker's log-line counts (order rule included)
                        "dlq_reasons": dict(s.dlq_reasons),
                        "timers_fired": s.timers_fired,
                        "emitted": dict(s.emitted),
                        "batches": s.batches,
                    },
                )
            )
            return
