"""The replay digest that checks an optimisation changes nothing: deterministic, and sensitive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rtim.bench.replay_digest import main, replay_digest

_SMALL = {"workload": 3_000, "customers": 150}


def test_a_replay_exercises_every_output_and_the_timers() -> None:
    result = replay_digest(**_SMALL)
    assert result["events"] == 3_000
    assert set(result["outputs_by_schema"]) >= {"Decision", "DecisionRecord"}
    assert result["timers_fired"] > 0, "the event-time timers are part of the work replayed"
    assert result["profiles"] == 150


def test_the_digest_is_the_same_whatever_the_hash_seed() -> None:
    # a decision or profile that depended on set or dict order of strings would differ here
    code = (
        "import json; from rtim.bench.replay_digest import replay_digest;"
        f"print(json.dumps(replay_digest(**{_SMALL!r})))"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(json.loads(out.stdout)["digest"])
    assert digests == {replay_digest(**_SMALL)["digest"]}


def test_a_different_workload_gives_a_different_digest() -> None:
    assert replay_digest(**_SMALL)["digest"] != replay_digest(**_SMALL, seed=8)["digest"]
    shorter = replay_digest(2_999, **_SMALL)
    assert shorter["events"] == 2_999
    assert shorter["digest"] != replay_digest(**_SMALL)["digest"]


def test_a_replay_beyond_its_workload_is_refused() -> None:
    with pytest.raises(ValueError, match="events must be 1 to the workload's 3000"):
        replay_digest(3_001, **_SMALL)


def test_bad_sizes_get_one_clear_line_and_a_non_zero_exit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--workload", "100", "--events", "101"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith("--events must be 1 to --workload (100)")
