"""`rtim schemas check` logic, in throwaway git repositories."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rtim.serde.compat import check_schemas
from rtim.serde.schemas import build_schema

V1: dict[str, Any] = {
    "type": "record",
    "name": "Event",
    "namespace": "rtim",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b", "c"]}},
        {"name": "amount", "type": "double"},
    ],
}
OTHER: dict[str, Any] = {
    "type": "record",
    "name": "Other",
    "namespace": "rtim",
    "fields": [{"name": "id", "type": "string"}],
}


class Repo:
    """A git repository in a temporary directory with a schemas/ folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        }  # fmt: skip
        (root / "schemas").mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True,
                       capture_output=True)  # fmt: skip

    def write(self, schema: dict[str, Any], *, name: str | None = None) -> Path:
        path = self.root / "schemas" / f"{name or schema['name']}.avsc"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        return path

    def keep_history(self, schema: dict[str, Any]) -> Path:
        built = build_schema(schema)
        directory = self.root / "schemas" / "history"
        directory.mkdir(exist_ok=True)
        path = directory / f"{built.name}.{built.fingerprint_hex}.avsc"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        return path

    def commit(self, message: str = "change") -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "checkout")
    repo.write(V1)
    repo.write(OTHER)
    repo.commit("v1")
    return repo


def verdicts(root: Path) -> dict[str, tuple[str, str]]:
    report = check_schemas(root)
    assert report.in_git
    return {check.name: (check.status, check.detail) for check in report.checks}


def changed(**edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(V1)
    fields = schema["fields"]
    if "add" in edit:
        fields.append(edit["add"])
    if "remove" in edit:
        schema["fields"] = [f for f in fields if f["name"] != edit["remove"]]
    if "retype" in edit:
        name, new_type = edit["retype"]
        next(f for f in fields if f["name"] == name)["type"] = new_type
    if "symbols" in edit:
        fields[2]["type"]["symbols"] = edit["symbols"]
    return schema


def test_unchanged_schemas_are_ok(repo: Repo) -> None:
    assert verdicts(repo.root) == {"Event": ("ok", ""), "Other": ("ok", "")}
    assert check_schemas(repo.root).ok


def test_a_new_uncommitted_schema_is_ok(repo: Repo) -> None:
    repo.write({**OTHER, "name": "Brand"})
    assert verdicts(repo.root)["Brand"] == ("ok", "new")


def test_docs_only_change_is_ok(repo: Repo) -> None:
    repo.write({**V1, "doc": "Now documented."})
    status, detail = verdicts(repo.root)["Event"]
    assert (status, detail) == ("ok", "only docs or formatting changed")


OPTIONAL = {"name": "note", "type": ["null", "string"], "default": None}


def test_adding_an_optional_field_with_history_is_compatible(repo: Repo) -> None:
    repo.write(changed(add=OPTIONAL))
    repo.keep_history(V1)
    status, detail = verdicts(repo.root)["Event"]
    assert status == "changed-compatible"
    assert build_schema(V1).fingerprint_hex in detail
    assert check_schemas(repo.root).ok


def test_clean_checkout_compares_with_the_version_before_the_last_change(repo: Repo) -> None:
    """On CI HEAD == working tree: the previous version is the one before the last change."""
    repo.write(changed(add=OPTIONAL))
    repo.keep_history(V1)
    repo.commit("add note")
    repo.write(OTHER)  # unrelated later commit touching nothing in Event
    (repo.root / "README").write_text("x")
    repo.commit("later")
    assert verdicts(repo.root)["Event"][0] == "changed-compatible"

    # an incompatible change committed and pushed is caught the same way
    repo.write(changed(add=OPTIONAL, remove="amount"))
    repo.keep_history(changed(add=OPTIONAL))
    repo.commit("remove amount")
    status, detail = verdicts(repo.root)["Event"]
    assert status == "INCOMPATIBLE"
    assert "amount" in detail


def test_missing_history_fails(repo: Repo) -> None:
    repo.write(changed(add=OPTIONAL))
    status, detail = verdicts(repo.root)["Event"]
    assert status == "INCOMPATIBLE"
    hex_ = build_schema(V1).fingerprint_hex
    assert f"is not kept in schemas/history/Event.{hex_}.avsc" in detail
    assert not check_schemas(repo.root).ok


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        pytest.param({"remove": "amount"}, "readers of the previous version cannot read its data: "
                     "reader field missing default value at amount", id="remove-required-field"),
        pytest.param({"add": {"name": "channel", "type": "string"}},
                     "it cannot read data written with the previous version: reader field "
                     "missing default value at channel", id="add-required-field"),
        pytest.param({"retype": ("event_id", "long")}, "type mismatch at event_id",
                     id="change-type"),
        pytest.param({"retype": ("amount", "int")}, "type mismatch at amount",
                     id="narrow-type"),
        pytest.param({"symbols": ["a", "b"]}, "missing enum symbols at kind: {'c'}",
                     id="remove-enum-symbol"),
        pytest.param({"symbols": ["a", "b", "c", "d"]}, "readers of the previous version "
                     "cannot read its data: missing enum symbols at kind: {'d'}",
                     id="add-enum-symbol-without-default"),
    ],
)  # fmt: skip
def test_incompatible_changes_fail(repo: Repo, edit: dict[str, Any], reason: str) -> None:
    repo.write(changed(**edit))
    repo.keep_history(V1)  # history present: the failure is the incompatibility itself
    status, detail = verdicts(repo.root)["Event"]
    assert status == "INCOMPATIBLE"
    assert reason in detail


