"""Schema evolution check (`rtim schemas check`): every change to the contract must be compatible.

For each ``schemas/X.avsc`` the previous version is the most recent committed blob of that path
whose content differs from the file now — so the check works both on uncommitted edits and on a
clean CI checkout (where it compares with the version before the last change). A changed schema
must be *fully* compatible with its previous version, as the public contract allows only added
optional fields: the new schema reads data written with the old one (consumers upgraded first)
and the old one reads data written with the new one (producers upgraded first). Its previous
version must be kept in ``schemas/history/<Name>.<fingerprint hex>.avsc``, because readers decode
old messages with it. A deleted schema fails. Every history file must be named after its own
fingerprint and be readable by the current schema.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from rtim.errors import SchemaError
from rtim.serde.schemas import HISTORY_DIR, AvroSchema, build_schema

__all__ = ["CheckReport", "SchemaCheck", "check_schemas", "compatibility_problem"]

_HISTORY_NAME = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.(?P<hex>[0-9a-f]{16})\.avsc")


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """The verdict on one schema file (or history file)."""

    name: str
    status: str
    """``ok``, ``changed-compatible`` or ``INCOMPATIBLE``."""
    detail: str = ""

    @property
    def failed(self) -> bool:
        """True when this schema blocks the change."""
        return self.status == "INCOMPATIBLE"

    def line(self) -> str:
        """One line for people: ``Outcome: changed-compatible (…)``."""
        if self.failed:
            return f"{self.name}: INCOMPATIBLE: {self.detail}"
        return f"{self.name}: {self.status}" + (f" ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class CheckReport:
    """All verdicts; `in_git` is False when the schemas are not in a git checkout."""

    in_git: bool
    checks: list[SchemaCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not any(check.failed for check in self.checks)


def check_schemas(root: Path, schema_dir: str = "schemas") -> CheckReport:
    """Check every schema in ``root/schema_dir`` against its previous committed version."""
    git = _Git(root)
    if not git.available:
        return CheckReport(in_git=False)
    directory = root / schema_dir
    current_files = {p.stem: p for p in sorted(directory.glob("*.avsc"))}
    committed = git.committed_stems(schema_dir)
    report = CheckReport(in_git=True)
    current: dict[str, AvroSchema] = {}
    for stem in sorted(set(current_files) | committed):
        path = current_files.get(stem)
        rel = f"{schema_dir}/{stem}.avsc"
        if path is None:
            report.checks.append(
                SchemaCheck(stem, "INCOMPATIBLE", f"{rel} was deleted; contract schemas stay")
            )
            continue
        check, schema = _check_one(git, stem, rel, path, directory)
        report.checks.append(check)
        if schema is not None:
            current[schema.name] = schema
    report.checks.extend(_check_history(directory / HISTORY_DIR, current))
    return report


def compatibility_problem(reader: AvroSchema, writer: AvroSchema) -> str | None:
    """Why `reader` cannot read data written with `writer`, or None when it can."""
    checker: Any = ReaderWriterCompatibilityChecker  # untyped library class
    result = checker().get_compatibility(
        avro.schema.parse(reader.json), avro.schema.parse(writer.json)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = sorted({kind.value.replace("_", " ") for kind in result.incompatibilities})
    places = sorted({_field_path(reader.raw, loc) for loc in result.locations if loc != "/"} - {""})
    messages = sorted(set(result.messages) - set(places))  # a missing field's message: its name
    where = f" at {', '.join(places)}" if places else ""
    detail = f": {'; '.join(messages)}" if messages else ""
    return f"{', '.join(kinds)}{where}{detail}"


# --- one schema ------------------------------------------------------------------------------


def _check_one(
    git: _Git, stem: str, rel: str, path: Path, directory: Path
) -> tuple[SchemaCheck, AvroSchema | None]:
    text = path.read_bytes()
    try:
        new = build_schema(text.decode("utf-8"), rel)
    except (SchemaError, UnicodeDecodeError) as exc:
        return SchemaCheck(stem, "INCOMPATIBLE", f"invalid schema: {exc}"), None
    if new.name != stem:
        return SchemaCheck(stem, "INCOMPATIBLE", f"{rel} defines record {new.name}"), new
    previous = git.previous_version(rel, text)
    if previous is None:
        detail = "new" if not git.ever_committed(rel) else ""
        return SchemaCheck(stem, "ok", detail), new
    commit, old_text = previous
    try:
        old = build_schema(old_text.decode("utf-8"), f"{rel} at {commit[:10]}")
    except (SchemaError, UnicodeDecodeError):
        return SchemaCheck(stem, "ok", f"version at {commit[:10]} was not a valid schema"), new
    if old.fingerprint == new.fingerprint:
        return SchemaCheck(stem, "ok", "only docs or formatting changed"), new
    problems = []
    backward = compatibility_problem(new, old)
    if backward:
        problems.append(f"it cannot read data written with the previous version: {backward}")
    forward = compatibility_problem(old, new)
    if forward:
        problems.append(f"readers of the previous version cannot read its data: {forward}")
    kept = directory / HISTORY_DIR / f"{old.name}.{old.fingerprint_hex}.avsc"
    if not kept.is_file():
        problems.append(
            f"the previous version ({commit[:10]}) is not kept in "
            f"{kept.relative_to(directory.parent)}"
        )
    if problems:
        return SchemaCheck(stem, "INCOMPATIBLE", "; ".join(problems)), new
    return SchemaCheck(
        stem, "changed-compatible", f"previous {old.fingerprint_hex} from {commit[:10]} kept"
    ), new


def _check_history(history: Path, current: dict[str, AvroSchema]) -> list[SchemaCheck]:
    checks = []
    for path in sorted(history.glob("*.avsc")) if history.is_dir() else []:
        label = f"{HISTORY_DIR}/{path.name}"
        match = _HISTORY_NAME.fullmatch(path.name)
        if match is None:
            checks.append(SchemaCheck(label, "INCOMPATIBLE", "name must be <Name>.<hex>.avsc"))
            continue
        try:
            old = build_schema(path.read_text(encoding="utf-8"), label)
        except (SchemaError, UnicodeDecodeError) as exc:
            checks.append(SchemaCheck(label, "INCOMPATIBLE", f"invalid schema: {exc}"))
            continue
        if old.name != match["name"] or old.fingerprint_hex != match["hex"]:
            right = f"{old.name}.{old.fingerprint_hex}.avsc"
            checks.append(SchemaCheck(label, "INCOMPATIBLE", f"its content says {right}"))
            continue
        new = current.get(old.name)
        if new is None:
            checks.append(SchemaCheck(label, "INCOMPATIBLE", f"no current schema {old.name}"))
            continue
        problem = compatibility_problem(new, old)
        if problem:
            checks.append(
                SchemaCheck(label, "INCOMPATIBLE", f"{new.name} cannot read it: {problem}")
            )
    return checks


def _field_path(schema: Any, location: str) -> str:
    """``/fields/4/type/symbols`` → ``type`` (best effort; the raw location otherwise)."""
    tokens = [t for t in location.split("/") if t]
    names: list[str] = []
    node = schema
    try:
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token == "fields":
                node = node["fields"][int(tokens[i + 1])]
                names.append(node["name"])
                i += 2
                continue
            if token in ("type", "items", "values"):
                node = node[token]
                if isinstance(node, list):  # a union: follow its record branch, if any
                    node = next((b for b in node if isinstance(b, dict)), node)
            i += 1
    except (KeyError, IndexError, TypeError, ValueError):
        return location
    return ".".join(names) if names else location


# --- git -------------------------------------------------------------------------------------


class _Git:
    """The few git queries the check needs, run in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        inside = self._run("rev-parse", "--is-inside-work-tree")
        self.available = inside is not None and inside.strip() == b"true"
        self.has_head = (
            self.available and self._run("rev-parse", "--verify", "-q", "HEAD") is not None
        )
        self.prefix = ""
        if self.available:
            prefix = self._run("rev-parse", "--show-prefix")
            self.prefix = prefix.decode().strip() if prefix else ""

    def _run(self, *args: str) -> bytes | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(self.root), *args],
                capture_output=True,
                check=False,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    def committed_stems(self, schema_dir: str) -> set[str]:
        """Stems of every ``schema_dir/X.avsc`` ever committed on HEAD's history."""
        if not self.has_head:
            return set()
        out = self._run("log", "--format=", "--name-only", "--no-renames", "HEAD", "--", schema_dir)
        stems = set()
        wanted = f"{self.prefix}{schema_dir}/"
        for line in (out or b"").decode().splitlines():
            if line.startswith(wanted):
                rest = line[len(wanted) :]
                if "/" not in rest and rest.endswith(".avsc"):
                    stems.add(rest[: -len(".avsc")])
        return stems

    def ever_committed(self, rel: str) -> bool:
        """True when `rel` appears in HEAD's history."""
        if not self.has_head:
            return False
        out = self._run("log", "-1", "--format=%H", "HEAD", "--", rel)
        return bool(out and out.strip())

    def previous_version(self, rel: str, content: bytes) -> tuple[str, bytes] | None:
        """(commit, content) of the newest committed version of `rel` unlike `content`."""
        if not self.has_head:
            return None
        out = self._run("log", "--format=%H", "--no-renames", "HEAD", "--", rel)
        for commit in (out or b"").decode().split():
            blob = self._run("show", f"{commit}:./{rel}")
            if blob is not None and blob != content:
                return commit, blob
        return None
