"""Where the contract files (schemas, topics, strategies) live: in the wheel or the checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["contract_dir"]

_PACKAGE = Path(__file__).resolve().parent


def contract_dir(name: str) -> Path:
    """Return the directory `name` (schemas, topics, strategies) shipped with rtim."""
    bundled = _PACKAGE / "_contract" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name
