"""`aecc status` on a terminal: the unusable mails, then one row per submission with its tasks."""

from __future__ import annotations

from typing import Any, Mapping

from harness.stages.rejection import escape_name

STATE_STYLES = {"done": "green", "excluded": "red", "error": "magenta", "superseded": "dim"}


def _plain(text: Any) -> str:
    return escape_name(str(text))[1:-1]


def render_status(doc: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    if doc["unusable"]:
        table = Table(title="mails without a usable ZIP")
        for column in ("source", "sender", "subject", "reason"):
            table.add_column(column, overflow="fold")
        for u in doc["unusable"]:
            table.add_row(Text(_plain(u["source"])), Text(_plain(u.get("sender") or "")),
                          Text(_plain(u.get("subject") or "")), Text(f"{u['reason']}: {_plain(u.get('detail') or '')}"))
        console.print(table)
    table = Table(title=f"submissions in {_plain(doc['results'])}")
    for column in ("sha256", "name", "state", "tasks", "failures"):
        table.add_column(column, overflow="fold")
    for s in doc["submissions"]:
        tasks = "\n".join(f"{t['task']}: {t['outcome']}"
                          + (f" A {t['track_a']:.4f}" if t.get("track_a") is not None else "")
                          + (f" B {t['track_b']:.4f}" if t.get("track_b") is not None else "") for t in s["tasks"])
        failures = "\n".join(f"{f['stage']}{'/' + f['task'] if f.get('task') else ''} ({f['state']}): "
                             f"{_plain(f['reason'])[:160]}" + (f"\n  log: {f['log']}" if f.get("log") else "")
                             for f in s["failures"])
        state = s["state"] + (f" ({s['stage']})" if s.get("stage") else "") + (" signed" if s["signed"] else "")
        if s.get("scheduler"):
            state += f"\nslurm {s['scheduler'].get('job_id')} {s['scheduler'].get('state', '')}"
        if s.get("verdict"):
            state += f"\ncheck: {_plain(s['verdict'])[:200]}"
        if s.get("stale"):
            state += "\nstale: scored with an older runtime"
        table.add_row(s["sha256"][:12], Text(_plain(s["name"])), Text(state, style=STATE_STYLES.get(s["state"], "")),
                      tasks, Text(failures))
    console.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in doc["counts"].items() if v)
    console.print(f"{len(doc['submissions'])} submission(s): {counts or 'none'}; {len(doc['unusable'])} unusable mail(s)",
                  highlight=False)
