"""How many records each assigned input partition has on the broker that are not consumed yet.

The worker merges its input topics by event time (`CustomerWorker._in_time_order`): a record
waits while another input of its partition may still deliver an earlier one. Known lag is
waited for; an input with nothing more goes on. The client's cached end offset, from the last
fetch response, costs no request and proves a lag — those records exist — but not the absence
of one: a fetch response is not one moment across partitions (the broker reads them in turn; a
cluster serves them from different brokers), so the cached end of one input can predate a
record that was acknowledged before a record already fetched from another. "Nothing more" is
therefore asked of the broker (ListOffsets) once per batch step, after every buffered record
was fetched, on a connection of its own (the consumer's would queue the question behind its
fetch long-poll, ~10 ms). It names only the inputs of the partitions that hold records in that
step: on a broker whose answer costs per partition (Tansu), the others would add to the wait
of every step. A partition outside them is asked about when it needs to be, in a question of
its own. An answer is a lower bound of the end from then on, so a lag it shows needs no second
question.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from rtim.logs import get_logger

__all__ = ["InputEnds"]

log = get_logger("worker")

_TIMEOUT_S = 1.0  # longest wait for the broker's answer (then: the cached ends)


class InputEnds:
    """The lag of the inputs ``consumer`` is assigned, asking ``client`` for their ends.

    ``start_offsets``: where each (topic, partition) starts reading, for an input nothing has
    been consumed from yet. Not thread-safe: the worker's pipeline thread only.
    """

    def __init__(
        self,
        consumer: Consumer,
        client: Consumer | None,
        start_offsets: Mapping[tuple[str, int], int],
        timeout_s: float = _TIMEOUT_S,
    ) -> None:
        self._consumer = consumer
        self._client = client
        self._start_offsets = start_offsets
        self._timeout_s = timeout_s
        self._known: dict[tuple[str, int], int] = {}  # lower bounds of the ends
        self._now: dict[tuple[str, int], int] = {}  # answers in this step
        self._asked: set[int] = set()  # partitions asked about in this step
        self._step: frozenset[int] = frozenset()  # partitions with records in this step
        self.queries = 0  # ListOffsets questions asked
        self.unanswered = 0  # of them, failed or timed out
        self.inputs_named = 0  # input partitions named in them
        self.wait_s = 0.0  # seconds spent waiting for their answers

    def close(self) -> None:
        """Close the client that asks for the ends."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def new_step(self, partitions: Iterable[int]) -> None:
        """Records were fetched since the last question: the next "nothing more" asks again,
        for the inputs of ``partitions`` (those holding records) at once."""
        self._now = {}
        self._asked = set()
        self._step = frozenset(partitions)

    def forget(self, partitions: Collection[int]) -> None:
        """Drop what is known of revoked partitions."""
        for known in (self._known, self._now):
            for key in [k for k in known if k[1] in partitions]:
                del known[key]
        self._asked.difference_update(partitions)

    def lag(self, topic: str, partition: int, *, fresh: bool) -> int | None:
        """Records of this input partition on the broker not consumed yet (None: unknown).

        ``fresh``: a fetch has delivered a record or the end of this input since it was
        assigned, so its cached end is not an earlier assignment's; used only when the broker
        does not answer.
        """
        key = (topic, partition)
        tp = TopicPartition(topic, partition)
        try:
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            position = self._consumer.position([tp])[0].offset
        except KafkaException:
            return None
        if position < 0:  # nothing consumed yet: from where the group starts reading
            position = self._start_offsets.get(key, low)
            if position < 0:
                return None
        end = max(high, self._known.get(key, -1))
        if end > position:
            return end - position
        if partition not in self._asked:
            self._ask((self._step - self._asked) | {partition})
        confirmed = self._now.get(key)
        if confirmed is not None:
            return max(0, confirmed - position)
        return 0 if high >= 0 and fresh else None

    def _ask(self, partitions: Collection[int]) -> None:
        """Learn the end offset of every assigned input of ``partitions`` (one request per
        broker) into this step's answers."""
        self._asked.update(partitions)
        if self._client is None:
            return
        ends = self._now
        try:
            wanted = [
                TopicPartition(tp.topic, tp.partition, OFFSET_END)
                for tp in self._consumer.assignment()
                if tp.partition in partitions
            ]
            if not wanted:
                return
            self.queries += 1
            self.inputs_named += len(wanted)
            started = time.perf_counter()
            try:
                answers = self._client.offsets_for_times(wanted, timeout=self._timeout_s)
            finally:
                self.wait_s += time.perf_counter() - started
        except KafkaException as exc:
            self.unanswered += 1
            log.debug("end offsets unanswered", error=str(exc))
            return
        known = self._known
        for tp in answers:
            if tp.error is None and tp.offset >= 0:
                key = (tp.topic, tp.partition)
                ends[key] = tp.offset
                if tp.offset > known.get(key, -1):
                    known[key] = tp.offset
