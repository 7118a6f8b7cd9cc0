"""The customer worker: consumes the co-partitioned inputs and keeps the golden record.

Processing protocol, per batch of records (at-least-once delivery, exactly-once effects):

1. decode and validate each record; anything bad becomes a DeadLetter output;
2. per partition, merge the input topics by event time (each topic keeps its offset order) and
   run the pure engine: profile ← apply(profile, event); decisions and other emits;
3. fire the timers that are due (event-time watermark or wall clock);
4. encode the changed profiles (a customer whose profile cannot be encoded is taken back to
   its stored profile, and its events of the batch are dead-lettered); produce the outputs and
   **wait for their acks**;
5. produce the changed profiles, then a partition meta record, to the changelog, and wait;
6. write profiles, timer index and meta to RocksDB in one atomic WriteBatch;
7. commit the input offsets.

A crash anywhere re-delivers the batch. Step 5 comes after 4, so a profile in the changelog
implies its outputs were delivered; the offset markers inside each profile (and the partition
meta) make the re-delivered records no-ops, while a record whose state never reached the
changelog is processed again and — decisions being deterministic — re-emits the same ids.
"""

from __future__ import annotations

import heapq
import os
import signal
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from rtim.core.engine import Emit, Engine, StepContext
from rtim.core.events import KIND_BY_TOPIC, SCHEMA_BY_KIND, Event, make_event, order_key
from rtim.core.profile import Profile, decode_profile, encode_profile, new_profile
from rtim.core.validation import validate_record
from rtim.errors import BrokerError, DecodeError, RtimError, ValidationError
from rtim.kafka.config import consumer_config, producer_config
from rtim.kafka.messages import Consumed, consumed
from rtim.logs import get_logger
from rtim.serde.codec import Codec
from rtim.serde.fastencode import OutputEncoder
from rtim.settings import Settings
from rtim.worker.collector import collections_between_batches
from rtim.worker.ends import InputEnds
from rtim.worker.store import PartitionMeta, PartitionStore, timer_key

__all__ = ["CustomerWorker", "WorkerStats"]

log = get_logger("worker")

CHANGELOG_TOPIC = "rtim.changelog.customer"
DLQ_TOPIC = "rtim.dlq"
_META_KEY = b"\x00meta"
_CACHE_PER_PARTITION = 50_000
_IDLE_WAIT_S = 0.1  # longest sleep without input: wall-clock timers fire at most this late
_HOLD_WAIT_S = 0.002  # sleep while records wait for a lagging input
# a record that makes event-time timers due waits this long after its fetch, so that the end
# offsets of the other inputs come from a later fetch response (fetch.wait.max.ms is 10 ms)
_SETTLE_S = 0.03
_MAX_HELD = 100_000  # records one partition may hold back while waiting for a lagging input


@dataclass
class WorkerStats:
    """Counters of a worker's life, cheap to update once per batch."""

    batches: int = 0
    records: int = 0
    applied: int = 0
    skipped: int = 0  # redelivered or duplicate
    dead_letters: int = 0
    timers_fired: int = 0
    emitted: Counter[str] = field(default_factory=Counter)
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    held: int = 0  # times a partition waited for a lagging input (event-time order)
    idle_timeouts: int = 0  # times it stopped waiting (RTIM_MAX_IDLE_MS, or a bound on lag)
    # records applied with an event time before their partition's watermark: out of event-time
    # order across inputs (a record fetched after a later one of another input was applied)
    late: int = 0
    end_queries: int = 0  # ListOffsets questions to confirm that an input has nothing more
    ends_unconfirmed: int = 0  # of them, unanswered (the cached ends were used)
    end_inputs_named: int = 0  # input partitions named in them
    end_wait_s: float = 0.0  # seconds the pipeline waited for their answers
    last_batch_ms: float = 0.0
    # seconds spent waiting for the broker to acknowledge produced records (outputs, changelog)
    ack_wait_s: float = 0.0
    flushes: int = 0

    def counters(self) -> dict[str, int]:
        """The counts worth a log line (progress, shutdown)."""
        return {
            "records": self.records,
            "applied": self.applied,
            "skipped": self.skipped,
            "dead_letters": self.dead_letters,
            "timers": self.timers_fired,
            "held": self.held,
            "idle_timeouts": self.idle_timeouts,
            "late": self.late,
            "end_queries": self.end_queries,
            "ends_unconfirmed": self.ends_unconfirmed,
            "end_inputs_named": self.end_inputs_named,
            "end_wait_ms": round(self.end_wait_s * 1000),
            "emitted": sum(self.emitted.values()),
        }


