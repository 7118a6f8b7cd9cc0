"""All settings of rtim in one place. Each maps to an ``RTIM_*`` environment variable.

CLI flags default to these values; ``docs/configuration.md`` lists them (a test keeps it true).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rtim.paths import contract_dir

__all__ = ["Settings", "get_settings", "settings_env", "settings_table"]


class Settings(BaseSettings):
    """rtim settings, read from ``RTIM_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="RTIM_", extra="ignore", frozen=True)

    # --- broker connection -------------------------------------------------------------------
    broker: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,host:port])."
    )
    topic_prefix: str = Field(
        "", description="Prefix of every physical topic and group name (e.g. `staging.`)."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    ssl_ca_location: Path | None = Field(None, description="CA certificate file (PEM) for TLS.")
    ssl_certificate_location: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS."
    )
    ssl_key_location: Path | None = Field(None, description="Client private key (PEM).")
    ssl_key_password: SecretStr | None = Field(None, description="Password of the client key.")
    ssl_endpoint_identification: bool = Field(
        True, description="Verify that the broker certificate matches its host name."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties as a JSON object, passed to every client.",
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent schema registry URL; when set, rtim writes the Confluent wire "
        "format (readers accept both formats always).",
    )

    # --- worker ------------------------------------------------------------------------------
    data_dir: Path = Field(Path("var/data"), description="Worker state (RocksDB) directory.")
    group_id: str = Field("rtim.customer", description="Consumer group of the customer workers.")
    session_timeout_ms: int = Field(
        6000, ge=1000, description="Consumer session timeout; group joins take about half."
    )
    batch_size: int = Field(2000, ge=1, description="Most input records processed per batch.")
    store_write_buffer_mb: int = Field(
        16,
        ge=1,
        description="RocksDB write buffer (memtable) per partition database, in MiB; at most "
        "two per partition are held in memory before they are flushed to disk.",
    )
    batch_timeout_ms: int = Field(
        5, ge=0, description="Longest wait for the first record of a batch."
    )
    max_idle_ms: int = Field(
        100,
        ge=0,
        description="Longest wait for a lagging input topic before processing a partition out "
        "of event-time order (like Kafka Streams' max.task.idle.ms).",
    )
    max_lag_wait_ms: int = Field(
        1000,
        ge=0,
        description="Longest wait for records an input topic is known to have (the broker "
        "reported them) but the fetch has not brought yet, before processing out of event-time "
        "order. Upstream transaction markers look like such records: lower it if your "
        "producers use transactions.",
    )
    dedup_window: int = Field(
        16, ge=1, description="Recent event ids remembered per customer to drop duplicates."
    )
    max_future_ms: int = Field(
        24 * 3600 * 1000,
        ge=0,
        description="Events stamped further than this in the future of the worker clock go to "
        "the DLQ.",
    )
    timer_clock: Literal["wall", "event"] = Field(
        "wall",
        description="Clock of delayed triggers and expiries: `wall` (live) or `event` "
        "(the event-time watermark, for replays and accelerated simulations).",
    )
    max_message_bytes: int = Field(
        256 * 1024, ge=1024, description="Input messages larger than this go to the DLQ."
    )
    strategy: Path = Field(
        contract_dir("strategies") / "example.yaml", description="Strategy file (YAML)."
    )
    seed: int = Field(
        0, description="Seed of the decision policy's random draws (with the decision id)."
    )

    # --- learning ----------------------------------------------------------------------------
    learner_group_id: str = Field(
        "rtim.learner", description="Consumer group of the learners (one writer per model)."
    )
    learner_process: bool = Field(
        True,
        description="`rtim worker --learner` runs its learner as a child process (`rtim "
        "learner`): a fault, leak or pause in learning cannot reach the customer pipeline; "
        "false: a thread of the worker.",
    )
    gc_tuned: bool = Field(
        True,
        description="Freeze the worker's start-up objects out of Python's cyclic garbage "
        "collector, run its full collections a tenth as often, its young ones after 20 000 "
        "new objects instead of 700 and none in the middle of a batch (the heap is acyclic); "
        "false: CPython's defaults.",
    )
    model_publish_ms: int = Field(
        500, ge=10, description="Longest delay between a model learning and its snapshot."
    )
    model_key: SecretStr | None = Field(
        None,
        description="HMAC key that signs and verifies model snapshots; set it in production "
        "(unset: an unkeyed digest detects corruption, not forgery).",
    )

    # --- embedded broker and dev -------------------------------------------------------------
    broker_port: int = Field(9092, ge=1, le=65535, description="Port of `rtim broker`.")
    run_dir: Path = Field(Path("var/runs"), description="Where `rtim dev` writes its runs.")

    # --- logging -----------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`auto`: readable on a terminal, JSON otherwise."
    )

    @field_validator("kafka_config", mode="before")
    @classmethod
    def _parse_kafka_config(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"RTIM_KAFKA_CONFIG is not a JSON object: {exc}") from exc
        if not isinstance(value, dict):
            raise ValueError("RTIM_KAFKA_CONFIG must be a JSON object of librdkafka properties")
        return {str(k): str(v) for k, v in value.items()}

    def topic(self, logical: str) -> str:
        """The physical name of a logical topic (``rtim.requests`` → prefix + name)."""
        return f"{self.topic_prefix}{logical}"

    def group(self, logical: str) -> str:
        """The physical name of a consumer group."""
        return f"{self.topic_prefix}{logical}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The RTIM_* environment that reproduces `settings` in a child process."""
    env: dict[str, str] = {}
    dumped = settings.model_dump(mode="json")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float, Path)):
            text = str(value)
        else:
            text = json.dumps(dumped[name])
        env[f"RTIM_{name.upper()}"] = text
    return env


def settings_table() -> str:
    """The Markdown table of every setting (docs/configuration.md embeds it; a test checks)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, Path) and default.is_absolute():
            default = f"<rtim>/{default.parent.name}/{default.name}"  # the bundled file
        shown = (
            ""
            if default is None
            else f"`{json.dumps(default) if isinstance(default, dict) else default}`"
        )
        rows.append(f"| `RTIM_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows) + "\n"
