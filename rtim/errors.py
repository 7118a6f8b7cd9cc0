"""The one error family of rtim. Every message is written for the person reading it."""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "DecodeError",
    "RtimError",
    "SchemaError",
    "StrategyError",
    "TopicError",
    "ValidationError",
]


class RtimError(Exception):
    """Base of every error rtim raises on purpose; its message is one clear line."""


class ConfigError(RtimError):
    """A setting, flag or file is missing or wrong."""


class SchemaError(RtimError):
    """An Avro schema is invalid or incompatible with its previous version."""


class DecodeError(RtimError):
    """Bytes could not be decoded into a record (not Avro, unknown schema, truncated)."""


class ValidationError(RtimError):
    """A decoded record breaks a rule of the contract (enum, range, timestamp, key)."""


class StrategyError(RtimError):
    """A strategy file is malformed; the message names the file and the place."""


class TopicError(RtimError):
    """A topic is unknown, missing, or differs from its declaration."""


class BrokerError(RtimError):
    """The Kafka broker cannot be reached or refused an operation."""
