"""Results on a terminal (rich): the validation table and the score table. Names in them come from
participants, so every string goes in as `Text`, never as markup."""

from __future__ import annotations

from typing import Any, Mapping

STATUS_COLOURS = {"passed": "green", "failed": "red", "warning": "yellow", "skipped": "dim"}


def render_validation(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    sub = report["submission"]
    table = Table(title=f"aecc validate: {sub.get('encoder_file', '?')}:{sub.get('encoder_class', '?')}")
    table.add_column("check")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for c in report["checks"]:
        message = c["message"]
        if c["status"] == "failed":
            message += (f"\n  fix: {c['fix']}" if c.get("fix") else "") + (f"\n  log: {c['log']}" if c.get("log") else "")
        table.add_row(c["id"], Text(c["status"], style=STATUS_COLOURS.get(c["status"], "")), Text(message))
    console.print(table)
    res = report.get("resources") or {}
    if res.get("peak_host_memory_bytes"):
        console.print(f"peak host memory {res['peak_host_memory_bytes'] / 2**20:.0f} MiB of "
                      f"{res['host_memory_limit_bytes'] / 2**30:g} GiB (measured from the host)")
    verdict = report["status"]
    style = {"passed": "bold green", "failed": "bold red", "error": "bold magenta"}[verdict]
    note = {"passed": "the submission meets the contract", "failed": "the submission must be fixed (see above)",
            "error": "infrastructure error: not the submission's fault; see the logs"}[verdict]
    console.print(Text(f"{verdict.upper()}: {note}  ({report['timings'].get('total_s', 0):.1f} s)", style=style))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_score(result: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    sub = result["submission"]
    table = Table(title=f"aecc score: {sub['encoder_class']} ({sub['sha256'][:12]})")
    for column in ("task", "metric", "track A", "track B", "weight", "outcome"):
        table.add_column(column)
    for t in result["tasks"]:
        table.add_row(t["task"], t["metric"] or "-", _number(t["track_a"]), _number(t["track_b"]),
                      str(t["weight"] or "-"), Text(t["outcome"] + (f": {t['reason'][:60]}" if t["reason"] else "")))
    console.print(table)
