"""Which schema each logical topic carries, and which field is its key (from topics/topics.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from rtim.errors import ConfigError, TopicError
from rtim.paths import contract_dir

__all__ = ["INTERNAL", "TopicSchema", "load_topic_schemas", "topic_schema"]

INTERNAL = "internal"
"""The `schema` of topics that hold rtim's own (non-Avro) state."""


@dataclass(frozen=True, slots=True)
class TopicSchema:
    """A logical topic, the record schema of its values and how its key is described."""

    topic: str
    schema: str
    key: str

    @property
    def is_avro(self) -> bool:
        """False for internal topics (not Avro, not for people)."""
        return self.schema != INTERNAL

    def key_of(self, record: Mapping[str, Any]) -> bytes | None:
        """The Kafka key of `record` on this topic, UTF-8 (None for a null key).

        The declared key names a field (``customer_id``, ``model id`` → ``model_id``), looked
        up at the top of the record and then in its nested records (a DecisionRecord's
        ``decision``); the DLQ's ``source key`` is the dead letter's ``key`` field.
        """
        name = self.key.strip().replace(" ", "_")
        if name in record:
            return _key_bytes(record[name])
        for nested in record.values():
            if isinstance(nested, Mapping) and name in nested:
                return _key_bytes(nested[name])
        return _key_bytes(record.get("key"))


def _key_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def load_topic_schemas(path: Path | None = None) -> dict[str, TopicSchema]:
    """Logical topic name → TopicSchema, read from topics.yaml."""
    file = path if path is not None else contract_dir("topics") / "topics.yaml"
    try:
        document: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    topics = document.get("topics") if isinstance(document, dict) else None
    if not isinstance(topics, list):
        raise ConfigError(f"{file} has no `topics` list")
    result = {}
    for entry in topics:
        if not isinstance(entry, dict) or "name" not in entry or "schema" not in entry:
            raise ConfigError(f"{file}: every topic needs a name and a schema, got {entry!r}")
        name = str(entry["name"])
        result[name] = TopicSchema(name, str(entry["schema"]), str(entry.get("key", "")))
    return result


@lru_cache(maxsize=1)
def _shipped() -> dict[str, TopicSchema]:
    return load_topic_schemas()


def topic_schema(logical: str) -> TopicSchema:
    """The declaration of a logical topic; TopicError (one line) if there is none."""
    topics = _shipped()
    found = topics.get(logical)
    if found is None:
        hint = ""
        if any(logical.endswith(name) for name in topics):
            hint = " — give the logical name, without RTIM_TOPIC_PREFIX"
        raise TopicError(f"unknown topic {logical!r} (not declared in topics/topics.yaml){hint}")
    return found
