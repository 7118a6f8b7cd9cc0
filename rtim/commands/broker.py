"""`rtim broker`: the embedded Tansu broker in the foreground, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

__all__ = ["register"]


def broker(
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            min=0,
            max=65535,
            help="Port on 127.0.0.1 (0: any free port). Default: RTIM_BROKER_PORT (9092).",
        ),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(
            "--log-dir",
            file_okay=False,
            help="Write the broker's own output to DIR/tansu-PORT.log (default: kept in a "
            "temporary file, shown on failure).",
        ),
    ] = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) on loopback.

    Prints `broker ready on 127.0.0.1:PORT` once it answers; stops cleanly on Ctrl-C/SIGTERM.
    """
    from rtim.errors import BrokerError
    from rtim.kafka.broker import EmbeddedBroker
    from rtim.logs import get_logger
    from rtim.settings import get_settings

    log = get_logger("broker")
    chosen = get_settings().broker_port if port is None else port
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    embedded = EmbeddedBroker(chosen, log_dir=log_dir)
    try:
        embedded.start()
        print(f"broker ready on {embedded.bootstrap}", flush=True)
        log.info("broker started", bootstrap=embedded.bootstrap, pid=embedded.pid,
                 log=str(embedded.log_path) if embedded.log_path else None)  # fmt: skip
        while not stop.wait(0.5):
            if not embedded.running:
                code = embedded.wait(0)
                tail = embedded.output_tail(3).replace("\n", " | ")
                raise BrokerError(
                    f"the broker on {embedded.bootstrap} exited on its own (exit code {code})"
                    + (f" — {tail}" if tail else "")
                )
        code = embedded.stop()
        log.info("broker stopped", signal=received[0] if received else None, exit_code=code)
    finally:
        embedded.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    """Add `rtim broker`."""
    app.command("broker")(broker)
