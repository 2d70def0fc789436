"""Where every submission of a RESULTS folder stands, at any moment: from the journal and the results.

`collect` reads without taking any lock (the journal is append-only and results are renamed into
place), so `aecc status` may run beside a batch, or while Slurm jobs work; a Slurm job's state is
the journal's, refreshed from `squeue` where it answers (no accounting database needed). The
document follows `harness/schemas/status.schema.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import schemas
from harness.journal import (
    JournalState,
    StageState,
    SubmissionState,
    read_events,
    reduce,
)
from harness.pipelines.score import RESULT_NAME
from harness.results import ScoreResult
from harness.schemas import SchemaViolation
from harness.stage_names import Stage



def collect(results: Path) -> dict[str, Any]:
    results = Path(results)
    state = reduce(read_events(results))
    runs = state.runs
    schedulers = {sha: r.scheduler for sha, r in state.submissions.items() if r.scheduler}
    if schedulers:
        from harness.bulk.backends.slurm import live_schedulers

        schedulers = live_schedulers(schedulers)  # Slurm jobs' states as squeue says them now, where it answers
    current = next((r for r in reversed(runs) if r.get("state") == "started"), {})
    subs = []
    for sha, record in sorted(state.submissions.items(), key=lambda kv: _first_date(kv[1].arrivals)):
        result_path = results / sha / RESULT_NAME
        result = _load(result_path)
        tasks = [{"task": t.task, "outcome": t.outcome.value, "track_a": t.track_a, "track_b": t.track_b,
                  "reason": t.reason, "log": t.log} for t in (result.tasks if result else ())]
        if not tasks:
            tasks = _tasks_from_journal(record)
        failures = [{"stage": s.stage, "task": s.task, "state": s.state.value,
                     "reason": str(s.data.get("reason") or ""), "log": s.data.get("log")}
                    for s in record.stages.values() if s.state in (StageState.FAILED, StageState.ERROR)]
        if record.state in (SubmissionState.EXCLUDED, SubmissionState.ERROR) and record.detail.get("reason"):
            failures.append({"stage": str(record.detail.get("stage") or "submission"), "task": None,
                             "state": "failed" if record.state is SubmissionState.EXCLUDED else "error",
                             "reason": str(record.detail.get("reason")), "log": record.detail.get("log")})
        stale = None
        score_runtimes = {s.data.get("runtime") for (stage, _), s in record.stages.items()
                          if stage == Stage.SCORE and s.state is StageState.DONE}
        if current.get("runtime") and score_runtimes and score_runtimes != {current["runtime"]}:
            stale = {"scored_with": sorted(r for r in score_runtimes if r), "now": current["runtime"]}
        subs.append({
            "sha256": sha,
            "name": (result.extra.get("name") if result else None) or _name(record.arrivals, sha),
            "state": record.state.value,
            "updated": record.state_ts or None,
            "stage": _current_stage(record),
            "senders": sorted({a.get("sender_address") or a.get("sender") for a in record.arrivals
                               if a.get("sender_address") or a.get("sender")}),
            "arrivals": [{**{k: a.get(k) for k in ("source", "file_name", "sender", "sender_address", "date",
                                                    "subject")},
                          "report_pages": (a.get("report") or {}).get("pages"), "warnings": list(a.get("warnings") or ())}
                         for a in record.arrivals],
            "verdict": _verdict(result, record),
            "tasks": tasks,
            "failures": failures,
            "result": str(result_path) if result else None,
            "signed": (results / sha / "result.dsse.json").is_file(),
            "scheduler": schedulers.get(sha) or None,
            "stale": stale,
            "superseded_by": record.detail.get("superseded_by"),
        })
    doc = {
        "schema_version": schemas.SCHEMA_VERSION,
        "results": str(results),
        "runs": [{"ts": r["ts"], "state": r.get("state"), "writer": r.get("writer"), "harness": r.get("harness"),
                  "runtime": r.get("runtime")} for r in runs],
        "unusable": [{k: u.get(k) for k in ("source", "reason", "detail", "sender", "sender_address", "date",
                                           "subject")} for u in state.unusable],
        "counts": _counts(subs),
        "submissions": subs,
    }
    return schemas.validate("status", doc)


def _verdict(result: ScoreResult | None, record: Any) -> str | None:
    """The check stage's verdict headline (`checker.verdict`), from the result or else the journal."""
    summary = ((result.extra.get("checks") if result else None) or {}).get("summary")
    if summary is None:
        check = record.stages.get((Stage.CHECK.value, None))
        summary = ((check.data.get("checks") or {}).get("summary")) if check is not None else None
    return (summary or {}).get("headline")


def _load(path: Path) -> ScoreResult | None:
    """The result, read back through its type; None where there is none yet or it does not read
    (a result is renamed into place whole, so a bad one is a damaged file: status shows the journal's view)."""
    try:
        return ScoreResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, SchemaViolation):
        return None


def _first_date(arrivals: list[dict]) -> str:
    return min((a.get("date") or "9999") for a in arrivals) if arrivals else "9999"


def _name(arrivals: list[dict], sha: str) -> str:
    for a in arrivals:
        if a.get("sender"):
            return str(a["sender"])
    for a in arrivals:
        if a.get("file_name"):
            return Path(str(a["file_name"])).stem
    return sha[:12]


def _current_stage(record: Any) -> str | None:
    running = [s for s in record.stages.values() if s.state is StageState.RUNNING]
    if running:
        return max(running, key=lambda s: s.ts).stage
    return None


def _tasks_from_journal(record: Any) -> list[dict]:
    out = []
    for (stage, task), s in sorted(record.stages.items(), key=lambda kv: (kv[0][1] or "", kv[0][0])):
        if stage == Stage.SCORE and task and s.state is StageState.DONE:
            r = s.data.get("result", {})
            out.append({"task": r.get("task", task), "outcome": r.get("outcome", "scored"), "track_a": r.get("track_a"),
                        "track_b": r.get("track_b"), "reason": r.get("reason", ""), "log": r.get("log")})
    return out


def _counts(subs: list[dict]) -> dict[str, int]:
    counts = {s.value: 0 for s in SubmissionState}
    for s in subs:
        counts[s["state"]] += 1
    return counts


__all__ = ["collect", "JournalState"]
