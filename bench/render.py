"""The bench's table on stdout: one row per metric with its target's status, then the notes and errors.

Kept apart so that the JSON (bench/run.py writes it) stays the record and this only a view of it:
`render` reads nothing but that document, so a saved result can be shown again the same way.
"""

from __future__ import annotations

import sys


def render(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160)
    m = doc["machine"]
    title = (f"aecc bench {doc['created_utc']}  ({m['cpu_model']}, {m['cpus']} CPUs, {m['ram_bytes'] / 2**30:.0f} GiB, "
             f"docker {m['docker_server_version']}/{m['docker_storage_driver']}, harness "
             f"{doc['versions']['harness']} {doc['versions']['harness_commit'][:12]})")
    table = Table(title=title)
    for column in ("metric", "unit", "median", "min .. max", "n", "target", "status"):
        table.add_column(column)
    # An alternative's row shows its own threshold, marked "or", and the status of the whole target.
    targets = {t["metric"]: (f"{t['op']} {t['threshold']:g}", t["status"]) for t in doc["targets"]}
    for t in doc["targets"]:
        for alt in t.get("alternatives", ()):
            targets.setdefault(alt["metric"], (f"or {alt['op']} {alt['threshold']:g}", t["status"]))
    for name, metric in doc["metrics"].items():
        threshold, verdict = targets.get(name, ("", None))
        status = Text("")
        if verdict:
            style = {"pass": "green", "miss": "bold red"}.get(verdict, "dim")
            status = Text(verdict, style=style)
        fmt = (lambda v: "-" if v is None else (f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"))  # noqa: E731
        table.add_row(name, metric["unit"], fmt(metric["median"]),
                      f"{fmt(metric['min'])} .. {fmt(metric['max'])}" if metric["n"] > 1 else "",
                      str(metric["n"]), threshold, status)
    console.print(table)
    for t in doc["targets"]:
        if t["note"]:
            console.print(f"[bold]{t['metric']}[/]: {t['note']}", highlight=False)
    for note in doc["notes"]:
        console.print(f"note: {note}", highlight=False)
    for err in doc["errors"]:
        console.print(Text(f"error in {err['group']}: {err['what']}", style="red"))
