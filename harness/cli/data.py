"""`aecc data fetch|verify|prepare`: the task data, before the first submission arrives.

`fetch` downloads each task's Zenodo record (or an organizer's mirror) into ENV, in X-ARES's layout,
checked file by file, resumable; `verify` re-checks ENV against the manifests (exit 1 on a problem);
`prepare` runs the prepare stage for the sample rates expected, so no submission pays it. Parsing and
rendering only: the work is `harness.data`.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any, Sequence

from harness.cli.common import console, print_json


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="task data: fetch it from Zenodo (or a mirror), verify a copy, prepare it ahead")
    actions = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    f = actions.add_parser("fetch", help="download the tasks' Zenodo records into ENV (X-ARES's layout), checked "
                                         "and resumable")
    which = f.add_mutually_exclusive_group(required=True)
    which.add_argument("--task-set", metavar="NAME", help="every task of a registry task set (e.g. icme2025-final)")
    which.add_argument("--tasks", nargs="+", metavar="TASK", help="registry task names or X-ARES task module files")
    f.add_argument("--out", required=True, metavar="ENV", help="the X-ARES env folder (created if missing); what "
                                                                "`aecc score --data` reads")
    f.add_argument("--zenodo-api", metavar="URL", help="Zenodo's REST API base (default https://zenodo.org/api)")
    f.add_argument("--from", dest="mirror", metavar="URL", help="fetch from an organizer's HTTP mirror laid out like "
                                                                 "ENV (URL/<task>/manifest.json and its files)")
    f.add_argument("--jobs", type=int, default=4, metavar="N", help="parallel downloads (default 4)")
    f.add_argument("--limit-rate", metavar="BYTES/s", help="cap the total bandwidth, e.g. 800k or 20M (x1024)")
    f.add_argument("--xares-tasks", metavar="DIR", help="X-ARES's tasks/ folder to read the record ids from "
                                                        "(default: the runtime image's)")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.set_defaults(func=run_fetch)

    v = actions.add_parser("verify", help="check ENV against the manifests: missing, truncated, changed, extra files")
    v.add_argument("env", metavar="ENV")
    vwhich = v.add_mutually_exclusive_group()
    vwhich.add_argument("--tasks", nargs="+", metavar="TASK", help="these task folders, each required (default: "
                                                                     "every folder under ENV)")
    vwhich.add_argument("--task-set", metavar="NAME", help="the tasks of a registry task set that have an X-ARES "
                                                           "module, each required")
    v.add_argument("--quick", action="store_true", help="sizes only: read no file (checksums are the default)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run_verify)

    p = actions.add_parser("prepare", help="decode and resample the tasks once per sample rate, ahead of submissions")
    p.add_argument("env", metavar="ENV")
    p.add_argument("--sample-rate", nargs="+", type=int, required=True, metavar="HZ",
                   help="the encoders' rates to prepare for (at least 16000)")
    p.add_argument("--tasks", nargs="+", metavar="TASK",
                   help="registry names or task module files (default: every registry task folder under ENV)")
    p.add_argument("--hop-ms", type=float, help="the hop the cache is keyed by (default 40)")
    p.add_argument("--output-dim", type=int, help="the dimension the cache is keyed by (default 768)")
    p.add_argument("--profile", default="cpu", help="sandbox profile of the prepare containers (default cpu)")
    p.add_argument("--jobs", type=int, metavar="N", help="at most N prepare containers at once (default: what the "
                                                          "host's cores and RAM hold)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_prepare)


# --------------------------------------------------------------------------------------------------
# Rendering


def _text(message: str, style: str = "") -> Any:
    from rich.text import Text

    return Text(str(message), style=style)


class _Lines:
    """Progress as plain lines (off a terminal: logs, CI)."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def planned(self, total_bytes: int, done_bytes: int) -> None:
        self.out.print(_text(f"data: {total_bytes / 1e6:.1f} MB in the records, {done_bytes / 1e6:.1f} MB already "
                             "here", "dim"), highlight=False)

    def file_started(self, label: str, size: int, offset: int) -> None:
        resumed = f" (resuming at {offset / 1e6:.1f} MB)" if offset else ""
        self.out.print(_text(f"  {label}: {size / 1e6:.1f} MB{resumed}", "dim"), highlight=False)

    def file_advanced(self, label: str, n: int) -> None:
        pass

    def file_finished(self, label: str, ok: bool) -> None:
        if ok:
            self.out.print(_text(f"  {label}: checked", "dim"), highlight=False)

    def note(self, message: str) -> None:
        self.out.print(_text(f"  {message}", "yellow"), highlight=False)

    def task_finished(self, result: Any) -> None:
        self.out.print(_text(f"{result.name}: {result.outcome.value.replace('_', ' ')}"
                             + (f": {result.detail}" if result.detail else "")), highlight=False)

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class _Bars(_Lines):
    """Progress bars: one per file being downloaded, one overall, each with its rate and time left."""

    def __init__(self, out: Any) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        super().__init__(out)
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=out, transient=False)
        self.overall = self.progress.add_task("all files", total=None)
        self.files: dict[str, Any] = {}
        self.lock = threading.Lock()

    def planned(self, total_bytes: int, done_bytes: int) -> None:
        self.progress.update(self.overall, total=total_bytes, completed=done_bytes)

    def file_started(self, label: str, size: int, offset: int) -> None:
        with self.lock:
            self.files[label] = self.progress.add_task(label, total=size, completed=offset)

    def file_advanced(self, label: str, n: int) -> None:
        task = self.files.get(label)
        if task is not None:
            self.progress.advance(task, n)
        self.progress.advance(self.overall, n)

    def file_finished(self, label: str, ok: bool) -> None:
        with self.lock:
            task = self.files.pop(label, None)
        if task is not None:
            self.progress.remove_task(task)

    def note(self, message: str) -> None:
        self.progress.console.print(_text(message, "yellow"), highlight=False)

    def task_finished(self, result: Any) -> None:
        self.progress.console.print(_text(f"{result.name}: {result.outcome.value.replace('_', ' ')}"
                                          + (f": {result.detail}" if result.detail else "")), highlight=False)

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


