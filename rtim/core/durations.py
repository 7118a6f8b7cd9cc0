"""Durations as people write them ("30s", "15m", "2h", "3d", "1w", "1h30m") and in milliseconds;
the start of a local day."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from functools import lru_cache

__all__ = ["UNITS_MS", "format_duration", "local_day_start", "parse_duration"]

UNITS_MS: dict[str, int] = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")


def parse_duration(text: object) -> int:
    """Return the milliseconds of a duration such as ``"30m"`` or ``"1h30m"``.

    Units: ms, s, m (minutes), h, d, w. Raises ``ValueError`` with a readable message otherwise
    (a bare number is refused: ``30`` could mean seconds or minutes).
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        raise ValueError(f"a duration needs a unit: write e.g. '{text}s', '{text}m' or '{text}d'")
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as 30m, 2h or 3d, got {text!r}")
    compact = text.strip().replace(" ", "")
    if not _WHOLE.fullmatch(compact):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), "
            "e.g. 30s, 15m, 2h, 3d, 1w or 1h30m"
        )
    return sum(int(n) * UNITS_MS[unit] for n, unit in _PART.findall(compact))


def format_duration(ms: int) -> str:
    """Render milliseconds as the shortest exact duration text (``5_400_000`` → ``"1h30m"``)."""
    if ms < 0:
        raise ValueError(f"negative duration: {ms} ms")
    if ms == 0:
        return "0s"
    parts: list[str] = []
    rest = ms
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = UNITS_MS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def local_day_start(local: datetime) -> int:
    """Local midnight of the day of the aware datetime ``local``, as epoch ms.

    The same as ``local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()``, in
    ms, memoised per day: the time-zone conversion costs microseconds on every decision.
    """
    return _midnight_ms(local.tzinfo, local.year, local.month, local.day, local.fold)


@lru_cache(maxsize=64)
def _midnight_ms(tz: tzinfo | None, year: int, month: int, day: int, fold: int) -> int:
    return int(datetime(year, month, day, tzinfo=tz, fold=fold).timestamp() * 1000)
