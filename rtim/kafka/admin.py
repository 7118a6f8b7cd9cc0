"""Thin, fail-fast helpers over confluent-kafka's AdminClient (metadata, configs, creation).

Every call has a deadline; an unreachable broker becomes one BrokerError line naming the address
and librdkafka's last connection error, never a hang.

Never ask for the metadata of a named topic to test whether it exists: brokers with automatic
topic creation (Tansu does it) create it. Only whole-cluster metadata is requested here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not re-exported in stubs
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from rtim.errors import BrokerError, TopicError
from rtim.kafka.config import admin_config
from rtim.settings import Settings

__all__ = [
    "DEFAULT_TIMEOUT",
    "RtimAdmin",
    "TopicState",
    "admin_client",
    "alter_topic_config",
    "create_topics",
    "describe_topics",
    "list_topics",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds an admin operation may take before rtim gives up with a clear error."""


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as it exists on the cluster (physical name).

    `config` holds what the broker reported by DescribeConfigs (Apache Kafka reports every
    setting, Tansu only the ones set on the topic); None when the configs were not fetched.
    """

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] | None = None


class RtimAdmin(AdminClient):
    """An AdminClient that remembers its address, deadline and librdkafka's last error."""

    def __init__(self, conf: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.bootstrap = str(conf.get("bootstrap.servers", "?"))
        self.timeout = timeout
        self.errors: deque[str] = deque(maxlen=5)
        conf = dict(conf)
        # the callback must not reference self: a cycle would keep the client (its threads and
        # broker connections) alive until the garbage collector runs
        conf.setdefault("error_cb", _collector(self.errors))
        super().__init__(conf)

    def last_error(self) -> str | None:
        """The most recent client-level error (connection refused, TLS, name resolution…)."""
        self.poll(0)  # error callbacks are served by poll
        return self.errors[-1] if self.errors else None


def _collector(errors: deque[str]) -> Callable[[KafkaError], None]:
    def collect(error: KafkaError) -> None:
        errors.append(error.str())

    return collect


def admin_client(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> RtimAdmin:
    """An admin client for `settings` whose operations give up after `timeout` seconds."""
    millis = max(1000, int(timeout * 1000))
    fail_fast = {
        "log_level": 0,  # failures surface as exceptions carrying librdkafka's reason
        "socket.timeout.ms": millis,
        "socket.connection.setup.timeout.ms": millis,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
    }
    conf = admin_config(settings)
    for key, value in fail_fast.items():
        if key not in settings.kafka_config:  # RTIM_KAFKA_CONFIG has the last word
            conf[key] = value
    return RtimAdmin(conf, timeout=timeout)


def _timeout(admin: AdminClient, timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    return float(getattr(admin, "timeout", DEFAULT_TIMEOUT))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        err: KafkaError = exc.args[0]
        return f"{err.str()} ({err.name()})"
    return str(exc) or type(exc).__name__


def _unreachable(admin: AdminClient, timeout: float, exc: BaseException) -> BrokerError:
    bootstrap = getattr(admin, "bootstrap", "the configured broker")
    reason = admin.last_error() if isinstance(admin, RtimAdmin) else None
    detail = reason or _error_text(exc)
    return BrokerError(
        f"cannot reach the Kafka broker at {bootstrap} within {timeout:g}s: {detail} "
        "(is it running? check RTIM_BROKER and the security settings)"
    )


def list_topics(admin: AdminClient, *, timeout: float | None = None) -> dict[str, TopicState]:
    """Every topic on the cluster with its partition count and replication factor."""
    seconds = _timeout(admin, timeout)
    try:
        metadata = admin.list_topics(timeout=seconds)
    except KafkaException as exc:
        raise _unreachable(admin, seconds, exc) from None
    states: dict[str, TopicState] = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None and not topic.partitions:
            continue  # a topic being created or deleted: not there yet
        partitions = topic.partitions
        replicas = len(partitions[min(partitions)].replicas) if partitions else 0
        states[name] = TopicState(name, len(partitions), replicas)
    return states


def describe_topics(
    admin: AdminClient, names: Iterable[str], *, timeout: float | None = None
) -> dict[str, TopicState]:
    """The named topics that exist, with their configs (DescribeConfigs)."""
    seconds = _timeout(admin, timeout)
    existing = list_topics(admin, timeout=seconds)
    wanted = [name for name in dict.fromkeys(names) if name in existing]
    if not wanted:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, name) for name in wanted],
        request_timeout=seconds,
    )
    states: dict[str, TopicState] = {}
    for resource, future in futures.items():
        name = resource.name
        try:
            entries = future.result(timeout=seconds + 1)
        except KafkaException as exc:
            reason = _error_text(exc)
            raise BrokerError(f"cannot read the configs of topic {name}: {reason}") from None
        config = {key: entry.value for key, entry in entries.items() if entry.value is not None}
        base = existing[name]
        states[name] = TopicState(name, base.partitions, base.replication_factor, config)
    return states


def create_topics(
    admin: AdminClient,
    topics: Iterable[tuple[str, int, int, Mapping[str, str]]],
    *,
    timeout: float | None = None,
) -> dict[str, KafkaError | None]:
    """Create ``(name, partitions, replication_factor, config)`` topics.

    Returns each name's error (None = created); TOPIC_ALREADY_EXISTS is returned, not raised,
    so a caller racing another creator can re-read the topic and compare it.
    """
    seconds = _timeout(admin, timeout)
    new = [
        NewTopic(name, num_partitions=partitions, replication_factor=rf, config=dict(config))
        for name, partitions, rf, config in topics
    ]
    if not new:
        return {}
    futures = admin.create_topics(new, operation_timeout=seconds, request_timeout=seconds)
    results: dict[str, KafkaError | None] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=seconds + 1)
            results[name] = None
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None:
                raise BrokerError(f"creating topic {name} failed: {exc}") from None
            if error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
                raise _unreachable(admin, seconds, exc) from None
            results[name] = error
    return results


def alter_topic_config(
    admin: AdminClient, name: str, config: Mapping[str, str], *, timeout: float | None = None
) -> None:
    """Set topic configs with IncrementalAlterConfigs (other settings are left untouched).

    The legacy AlterConfigs would replace every dynamic setting of the topic, so it is not used
    as a fallback: a broker without IncrementalAlterConfigs gets a TopicError saying so.
    """
    seconds = _timeout(admin, timeout)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in config.items()
        ],
    )
    futures = admin.incremental_alter_configs([resource], request_timeout=seconds)
    for future in futures.values():
        try:
            future.result(timeout=seconds + 1)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is not None and error.code() == KafkaError._UNSUPPORTED_FEATURE:
                raise TopicError(
                    f"the broker does not support IncrementalAlterConfigs; set "
                    f"{', '.join(f'{k}={v}' for k, v in config.items())} on topic {name} by hand"
                ) from None
            raise TopicError(
                f"cannot change the configs of topic {name}: {_error_text(exc)}"
            ) from None
