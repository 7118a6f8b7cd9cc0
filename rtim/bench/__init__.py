"""`rtim bench`: measured performance of the real worker against baselines, in the same run.

- `workload`: a deterministic, realistic input mix (valid Avro, keyed by customer id);
- `workerproc`: the real `WorkerService` in a child process, observed through shared memory;
- `loadgen`: paced decision requests and outcomes, latencies measured at the client;
- `baselines` (+ `faust_app`): raw consume, a naive Faust agent with a RocksDB table, an echo;
- `memory`: profile sizes, RocksDB bytes per customer, worker RSS at a million customers;
- `breakdown`: the worker's stages timed one by one, in-process;
- `harness`: every phase on one broker; returns the result `rtim bench` prints and writes;
- `prototypes`: optimisation prototypes measured against the code they would replace;
- `replay_digest`: a fixed replay of the per-record work, digested (and counted).

docs/performance.md describes the method and every figure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["print_json"]


def print_json(result: Mapping[str, Any], path: Path | None = None) -> None:
    """Print ``result`` as indented JSON, and write the same text to ``path`` when given."""
    text = json.dumps(result, indent=2) + "\n"
    if path is not None:
        path.write_text(text)
    sys.stdout.write(text)
