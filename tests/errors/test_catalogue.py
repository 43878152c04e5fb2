"""The error-code catalogue: every code the code can emit is in it, the classes agree with
it, the OpenAPI document renders it, and the README carries it."""

from __future__ import annotations

import ast
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from controlplane.errors import catalogue
from controlplane.errors.exceptions import UPSTREAM_KINDS, UserFacingError
from controlplane.errors.recording import record_error

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("controlplane", "jobs", "lookups")
# Job error codes written by SQL (jobs/lifecycle.py): error_code = 'x', or a CASE giving
# 'x' / 'y' (its conditions are interpolated names, with no quotes of their own).
SQL_ASSIGNMENT = re.compile(r"error_code = (CASE [^\n]*? END|'[a-z_]*')")
SQL_LITERAL = re.compile(r"'([a-z_]+)'")


def _literal_codes(node: ast.AST) -> list[str]:
    """The code(s) an expression gives: a string, either branch of a conditional, or an
    f-string turned into a catalogue pattern (``f"{group.upper()}_X"`` -> ``<GROUP>_X``,
    ``f"{prefix}_{kind}_ERROR"`` -> one ``<SERVICE>_<KIND>_ERROR`` per upstream kind)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literal_codes(node.body) + _literal_codes(node.orelse)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                text = ast.unparse(value.value)
                parts.append(
                    "<KIND>" if text == "kind" else "<GROUP>" if "group" in text else "<SERVICE>"
                )
        # UpstreamError's code: one per kind it accepts.
        return ["".join(parts).replace("<KIND>", kind) for kind in UPSTREAM_KINDS]
    return []


def emitted_codes() -> dict[str, set[str]]:
    """Every code the service's source can emit, with the files that emit it: ``code=``
    arguments, ``code = ...`` (class attributes and locals), ``(SomeError, "CODE")`` pairs,
    and the job codes written by SQL."""
    found: dict[str, set[str]] = {}
    for root in SOURCES:
        for path in (REPO / root).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            source = path.read_text()
            where = str(path.relative_to(REPO))
            codes: list[str] = [
                code
                for assignment in SQL_ASSIGNMENT.findall(source)
                for code in SQL_LITERAL.findall(assignment)
            ]
            for node in ast.walk(ast.parse(source)):
                if (isinstance(node, ast.keyword) and node.arg == "code") or (
                    isinstance(node, ast.Assign)
                    and any(
                        (isinstance(t, ast.Name) and t.id == "code")
                        or (isinstance(t, ast.Attribute) and t.attr == "code")
                        for t in node.targets
                    )
                ):
                    codes += _literal_codes(node.value)
                elif (
                    isinstance(node, ast.Tuple)
                    and len(node.elts) == 2
                    and isinstance(node.elts[0], ast.Name)
                    and node.elts[0].id.endswith("Error")
                ):
                    codes += _literal_codes(node.elts[1])
            for code in codes:
                found.setdefault(code, set()).add(where)
    return found


def test_every_code_the_source_emits_is_registered() -> None:
    found = emitted_codes()
    assert len(found) > 40  # the scan sees the code base, not an empty folder
    assert "JOB_NOT_FOUND" in found and "worker_lost" in found and "timeout" in found
    missing = {
        code: sorted(files)
        for code, files in found.items()
        if catalogue.find(code) is None and code not in {e.code for e in catalogue.CATALOGUE}
    }
    assert not missing, f"add these codes to controlplane/errors/catalogue.py: {missing}"


def test_every_registered_code_is_emitted_somewhere() -> None:
    found = emitted_codes()
    # Codes DRF's exceptions map to (controlplane.errors.exceptions._from_drf) are emitted
    # from variables, e.g. NOT_AUTHENTICATED / AUTHENTICATION_FAILED: the scan sees them too.
    stale = [e.code for e in catalogue.CATALOGUE if e.code not in found]
    assert not stale, f"no code emits these catalogue entries any more: {stale}"


def test_class_codes_agree_with_their_entries() -> None:
    classes, seen = [UserFacingError], []
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.__module__.startswith("tests.") or "code" not in vars(cls):
            continue  # a test's class, or an abstract base that keeps its parent's code
        entry = catalogue.find(cls.code)
        assert entry is not None, cls
        seen.append(cls)
        assert (entry.status, entry.type, entry.retryable) == (
            cls.http_status,
            cls.error_type,
            cls.retryable,
        ), cls
    assert len(seen) > 10


def test_entries_are_well_formed_and_unique() -> None:
    codes = [e.code for e in catalogue.CATALOGUE]
    assert len(codes) == len(set(codes))
    for entry in catalogue.CATALOGUE:
        assert entry.recovery in catalogue.RECOVERIES, entry
        assert set(entry.where) <= set(catalogue.WHERE) and entry.where, entry
        assert 400 <= entry.status <= 599, entry
        assert entry.description.strip(), entry


@pytest.mark.django_db
def test_the_schema_lists_every_code_with_its_status() -> None:
    document = (
        APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    )
    component = document["components"]["schemas"]["ErrorCode"]
    listed = {item["code"]: item for item in component["x-error-codes"]}
    assert set(listed) == {e.code for e in catalogue.CATALOGUE}
    for entry in catalogue.CATALOGUE:
        assert listed[entry.code]["status"] == entry.status
        assert listed[entry.code]["retryable"] == entry.retryable
        assert listed[entry.code]["recovery"] == entry.recovery
    operations = {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    # Each operation-specific code shows under its status in the operations it names.
    cancel = operations["POST /api/v1/jobs/{job_id}/cancel/"]["responses"]
    assert "`JOB_NOT_CANCELLABLE`" in cancel["409"]["description"]
    assert "`JOB_NOT_FOUND`" in cancel["404"]["description"]
    create = operations["POST /api/v1/jobs/"]["responses"]
    assert "`IDEMPOTENCY_KEY_REUSED`" in create["409"]["description"]
    assert "`UNKNOWN_JOB_KIND`" in create["422"]["description"]
    # Every rule names at least one real operation (no entry points at a renamed path).
    for entry in catalogue.CATALOGUE:
        for rule in entry.operations:
            method, path = rule.split(" ", 1)
            hits = [
                key
                for key in operations
                if re.fullmatch(path.replace("*", ".*").replace("{", r"\{"), key.split(" ", 1)[1])
                and (method in ("*", "AUTH", "BODY") or key.startswith(method + " "))
            ]
            assert hits, (entry.code, rule)
            assert any(
                f"`{entry.code}`"
                in operations[key]["responses"].get(str(entry.status), {}).get("description", "")
                for key in hits
            ), (entry.code, rule)


@pytest.mark.django_db
def test_an_unregistered_code_is_noted_when_recorded(caplog: pytest.LogCaptureFixture) -> None:
    record_error(UserFacingError("x", code="NOT_IN_THE_CATALOGUE"))
    try:
        assert "NOT_IN_THE_CATALOGUE" in catalogue.unregistered
        assert "not in the catalogue" in caplog.text
    finally:
        catalogue.unregistered.clear()
    record_error(UserFacingError("x", code="LLAMAPARSE_TIMEOUT_ERROR"))  # a pattern's code
    assert not catalogue.unregistered


def test_the_readme_carries_the_catalogue() -> None:
    out = StringIO()
    call_command("error_codes", stdout=out)
    table = out.getvalue().strip()
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- error-codes:start -->", "<!-- error-codes:end -->"
    assert start in readme and end in readme
    documented = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert documented == table, "run: .venv/bin/python manage.py error_codes --readme"