def _fetch_table(report: Any, out: Any) -> None:
    from rich.table import Table

    from harness.data.fetch import Outcome

    styles = {Outcome.FETCHED: "green", Outcome.UP_TO_DATE: "green", Outcome.FAILED: "red",
              Outcome.PLACE_YOURSELF: "yellow", Outcome.PLACED: "green", Outcome.NO_MODULE: "dim"}
    table = Table(title=f"aecc data fetch -> {report.out}")
    for column in ("task", "outcome", "record", "version", "files", "MB", "downloaded MB"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        rec = r.record
        table.add_row(_text(r.name), _text(r.outcome.value.replace("_", " "), styles[r.outcome]),
                      rec.record_id if rec else (r.task.zenodo_id or "-"), (rec.version or "-") if rec else "-",
                      str(len(rec.files)) if rec else "-", f"{rec.bytes / 1e6:.1f}" if rec else "-",
                      f"{r.downloaded_bytes / 1e6:.1f}" if rec else "-")
    out.print(table)
    place = report.by_outcome(Outcome.PLACE_YOURSELF)
    if place:
        out.print(_text(f"place the data yourself ({len(place)} task(s)):", "yellow"), highlight=False)
        for r in place:
            out.print(_text(f"  {r.name}: {r.detail}"), highlight=False)
            out.print(_text(f"    expected: {r.task.layout(report.out)}", "dim"), highlight=False)
    for r in report.by_outcome(Outcome.NO_MODULE):
        out.print(_text(f"not fetched: {r.name}: {r.detail}", "dim"), highlight=False)
    for r in report.by_outcome(Outcome.FAILED):
        from rich.text import Text

        out.print(Text.assemble(("failed: ", "red"), r.error.render() if r.error else r.detail), highlight=False)
    if report.ok:
        out.print(_text(f"every fetchable task is complete and checked; next: aecc data verify {report.out} on the "
                        "scoring host", "green"), highlight=False)
    else:
        out.print(_text("some tasks failed (no marker written for them); run the same command again: it resumes",
                        "red"), highlight=False)


def run_fetch(args: argparse.Namespace) -> int:
    from harness.data import download, records
    from harness.data.fetch import DataFetchSpec, fetch

    out = console()
    tasks = records.plan_tasks(args.tasks, args.task_set, xares_tasks=Path(args.xares_tasks) if args.xares_tasks
                               else None)
    spec = DataFetchSpec(out=Path(args.out), tasks=tasks, api=args.zenodo_api or records.DEFAULT_ZENODO_API,
                     mirror=args.mirror, jobs=args.jobs,
                     limit_rate=download.parse_rate(args.limit_rate) if args.limit_rate else None)
    events = _Bars(out) if out.is_terminal and not args.json else _Lines(out)
    with events:
        report = fetch(spec, events)
    if args.json:
        print_json(report.to_dict())
    else:
        _fetch_table(report, out)
    return 0 if report.ok else 2


def _verify_render(result: Any, out: Any) -> None:
    from harness.data.manifest import TaskState

    styles = {TaskState.READY: "green", TaskState.UNMANAGED: "yellow", TaskState.PROBLEMS: "red",
              TaskState.ABSENT: "red"}
    for t in result.tasks:
        line = f"{t.task}: {t.state.value}"
        if t.state is TaskState.READY:
            line += f" ({t.files} file(s), {t.bytes / 1e6:.1f} MB, record {t.record_id}" + \
                    (f" version {t.version}" if t.version else "") + (")" if t.deep else "; sizes only)")
        elif t.state is TaskState.UNMANAGED:
            line += " (no manifest.json: placed by hand, marker present, not checked)"
        out.print(_text(line, styles[t.state]), highlight=False)
        for p in t.problems:
            out.print(_text("  " + p.render().replace("\n", "\n  ")), highlight=False)
    if not result.tasks:
        out.print(_text(f"no task folders under {result.env}", "yellow"), highlight=False)
    elif result.ok:
        out.print(_text(f"{result.env}: every task matches its manifest", "green"), highlight=False)
    else:
        out.print(_text(f"{result.env}: {len(result.problems)} problem(s); each says what to do", "red"),
                  highlight=False)


def _set_tasks(task_set: str) -> list[str]:
    from harness.tasks.registry import load_registry

    registry = load_registry()
    registry.task_set_info(task_set)
    return [e.name for e in registry if e.task_sets.get(task_set) and e.xares_module]


def run_verify(args: argparse.Namespace) -> int:
    from harness.data.manifest import verify_env

    env = Path(args.env)
    names = list(args.tasks) if args.tasks else _set_tasks(args.task_set) if args.task_set else None
    if not env.is_dir():
        from harness.errors import UsageError

        raise UsageError(f"{env} is not a folder", expected="the X-ARES env folder `aecc data fetch --out` wrote",
                         found="missing" if not env.exists() else "not a folder", fix="pass the copied ENV")
    result = verify_env(env, names, deep=not args.quick)
    if args.json:
        print_json(result.to_dict())
    else:
        _verify_render(result, console())
    return 0 if result.ok else 1


class _PrepareBar:
    def __init__(self, out: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.out = out
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=out, transient=False, disable=not out.is_terminal)
        self.bar = self.progress.add_task("prepare", total=None)

    def planned(self, units: Sequence[Any], parallel: int, reasons: Sequence[str]) -> None:
        self.progress.update(self.bar, total=len(units))
        self.progress.console.print(_text(f"prepare: {len(units)} (task, rate) pair(s), {parallel} at once ("
                                          + "; ".join(reasons) + ")", "dim"), highlight=False)

    def started(self, unit: Any) -> None:
        self.progress.update(self.bar, description=f"prepare: {unit.label}")

    def finished(self, result: Any) -> None:
        self.progress.advance(self.bar)
        style = {"prepared": "green", "cached": "green", "failed": "red", "skipped": "yellow"}[result.state.value]
        self.progress.console.print(_text(f"{result.unit.label}: {result.state.value} ({result.seconds:.0f} s)"
                                          + (f": {result.detail}" if result.detail else ""), style), highlight=False)

    def __enter__(self) -> _PrepareBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


def run_prepare(args: argparse.Namespace) -> int:
    from harness.cli.common import build_options
    from harness.data import prepare

    out = console()
    env = Path(args.env)
    tasks, notes = prepare.ready_tasks(env, args.tasks)
    for note in notes:
        out.print(_text(f"not prepared: {note}", "dim"), highlight=False)
    _client, runtime = prepare.runtime_image(build_options(args))
    spec = prepare.PrepareAheadSpec(env=env, tasks=tuple(tasks), sample_rates=tuple(args.sample_rate),
                                    runtime=runtime, profile=args.profile,
                                    hop_ms=args.hop_ms if args.hop_ms is not None else prepare.DEFAULT_HOP_MS,
                                    output_dim=args.output_dim if args.output_dim is not None
                                    else prepare.DEFAULT_OUTPUT_DIM, jobs=args.jobs)
    with _PrepareBar(out) as bar:
        report = prepare.prepare_ahead(spec, bar)
    if args.json:
        print_json(report.to_dict())
    failed = [r for r in report.results if r.state is prepare.State.FAILED]
    skipped = [r for r in report.results if r.state is prepare.State.SKIPPED]
    if not failed and not skipped:
        out.print(_text(f"prepared: a later `aecc score --data {env}` finds these in the cache", "green"),
                  highlight=False)
    return 2 if failed else 1 if skipped else 0
