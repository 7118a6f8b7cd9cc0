"""The in-process breakdown of the worker's stages: it counts the timers' work too."""

from __future__ import annotations

from pathlib import Path

from rtim.bench.breakdown import measure_breakdown
from rtim.bench.workload import WorkloadSpec, generate_split
from rtim.settings import Settings
from rtim.worker.service import load_configured_strategy

_NOW_MS = 1_767_225_600_000


def test_the_breakdown_fires_the_due_timers_and_counts_them_as_a_stage(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    strategy = load_configured_strategy(settings)
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    preamble, mix = generate_split(WorkloadSpec(3_000, 150, 7, _NOW_MS, offers=offers))
    out = measure_breakdown(settings, [*preamble, *mix], tmp_path / "state", batch_size=500)
    stages = out["us_per_event"]
    assert out["timer_steps_per_event"] > 0, "delayed triggers and attribution expiries ran"
    assert stages["timers"] > 0
    assert out["us_per_event_total"] == round(sum(stages.values()), 2)