@dataclass
class _Task:
    """What the worker holds for one assigned partition."""

    partition: int
    store: PartitionStore
    meta: PartitionMeta
    cache: OrderedDict[str, Profile] = field(default_factory=OrderedDict)
    timers: list[tuple[int, str]] = field(default_factory=list)  # heap of (due, customer)
    # timers of each customer changed in the current batch, as last persisted (index diff)
    persisted_timers: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    touched: bool = False  # anything to persist in the current batch
    # fetched, not yet processed records per input kind, in offset order: (offset, event or
    # None for a record already dead-lettered); held back until event-time order is known
    buffers: dict[str, deque[tuple[int, Event | None, float]]] = field(default_factory=dict)
    # when the record that last advanced the event-time watermark was fetched (monotonic)
    watermark_fetched: float = 0.0
    timers_waiting: bool = False  # due event-time timers wait for `_settled`
    blocked_since: float = 0.0  # when this partition started waiting for a lagging input
    # inputs a fetch has delivered a record or the end of since the assignment: until then
    # the client's cached end offset may be from before, and "no lag" is not trusted (`_lag`)
    fetched_inputs: set[str] = field(default_factory=set)
    all_fetched: bool = False


class CustomerWorker:
    """Runs the customer pipeline until `stop()`; see the module docstring for the protocol."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        codec: Codec | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_batch: Callable[[WorkerStats], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.codec = codec or Codec.from_settings(settings)
        # the decision log record is the costliest output: a specialised encoder writes the
        # same bytes ~3x faster, and the decision's body once for both records
        self._outputs = OutputEncoder(self.codec)
        self.clock = clock
        self.on_batch = on_batch
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._tasks: dict[int, _Task] = {}
        self._kind_by_physical = {settings.topic(t): k for t, k in KIND_BY_TOPIC.items()}
        self._physical_by_kind = {k: t for t, k in self._kind_by_physical.items()}
        self._kinds = tuple(sorted(self._physical_by_kind))
        self._start_offsets: dict[tuple[str, int], int] = {}  # where each input starts reading
        self._drained = True  # the last poll emptied the local fetch queue
        self._changelog = settings.topic(CHANGELOG_TOPIC)
        self._output_topics: dict[str, str] = {}  # logical -> physical name of each output
        self._state_dir = Path(settings.data_dir) / "customer"
        self._delivery_errors: list[str] = []
        # this batch's applied steps: (customer, first emit, end of its emits, event or None
        # for timers), to take a customer's steps back if its profile cannot be stored
        self._steps: list[tuple[str, int, int, Event | None]] = []
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._ends: InputEnds | None = None  # asks the broker for end offsets

    # --- lifecycle --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its current batch and leave the group."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGINT / SIGTERM (main thread only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())

    def run(self) -> WorkerStats:
        """Consume and process until stopped. Returns the final counters."""
        self._producer = Producer(
            producer_config(self.settings, **{"linger.ms": 1, "error_cb": self._on_error})
        )
        self._consumer = Consumer(
            consumer_config(
                self.settings,
                self.settings.group(self.settings.group_id),
                **{
                    "error_cb": self._on_error,
                    "max.partition.fetch.bytes": 4 * 1024 * 1024,
                    # end-of-partition events tell when a fetch has answered for an input
                    "enable.partition.eof": True,
                },
            )
        )
        ends_client = Consumer(
            consumer_config(
                self.settings, None, **{"error_cb": self._on_error, "client.id": "rtim-ends"}
            )
        )
        self._ends = InputEnds(self._consumer, ends_client, self._start_offsets)
        topics = sorted(self._kind_by_physical)
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info(
            "worker started",
            topics=topics,
            group=self.settings.group(self.settings.group_id),
            pid=os.getpid(),
        )
        try:
            while not self._stop.is_set():
                with collections_between_batches():
                    self._poll_once()
        finally:
            self._shutdown()
        return self.stats

    def _shutdown(self) -> None:
        consumer, producer = self._consumer, self._producer
        if producer is not None:
            producer.flush(10)
        if consumer is not None:
            try:
                consumer.close()  # leaves the group; triggers on_revoke
            except KafkaException as exc:
                log.warning("consumer close failed", error=str(exc))
        if self._ends is not None:
            self._ends.close()
        for task in list(self._tasks.values()):
            task.store.close()
        self._tasks.clear()
        log.info("worker stopped", **self.stats.counters())

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal kafka error", error=str(err))
            self._delivery_errors.append(str(err))
            self.stop()
        else:
            log.debug("kafka error", error=str(err))

    # --- the batch --------------------------------------------------------------------------
    def _poll_once(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        batch = self.settings.batch_size
        # take what is already fetched; if nothing, wait for the first record only (a wait for a
        # full batch would add its timeout to every request's latency), then drain the rest.
        messages = consumer.consume(batch, 0)
        holding = any(
            task.timers_waiting or any(task.buffers.values()) for task in self._tasks.values()
        )
        if not messages:
            messages = consumer.consume(1, _HOLD_WAIT_S if holding else _IDLE_WAIT_S)
            if messages and batch > 1:
                messages.extend(consumer.consume(batch - 1, self.settings.batch_timeout_ms / 1000))
        if self._delivery_errors:
            raise BrokerError(f"producer failed: {self._delivery_errors[0]}")
        # fewer than a batch: the local fetch queue is drained, so a lagging input really lags
        # (while it is not, its records may sit in the queue behind another partition's)
        self._drained = len(messages) < batch
        if not messages:
            if holding or (self._tasks and self.settings.timer_clock == "wall"):
                self._process([])  # held records and wall-clock timers go on without input
            return
        self._process(consumed(messages))

    def _process(self, messages: list[Consumed]) -> None:
        started = time.perf_counter()
        fetched = time.monotonic()
        now_ms = int(self.clock() * 1000)
        emits: list[Emit] = []
        dirty: dict[int, dict[str, Profile]] = {}
        commit: dict[tuple[str, int], int] = {}
        records = 0
        # per record, hot: bound lookups once per batch
        task_of, kind_of, decode = self._tasks.get, self._kind_by_physical.get, self._decode
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._fetched(message.topic(), message.partition())
                else:
                    log.warning("consume error", error=str(err))
                continue
            records += 1
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            task = task_of(partition)
            kind = kind_of(topic)
            if task is None or kind is None:
                continue  # revoked meanwhile; the next owner processes it
            if not task.all_fetched:
                self._fetched(topic, partition)
            if offset <= task.meta.inputs.get(kind, -1):
                self.stats.skipped += 1  # processed before a crash, not yet committed
                commit[(topic, partition)] = offset + 1
                continue
            event = decode(message, kind, now_ms, emits)
            buffer = task.buffers.get(kind)
            if buffer is None:
                buffer = task.buffers[kind] = deque()
            buffer.append((offset, event, fetched))

        if messages and self._ends is not None:  # the last answer covers records fetched before
            self._ends.new_step(p for p, t in self._tasks.items() if any(t.buffers.values()))
        clock_is_event = self.settings.timer_clock == "event"
        apply, stats = self._apply, self.stats
        for partition in sorted(self._tasks):
            task = self._tasks[partition]
            changed = dirty.setdefault(partition, {})
            meta, inputs = task.meta, task.meta.inputs
            ctx = self._context(task)
            taken_from = dict(inputs)  # to commit the inputs this batch takes records from
            for kind, offset, event, fetched_at in self._in_time_order(task, clock_is_event):
                inputs[kind] = offset
                if event is None:
                    continue  # dead-lettered when it was fetched
                ts = event.ts
                if clock_is_event and task.timers and task.timers[0][0] <= ts:
                    self._fire_timers(task, ts, changed, emits)
                apply(task, event, ctx, changed, emits)
                if ts > meta.watermark:
                    meta.watermark = ts
                    task.watermark_fetched = fetched_at
                elif ts < meta.watermark:
                    stats.late += 1
                    log.debug(
                        "applied late",
                        partition=partition,
                        input=kind,
                        offset=offset,
                        behind_ms=meta.watermark - ts,
                        fetched_after_s=round(fetched_at - task.watermark_fetched, 4),
                    )
            for kind, last in inputs.items():
                if taken_from.get(kind) != last:  # offsets only grow: taken in this batch
                    task.touched = True
                    commit[(self._physical_by_kind[kind], partition)] = last + 1
            if clock_is_event:
                clock = task.meta.watermark
                if task.timers and task.timers[0][0] <= clock and self._settled(task):
                    self._fire_timers(task, clock, changed, emits)
            elif task.timers and task.timers[0][0] <= now_ms:
                self._fire_timers(task, now_ms, changed, emits)

        encoded = self._encode_profiles(dirty, emits)
        self._steps.clear()  # used up; its events are not kept alive into the next batch
        self._publish(emits)
        self._persist(dirty, encoded)
        if commit and self._consumer is not None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in commit.items() if p in self._tasks]
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        self.stats.batches += 1
        if self._ends is not None:
            ends = self._ends
            stats.end_queries, stats.ends_unconfirmed = ends.queries, ends.unanswered
            stats.end_inputs_named, stats.end_wait_s = ends.inputs_named, ends.wait_s
        self.stats.records += records
        for e in emits:
            self.stats.emitted[e.topic] += 1
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000
        if self.on_batch is not None:
            self.on_batch(self.stats)

    def _in_time_order(
        self, task: _Task, clock_is_event: bool
    ) -> Iterable[tuple[str, int, Event | None, float]]:
        """Pop buffered records of a partition in event-time order across its input topics.

        Kafka orders records within one topic partition only. A record is taken when every
        other input of the partition either has a buffered record (so the smallest timestamp is
        known) or has been read to its end; otherwise the partition waits (see `_may_proceed`).
        With event-time timers, a record that makes a timer due also waits until it is settled
        (see `_settled`): the timer's decision must see every earlier record of its customer.
        Dead-lettered records sort first: they change no state.
        """
        buffers = task.buffers
        lag: dict[str, int | None] = {}
        heap: list[tuple[tuple[int, int, int], str]] = [
            (_order_key(kind, buffer[0]), kind) for kind, buffer in buffers.items() if buffer
        ]
        if not heap:
            task.blocked_since = 0.0
            return
        empty = [kind for kind in self._kinds if not buffers.get(kind)]
        if not self._may_proceed(task, empty, lag):
            return
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            _key, kind = heap[0]
            buffer = buffers[kind]
            offset, event, fetched_at = buffer[0]
            if (
                clock_is_event
                and event is not None
                and task.timers
                and task.timers[0][0] <= event.ts
                and not self._settled(task, fetched_at, lag)
            ):
                return  # the timers wait; so does this partition, to keep event-time order
            pop(heap)
            buffer.popleft()
            yield kind, offset, event, fetched_at
            if buffer:
                push(heap, (_order_key(kind, buffer[0]), kind))
            elif heap and not self._may_proceed(task, (kind,), lag):
                return  # this input may still deliver something earlier than the others' heads

    def _settled(
        self,
        task: _Task,
        fetched_at: float | None = None,
        lag: dict[str, int | None] | None = None,
    ) -> bool:
        """True when due event-time timers may fire in this partition.

        The record that brought the event time there (fetched at `fetched_at`, default: the one
        that set the watermark) was fetched at least `_SETTLE_S` ago — so the end offsets of the
        partition's other inputs come from a later fetch response — and no input without a
        buffered record lags (waited for at most RTIM_MAX_LAG_WAIT_MS after that fetch: a lag
        that never clears, such as transaction markers, must not stop the partition). Without
        this, a record of another customer could fire a customer's timer while that customer's
        earlier event, produced at the same instant on another topic, is not visible yet.
        Timers are not on the request path.
        """
        fetched = task.watermark_fetched if fetched_at is None else fetched_at
        waited = time.monotonic() - fetched
        if waited < _SETTLE_S:
            task.timers_waiting = True
            return False
        lag = {} if lag is None else lag
        for kind in self._kinds:
            if task.buffers.get(kind):
                continue
            if kind not in lag:
                lag[kind] = self._lag(kind, task.partition)
            if lag[kind] != 0:
                if waited < self.settings.max_lag_wait_ms / 1000:
                    task.timers_waiting = True
                    return False
                self.stats.idle_timeouts += 1  # bounded like any wait for a lagging input
                break
        task.timers_waiting = False
        return True

    def _may_proceed(self, task: _Task, empty: Iterable[str], lag: dict[str, int | None]) -> bool:
        """False while one of the `empty` inputs may still deliver an earlier record.

        Like Kafka Streams (KIP-695): an input known to lag (the broker reported records past
        our position) is waited for — those records exist and the fetch brings them; only an
        input whose end is unknown is waited for at most RTIM_MAX_IDLE_MS. A partition that
        holds `_MAX_HELD` records, or has waited RTIM_MAX_LAG_WAIT_MS for a lagging input, goes
        on (counted in `idle_timeouts`).
        """
        for kind in empty:
            if kind not in lag:
                lag[kind] = self._lag(kind, task.partition)
            behind = lag[kind]
            if behind == 0:
                continue
            held = sum(len(b) for b in task.buffers.values())
            if held >= _MAX_HELD:
                self.stats.idle_timeouts += 1
                lag[kind] = 0
                continue
            now = time.monotonic()
            if not self._drained and behind is not None:
                task.blocked_since = 0.0  # fetched already: read on, then decide
                self.stats.held += 1
                return False
            if not task.blocked_since:
                task.blocked_since = now
            bound = (
                self.settings.max_idle_ms if behind is None else self.settings.max_lag_wait_ms
            ) / 1000
            if now - task.blocked_since < bound:
                self.stats.held += 1
                return False  # wait for the lagging input (or the bound)
            self.stats.idle_timeouts += 1
            lag[kind] = 0
        task.blocked_since = 0.0  # nothing lags: the next wait starts afresh
        return True

    def _fetched(self, topic: str, partition: int) -> None:
        """A fetch answered for this input since its assignment: its cached end is current."""
        task = self._tasks.get(partition)
        kind = self._kind_by_physical.get(topic)
        if task is None or kind is None:
            return
        task.fetched_inputs.add(kind)
        task.all_fetched = len(task.fetched_inputs) == len(self._kinds)

    def _lag(self, kind: str, partition: int) -> int | None:
        """Records of this input partition on the broker not yet consumed (None: unknown);
        "none" is asked of the broker once per batch step (`InputEnds`)."""
        ends = self._ends
        if ends is None:
            return 0
        task = self._tasks.get(partition)
        fresh = task is None or task.all_fetched or kind in task.fetched_inputs
        return ends.lag(self._physical_by_kind[kind], partition, fresh=fresh)

    def _decode(self, message: Consumed, kind: str, now_ms: int, emits: list[Emit]) -> Event | None:
        value = message.value()
        key = message.key()
        try:
            if value is None:
                raise DecodeError("null value")
            if len(value) > self.settings.max_message_bytes:
                raise DecodeError(
                    f"message of {len(value)} bytes exceeds the limit of "
                    f"{self.settings.max_message_bytes} (RTIM_MAX_MESSAGE_BYTES)"
                )
            schema = SCHEMA_BY_KIND[kind]
            _name, record = self.codec.decode(value, expected=schema)
            validate_record(
                schema, record, now_ms=now_ms, max_future_ms=self.settings.max_future_ms, key=key
            )
            return make_event(kind, record, message.offset())
        except RtimError as exc:
            self._dead_letter(message, exc, now_ms, emits)
        except Exception as exc:  # a decoder bug must not stop the worker: keep the record
            log.exception("unexpected decode failure", topic=message.topic())
            self._dead_letter(message, exc, now_ms, emits)
        return None

    def _dead_letter(
        self, message: Consumed, exc: Exception, now_ms: int, emits: list[Emit]
    ) -> None:
        kinds: dict[type[Exception], str] = {DecodeError: "decode", ValidationError: "validation"}
        kind = kinds.get(type(exc), "internal")
        reason = str(exc) if isinstance(exc, RtimError) else f"{type(exc).__name__}: {exc}"
        key = message.key()
        emits.append(
            Emit(
                DLQ_TOPIC,
                key.decode("utf-8", "replace") if key else "",
                "DeadLetter",
                {
                    "source_topic": message.topic(),
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "key": key,
                    "value": message.value(),
                    "error": reason,
                    "ts": now_ms,
                    "error_kind": kind,
                },
            )
        )
        self.stats.dead_letters += 1
        self.stats.dlq_reasons[kind] += 1

    def _load(self, task: _Task, customer_id: str) -> Profile:
        profile = task.cache.get(customer_id)
        if profile is not None:
            task.cache.move_to_end(customer_id)
            return profile
        raw = task.store.get(customer_id)
        profile = decode_profile(raw) if raw is not None else new_profile(customer_id)
        task.cache[customer_id] = profile
        if len(task.cache) > _CACHE_PER_PARTITION:
            task.cache.popitem(last=False)
        return profile

    def _context(self, task: _Task) -> StepContext:
        return StepContext(task.partition, task.meta.inputs)  # read during the step only

    def _apply(
        self,
        task: _Task,
        event: Event,
        ctx: StepContext,
        changed: dict[str, Profile],
        emits: list[Emit],
    ) -> None:
        profile = self._load(task, event.customer_id)
        try:
            result = self.engine.on_event(profile, event, ctx)
        except Exception as exc:  # a bug on one event must not stop everyone else
            log.exception("processing failed", customer_id=event.customer_id, kind=event.kind)
            self.stats.dead_letters += 1
            self.stats.dlq_reasons["internal"] += 1
            emits.append(self._internal_dead_letter(task, event, exc))
            return
        if not result.applied:
            self.stats.skipped += 1
            return
        self.stats.applied += 1
        self._remember(task, profile, result.profile, changed)
        start = len(emits)
        emits.extend(result.emits)
        self._steps.append((event.customer_id, start, len(emits), event))

    def _internal_dead_letter(
        self, task: _Task, event: Event, exc: Exception, what: str = "processing failed"
    ) -> Emit:
        topic = next(t for t, k in KIND_BY_TOPIC.items() if k == event.kind)
        return Emit(
            DLQ_TOPIC,
            event.customer_id,
            "DeadLetter",
            {
                "source_topic": self.settings.topic(topic),
                "partition": task.partition,
                "offset": event.offset,
                "key": event.customer_id.encode(),
                # the decoded record, re-encoded: the same Avro bytes as the original body
                "value": self.codec.encode(SCHEMA_BY_KIND[event.kind], event.record),
                "error": f"{what}: {type(exc).__name__}: {exc}",
                "ts": int(self.clock() * 1000),
                "error_kind": "internal",
            },
        )

    def _fire_timers(
        self, task: _Task, clock: int, changed: dict[str, Profile], emits: list[Emit]
    ) -> None:
        seen: set[str] = set()
        while task.timers and task.timers[0][0] <= clock:
            _due, customer_id = heapq.heappop(task.timers)
            if customer_id in seen:
                continue
            seen.add(customer_id)
            profile = self._load(task, customer_id)
            try:
                result = self.engine.on_timers(profile, clock, self._context(task))
            except Exception:
                log.exception("timer failed", customer_id=customer_id)
                continue
            if result.applied:
                self.stats.timers_fired += 1
                self._remember(task, profile, result.profile, changed)
                start = len(emits)
                emits.extend(result.emits)
                self._steps.append((customer_id, start, len(emits), None))

    def _remember(
        self, task: _Task, before: Profile, after: Profile, changed: dict[str, Profile]
    ) -> None:
        customer_id = after["customer_id"]
        task.cache[customer_id] = after
        task.touched = True
        if customer_id not in changed:
            # first change of this customer in the batch: `before` is what is persisted
            task.persisted_timers[customer_id] = before.get("timers", ())
        changed[customer_id] = after
        before_timers, after_timers = before.get("timers", ()), after.get("timers", ())
        if after_timers is before_timers:  # most steps leave the (immutable) timers alone
            return
        before_dues = {t[0] for t in before_timers}
        for timer in after_timers:
            if timer[0] not in before_dues:
                heapq.heappush(task.timers, (timer[0], customer_id))

    # --- output and persistence -----------------------------------------------------------------
    def _publish(self, emits: Iterable[Emit]) -> None:
        producer = self._producer
        assert producer is not None
        errors = self._delivery_errors
        pending = 0
        encode = self._outputs.encode
        physical, topic_of = self._output_topics, self.settings.topic
        for emit in emits:
            topic = physical.get(emit.topic)
            if topic is None:  # a handful of output topics: their names once
                topic = physical[emit.topic] = topic_of(emit.topic)
            value = encode(emit.schema, emit.record, topic)
            self._produce(producer, topic, emit.key.encode(), value, ts=emit.record.get("ts"))
            pending += 1
        if pending:
            self._flush(producer)
        if errors:
            raise BrokerError(f"could not deliver outputs: {errors[0]}")

    def _produce(
        self,
        producer: Producer,
        topic: str,
        key: bytes,
        value: bytes,
        *,
        ts: int | None = None,
        partition: int | None = None,
    ) -> None:
        # the client's own defaults, passed without a kwargs dict per record
        to = -1 if partition is None else partition  # -1: the partitioner's choice
        at = ts or 0  # 0: the producer's clock
        report = self._on_delivery
        while True:
            try:
                producer.produce(topic, value, key, partition=to, on_delivery=report, timestamp=at)
                return
            except BufferError:
                producer.poll(0.05)  # local queue full: let deliveries drain

    def _on_delivery(self, err: KafkaError | None, message: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{message.topic()}: {err}")
        elif message.topic() == self._changelog:
            partition, offset = message.partition(), message.offset()  # set once delivered
            task = self._tasks.get(partition) if partition is not None else None
            if task is not None and offset is not None and offset > task.meta.changelog_offset:
                task.meta.changelog_offset = offset

    def _flush(self, producer: Producer) -> None:
        started = time.perf_counter()
        remaining = producer.flush(30)
        self.stats.ack_wait_s += time.perf_counter() - started
        self.stats.flushes += 1
        if remaining:
            raise BrokerError(f"{remaining} records not acknowledged by the broker in 30 s")

    def _encode_profiles(
        self, dirty: dict[int, dict[str, Profile]], emits: list[Emit]
    ) -> dict[int, dict[str, bytes]]:
        """The changed profiles of each partition to persist, encoded.

        A profile that cannot be encoded (a fault in the core: it would stop the worker at
        every restart on the same records) is not stored: the customer goes back to its last
        stored profile, its outputs of this batch are dropped, and its events of this batch go
        to the DLQ with the reason. Everyone else's batch goes on.
        """
        encoded: dict[int, dict[str, bytes]] = {}
        rejected: dict[str, tuple[_Task, Exception]] = {}
        for partition, profiles in dirty.items():
            task = self._tasks.get(partition)
            if task is None or not task.touched:
                continue
            try:
                encoded[partition] = {cid: encode_profile(p) for cid, p in profiles.items()}
                continue
            except Exception:  # found per customer below
                pass
            values: dict[str, bytes] = {}
            for cid, profile in list(profiles.items()):
                try:
                    values[cid] = encode_profile(profile)
                except Exception as exc:  # any encoding failure: the same fault
                    rejected[cid] = (task, exc)
                    del profiles[cid]
                    task.cache.pop(cid, None)  # the next step loads the stored profile
                    task.persisted_timers.pop(cid, None)
            encoded[partition] = values
        if rejected:
            self._reject(rejected, emits)
        return encoded

    def _reject(self, rejected: dict[str, tuple[_Task, Exception]], emits: list[Emit]) -> None:
        dropped: set[int] = set()
        letters: list[Emit] = []
        for cid, start, end, event in self._steps:
            if cid not in rejected:
                continue
            dropped.update(range(start, end))
            if event is not None:
                task, exc = rejected[cid]
                what = "the customer's profile could not be stored after this batch"
                letters.append(self._internal_dead_letter(task, event, exc, what))
        for cid, (_task, exc) in rejected.items():
            log.error(
                "profile could not be stored; its events of this batch go to the DLQ",
                customer_id=cid,
                error=f"{type(exc).__name__}: {exc}",
            )
        self.stats.applied -= len(letters)
        self.stats.dead_letters += len(letters)
        self.stats.dlq_reasons["internal"] += len(letters)
        emits[:] = [e for i, e in enumerate(emits) if i not in dropped] + letters

    def _persist(
        self, dirty: dict[int, dict[str, Profile]], encoded: dict[int, dict[str, bytes]]
    ) -> None:
        producer = self._producer
        assert producer is not None
        for partition, values in encoded.items():
            for cid, value in values.items():
                self._produce(producer, self._changelog, cid.encode(), value, partition=partition)
        if not encoded:
            return
        self._flush(producer)
        # The meta record goes last, in a produce batch of its own: if it is in the changelog,
        # so is the batch before it, and the partition's end offset is exact even on brokers
        # whose high watermark only counts whole batches (see docs/architecture.md).
        for partition in encoded:
            meta = self._tasks[partition].meta.encode()
            self._produce(producer, self._changelog, _META_KEY, meta, partition=partition)
        self._flush(producer)
        if self._delivery_errors:
            raise BrokerError(f"could not write the changelog: {self._delivery_errors[0]}")
        for partition, values in encoded.items():
            task = self._tasks[partition]
            added: list[bytes] = []
            removed: list[bytes] = []
            for cid in values:
                old = {t[0] for t in task.persisted_timers.get(cid, ())}
                new = {t[0] for t in dirty[partition][cid].get("timers", ())}
                added.extend(timer_key(d, cid) for d in new - old)
                removed.extend(timer_key(d, cid) for d in old - new)
            task.store.write(dict(values), added, removed, task.meta)
            task.persisted_timers = {}
            task.touched = False

    # --- rebalancing ------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        for number in numbers:
            if number not in self._tasks:
                self._tasks[number] = self._open_task(number)
        # start each input where the local state says it stopped (it may be ahead of the
        # committed offsets if the last commit was lost)
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in partitions], 30
            )
        }
        for tp in partitions:
            task = self._tasks[tp.partition]
            kind = self._kind_by_physical.get(tp.topic)
            done = task.meta.inputs.get(kind, -1) if kind else -1
            start = committed.get((tp.topic, tp.partition), -1)
            if done >= 0 and start < done + 1:
                start = done + 1
            elif start < 0:
                # nothing committed: start at the log's beginning (auto.offset.reset=earliest)
                # explicitly. Left to the client, the offset reset delays this input's first
                # fetch by more than RTIM_MAX_IDLE_MS, and the partition would go on without
                # it, out of event-time order (seen after a hand-over).
                start = self._log_start(consumer, tp)
            if start >= 0:
                tp.offset = start
            self._start_offsets[(tp.topic, tp.partition)] = max(start, 0)
        consumer.assign(partitions)
        log.info("partitions assigned", partitions=numbers)

    def _log_start(self, consumer: Consumer, tp: TopicPartition) -> int:
        """The first offset of a partition's log (one ListOffsets request); -1 if unknown."""
        try:
            low, _high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10, cached=False
            )
        except KafkaException as exc:  # the client's own offset reset takes over
            log.warning("log start unknown", topic=tp.topic, partition=tp.partition, error=str(exc))
            return -1
        return int(low)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        for number in numbers:
            task = self._tasks.pop(number, None)
            if task is not None:
                task.store.close()
        if self._ends is not None:
            self._ends.forget(numbers)
        log.info("partitions revoked", partitions=numbers)

    def _open_task(self, partition: int) -> _Task:
        path = self._state_dir / f"p{partition}"
        buffer_mb = self.settings.store_write_buffer_mb
        store = PartitionStore(path, buffer_mb)
        restored = self._restore(partition, store)
        if restored is None:  # local state is ahead of the changelog: it is not ours, rebuild
            store.close()
            PartitionStore.destroy(path)
            store = PartitionStore(path, buffer_mb)
            restored = self._restore(partition, store) or 0
        timers = [(due, cid) for due, cid in store.due_timers(2**62, limit=10**9)]
        heapq.heapify(timers)
        log.info("partition ready", partition=partition, restored=restored, timers=len(timers))
        return _Task(partition, store, store.meta, timers=timers)

    def _restore(self, partition: int, store: PartitionStore) -> int | None:
        """Bring the local store up to the changelog's end; None if the store is ahead."""
        from rtim.worker.changelog import restore_partition

        return restore_partition(self.settings, self._changelog, partition, store)


def _order_key(kind: str, entry: tuple[int, Event | None, float]) -> tuple[int, int, int]:
    """Event time, then the input's rank, then the offset; dead letters first (no state)."""
    offset, event, _fetched = entry
    return order_key(kind, event.ts if event is not None else -1, offset)