def test_a_one_way_compatible_change_is_still_a_contract_break(repo: Repo) -> None:
    """Making a field nullable reads old data, but old readers cannot read a null."""
    repo.write(changed(retype=("amount", ["null", "double"])))
    repo.keep_history(V1)
    status, detail = verdicts(repo.root)["Event"]
    assert status == "INCOMPATIBLE"
    assert detail.startswith("readers of the previous version cannot read its data: type mismatch")


def test_deleted_schema_fails(repo: Repo) -> None:
    (repo.root / "schemas" / "Other.avsc").unlink()
    assert verdicts(repo.root)["Other"] == (
        "INCOMPATIBLE",
        "schemas/Other.avsc was deleted; contract schemas stay",
    )
    repo.commit("delete Other")  # still caught on a clean checkout
    assert verdicts(repo.root)["Other"][0] == "INCOMPATIBLE"


def test_invalid_schema_fails(repo: Repo) -> None:
    (repo.root / "schemas" / "Event.avsc").write_text("{broken")
    status, detail = verdicts(repo.root)["Event"]
    assert status == "INCOMPATIBLE"
    assert detail.startswith("invalid schema: schema is not valid JSON")


def test_file_name_must_match_the_record(repo: Repo) -> None:
    repo.write(OTHER, name="Renamed")
    assert verdicts(repo.root)["Renamed"] == (
        "INCOMPATIBLE",
        "schemas/Renamed.avsc defines record Other",
    )


def test_history_files_are_checked(repo: Repo) -> None:
    path = repo.keep_history(V1)
    assert "history/" + path.name not in verdicts(repo.root)  # a good one is silent
    wrong = path.with_name("Event.0000000000000000.avsc")
    path.rename(wrong)
    status, detail = verdicts(repo.root)["history/Event.0000000000000000.avsc"]
    assert status == "INCOMPATIBLE"
    assert detail == f"its content says Event.{build_schema(V1).fingerprint_hex}.avsc"
    wrong.unlink()
    # an old version the current schema cannot read (kind was a string then) is reported
    ancient = changed(retype=("kind", "string"))
    repo.keep_history(ancient)
    report = verdicts(repo.root)
    [(status, detail)] = [v for k, v in report.items() if k.startswith("history/")]
    assert status == "INCOMPATIBLE"
    assert detail.startswith("Event cannot read it: type mismatch at kind")


def test_outside_git_it_says_so(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "Event.avsc").write_text(json.dumps(V1))
    report = check_schemas(tmp_path)
    assert not report.in_git
    assert report.ok


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "fresh")
    repo.write(V1)
    assert verdicts(repo.root) == {"Event": ("ok", "new")}


def test_schemas_in_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "mono")
    sub = repo.root / "services" / "rtim"
    (sub / "schemas").mkdir(parents=True)
    (sub / "schemas" / "Event.avsc").write_text(json.dumps(V1))
    repo.commit("v1")
    (sub / "schemas" / "Event.avsc").write_text(json.dumps(changed(add=OPTIONAL)))
    assert verdicts(sub)["Event"][0] == "INCOMPATIBLE"  # history missing
    (sub / "schemas" / "Event.avsc").unlink()
    assert verdicts(sub)["Event"][1] == "schemas/Event.avsc was deleted; contract schemas stay"


def test_the_command_line(repo: Repo) -> None:
    from typer.testing import CliRunner

    from rtim.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["schemas", "check", "--root", str(repo.root)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["Event: ok", "Other: ok"]

    repo.write(changed(remove="amount"))
    result = runner.invoke(app, ["schemas", "check", "--root", str(repo.root)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("Event: INCOMPATIBLE: readers of the previous version")
    assert lines[-1] == "1 schema problem: see above"

    outside = repo.root.parent / "plain"
    (outside / "schemas").mkdir(parents=True)
    result = runner.invoke(app, ["schemas", "check", "--root", str(outside)])
    assert result.exit_code == 0
    assert "is not a git checkout" in result.output
