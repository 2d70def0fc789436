"""Results on a terminal (rich): the validation table and the score table. Names in them come from
participants, so every string goes in as `Text`, never as markup."""

from __future__ import annotations

from typing import Any, Mapping

STATUS_COLOURS = {"passed": "green", "failed": "red", "warning": "yellow", "skipped": "dim"}


def render_verdict(verdict: Mapping[str, Any], console: Any, *, timing: str = "") -> None:
    """The one verdict (`checker.verdict`), in its own words: the headline, then what did not pass,
    grouped by level with each fix. Every tool prints exactly these lines."""
    from rich.text import Text

    from checker.verdict import Summary

    summary = Summary.from_dict(verdict)
    style = {"passes": "bold green", "scored_with_problems": "bold yellow", "excluded": "bold red",
             "error": "bold magenta"}[summary.outcome.value]
    lines = summary.lines()
    # soft_wrap: each line of the verdict stays one line, whatever the console's width, so logs and
    # CI show exactly the words the JSON holds.
    console.print(Text(lines[0] + timing, style=style), soft_wrap=True)
    for line in lines[1:]:
        console.print(Text(line), soft_wrap=True)


def render_validation(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    sub = report["submission"]
    table = Table(title=f"aecc validate: {sub.get('encoder_file', '?')}:{sub.get('encoder_class', '?')}")
    table.add_column("check")
    table.add_column("level")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for c in report["checks"]:
        table.add_row(c["id"], c.get("level") or "-", Text(c["status"], style=STATUS_COLOURS.get(c["status"], "")),
                      Text(c["message"]))
    console.print(table)
    res = report.get("resources") or {}
    if res.get("peak_host_memory_bytes"):
        console.print(f"peak host memory {res['peak_host_memory_bytes'] / 2**20:.0f} MiB of "
                      f"{res['host_memory_limit_bytes'] / 2**30:g} GiB (measured from the host)")
    render_verdict(report["verdict"], console)
    console.print(f"exit {report['verdict']['exit_code']} ({report['timings'].get('total_s', 0):.1f} s)", highlight=False)
