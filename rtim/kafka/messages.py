"""What a consumed or delivered record is, for the type checker.

confluent-kafka types every accessor of `Message` as optional, because a message that carries
an error may lack them. A message a consumer returned without an error always has its topic,
partition and offset: `Consumed` says so, and `consumed` views a consumer's batch as such,
once per batch rather than per record.
"""

from __future__ import annotations

from typing import Protocol, cast

from confluent_kafka import KafkaError, Message

__all__ = ["Consumed", "consumed"]


class Consumed(Protocol):
    """A record returned by `Consumer.consume` (check `error()` first: an error event such as
    end-of-partition has its topic and partition, and no offset or value to rely on)."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


def consumed(messages: list[Message]) -> list[Consumed]:
    """The batch ``messages`` as consumed records (no copy, no check: a view for the types)."""
    return cast("list[Consumed]", messages)
