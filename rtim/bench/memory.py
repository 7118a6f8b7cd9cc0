"""Memory per customer: encoded profile sizes, RocksDB bytes per customer, worker RSS.

`write_profiles` fills the worker's own stores (`PartitionStore`, one per partition, the same
`WriteBatch` path the worker uses) with N profiles cloned from real ones, each in the partition
Kafka would give its key (`murmur2_partition`, the Java/librdkafka ``murmur2_random``
partitioner), so a worker started on that directory finds them where it looks.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rtim.bench.workload import Item, _item
from rtim.core.profile import decode_profile, encode_profile
from rtim.worker.store import PartitionMeta, PartitionStore

__all__ = [
    "dir_bytes",
    "murmur2_partition",
    "profile_sizes",
    "read_profiles",
    "touch_items",
    "write_profiles",
]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition of `key` under Kafka's default (Java) partitioner: murmur2, positive."""
    length = len(key)
    h = (0x9747B28C ^ length) & _MASK
    end = length - length % 4
    for i in range(0, end, 4):
        k = key[i] | key[i + 1] << 8 | key[i + 2] << 16 | key[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest == 3:
        h ^= key[end + 2] << 16
    if rest >= 2:
        h ^= key[end + 1] << 8
    if rest >= 1:
        h ^= key[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def dir_bytes(path: Path) -> int:
    """Bytes of every file under `path` (apparent size)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file RocksDB removed meanwhile
                total += os.path.getsize(os.path.join(root, name))
    return total


def _stores(state_dir: Path) -> list[Path]:
    root = state_dir / "customer"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def read_profiles(state_dir: Path, limit: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(customer id, encoded profile) from a stopped worker's stores under `state_dir`."""
    n = 0
    for path in _stores(state_dir):
        store = PartitionStore(path)
        try:
            for cid, raw in store.profiles():
                yield cid, raw
                n += 1
                if limit is not None and n >= limit:
                    return
        finally:
            store.close()


def profile_sizes(state_dir: Path) -> dict[str, Any]:
    """Encoded profile sizes (what RocksDB and the changelog store per customer)."""
    sizes = sorted(len(raw) for _cid, raw in read_profiles(state_dir))
    if not sizes:
        return {"profiles": 0}
    n = len(sizes)
    return {
        "profiles": n,
        "mean_bytes": round(sum(sizes) / n, 1),
        "p50_bytes": sizes[n // 2],
        "p99_bytes": sizes[min(n - 1, int(n * 0.99))],
        "max_bytes": sizes[-1],
        "store_dir_bytes": dir_bytes(state_dir / "customer"),
    }


def write_profiles(
    state_dir: Path,
    templates: Sequence[bytes],
    count: int,
    partitions: int,
    *,
    id_format: str = "m{:07d}",
    batch: int = 10_000,
) -> dict[str, Any]:
    """Write `count` profiles (templates re-keyed) into one PartitionStore per partition."""
    if not templates:
        raise ValueError("no template profiles to clone")
    decoded = [decode_profile(t) for t in templates]
    stores = [PartitionStore(state_dir / "customer" / f"p{p}") for p in range(partitions)]
    pending: list[dict[str, bytes | None]] = [{} for _ in range(partitions)]
    encoded_bytes = 0
    started = time.perf_counter()
    try:
        for i in range(count):
            cid = id_format.format(i)
            profile = dict(decoded[i % len(decoded)])
            profile["customer_id"] = cid
            value = encode_profile(profile)  # type: ignore[arg-type]
            encoded_bytes += len(value)
            p = murmur2_partition(cid.encode(), partitions)
            pending[p][cid] = value
            if len(pending[p]) >= batch:
                stores[p].write(pending[p], [], [], PartitionMeta())
                pending[p] = {}
        for p, values in enumerate(pending):
            if values:
                stores[p].write(values, [], [], PartitionMeta())
        write_s = time.perf_counter() - started
        for store in stores:
            store.flush()
        sst = sum(s.approximate_size()["rocksdb.total-sst-files-size"] for s in stores)
        live = sum(s.approximate_size()["rocksdb.estimate-live-data-size"] for s in stores)
    finally:
        for store in stores:
            store.close()
    on_disk = dir_bytes(state_dir / "customer")
    return {
        "profiles": count,
        "partitions": partitions,
        "write_seconds": round(write_s, 2),
        "mean_encoded_bytes": round(encoded_bytes / count, 1),
        "sst_bytes": sst,
        "live_data_bytes": live,
        "dir_bytes": on_disk,
        "sst_bytes_per_customer": round(sst / count, 1),
        "dir_bytes_per_customer": round(on_disk / count, 1),
    }


def touch_items(
    count: int, population: int, now_ms: int, *, seed: int = 5, id_format: str = "m{:07d}"
) -> list[Item]:
    """One page view for each of `count` distinct customers among `population`, in order."""
    rng = random.Random(seed)
    chosen = rng.sample(range(population), min(count, population))
    items = []
    for n, i in enumerate(chosen):
        cid = id_format.format(i)
        ts = now_ms - (count - n)
        record = {
            "event_id": f"touch{n}",
            "customer_id": cid,
            "ts": ts,
            "session_id": f"touch-s{i}",
            "type": "page_view",
            "page": "/",
            "product_id": None,
            "category": None,
            "price": None,
            "quantity": None,
            "anonymous_id": None,
        }
        items.append(_item("click", record))
    return items
