"""The `rtim` command line. Each command lives in `rtim.commands.<name>` and registers itself.

Errors: any RtimError or usage error prints one line `rtim: error: …` and exits non-zero.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import click
import typer

try:  # typer >= 0.20 vendors its own copy of click
    _typer_click_exc: ModuleType = importlib.import_module("typer._click.exceptions")
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click_exc = click.exceptions

from rtim.errors import RtimError

__all__ = ["app", "main"]

app = typer.Typer(
    name="rtim",
    help="rtim — real-time interaction management on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from rtim import __version__

        print(f"rtim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """rtim — real-time interaction management on Kafka.

    Every command reads RTIM_* environment variables (see docs/configuration.md).
    """
    from rtim.logs import configure_logging
    from rtim.settings import get_settings

    try:
        settings = get_settings()
    except Exception as exc:  # pydantic's ValidationError: turn into one clear line
        from rtim.errors import ConfigError

        first = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) if len(first) > 1 else str(exc)
        raise ConfigError(f"invalid RTIM_* setting: {detail}") from None
    configure_logging(settings.log_level, settings.log_format)


# Order is the order of `rtim --help`.
_COMMAND_MODULES = (
    "dev",
    "broker",
    "topics",
    "worker",
    "learner",
    "simulate",
    "produce",
    "tail",
    "replay",
    "backtest",
    "explain",
    "forget",
    "bench",
    "schemas",
)

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"rtim.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command not built yet
        if exc.name != f"rtim.commands.{_name}":
            raise
        continue
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rtim` script: one clear line on error, exit code ≠ 0."""
    try:
        # without standalone mode, `typer.Exit(n)` inside a command comes back as a return value
        rv = app(args=argv, standalone_mode=False, prog_name="rtim")
    except RtimError as exc:
        print(f"rtim: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        print("rtim: aborted", file=sys.stderr)
        sys.exit(130)
    except (click.ClickException, _typer_click_exc.ClickException) as exc:
        message = exc.format_message()
        if message:  # `rtim` alone prints the help and raises an empty usage error
            print(f"rtim: error: {message}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
