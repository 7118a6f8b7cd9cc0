"""The simulator: customers with hidden traits, their responses, an audit, and a Kafka driver.

- `rtim.sim.population` (pure): `Population`, `Simulation`, `SimRecord` — the event stream;
- `rtim.sim.responses` (pure): the hidden response model and `respond`;
- `rtim.sim.audit` (pure): `Auditor` (rule violations), `RewardTracker`, lift intervals;
- `rtim.sim.driver`: `SimDriver` (Kafka), `SimReport`, `preload` (bulk load for benchmarks).

The defaults below are those of `rtim simulate` (see docs/simulator.md for why).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_CUSTOMERS",
    "DEFAULT_DRAIN_S",
    "DEFAULT_DURATION_S",
    "DEFAULT_RATE",
    "DEFAULT_SEED",
    "DEFAULT_SPEEDUP",
]

DEFAULT_CUSTOMERS: Final = 5_000
DEFAULT_RATE: Final = 500.0  # behavioural events per wall-clock second
DEFAULT_SPEEDUP: Final = 60.0  # one simulated minute per wall-clock second
DEFAULT_DURATION_S: Final = 60.0  # wall-clock seconds: one simulated hour
DEFAULT_SEED: Final = 1
DEFAULT_DRAIN_S: Final = 10.0  # longest wait for late answers after the run
