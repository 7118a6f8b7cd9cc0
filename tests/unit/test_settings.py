"""Settings: one place, documented, validated with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtim.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_lists_every_setting_as_the_code_defines_it() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert settings_table() in doc, "regenerate docs/configuration.md from settings_table()"


def test_every_setting_has_a_description() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_environment_overrides_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTIM_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("RTIM_BATCH_SIZE", "17")
    settings = Settings()
    assert settings.batch_size == 17
    assert settings.topic("rtim.requests") == "staging.rtim.requests"
    assert settings.group("rtim.customer") == "staging.rtim.customer"


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTIM_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("RTIM_MODEL_KEY", "k3y")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert "k3y" not in str(settings)
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "hunter2"


def test_a_child_process_environment_reproduces_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import SecretStr

    from rtim.settings import settings_env

    settings = Settings(
        topic_prefix="staging.",
        batch_size=17,
        learner_process=False,
        timer_clock="event",
        data_dir=Path("/tmp/rtim-data"),
        sasl_password=SecretStr("hunter2"),
        kafka_config={"client.rack": "eu-west-1a"},
    )
    env = settings_env(settings)
    assert all(key.startswith("RTIM_") for key in env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child.model_dump() == settings.model_dump()
    assert child.sasl_password is not None
    assert child.sasl_password.get_secret_value() == "hunter2"
