"""Inputs to `leaderboard.json`: verify, choose the tasks, score, rank, and say what was done.

The document is the single source of every output (CSV, Markdown, the page): it carries the rows
and also the rules that made them (task set, weights, missing-task policy, tie rule, formula
version, harness and X-ARES versions, the submissions' lock digests), and it is checked against
`harness/schemas/leaderboard.schema.json` before anything is written.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Sequence

from harness import schemas
from harness.errors import UsageError
from harness.rank import bootstrap, formula
from harness.rank.inputs import (
    Inputs,
    iter_reference_entries,
    load_results,
    result_entries,
)
from harness.rank.model import (
    DISPLAY_DECIMALS,
    FORMULA_VERSION,
    TIE_EPSILON,
    CellState,
    Entry,
    MissingPolicy,
    Provenance,
    RowStatus,
    Track,
)
from harness.rank.tasksets import TaskSelection, select_tasks
from harness.tasks import custom
from harness.tasks.registry import Registry, load_registry

TRACK_TITLES = {Track.A: "Track A: MLP probe (parameterised)", Track.B: "Track B: kNN (parameter-free)"}

VERIFICATION_RULE = ("every result is verified against the organizer's Ed25519 public key (its result.dsse.json) "
                     "before anything else; an unsigned or unverifiable result is listed as rejected with the "
                     "reason and never ranked; --allow-unsigned admits unsigned results for local use, marked "
                     "unverified; reference rows are typed-in published numbers, marked 'reference, unverified'")


@dataclasses.dataclass(frozen=True)
class BoardSpec:
    """What `aecc leaderboard` was asked for."""

    results: tuple[Path, ...] = ()
    references: tuple[str, ...] = ()
    public_key: Path | None = None
    task_set: str | None = None
    missing: MissingPolicy = MissingPolicy.ZERO
    allow_unsigned: bool = False
    bootstrap: bootstrap.BootstrapSpec = dataclasses.field(default_factory=bootstrap.BootstrapSpec)

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(Path(p) for p in self.results))
        object.__setattr__(self, "references", tuple(str(r) for r in self.references))
        object.__setattr__(self, "missing", MissingPolicy(self.missing))
        if not self.results and not self.references:
            raise UsageError("nothing to rank", expected="RESULTS folders, --reference CSV, or both",
                             found="neither", fix="aecc leaderboard RESULTS --pubkey signing.pub --out site/")


@dataclasses.dataclass(frozen=True)
class Board:
    """The validated leaderboard document, and the admitted results (the site copies their files)."""

    document: dict
    inputs: Inputs


def _generated_at() -> str:
    # SOURCE_DATE_EPOCH makes a rebuilt site byte-identical (reproducible-builds.org convention).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = float(epoch) if epoch and epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _harness_info() -> dict[str, str]:
    from harness import __version__
    from harness.layers.model import harness_commit

    return {"version": __version__, "commit": harness_commit()}


def _cell_dict(cell: formula.ScoredCell) -> dict[str, Any]:
    data = {"state": cell.state.value, "raw": cell.raw, "normalised": cell.normalised, "counted": cell.counted,
            "clamped": cell.clamped, "weight": cell.weight, "repeats": cell.repeats, "std": cell.std,
            "reason": cell.reason}
    if cell.xares_disabled_overridden:
        data["xares_disabled_overridden"] = True  # only then: other cells read as before
    return data


def _task_dict(t: Any) -> dict[str, Any]:
    data = {"task": t.name, "formal_name": t.formal_name, "metric": t.metric, "direction": t.direction.value,
            "worst": t.worst, "best": t.best, "weight": t.eval_weight, "public": not t.hidden}
    if t.overrides_xares_disabled:
        data["xares_disabled_overridden"] = True  # X-ARES 0.1.3 disables it; the harness scores it
    if t.custom:
        data["custom"] = True  # only then: registry tasks read as before
    return data


def _row_dict(row: formula.ScoredRow) -> dict[str, Any]:
    entry = row.entry
    se = row.se if entry.track is Track.A else None
    shown = formula.display(row.score)
    if se is not None:
        shown += f" \u00b1 {formula.display(se)}"
    return {
        "name": entry.name,
        "kind": "reference" if entry.reference else "result",
        "provenance": entry.provenance.value,
        "provenance_label": entry.provenance.label,
        "verified": entry.verified,
        "reference": entry.reference,
        "status": row.status.value,
        "rank": row.rank,
        "tie_group": row.tie_group,
        "tie_reason": row.tie_reason.value if row.tie_reason else None,
        "score": row.score,
        "score_public": row.score_public,
        "score_se": se,
        "score_display": shown,
        "counted_weight": row.weight_counted,
        "published": entry.published,
        "published_matches": row.published_matches,
        "sha256": entry.sha256,
        "lock_sha256": entry.lock_sha256,
        "link": entry.link,
        "key_id": entry.key_id,
        "versions": {k: (str(v) if v is not None else None) for k, v in dict(entry.versions).items()},
        "source": entry.source,
        "cells": {c.task: _cell_dict(c) for c in row.cells},
    }


def _track_dict(track: Track, selection: TaskSelection, registry: Registry, rows: list[formula.ScoredRow]) -> dict:
    tasks = [registry.get(name) for name in selection.tasks[track]]
    return {
        "track": track.value,
        "title": TRACK_TITLES[track],
        "tie_rule": formula.RULES[f"tie_{track.value}"],
        "tasks": [_task_dict(t) for t in tasks],
        "total_weight": sum(t.eval_weight for t in tasks),
        "public_weight": sum(t.eval_weight for t in tasks if not t.hidden),
        "rows": [_row_dict(r) for r in rows],
    }


def _pair(values: tuple[float, float]) -> list[float]:
    return [float(values[0]), float(values[1])]


def _add_bootstrap(board: dict[str, Any], track: Track, ranked: list[formula.ScoredRow],
                   resamples: bootstrap.TrackResamples | None, spec: bootstrap.BootstrapSpec) -> list[str]:
    """Each row's bootstrap (interval, rank distribution, share ahead of it) or why it has none, each
    value cell's interval, the tie rule in force; returns warnings for results that have no interval
    for a reason other than having no per-clip data at all (a digest or value that disagrees)."""
    ranks = resamples.rank_stats(ranked) if resamples else {}
    board["tie_rule"] = formula.tie_rule_text(track, resamples=spec.resamples, confidence=spec.tie_confidence)
    warnings = []
    for data, row in zip(board["rows"], ranked):
        key = bootstrap.row_key(row.entry)
        found = resamples.rows.get(key) if resamples else None
        if found is None:
            reason = "bootstrap off (--bootstrap 0)" if not spec.enabled else \
                (resamples.reasons.get(key) if resamples else None) or "no row of this track has per-clip data"
            data["bootstrap"] = {"interval": None, "rank_median": None, "rank_interval": None, "rank_counts": None,
                                 "upper_ahead": row.upper_ahead, "reason": reason}
            if spec.enabled and not row.entry.reference and row.ranked and "records no per-clip" not in reason:
                warnings.append(f"Track {track.value}: {row.entry.name}: no bootstrap interval: {reason}")
            continue
        stats = ranks.get(key)
        data["bootstrap"] = {
            "interval": _pair(found.interval),
            "rank_median": stats.median if stats else None,
            "rank_interval": [stats.low, stats.high] if stats else None,
            "rank_counts": list(stats.counts) if stats else None,
            "upper_ahead": row.upper_ahead,
            "reason": None,
        }
        data["score_display"] = (f"{formula.display(row.score)} [{formula.display(found.interval[0])}, "
                                 f"{formula.display(found.interval[1])}]")
        for task, interval in found.tasks.items():
            data["cells"][task]["interval"] = {"raw": _pair(interval.raw), "normalised": _pair(interval.normalised)}
    return warnings


def _row_warnings(track: Track, rows: list[formula.ScoredRow], policy: MissingPolicy) -> list[str]:
    out = []
    for row in rows:
        name = row.entry.name
        errors = [c.task for c in row.cells if c.state is CellState.ERROR]
        if errors:
            out.append(f"Track {track.value}: {name} is incomplete (infrastructure error in {', '.join(errors)}): "
                       "not ranked until rerun")
        elif row.status is RowStatus.INCOMPLETE:
            out.append(f"Track {track.value}: {name} has no task to average: not ranked")
        missing = [c.task for c in row.cells if c.state in (CellState.FAILED, CellState.NOT_RUN)]
        if missing and row.status is not RowStatus.INCOMPLETE:
            how = "counted 0 at full weight" if policy is MissingPolicy.ZERO else "left out (weights renormalised)"
            out.append(f"Track {track.value}: {name}: {', '.join(missing)} failed or not run: {how}")
        clamped = [c.task for c in row.cells if c.clamped]
        if clamped:
            out.append(f"Track {track.value}: {name}: {', '.join(clamped)} outside [worst, best]: clamped")
        if row.published_matches is False:
            out.append(f"Track {track.value}: {name}: published {row.entry.published} but recomputed "
                       f"{row.score:.6f} (rounds to {formula.display(row.score)})")
    return out


def build_board(spec: BoardSpec, registry: Registry | None = None) -> Board:
    """Verify and read the inputs, rank both tracks, and return the validated document.

    Raises:
        UsageError: nothing to rank, a missing folder, no key, a bad reference file, an unknown task set.
    """
    registry = registry or load_registry()
    inputs = load_results(spec.results, public_key=spec.public_key, allow_unsigned=spec.allow_unsigned) \
        if spec.results else Inputs()
    warnings = list(inputs.warnings)
    registry, refused = custom.extend(registry, (r.typed for r in inputs.results))
    entries: list[Entry] = []
    for loaded in inputs.results:
        rows, notes = result_entries(loaded, registry, {r.task: r.reason for r in refused})
        entries.extend(rows)
        warnings.extend(notes)
    entries.extend(iter_reference_entries(spec.references, registry))
    selection = select_tasks(registry, entries, spec.task_set)
    sources = {r.sha256: bootstrap.load_clips(r.directory, r.result) for r in inputs.results} \
        if spec.bootstrap.enabled else {}
    warnings.extend(selection.warnings)

    tracks: dict[str, Any] = {}
    for track in Track:
        tasks = selection.tasks[track]
        scored = [formula.score_entry(e, tasks, registry, spec.missing) for e in entries if e.track is track] \
            if tasks else []
        if not tasks:
            warnings.append(f"Track {track.value}: no task to rank over: the track is empty")
        resamples = bootstrap.resample_track(track, scored, tasks, registry, sources, spec.bootstrap) \
            if spec.bootstrap.enabled and scored else None
        ranked = formula.rank_rows(scored, track, resamples.ahead if resamples else None,
                                   spec.bootstrap.tie_confidence)
        warnings.extend(_row_warnings(track, ranked, spec.missing))
        tracks[track.value] = _track_dict(track, selection, registry, ranked)
        warnings.extend(_add_bootstrap(tracks[track.value], track, ranked, resamples, spec.bootstrap))

    xares_results = sorted({str(r.result.get("versions", {}).get("xares")) for r in inputs.results})
    if len(xares_results) > 1:
        warnings.append("results were scored with different X-ARES versions (" + ", ".join(xares_results)
                        + "): their scores are not comparable")
    public_key_id = None
    if spec.public_key is not None:
        from harness.attest import key_id, load_public_key

        public_key_id = key_id(load_public_key(spec.public_key))
    if any(r.provenance is Provenance.UNSIGNED for r in inputs.results):
        warnings.append("--allow-unsigned: some rows are not verified (marked); do not publish this leaderboard")

    document = {
        "schema_version": schemas.SCHEMA_VERSION,
        "kind": "aecc-leaderboard",
        "formula_version": FORMULA_VERSION,
        "generated_at": _generated_at(),
        "harness": _harness_info(),
        "xares": {"registry": registry.xares_version, "results": xares_results},
        "task_set": {
            "name": selection.name,
            "description": selection.description,
            "source": selection.source,
            "tasks": {t.value: list(selection.tasks[t]) for t in Track},
            "left_out": [{"task": lo.task, "track": lo.track.value, "reason": lo.reason} for lo in selection.left_out],
        },
        "rules": {
            "missing_policy": spec.missing.value,
            "missing": spec.missing.text,
            **{k: v for k, v in formula.RULES.items() if not k.startswith("tie_")},
            "tie": {t.value: formula.tie_rule_text(t, resamples=spec.bootstrap.resamples,
                                                   confidence=spec.bootstrap.tie_confidence) for t in Track},
            "verification": VERIFICATION_RULE,
            "precision": DISPLAY_DECIMALS,
            "tie_epsilon": TIE_EPSILON,
        },
        "verification": {"public_key_id": public_key_id, "allow_unsigned": spec.allow_unsigned},
        "bootstrap": spec.bootstrap.to_dict(),
        "tracks": tracks,
        "submissions": [
            {"sha256": r.sha256, "name": r.name, "provenance": r.provenance.value, "lock_sha256": r.lock_sha256,
             "key_id": r.key_id, "link": r.link, "note": r.note,
             "harness": _str(r.result.get("versions", {}).get("harness")),
             "harness_commit": _str(r.result.get("versions", {}).get("harness_commit")),
             "xares": _str(r.result.get("versions", {}).get("xares"))}
            for r in inputs.results
        ],
        "references": [str(s) for s in spec.references],
        "rejected": [r.to_dict() for r in inputs.rejected],
        "warnings": warnings,
    }
    return Board(document=schemas.validate("leaderboard", document), inputs=inputs)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def ranked_names(document: dict, track: str) -> Sequence[str]:
    """The names of a track's rows in leaderboard order (a convenience for callers and tests)."""
    return [row["name"] for row in document["tracks"][track]["rows"]]
