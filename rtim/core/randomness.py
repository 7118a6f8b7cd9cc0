"""The random source of one decision: cheap to create, the same draws for the same seed.

Every decision gets its own generator, seeded from its decision id, so a replay draws the same
numbers in any order of decisions. Most decisions draw two or three numbers (the control group,
an exploration coin, a sample when exploring), and seeding a Mersenne Twister costs more than
the whole draw (4.3 µs: it fills 624 words). So the first draws come from SplitMix64 (a 64-bit
counter through a fixed mixing function, Steele et al. 2014), and only a decision that draws
more — Thompson sampling's Monte Carlo estimate draws thousands — seeds a Mersenne Twister,
from the SplitMix64 stream, and continues with it.
"""

from __future__ import annotations

import random
from typing import Any, Final

__all__ = ["FAST_DRAWS", "DecisionRandom"]

FAST_DRAWS: Final = 16  # draws from SplitMix64 before the Mersenne Twister takes over
_MASK: Final = (1 << 64) - 1
_GOLDEN: Final = 0x9E3779B97F4A7C15
_TO_UNIT: Final = 2.0**-53


class DecisionRandom(random.Random):
    """A `random.Random` (every method: ``random``, ``sample``, ``betavariate``, …) whose
    first `FAST_DRAWS` draws need no Mersenne Twister; deterministic for a given seed."""

    def __init__(self, seed: int = 0) -> None:  # not super().__init__: it would seed the twister
        self.seed(seed)

    def seed(self, a: Any = None, version: int = 2) -> None:
        """Start again from integer seed ``a`` (the seed's low 64 bits)."""
        if not isinstance(a, int):
            raise TypeError(f"DecisionRandom needs an integer seed, not {type(a).__name__}")
        self._state = a & _MASK
        self._left = FAST_DRAWS
        self._twister = False
        self.gauss_next = None

    def _next64(self) -> int:
        self._state = s = (self._state + _GOLDEN) & _MASK
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def _start_twister(self) -> None:
        super().seed(self._next64())
        self._twister = True

    def random(self) -> float:
        """The next float in [0, 1)."""
        if self._left:
            self._left -= 1
            return (self._next64() >> 11) * _TO_UNIT
        if not self._twister:
            self._start_twister()
        return super().random()

    def getrandbits(self, k: int) -> int:
        """An integer of ``k`` random bits."""
        if self._left and 0 < k <= 64:
            self._left -= 1
            return self._next64() >> (64 - k)
        if k <= 0:  # 0 for no bits, ValueError below: nothing drawn
            return super().getrandbits(k)
        if not self._twister:
            self._start_twister()
        return super().getrandbits(k)

    def getstate(self) -> tuple[Any, ...]:
        """The whole state, for `setstate`."""
        twister = super().getstate() if self._twister else None
        return (self._state, self._left, twister, self.gauss_next)

    def setstate(self, state: tuple[Any, ...]) -> None:
        """Restore a state from `getstate`."""
        self._state, self._left, twister, self.gauss_next = state
        self._twister = twister is not None
        if twister is not None:
            super().setstate(twister)
