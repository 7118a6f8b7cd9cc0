"""`rtim schemas list|check`: the Avro contract and its compatibility with committed versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

schemas_app = typer.Typer(
    name="schemas",
    help="Show the Avro schemas and check that changes to them stay compatible.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `rtim schemas …`."""
    app.add_typer(schemas_app, name="schemas")


_Root = Annotated[
    Path | None,
    typer.Option(
        "--root",
        file_okay=False,
        help="Checkout whose schemas/ to check (default: the one rtim runs from).",
    ),
]


@schemas_app.command("list")
def list_schemas() -> None:
    """One line per schema version: name, fingerprint (as on the wire, hex) and file."""
    from rtim.serde.schemas import get_schemas

    schemas = get_schemas()
    for schema in schemas.versions():
        current = schemas.get(schema.name) is schema
        label = "current" if current else "history"
        print(f"{schema.name:<18} {schema.fingerprint_hex}  {label:<7}  {schema.source}")


@schemas_app.command("check")
def check(root: _Root = None) -> None:
    """Fail (exit 1) on a schema change that breaks the contract.

    Each schemas/X.avsc is compared with its previous committed version (the newest committed
    content that differs from the file). Both versions must read each other's data.

    The previous version must be kept in schemas/history/<Name>.<fingerprint>.avsc.

    Deleting a schema fails. Outside a git checkout it says so and exits 0.
    """
    from rtim.paths import contract_dir
    from rtim.serde.compat import check_schemas

    base = root if root is not None else contract_dir("schemas").parent
    report = check_schemas(base)
    if not report.in_git:
        print(f"{base} is not a git checkout: no previous schema versions to compare with")
        return
    for item in report.checks:
        print(item.line())
    if not report.ok:
        failed = sum(1 for item in report.checks if item.failed)
        print(f"{failed} schema problem{'s' if failed != 1 else ''}: see above")
        # SystemExit, not typer.Exit: cli.main runs click with standalone_mode=False,
        # where typer.Exit(1) would be returned as a value and the process would exit 0
        raise SystemExit(1)
