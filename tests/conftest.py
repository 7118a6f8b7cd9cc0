"""Fixtures for the whole suite (factory fixtures in the style of Quix Streams' tests).

- ``broker`` (session): one embedded Tansu broker on a free port; its log is under pytest's
  tmp dir. Tests isolate themselves by topic prefix, not by broker.
- ``topic_prefix``: a unique ``t<8 hex>.`` per test.
- ``rtim_settings(**overrides)``: a `Settings` for this test's broker, prefix and data dir.
- ``rtim_env(apply_topics=True, **overrides)``: an environment for ``python -m rtim …``
  subprocesses, with the declared topics created under the test's prefix first.
- ``applied_topics(settings)``: create the declared topics for `settings`, return `settings`.

RTIM_* variables of the developer's shell are removed for the session so that the suite is
hermetic; tests choose their settings explicitly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtim.kafka.broker import EmbeddedBroker
from rtim.kafka.topics import ensure_topics
from rtim.settings import Settings, get_settings, settings_env

TEST_SESSION_TIMEOUT_MS = 3000


@pytest.fixture(scope="session", autouse=True)
def _hermetic_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("RTIM_"):
                patch.delenv(name)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session (stopped at the end, never orphaned)."""
    with EmbeddedBroker(0, log_dir=tmp_path_factory.mktemp("broker")) as embedded:
        yield embedded


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic (and consumer group) prefix for this test."""
    return f"t{uuid.uuid4().hex[:8]}."


def _settings_values(
    broker: EmbeddedBroker, prefix: str, data_dir: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "broker": broker.bootstrap,
        "topic_prefix": prefix,
        "data_dir": data_dir,
        "session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
    }
    values.update(overrides)
    return values


@pytest.fixture
def rtim_settings(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Factory: ``rtim_settings(**overrides) -> Settings`` on the test broker and prefix."""

    def make(**overrides: Any) -> Settings:
        values = _settings_values(broker, topic_prefix, tmp_path / "data", overrides)
        return Settings(**values)

    return make


@pytest.fixture
def applied_topics() -> Callable[[Settings], Settings]:
    """``applied_topics(settings) -> settings`` after creating every declared topic for it."""

    def apply(settings: Settings) -> Settings:
        ensure_topics(settings)
        return settings

    return apply


@pytest.fixture
def rtim_env(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> Callable[..., dict[str, str]]:
    """Factory: ``rtim_env(apply_topics=True, **overrides) -> dict`` for subprocess ``env=``.

    Overrides are Settings field names (``group_id="x"`` → ``RTIM_GROUP_ID=x``). With
    `apply_topics`, the declared topics exist under the prefix before it returns.
    """

    def make(apply_topics: bool = True, **overrides: Any) -> dict[str, str]:
        values = _settings_values(broker, topic_prefix, tmp_path / "data", overrides)
        values.setdefault("log_format", "json")
        settings = Settings(**values)
        env = {**os.environ, **settings_env(settings)}
        if apply_topics:
            ensure_topics(settings)
        return env

    return make


# --- topic I/O and workers --------------------------------------------------------------------


class TopicIO:
    """Produce Avro records and read topics back, the way an external client would."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        from rtim.kafka.config import producer_config
        from rtim.serde.codec import Codec

        self.settings = settings
        self.codec = Codec.from_settings(settings)
        self._producer = Producer(producer_config(settings))

    def send(self, topic: str, schema: str, records: list[dict[str, Any]]) -> None:
        """Encode and produce records keyed by their customer_id, then flush."""
        physical = self.settings.topic(topic)
        for record in records:
            value = self.codec.encode(schema, record, topic=physical)
            self._producer.produce(physical, value, record["customer_id"].encode())
        assert self._producer.flush(30) == 0

    def send_raw(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        """Produce raw bytes (for bad input)."""
        self._producer.produce(self.settings.topic(topic), value, key)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        *,
        timestamp: int | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        """Produce encoded bytes to a logical topic (message timestamp and callback optional)."""
        kwargs: dict[str, Any] = {}
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        self._producer.produce(self.settings.topic(topic), value, key, **kwargs)

    def flush(self) -> None:
        assert self._producer.flush(30) == 0

    def read(
        self,
        topic: str,
        *,
        until: Callable[[list[dict[str, Any]]], bool] | None = None,
        count: int | None = None,
        timeout: float = 30,
        settle: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Decoded records of a topic from the beginning, until `until`/`count` holds.

        With neither, reads for `settle` seconds after the last record. Raises on timeout.
        """
        import time

        from confluent_kafka import Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient

        from rtim.kafka.config import admin_config, consumer_config

        physical = self.settings.topic(topic)
        metadata = AdminClient(admin_config(self.settings)).list_topics(timeout=10)
        partitions = metadata.topics[physical].partitions
        consumer = Consumer(consumer_config(self.settings, None))
        consumer.assign([TopicPartition(physical, p, 0) for p in partitions])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        try:
            while True:
                done = (until is not None and until(out)) or (
                    count is not None and len(out) >= count
                )
                if done:
                    return out
                if until is None and count is None and time.monotonic() - quiet_since >= settle:
                    return out
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out reading {topic}: {len(out)} records, wanted {count or until}"
                    )
                for message in consumer.consume(500, 0.2):
                    if message.error():
                        continue
                    _name, record = self.codec.decode(message.value())
                    record["_key"] = message.key()
                    record["_partition"] = message.partition()
                    out.append(record)
                    quiet_since = time.monotonic()
        finally:
            consumer.close()


