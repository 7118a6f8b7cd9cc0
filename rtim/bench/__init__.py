"""`rtim bench`: measured performance of the real worker against baselines, in the same run.

- `workload`: a deterministic, realistic input mix (valid Avro, keyed by customer id);
- `workerproc`: the real `WorkerService` in a child process, observed through shared memory;
- `loadgen`: paced decision requests and outcomes, latencies measured at the client;
- `baselines` (+ `faust_app`): raw consume, a naive Faust agent with a RocksDB table, an echo;
- `memory`: profile sizes, RocksDB bytes per customer, worker RSS at a million customers;
- `breakdown`: the worker's stages timed one by one, in-process;
- `harness`: every phase on one broker; returns the result `rtim bench` prints and writes;
- `prototypes`: optimisation prototypes measured against the code they would replace.

docs/performance.md describes the method and every figure.
"""

__all__: list[str] = []
