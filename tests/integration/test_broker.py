"""The embedded broker: the session fixture, `EmbeddedBroker`'s lifecycle and `rtim broker`."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from rtim.kafka.broker import EmbeddedBroker, free_port, wait_for_broker

pytestmark = pytest.mark.integration


# --- helpers ---------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """Live (non-zombie) child processes of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Lines:
    """Reads a pipe's lines on a thread, so the test can wait for one with a deadline."""

    def __init__(self, stream: object) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, timeout: float) -> str | None:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output within {timeout}s (seen so far: {self.seen})")
        if line is not None:
            self.seen.append(line)
        return line


@pytest.fixture
def rtim_broker() -> Iterator[Callable[..., tuple[subprocess.Popen[str], Lines]]]:
    """Factory: start ``python -m rtim broker ARGS``; every process is reaped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, **popen: object) -> tuple[subprocess.Popen[str], Lines]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtim", "broker", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **popen,  # type: ignore[call-overload]
        )
        started.append(proc)
        return proc, Lines(proc.stdout)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


# --- the session fixture ---------------------------------------------------------------------
def test_session_broker_answers_and_round_trips_a_record(broker: EmbeddedBroker) -> None:
    wait_for_broker(broker.bootstrap, timeout=5)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    metadata = admin.list_topics(timeout=5)
    assert [b.port for b in metadata.brokers.values()] == [broker.port]
    assert broker.running
    assert broker.log_path is not None
    assert "ready in" in broker.log_path.read_text()

    topic = f"t{os.getpid()}.roundtrip"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, key=b"k", value=b"v")
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        deadline = time.monotonic() + 10
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
        assert message is not None
        assert message.error() is None
        assert (message.key(), message.value()) == (b"k", b"v")
    finally:
        consumer.close()


# --- EmbeddedBroker lifecycle ----------------------------------------------------------------
def test_context_manager_starts_and_stops_cleanly(tmp_path: Path) -> None:
    with EmbeddedBroker(0, log_dir=tmp_path) as embedded:
        pid = embedded.pid
        assert pid is not None
        assert embedded.running
        assert embedded.bootstrap == f"127.0.0.1:{embedded.port}"
        assert embedded.port != 0
        wait_for_broker(embedded.bootstrap, timeout=5)
        # its own process group: a terminal's Ctrl-C does not reach it
        assert os.getpgid(pid) == pid != os.getpgid(0)
    assert not embedded.running
    assert not is_alive(pid)
    assert embedded.log_path == tmp_path / f"tansu-{embedded.port}.log"
    assert "ready in" in embedded.log_path.read_text()


def test_stop_then_start_again() -> None:
    embedded = EmbeddedBroker()  # no log dir: output is captured in a temporary file
    embedded.start()
    first = embedded.pid
    assert embedded.stop() == 0  # Tansu exits 0 on SIGTERM
    embedded.start()
    try:
        assert embedded.pid != first
        wait_for_broker(embedded.bootstrap, timeout=5)
        assert "ready in" in embedded.output_tail()
    finally:
        embedded.stop()


def test_broker_dies_with_its_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from rtim.kafka.broker import EmbeddedBroker
        broker = EmbeddedBroker(0, log_dir=sys.argv[1]).start()
        print(broker.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = Lines(parent.stdout).next(timeout=20)
        assert line is not None
        child = int(line)
        assert is_alive(child)
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(10)
        wait_until(lambda: not is_alive(child), 5, "the orphaned broker to die")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


# --- rtim broker -----------------------------------------------------------------------------
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_rtim_broker_runs_until_signalled(
    rtim_broker: Callable[..., tuple[subprocess.Popen[str], Lines]], stop_signal: signal.Signals
) -> None:
    port = free_port()
    proc, lines = rtim_broker("--port", str(port))
    assert lines.next(timeout=20) == f"broker ready on 127.0.0.1:{port}"
    wait_for_broker(f"127.0.0.1:{port}", timeout=5)
    tansu = children_of(proc.pid)
    assert len(tansu) == 1

    proc.send_signal(stop_signal)
    assert proc.wait(10) == 0
    assert lines.next(timeout=5) is None  # nothing more on stdout
    assert not is_alive(tansu[0])


def test_rtim_broker_survives_a_terminal_ctrl_c_in_order(
    rtim_broker: Callable[..., tuple[subprocess.Popen[str], Lines]],
) -> None:
    # A terminal sends SIGINT to its whole foreground process group; Tansu is not in it and
    # is stopped by rtim.
    port = free_port()
    proc, lines = rtim_broker("--port", str(port), start_new_session=True)
    assert lines.next(timeout=20) == f"broker ready on 127.0.0.1:{port}"
    tansu = children_of(proc.pid)
    assert len(tansu) == 1
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(10) == 0
    assert not is_alive(tansu[0])


def test_rtim_broker_on_a_busy_port_fails_with_one_line(
    broker: EmbeddedBroker, rtim_broker: Callable[..., tuple[subprocess.Popen[str], Lines]]
) -> None:
    proc, _ = rtim_broker("--port", str(broker.port))
    assert proc.wait(20) != 0
    assert proc.stderr is not None
    errors = proc.stderr.read().strip().splitlines()
    assert errors == [
        f"rtim: error: port {broker.port} on 127.0.0.1 is already in use (another broker "
        "running? pick another with --port / RTIM_BROKER_PORT)"
    ]
    assert children_of(proc.pid) == []


def test_rtim_broker_default_port_comes_from_settings(
    rtim_broker: Callable[..., tuple[subprocess.Popen[str], Lines]], tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "RTIM_BROKER_PORT": str(port)}
    proc, lines = rtim_broker("--log-dir", str(tmp_path), env=env)
    assert lines.next(timeout=20) == f"broker ready on 127.0.0.1:{port}"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    assert "ready in" in (tmp_path / f"tansu-{port}.log").read_text()


def test_rtim_broker_fails_when_the_broker_dies(
    rtim_broker: Callable[..., tuple[subprocess.Popen[str], Lines]],
) -> None:
    port = free_port()
    proc, lines = rtim_broker("--port", str(port))
    assert lines.next(timeout=20) == f"broker ready on 127.0.0.1:{port}"
    (tansu,) = children_of(proc.pid)
    os.kill(tansu, signal.SIGKILL)
    assert proc.wait(10) == 1
    assert proc.stderr is not None
    errors = [line for line in proc.stderr.read().splitlines() if line.startswith("rtim:")]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"rtim: error: the broker on 127.0.0.1:{port} exited on its own (exit code -9) — "
    )
    assert "ready in" in errors[0]  # the tail of the broker's output
