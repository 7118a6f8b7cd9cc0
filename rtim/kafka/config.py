"""librdkafka client configuration built from settings (bootstrap, TLS, SASL, extras)."""

from __future__ import annotations

from typing import Any

from rtim.settings import Settings

__all__ = ["admin_config", "client_config", "consumer_config", "producer_config"]


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Properties every client shares: bootstrap servers, security, and `RTIM_KAFKA_CONFIG`."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.broker,
        "security.protocol": settings.security_protocol,
    }
    if settings.ssl_ca_location:
        conf["ssl.ca.location"] = str(settings.ssl_ca_location)
    if settings.ssl_certificate_location:
        conf["ssl.certificate.location"] = str(settings.ssl_certificate_location)
    if settings.ssl_key_location:
        conf["ssl.key.location"] = str(settings.ssl_key_location)
    if settings.ssl_key_password is not None:
        conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_endpoint_identification else "none"
        )
    if settings.sasl_mechanism:
        conf["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        conf["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        conf["sasl.password"] = settings.sasl_password.get_secret_value()
    conf.update(settings.kafka_config)
    conf.update(overrides)
    return conf


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """A safe producer: idempotent, acks from all replicas, Java-compatible partitioning.

    ``murmur2_random`` partitions keys exactly like the Java client, so records produced by
    upstream JVM systems and by rtim land on the same partition for the same customer.
    """
    base = {
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "message.max.bytes": 4 * 1024 * 1024,
    }
    base.update(overrides)
    return client_config(settings, **base)


def consumer_config(settings: Settings, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    """A consumer that commits only when told to. Without a group it joins none."""
    base: dict[str, Any] = {
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": max(100, settings.session_timeout_ms // 10),
        "max.poll.interval.ms": max(settings.session_timeout_ms, 300000),
        # co-partitioned topics: the same partition number of every input topic goes to the
        # same worker; `range` guarantees that when all topics have equal partition counts.
        "partition.assignment.strategy": "range",
        "fetch.wait.max.ms": 10,
        "enable.partition.eof": False,
    }
    base["group.id"] = group_id if group_id else "rtim.unused"
    base.update(overrides)
    return client_config(settings, **base)


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """An admin client."""
    return client_config(settings, **overrides)
