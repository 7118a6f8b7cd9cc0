"""The README stays true: its strategy example is valid, the commands it lists exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from rtim.cli import app
from rtim.core.strategy import parse_strategy
from rtim.worker.service import known_features

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_strategy_example_is_valid() -> None:
    block = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert block is not None
    strategy = parse_strategy(block.group(1), "README.md", known_features())
    assert strategy.offers


def test_every_listed_command_exists() -> None:
    listed = set(re.findall(r"^\| `rtim (\w+)", README, re.M))
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert listed, "the README lists the commands"
    assert listed <= commands, listed - commands
