"""Fixtures for the whole suite (factory fixtures in the style of Quix Streams' tests).

- ``broker`` (session): one embedded Tansu broker on a free port; its log is under pytest's
  tmp dir. Tests isolate themselves by topic prefix, not by broker.
- ``topic_prefix``: a unique ``t<8 hex>.`` per test.
- ``rtim_settings(**overrides)``: a `Settings` for this test's broker, prefix and data dir.
- ``rtim_env(apply_topics=True, **overrides)``: an environment for ``python -m rtim …``
  subprocesses, with the declared topics created under the test's prefix first.
- ``applied_topics(settings)``: create the declared topics for `settings`, return `settings`.

RTIM_* variables of the developer's shell are removed for the session so that the suite is
hermetic; tests choose their settings explicitly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtim.kafka.broker import EmbeddedBroker
from rtim.kafka.topics import ensure_topics
from rtim.settings import Settings, get_settings

TEST_SESSION_TIMEOUT_MS = 3000


@pytest.fixture(scope="session", autouse=True)
def _hermetic_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("RTIM_"):
                patch.delenv(name)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session (stopped at the end, never orphaned)."""
    with EmbeddedBroker(0, log_dir=tmp_path_factory.mktemp("broker")) as embedded:
        yield embedded


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic (and consumer group) prefix for this test."""
    return f"t{uuid.uuid4().hex[:8]}."


def _settings_values(
    broker: EmbeddedBroker, prefix: str, data_dir: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "broker": broker.bootstrap,
        "topic_prefix": prefix,
        "data_dir": data_dir,
        "session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
    }
    values.update(overrides)
    return values


@pytest.fixture
def rtim_settings(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Factory: ``rtim_settings(**overrides) -> Settings`` on the test broker and prefix."""

    def make(**overrides: Any) -> Settings:
        values = _settings_values(broker, topic_prefix, tmp_path / "data", overrides)
        return Settings(**values)

    return make


@pytest.fixture
def applied_topics() -> Callable[[Settings], Settings]:
    """``applied_topics(settings) -> settings`` after creating every declared topic for it."""

    def apply(settings: Settings) -> Settings:
        ensure_topics(settings)
        return settings

    return apply


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@pytest.fixture
def rtim_env(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> Callable[..., dict[str, str]]:
    """Factory: ``rtim_env(apply_topics=True, **overrides) -> dict`` for subprocess ``env=``.

    Overrides are Settings field names (``group_id="x"`` → ``RTIM_GROUP_ID=x``). With
    `apply_topics`, the declared topics exist under the prefix before it returns.
    """

    def make(apply_topics: bool = True, **overrides: Any) -> dict[str, str]:
        values = _settings_values(broker, topic_prefix, tmp_path / "data", overrides)
        values.setdefault("log_format", "json")
        env = dict(os.environ)
        for key, value in values.items():
            if value is not None:
                env[f"RTIM_{key.upper()}"] = _env_value(value)
        if apply_topics:
            ensure_topics(Settings(**values))
        return env

    return make
