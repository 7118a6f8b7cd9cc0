"""`rtim replay`: export a time range of recorded topics to files, or republish it to a sandbox."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from rtim.core.events import INPUT_TOPICS

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim replay`."""
    app.command("replay")(replay)


def replay(  # noqa: PLR0917 - typer maps parameters to options
    start: Annotated[
        str, typer.Option("--from", help="Start of the range: ISO-8601 or epoch ms (inclusive).")
    ] = "0",
    end: Annotated[
        str | None, typer.Option("--to", help="End of the range: ISO-8601 or epoch ms (exclusive).")
    ] = None,
    topics: Annotated[
        str,
        typer.Option("--topics", help="Comma-separated logical topics (default: every input)."),
    ] = ",".join(INPUT_TOPICS),
    out: Annotated[
        Path | None,
        typer.Option("--out", file_okay=False, help="Export here, one file per topic."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Export format: `jsonl` or `avro` (container files).")
    ] = "jsonl",
    sandbox_prefix: Annotated[
        str | None,
        typer.Option(
            "--to-prefix",
            help="Republish under this topic prefix instead (topics are created there), same "
            "keys, partitions and timestamps.",
        ),
    ] = None,
) -> None:
    """Read a time range of recorded topics with a standalone consumer (commits nothing, joins
    no group) and export it or republish it to a sandbox prefix."""
    from rtim.errors import ConfigError
    from rtim.replay.reader import time_range
    from rtim.serde.topicmap import topic_schema
    from rtim.settings import get_settings

    settings = get_settings()
    start_ms, end_ms = time_range(start, end)
    names = [t.strip() for t in topics.split(",") if t.strip()]
    for name in names:
        topic_schema(name)  # unknown topic: one clear line
    if (out is None) == (sandbox_prefix is None):
        raise ConfigError(
            "give exactly one of --out DIR (export) or --to-prefix PREFIX (republish)"
        )
    if fmt not in ("jsonl", "avro"):
        raise ConfigError(f"--format must be jsonl or avro, not {fmt!r}")
    if sandbox_prefix is not None and sandbox_prefix == settings.topic_prefix:
        raise ConfigError(
            "--to-prefix must differ from RTIM_TOPIC_PREFIX (never replay onto live topics)"
        )
    if out is not None:
        counts = _export(settings, names, start_ms, end_ms, out=out, fmt=fmt)
    else:
        assert sandbox_prefix is not None
        counts = _republish(settings, names, start_ms, end_ms, sandbox_prefix)
    for topic in names:
        print(f"{topic}: {counts.get(topic, 0)} records")


def _export(
    settings: Any, names: list[str], start_ms: int, end_ms: int | None, *, out: Path, fmt: str
) -> Counter[str]:
    import base64

    from rtim.replay.reader import read_range
    from rtim.serde.codec import Codec
    from rtim.serde.jsonio import record_to_json

    codec = Codec.from_settings(settings)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in names}
    files = {t: (out / f"{t}.jsonl").open("w") for t in names} if fmt == "jsonl" else {}
    try:
        for m in read_range(settings, names, start_ms, end_ms):
            counts[m.topic] += 1
            try:
                schema, record = codec.decode(m.value or b"")
            except Exception:  # keep undecodable records too, as bytes
                schema, record = "", {}
            if fmt == "jsonl":
                line = {
                    "partition": m.partition,
                    "offset": m.offset,
                    "timestamp": m.timestamp,
                    "key": m.key.decode("utf-8", "replace") if m.key is not None else None,
                    "schema": schema or None,
                    "value": record_to_json(record) if schema else None,
                }
                if not schema:
                    line["raw"] = base64.b64encode(m.value or b"").decode()
                files[m.topic].write(json.dumps(line) + "\n")
            elif schema:
                rows[m.topic].append(record)
    finally:
        for f in files.values():
            f.close()
    if fmt == "avro":
        _write_avro(out, rows)
    return counts


def _write_avro(out: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    import fastavro

    from rtim.serde.schemas import get_schemas
    from rtim.serde.topicmap import topic_schema

    schemas = get_schemas()
    for topic, records in rows.items():
        schema = schemas.current(topic_schema(topic).schema).raw
        with (out / f"{topic}.avro").open("wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), records, codec="deflate")


def _republish(
    settings: Any, names: list[str], start_ms: int, end_ms: int | None, prefix: str
) -> Counter[str]:
    from confluent_kafka import Producer

    from rtim.errors import BrokerError
    from rtim.kafka.config import producer_config
    from rtim.kafka.topics import ensure_topics
    from rtim.replay.reader import read_range

    sandbox = settings.model_copy(update={"topic_prefix": prefix})
    ensure_topics(sandbox)
    producer = Producer(producer_config(sandbox))
    errors: list[str] = []
    counts: Counter[str] = Counter()
    for m in read_range(settings, names, start_ms, end_ms):
        while True:
            try:
                producer.produce(
                    sandbox.topic(m.topic),
                    m.value,
                    m.key,
                    partition=m.partition,
                    timestamp=m.timestamp,
                    on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
                )
                break
            except BufferError:
                producer.poll(0.1)
        counts[m.topic] += 1
    if producer.flush(60) or errors:
        raise BrokerError(f"republishing failed: {errors[:1] or 'not acknowledged in 60 s'}")
    return counts