@pytest.fixture
def topic_io() -> Iterator[Callable[[Settings], TopicIO]]:
    """Factory: ``topic_io(settings) -> TopicIO``."""
    made: list[TopicIO] = []

    def make(settings: Settings) -> TopicIO:
        io = TopicIO(settings)
        made.append(io)
        return io

    yield make
    for io in made:
        io.flush()


class RunningWorker:
    """A WorkerService in a background thread (the same code `rtim worker` runs)."""

    def __init__(
        self,
        settings: Settings,
        learner: bool = True,
        wrap_engine: Callable[[Any], Any] | None = None,
    ) -> None:
        import threading

        from rtim.worker.service import WorkerService

        self.service = WorkerService(settings, learner=learner)
        if wrap_engine is not None:  # a test's stand-in for a faulty strategy or core
            self.service.worker.engine = wrap_engine(self.service.worker.engine)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    @property
    def stats(self) -> Any:
        return self.service.worker.stats

    def wait_for(self, condition: Callable[[Any], bool], timeout: float = 30) -> None:
        """Wait until `condition(stats)` holds (raises on timeout or worker failure)."""
        import time

        deadline = time.monotonic() + timeout
        while not condition(self.stats):
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"worker condition not met in {timeout}s: {self.stats}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.service.stop()
        self._thread.join(60)
        assert not self._thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def run_worker() -> Iterator[Callable[..., RunningWorker]]:
    """Factory: ``run_worker(settings, learner=True, wrap_engine=None) -> RunningWorker``.

    Stopped at teardown. `wrap_engine(engine)` returns the engine the worker runs.
    """
    running: list[RunningWorker] = []

    def start(
        settings: Settings, learner: bool = True, wrap_engine: Callable[[Any], Any] | None = None
    ) -> RunningWorker:
        worker = RunningWorker(settings, learner, wrap_engine)
        running.append(worker)
        return worker

    yield start
    for worker in running:
        if worker._thread.is_alive():
            worker.stop()


def profiles_on_disk(settings: Settings) -> dict[str, Any]:
    """Every profile a stopped worker left in its RocksDB stores under the settings' data dir."""
    from rtim.core.profile import decode_profile
    from rtim.worker.store import PartitionStore

    out: dict[str, Any] = {}
    for path in sorted((Path(settings.data_dir) / "customer").iterdir()):
        store = PartitionStore(path)
        try:
            out.update((cid, decode_profile(raw)) for cid, raw in store.profiles())
        finally:
            store.close()
    return out


@pytest.fixture
def stored_profiles() -> Callable[[Settings], dict[str, Any]]:
    """``stored_profiles(settings) -> {customer_id: profile}`` from a stopped worker's state."""
    return profiles_on_disk
