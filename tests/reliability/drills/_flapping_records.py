"""The flapping drill's checks on what the database kept: every support_id a caller got
resolves with the breaker's name and state, the jobs link their records, and the breaker
ends closed (see flapping.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tests.reliability.drills import DrillResult
from tests.reliability.drills._flapping_upstream import (
    BUDGET_CODE,
    CODE,
    CODE_OF_STATUS,
    JOB_PATH,
    OPEN_CODE,
    PROVIDER,
)
from tests.reliability.drills.stack import Stack

if TYPE_CHECKING:
    from tests.reliability.drills._flapping_checks import Observed


def check_error_records(stack: Stack, result: DrillResult, obs: Observed) -> None:
    """Every support_id a caller got resolves, naming the breaker and its state."""
    failed = obs.failed
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT support_id::text, code, service, breaker_name, breaker_state, context"
            " FROM errors_errorrecord WHERE support_id = ANY(%s::uuid[])",
            [[c["support_id"] for c in failed]],
        ).fetchall()
    records = {row[0]: row for row in rows}
    missing = [c["support_id"] for c in failed if c["support_id"] not in records]
    wrong: list[str] = []
    mismatched: list[str] = []
    attempts = int(obs.retry["max_attempts"])
    for call in failed:
        # The code must say what happened: the last upstream answer, or the breaker refusing
        # an attempt (then fewer than max_attempts requests went out).
        sent = obs.by_call.get(call["call"], [])
        if call["code"] == OPEN_CODE:
            fits = len(sent) < attempts
        elif call["code"] == BUDGET_CODE:  # a retry refused: after at least the first attempt
            fits = 0 < len(sent) < attempts
        else:
            fits = bool(sent) and call["code"] == f"{CODE}_{CODE_OF_STATUS.get(sent[-1].status)}"
        if not fits:
            mismatched.append(f"{call['call']}: {call['code']} after {[h.status for h in sent]}")
        row = records.get(call["support_id"])
        if row is None:
            continue
        _, code, service, name, state, context = row
        if (code, service, name) != (call["code"], PROVIDER, PROVIDER):
            wrong.append(f"{call['call']}: {code}/{service}/{name}")
        elif code == OPEN_CODE and state not in ("open", "half_open"):
            wrong.append(f"{call['call']}: refused by the breaker but recorded as {state!r}")
        elif code == OPEN_CODE and len(context.get("earlier_attempts", [])) != len(sent):
            # Refused after real answers: the record must keep each of them.
            wrong.append(
                f"{call['call']}: {len(sent)} upstream answers before the refusal,"
                f" {len(context.get('earlier_attempts', []))} in the record"
            )
        elif code == BUDGET_CODE and not _keeps_refused_failure(context, sent):
            wrong.append(
                f"{call['call']}: a retry the budget refused after {[h.status for h in sent]},"
                f" recorded as {context.get('refused_failure', {}).get('code')!r} with"
                f" {len(context.get('earlier_attempts', []))} earlier attempts"
            )
        elif state not in ("closed", "open", "half_open"):
            wrong.append(f"{call['call']}: breaker state {state!r}")
        elif code.endswith(("_SERVER_ERROR", "_RATE_LIMIT_ERROR")) and (
            context.get("upstream", {}).get("status") not in (500, 503, 429)
        ):
            wrong.append(f"{call['call']}: no upstream status in the record")
    codes: dict[str, int] = defaultdict(int)
    for call in failed:
        codes[call["code"].removeprefix(f"{CODE}_")] += 1
    result.figures.update(
        error_records=len(records), error_records_missing=len(missing), error_codes=dict(codes)
    )
    result.check(not missing, f"{len(missing)} support_ids shown to callers do not resolve")
    result.check(not wrong, f"error records not matching the failed call: {wrong[:5]}")
    result.check(not mismatched, f"error codes not matching the upstream: {mismatched[:5]}")
    samples: dict[str, str] = {}
    for call in failed:
        samples.setdefault(call["code"], call["support_id"])
    with stack.api("support") as api:
        for code, support_id in samples.items():
            response = api.get(f"/api/v1/errors/{support_id}/")
            body = response.json().get("record", {}) if response.status_code == 200 else {}
            result.check(
                response.status_code == 200 and body.get("breaker_name") == PROVIDER,
                f"GET /api/v1/errors/{support_id}/ ({code}) as support: "
                f"{response.status_code} {str(body)[:200]}",
            )


def _keeps_refused_failure(context: dict[str, Any], sent: list[Any]) -> bool:
    """A budget refusal's record keeps the answer it did not retry and the ones before."""
    refused = context.get("refused_failure", {})
    return (
        bool(sent)
        and refused.get("code") == f"{CODE}_{CODE_OF_STATUS.get(sent[-1].status)}"
        and len(context.get("earlier_attempts", [])) == len(sent) - 1
    )


