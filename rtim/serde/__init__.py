"""Serialization: the Avro contract, the wire codec, JSON lines, the schema registry client."""

from rtim.serde.codec import Codec, subject_for
from rtim.serde.jsonio import parse_json_line, parse_timestamp, record_from_json, record_to_json
from rtim.serde.registry import RegistryError, SchemaRegistryClient
from rtim.serde.schemas import AvroSchema, SchemaSet, get_schemas, load_schemas
from rtim.serde.topicmap import TopicSchema, topic_schema

__all__ = [
    "AvroSchema",
    "Codec",
    "RegistryError",
    "SchemaRegistryClient",
    "SchemaSet",
    "TopicSchema",
    "get_schemas",
    "load_schemas",
    "parse_json_line",
    "parse_timestamp",
    "record_from_json",
    "record_to_json",
    "subject_for",
    "topic_schema",
]
