"""API fuzzing with schemathesis against /api/schema/, once as each demo role.

Checks: no 500s; responses (statuses, content types, headers, bodies) conform
to the schema; schema-valid requests are accepted and schema-invalid ones
rejected; undocumented methods answer 405 with Allow; documented auth is
enforced; and our own check: every error response is the envelope with a
support_id that resolves (st_hooks.py).

schemathesis runs with one worker thread: CPython 3.11 keeps the AST
constructor's recursion depth in state shared by all threads, so two threads
in ``ast.parse`` at once (hypothesis parses source while generating) raise
``SystemError: AST constructor recursion depth mismatch`` (python/cpython
gh-106905) and schemathesis stops with exit 1 and no finding. Each role runs
in a process of its own, one after the other.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.reliability.drills import DrillResult
from tests.reliability.drills.stack import REPO, ROLES, Stack

# Not applicable here, with the reason:
EXCLUDED_CHECKS = {
    # Needs two users owning objects of the same kind; job ownership is checked by
    # tests/jobs (a client sees only its own jobs), and the roles here differ by group.
    "object_level_authorization",
}


def run_role(stack: Stack, role: str, examples: int, seed: int, max_seconds: int) -> dict:
    report = stack.workdir / f"schemathesis-{role}.json"
    junit = stack.workdir / f"schemathesis-{role}.xml"
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{stack.base_url}/api/schema/",
        "--header",
        f"Authorization: Token {stack.tokens[role]}",
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(sorted(EXCLUDED_CHECKS)),
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--continue-on-failure",
        "--report",
        "json,junit",
        "--report-json-path",
        str(report),
        "--report-junit-path",
        str(junit),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.reliability.drills.st_hooks",
        "DRILL_BASE_URL": stack.base_url,
        "DRILL_SUPPORT_TOKEN": stack.tokens["support"],
        "PYTHONPATH": str(REPO),
        "NO_COLOR": "1",
    }
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=max_seconds
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = -1
        output = f"{exc.stdout or ''}\nschemathesis did not finish within {max_seconds} s"
    (stack.workdir / f"schemathesis-{role}.log").write_text(output)
    data: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    return {"returncode": returncode, "output": output, "report": data}


def run(
    stack: Stack, examples: int = 25, seed: int | None = None, max_seconds: int = 240
) -> DrillResult:
    result = DrillResult("fuzz")
    seed = random.randrange(2**31) if seed is None else seed
    result.figures["seed"] = seed
    result.figures["examples_per_operation"] = examples
    for role in ROLES:
        outcome = run_role(stack, role, examples, seed, max_seconds)
        summary = summarise(outcome["report"])
        result.figures[f"{role}_cases"] = summary["cases"]
        result.figures[f"{role}_failures"] = summary["failures"]
        result.figures[f"{role}_server_errors"] = summary["server_errors"]
        result.figures.setdefault("details", {})[role] = summary
        result.check(
            outcome["returncode"] == 0 and summary["failures"] == 0 and summary["cases"] > 0,
            f"schemathesis as {role}: {verdict(outcome['returncode'], summary)}; "
            f"see {stack.workdir}/schemathesis-{role}.log\n" + tail(outcome["output"]),
        )
    return result


def verdict(returncode: int, summary: dict[str, Any]) -> str:
    """A finding (the API broke a check) told apart from the tool failing to run."""
    if summary["failures"]:
        return f"{summary['failures']} finding(s): {summary['by_code']}"
    if returncode == -1:
        return "tool did not finish in time (no finding)"
    if returncode != 0 or not summary["cases"]:
        return (
            f"tool error, not a finding: exit {returncode}, {summary['cases']} cases, "
            f"{summary['errors']} schemathesis error(s)"
        )
    return "passed"


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    failures = report.get("failures", [])
    return {
        "cases": report.get("test_cases", {}).get("generated", 0),
        "failures": sum(failure["count"] for failure in failures),
        "server_errors": sum(f["count"] for f in failures if f["code"] == "ST101"),
        "errors": len(report.get("errors", [])),
        "by_code": {f"{f['code']} {f['title']}": f["count"] for f in failures},
        "operations_tested": report.get("operations", {}).get("tested", 0),
    }


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])
