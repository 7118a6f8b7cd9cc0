"""Local customer state: one RocksDB (rocksdict) database per input partition.

Keys:
- ``p`` + customer_id → encoded profile
- ``t`` + due (8 bytes, big-endian) + customer_id → b"" : the timer index, ordered by due time
- ``m`` → msgpack meta: changelog offset, last processed input offset per kind, watermark

The profile is the truth about a customer's timers; the index is derived from it, so it is
written in the same atomic WriteBatch and rebuilt from profiles on changelog restore.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgpack
from rocksdict import Options, Rdict, WriteBatch

__all__ = ["PartitionMeta", "PartitionStore", "timer_key"]

_PROFILE = b"p"
_TIMER = b"t"
_META = b"m"
_TIMER_END = b"u"  # first key after every timer key


def timer_key(due: int, customer_id: str) -> bytes:
    """Index key of a customer's timer at `due` (ms); sorts by due time."""
    return _TIMER + max(due, 0).to_bytes(8, "big") + customer_id.encode()


@dataclass
class PartitionMeta:
    """Progress of one partition, persisted atomically with its state."""

    changelog_offset: int = -1  # last changelog offset reflected in this store
    inputs: dict[str, int] = field(default_factory=dict)  # kind → last processed offset
    watermark: int = 0  # newest event time processed (event-time clock)

    def encode(self) -> bytes:
        return msgpack.packb([self.changelog_offset, self.inputs, self.watermark])

    @classmethod
    def decode(cls, data: bytes) -> PartitionMeta:
        changelog_offset, inputs, watermark = msgpack.unpackb(data, strict_map_key=False)
        return cls(changelog_offset, dict(inputs), watermark)


class PartitionStore:
    """The RocksDB database of one partition's customers."""

    def __init__(self, path: Path, write_buffer_mb: int | None = None) -> None:
        """Open (or create) the database at `path`; `write_buffer_mb` bounds its memtables."""
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_background_jobs(2)
        if write_buffer_mb is not None:
            options.set_write_buffer_size(write_buffer_mb * 1024 * 1024)
            options.set_max_write_buffer_number(2)
        self.path = path
        self._db = Rdict(str(path), options=options)
        raw = self._db.get(_META)
        self.meta = PartitionMeta.decode(raw) if raw is not None else PartitionMeta()

    # --- reads ----------------------------------------------------------------------------------
    def get(self, customer_id: str) -> bytes | None:
        """The encoded profile of a customer, or None."""
        value: bytes | None = self._db.get(_PROFILE + customer_id.encode())
        return value

    def due_timers(self, until: int, limit: int = 10_000) -> list[tuple[int, str]]:
        """(due, customer_id) of timers due at or before `until`, oldest first."""
        out: list[tuple[int, str]] = []
        # every key of this store is bytes (rocksdict types them as any key it could hold)
        for key in cast("Iterator[bytes]", self._db.keys(from_key=_TIMER)):
            if key >= _TIMER_END:
                break
            due = int.from_bytes(key[1:9], "big")
            if due > until or len(out) >= limit:
                break
            out.append((due, key[9:].decode()))
        return out

    def profiles(self) -> Iterator[tuple[str, bytes]]:
        """Every (customer_id, encoded profile) of the partition."""
        for key, value in cast("Iterator[tuple[bytes, bytes]]", self._db.items(from_key=_PROFILE)):
            if not key.startswith(_PROFILE):
                break
            yield key[1:].decode(), value

    # --- writes ---------------------------------------------------------------------------------
    def write(
        self,
        profiles: dict[str, bytes | None],
        timers_added: list[bytes],
        timers_removed: list[bytes],
        meta: PartitionMeta,
    ) -> None:
        """Write a batch atomically: profiles (None = delete), timer index changes and meta."""
        batch = WriteBatch(raw_mode=True)
        for key in timers_removed:
            batch.delete(key)
        for key in timers_added:
            batch.put(key, b"")
        for customer_id, value in profiles.items():
            if value is None:
                batch.delete(_PROFILE + customer_id.encode())
            else:
                batch.put(_PROFILE + customer_id.encode(), value)
        batch.put(_META, meta.encode())
        self._db.write(batch)
        self.meta = meta

    def approximate_size(self) -> dict[str, Any]:
        """RocksDB's own size estimates (bytes on disk, live data)."""
        props = {}
        for name in (
            "rocksdb.total-sst-files-size",
            "rocksdb.estimate-live-data-size",
            "rocksdb.cur-size-all-mem-tables",
        ):
            try:
                props[name] = int(self._db.property_int_value(name) or 0)
            except Exception:  # property not available in this build
                props[name] = 0
        return props

    def flush(self) -> None:
        self._db.flush()

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        """Delete a partition's local state (it will be restored from the changelog)."""
        shutil.rmtree(path, ignore_errors=True)
