"""`rtim learner`: the learning loop on its own, until Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rtim.learning.learner import Learner

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `rtim learner`."""
    app.command("learner")(learner)


def learner(
    parent_pid: Annotated[
        int | None,
        typer.Option(
            "--parent-pid",
            hidden=True,
            help="Stop when this process is gone (a worker's child learner).",
        ),
    ] = None,
) -> None:
    """Learn from training examples and publish model snapshots (one writer per model).

    `rtim worker` starts one as its child (RTIM_LEARNER_PROCESS); run it on its own to learn
    elsewhere than where customers are served. Learners share the partitions of the training
    topic in the group RTIM_LEARNER_GROUP_ID.
    """
    from rtim.learning.learner import Learner
    from rtim.logs import get_logger
    from rtim.settings import get_settings

    log = get_logger("learner")
    loop = Learner(get_settings())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: loop.stop())
    if parent_pid is not None:
        threading.Thread(
            target=_stop_with_parent, args=(parent_pid, loop), name="rtim-parent", daemon=True
        ).start()
    log.info("learner process", pid=os.getpid(), parent=parent_pid)
    loop.run()


def _stop_with_parent(parent_pid: int, loop: Learner) -> None:
    """A child learner must not outlive its worker, even one killed with SIGKILL."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    loop.stop()
