"""The naive Faust baseline, run as its own process: one agent, one RocksDB table update per event.

``python -m rtim.bench.faust_app CONFIG.json`` starts a faust-streaming worker (its own app id,
``store="rocksdb://"`` via rocksdict) that reads the bench's input topics as raw bytes and, for
every event, increments a per-customer counter in a Table (one read + one write, each write a
changelog record). Progress is written to ``CONFIG["out"]`` as JSON (events counted, and
`time.perf_counter` at the first event, after the warm-up and at the latest event); the parent
stops the process when it has seen enough. Nothing here is rtim code on purpose: this is what
DESIGN.md's recommended Faust agent + table costs on the same broker and data.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

_WRITE_EVERY_S = 0.25


def main(argv: list[str] | None = None) -> None:
    """Run the baseline worker with the JSON config file named in `argv[0]`."""
    args = sys.argv[1:] if argv is None else argv
    config: dict[str, Any] = json.loads(Path(args[0]).read_text())
    import faust

    out = Path(config["out"])
    warmup = int(config.get("warmup", 0))
    app = faust.App(
        config["app_id"],
        broker=f"kafka://{config['bootstrap']}",
        store="rocksdb://",
        datadir=config["datadir"],
        topic_partitions=int(config["partitions"]),
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=float(config.get("session_timeout_s", 6)),
        broker_heartbeat_interval=0.5,
        web_enabled=False,
    )
    topic = app.topic(*config["topics"], key_serializer="raw", value_serializer="raw")
    table = app.Table("bench-counts", default=int, partitions=int(config["partitions"]))
    state = {"count": 0, "t_first": 0.0, "t_warm": 0.0, "t_last": 0.0, "written": 0.0}

    def write() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in state.items() if k != "written"}))
        os.replace(tmp, out)

    @app.agent(topic)
    async def count(stream: Any) -> None:  # the whole baseline: one table update per event
        async for key, _value in stream.items():
            customer = key.decode() if key else ""
            table[customer] += 1
            now = time.perf_counter()
            state["count"] += 1
            state["t_last"] = now
            if state["count"] == 1:
                state["t_first"] = now
            if state["count"] == warmup:
                state["t_warm"] = now
            if now - state["written"] >= _WRITE_EVERY_S:
                state["written"] = now
                write()

    @app.timer(_WRITE_EVERY_S)  # type: ignore[untyped-decorator]
    async def flush_progress() -> None:
        if state["count"]:
            write()

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