def check_jobs(stack: Stack, result: DrillResult, obs: Observed) -> None:
    """http.request jobs through the real worker: the one submitted while the breaker was
    open waits for it (queued, no attempt spent) and runs once it permits; the one
    submitted after the close is served."""
    ok, waited = obs.jobs.get("ok"), obs.jobs.get("open")
    result.check(waited is not None, "no job was submitted while the breaker was open")
    result.check(ok is not None, "no job was submitted after the breaker closed")
    if ok is not None:
        result.figures["job_after_close"] = ok.get("status")
        result.check(
            ok.get("status") == "succeeded"
            and (ok.get("result") or {}).get("status") == 200
            and any(h.path == f"{JOB_PATH}/ok" and h.status == 200 for h in obs.job_hits),
            f"the http.request job after the close did not succeed through the upstream: {ok}",
        )
    if waited is None:
        return
    with stack.connect() as conn:
        waits = [
            row[0]
            for row in conn.execute(
                "SELECT message FROM jobs_jobevent WHERE job_id = %s AND message LIKE %s"
                " ORDER BY created_at, id",
                [waited["id"], f"waiting for breaker {PROVIDER} %"],
            ).fetchall()
        ]
    error = waited.get("error") or {}
    status = waited.get("status")
    result.figures["job_while_open"] = f"{status}:{error.get('code')} after {len(waits)} wait(s)"
    result.check(
        bool(waits), f"the job submitted while the breaker was open never waited: {waited}"
    )
    # Waiting spends no attempt: the job ran exactly once (max_attempts is 1).
    result.check(
        waited.get("attempts") == 1 and waited.get("waiting_for") == "",
        f"the job that waited for the breaker: attempts {waited.get('attempts')}, "
        f"waiting_for {waited.get('waiting_for')!r}",
    )
    # A wait checked before an attempt sends nothing; one raised during an attempt may follow
    # that attempt's half-open probe; the run that ended sends at most its retries.
    sent = [h for h in obs.job_hits if h.path == f"{JOB_PATH}/open"]
    probes = sum("during the attempt" in message for message in waits)
    most = probes + int(obs.retry["max_attempts"])
    result.check(len(sent) <= most, f"the job sent {len(sent)} requests (at most {most})")
    if status == "succeeded":
        result.check(
            (waited.get("result") or {}).get("status") == 200 and sent and sent[-1].status == 200,
            f"the job that waited did not succeed through the upstream: {waited}",
        )
        return
    # It may have run into a later failing phase (the dead one: its retry refused by the
    # budget); a breaker refusal never fails it.
    result.check(
        status == "failed"
        and (error.get("code", "").startswith(f"{CODE}_") or error.get("code") == BUDGET_CODE)
        and error.get("code") != OPEN_CODE,
        f"the job that waited for the breaker ended {status} {error.get('code')}: {waited}",
    )
    support_id = error.get("support_id")
    result.check(bool(support_id), f"the failed job carries no support_id: {waited}")
    if not support_id:
        return
    with stack.api("support") as api:
        response = api.get(f"/api/v1/errors/{support_id}/")
    record = response.json().get("record", {}) if response.status_code == 200 else {}
    result.check(
        response.status_code == 200
        and record.get("job_id") == waited["id"]
        and record.get("breaker_name") == PROVIDER,
        f"the job's support_id {support_id} does not tell the job and breaker: "
        f"{response.status_code} job_id={record.get('job_id')!r} "
        f"breaker={record.get('breaker_name')!r}",
    )


def check_end(stack: Stack, result: DrillResult, obs: Observed) -> None:
    with stack.connect() as conn:
        state, override = conn.execute(
            "SELECT state, override FROM breakers_breaker WHERE name = %s", [PROVIDER]
        ).fetchone()
    result.figures["breaker_final_state"] = state + (f"/{override}" if override else "")
    result.check((state, override) == ("closed", ""), f"the breaker ended {state} {override}")
    last = [c for c in obs.calls if c["start"] >= obs.windows[-1]["end"] - 1.0]
    result.check(
        bool(last) and all(c["outcome"] == "ok" for c in last),
        f"calls in the last second still failed: {[c.get('code') for c in last][:5]}",
    )
