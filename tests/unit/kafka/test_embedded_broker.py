"""EmbeddedBroker checks that need no running broker (bad ports, early exit, no listener)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtim.errors import BrokerError
from rtim.kafka.broker import EmbeddedBroker, broker_binary, free_port, wait_for_broker


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_binary_is_shipped() -> None:
    assert broker_binary().is_file()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("port", [-1, 65536])
def test_invalid_port(port: int) -> None:
    with pytest.raises(BrokerError, match="invalid broker port"):
        EmbeddedBroker(port)


def test_port_in_use_is_one_clear_error(listening_port: int) -> None:
    broker = EmbeddedBroker(listening_port)
    with pytest.raises(BrokerError, match=f"port {listening_port} .* already in use"):
        broker.start()
    assert not broker.running
    assert broker.pid is None


@pytest.mark.parametrize("to_file", [True, False])
def test_early_exit_reports_the_broker_output(tmp_path: Path, to_file: bool) -> None:
    broker = EmbeddedBroker(extra_args=["--no-such-flag"], log_dir=tmp_path if to_file else None)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"exited during start-up .*--no-such-flag") as info:
        broker.start()
    assert time.monotonic() - started < 5
    assert "\n" not in str(info.value)
    assert not broker.running
    assert "--no-such-flag" in broker.output_tail()
    if to_file:
        assert broker.log_path is not None
        assert "--no-such-flag" in broker.log_path.read_text()


def test_wait_for_broker_gives_up_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"no Kafka broker answered at 127\.0\.0\.1:\d+ within"):
        wait_for_broker(f"127.0.0.1:{free_port()}", timeout=1.0)
    assert time.monotonic() - started < 3


def test_stop_before_start_is_harmless() -> None:
    broker = EmbeddedBroker()
    assert broker.stop() is None
    assert not broker.running
