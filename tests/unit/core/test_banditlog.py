"""Reading generic logged-bandit-feedback files (JSON lines and CSV)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtim.core.banditlog import LoggedDecision, parse_bandit_log, read_bandit_log
from rtim.errors import ConfigError, ValidationError

MAY_1 = 1_714_521_600_000  # 2024-05-01T00:00:00Z in epoch ms


def line(**fields: object) -> str:
    base: dict[str, object] = {
        "ts": MAY_1,
        "context": {},
        "action": "a",
        "propensity": 0.5,
        "reward": 1,
    }
    return json.dumps(base | fields)


def test_jsonl_reads_every_field() -> None:
    log = parse_bandit_log(
        [
            line(
                ts="2024-05-01T00:00:02Z",
                context={"age": 41, "segment": "gold", "vip": True, "gone": None},
                action="card",
                propensity=0.25,
                reward=0,
                actions=["card", "loan"],
            ),
            line(ts=MAY_1 + 1000, action=7, propensity=1, reward=2.5),
        ],
        "jsonl",
        source="x.jsonl",
    )
    first, second = log.decisions
    context: dict[str, float | str] = {"age": 41.0, "segment": "gold", "vip": 1.0}
    assert second == LoggedDecision(MAY_1 + 2000, context, "card", 0.25, 0.0, ("card", "loan"), 1)
    assert first == LoggedDecision(MAY_1 + 1000, {}, "7", 1.0, 2.5, None, line=2)
    assert log.actions == ("7", "card", "loan")
    assert log.source == "x.jsonl"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (MAY_1, MAY_1),
        (float(MAY_1), MAY_1),
        ("2024-05-01T00:00:00Z", MAY_1),
        ("2024-05-01T00:00:00.250+00:00", MAY_1 + 250),
        ("2024-05-01T02:00:00+02:00", MAY_1),
        ("2024-05-01T00:00:00", MAY_1),  # no offset: UTC
        ("2024-05-01", MAY_1),
        (str(MAY_1), MAY_1),
    ],
)
def test_timestamps_iso_or_epoch_ms(ts: object, expected: int) -> None:
    assert parse_bandit_log([line(ts=ts)], "jsonl").decisions[0].ts == expected


def test_decisions_are_sorted_by_ts_keeping_file_order_for_ties() -> None:
    log = parse_bandit_log(
        [line(ts=3, action="x"), line(ts=1), line(ts=3, action="y"), line(ts=2)], "jsonl"
    )
    assert [(d.ts, d.line) for d in log.decisions] == [(1, 2), (2, 4), (3, 1), (3, 3)]


def test_error_carries_the_line_number() -> None:
    lines = [line(ts=MAY_1 + i) for i in range(16)] + [line(propensity=0)]
    with pytest.raises(ValidationError) as err:
        parse_bandit_log(lines, "jsonl", source="log.jsonl")
    assert str(err.value) == "bandit log log.jsonl: line 17: propensity must be in (0, 1], got 0"


def test_several_errors_are_reported_together_and_blank_lines_keep_numbering() -> None:
    lines = [
        line(),
        "",
        "{not json",
        line(propensity=1.5, reward="much"),
        line(action="c", actions=["a", "b"]),
        json.dumps({"ts": 1, "context": {}, "action": "a", "propensity": 0.5}),
        "[1, 2]",
        line(ts="yesterday"),
        line(context={"x": [1]}),
        line(actions="a|b"),
        line(action=True),
        line(actions=["a", "a"]),
    ]
    with pytest.raises(ValidationError) as err:
        parse_bandit_log(lines, "jsonl")
    assert str(err.value) == (
        "bandit log <input>: "
        "line 3: not valid JSON (Expecting property name enclosed in double quotes at column 2); "
        "line 4: propensity must be in (0, 1], got 1.5; reward must be a number, got 'much'; "
        "line 5: action 'c' is not among the available actions; "
        "line 6: reward is required; "
        "line 7: expected a JSON object, got list; "
        "line 8: ts must be ISO-8601 or epoch milliseconds, got 'yesterday'; "
        "line 9: context.x must be a number or a string, got [1]; "
        "line 10: actions must be a non-empty list of action ids, got a|b; "
        "line 11: action must be a non-empty string or an integer, got true; "
        "line 12: actions lists an action twice"
    )
    assert "\n" not in str(err.value)


def test_many_errors_are_capped() -> None:
    with pytest.raises(ValidationError, match=r"line 10: .*; … and 5 more$") as err:
        parse_bandit_log([line(reward=None)] * 15, "jsonl")
    assert "line 11" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.1, "propensity must be in (0, 1], got -0.1"),
        ("NaN", "propensity must be finite, got NaN"),
        ("0.5", None),  # a numeric string is accepted
        (False, "propensity must be a number, got false"),
    ],
)
def test_propensity_validation(value: object, message: str | None) -> None:
    text = line(propensity=value)
    if value == "NaN":
        text = text.replace('"NaN"', "NaN")  # a bare NaN, as some JSON writers emit
    if message is None:
        assert parse_bandit_log([text], "jsonl").decisions[0].propensity == 0.5
        return
    with pytest.raises(ValidationError) as err:
        parse_bandit_log([text], "jsonl")
    assert str(err.value).endswith(f"line 1: {message}")


def test_empty_input_is_an_error() -> None:
    with pytest.raises(ValidationError, match="no logged decisions"):
        parse_bandit_log(["", "  "], "jsonl")
    with pytest.raises(ValidationError, match="no logged decisions"):
        parse_bandit_log(["ts,action,propensity,reward\n"], "csv")


CSV = """ts,action,propensity,reward,context.age,context.segment,actions,note
2024-05-01T00:00:01Z,card,0.25,1,41,gold,card|loan,"free, text"
1714521600000,loan,0.5,0,,basic,"[""card"", ""loan""]",x
1714521600500,loan,1,0.5,nan,silver,,
"""


def test_csv_with_context_columns_and_both_action_list_forms() -> None:
    log = parse_bandit_log(CSV.splitlines(keepends=True), "csv", source="x.csv")
    assert log.decisions == (
        LoggedDecision(MAY_1, {"segment": "basic"}, "loan", 0.5, 0.0, ("card", "loan"), 3),
        LoggedDecision(MAY_1 + 500, {"segment": "silver"}, "loan", 1.0, 0.5, None, 4),
        LoggedDecision(
            MAY_1 + 1000, {"age": 41.0, "segment": "gold"}, "card", 0.25, 1.0, ("card", "loan"), 2
        ),
    )
    assert log.actions == ("card", "loan")


def test_csv_and_jsonl_give_the_same_decisions() -> None:
    jsonl = [
        line(
            ts=MAY_1 + i,
            context={"f": i / 2, "s": f"v{i % 3}"},
            action=f"a{i % 2}",
            propensity=0.5,
            reward=i % 2,
            actions=["a0", "a1"],
        )
        for i in range(5)
    ]
    csv = ["ts,context.f,context.s,action,propensity,reward,actions\n"] + [
        f"{MAY_1 + i},{i / 2},v{i % 3},a{i % 2},0.5,{i % 2},a0|a1\n" for i in range(5)
    ]
    a = parse_bandit_log(jsonl, "jsonl")
    b = parse_bandit_log(csv, "csv")
    assert [d.line for d in a.decisions] == [1, 2, 3, 4, 5]
    assert [d.line for d in b.decisions] == [2, 3, 4, 5, 6]  # the header is line 1
    assert [replace(d, line=0) for d in a.decisions] == [replace(d, line=0) for d in b.decisions]
    assert a.actions == b.actions == ("a0", "a1")


def test_csv_errors_carry_line_numbers_including_multiline_cells() -> None:
    text = (
        "ts,action,propensity,reward,context.note\n"
        '1,a,0.5,1,"two\nlines"\n'
        "2,a,0,1,x\n"
        "3,a,0.5\n"
        "4,,0.5,1,x\n"
    )
    with pytest.raises(ValidationError) as err:
        parse_bandit_log(text.splitlines(keepends=True), "csv", source="x.csv")
    assert str(err.value) == (
        "bandit log x.csv: line 4: propensity must be in (0, 1], got 0; "
        "line 5: expected 5 fields as in the header, got 3; "
        "line 6: action is required"
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("ts,action,reward", "CSV header lacks column(s) propensity"),
        ("ts,action,propensity,reward,reward", "duplicate column(s) reward"),
        ("ts,action,propensity,reward,context", "give context features as context.<name>"),
    ],
)
def test_csv_header_errors(header: str, message: str) -> None:
    with pytest.raises(ValidationError, match=r"line 1: ") as err:
        parse_bandit_log([header + "\n", "1,a,0.5,1,2\n"], "csv")
    assert message in str(err.value)


def test_read_bandit_log_guesses_the_format(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "b.jsonl").write_text(line() + "\n")
    (tmp_path / "c.log").write_text("\n" + line() + "\n")
    (tmp_path / "d.txt").write_text(CSV)
    assert len(read_bandit_log(tmp_path / "a.csv").decisions) == 3
    assert len(read_bandit_log(tmp_path / "b.jsonl").decisions) == 1
    assert read_bandit_log(tmp_path / "c.log").decisions[0].line == 2
    assert len(read_bandit_log(str(tmp_path / "d.txt")).decisions) == 3
    (tmp_path / "e.log").write_text("\n{oops\n")
    with pytest.raises(ValidationError, match=r"e\.log: line 2: not valid JSON"):
        read_bandit_log(tmp_path / "e.log")
    with pytest.raises(ValidationError, match=r"b\.jsonl: line 1: CSV header lacks"):
        read_bandit_log(tmp_path / "b.jsonl", "csv")  # an explicit format wins
    with pytest.raises(ConfigError, match="no such file"):
        read_bandit_log(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="is a directory"):
        read_bandit_log(tmp_path)
    with pytest.raises(ConfigError, match="format must be jsonl or csv, got 'xml'"):
        read_bandit_log(tmp_path / "b.jsonl", "xml")  # type: ignore[arg-type]
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValidationError, match="not UTF-8"):
        read_bandit_log(tmp_path / "bin.jsonl")


decision_st: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    ts=st.integers(0, 4_000_000_000_000),
    context=st.dictionaries(
        st.text("abcxyz_", min_size=1, max_size=5),
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.text("ab 1é", max_size=5)),
        max_size=4,
    ),
    action=st.sampled_from(["a", "b", "c"]),
    propensity=st.floats(1e-6, 1.0),
    reward=st.floats(-1e6, 1e6),
)


@given(st.lists(decision_st, min_size=1, max_size=20))
def test_jsonl_round_trip(records: list[dict[str, Any]]) -> None:
    log = parse_bandit_log([json.dumps(r) for r in records], "jsonl")
    expected = sorted(
        (
            LoggedDecision(
                r["ts"], r["context"], r["action"], r["propensity"], r["reward"], None, i + 1
            )
            for i, r in enumerate(records)
        ),
        key=lambda d: d.ts,
    )
    assert list(log.decisions) == expected
    assert set(log.actions) == {r["action"] for r in records}
