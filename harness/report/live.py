"""The batch as it runs: one row per submission (stage, progress, elapsed, outcome), redrawn in place
on a terminal (rich Live) and printed as plain lines anywhere else (CI logs, a file, nohup)."""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.stages.rejection import escape_name


class Board:
    """Receives `progress(sha256, message)` from every worker thread; renders the latest per row."""

    def __init__(self, console: Any, live: bool):
        self.console = console
        self.live = live
        self._rows: dict[str, dict] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._live: Any = None

    def add(self, sha: str, name: str) -> None:
        with self._lock:
            if sha not in self._rows:
                self._rows[sha] = {"name": name, "message": "queued", "start": None, "end": None}
                self._order.append(sha)

    def progress(self, sha: str, message: str) -> None:
        from rich.text import Text

        with self._lock:
            row = self._rows.setdefault(sha, {"name": sha[:12], "message": "", "start": None, "end": None})
            if sha not in self._order:
                self._order.append(sha)
            if row["start"] is None:
                row["start"] = time.monotonic()
            row["message"] = message
            if message.startswith(("excluded", "result", "infrastructure error, retries spent")) or \
                    message.startswith("held by another process"):
                row["end"] = time.monotonic()
        if self._live is not None:
            self._live.update(self.table())
        else:
            name = escape_name(row["name"])[1:-1]
            # A submission without a sender or file name is named by its sha: say it once.
            who = sha[:12] if name in (sha[:12], sha) else f"{sha[:12]} {name}"
            self.console.print(Text(f"{who}: {message}"), highlight=False, soft_wrap=True)

    def done(self, sha: str, outcome: str) -> None:
        with self._lock:
            row = self._rows.get(sha)
            if row is not None:
                row["message"], row["end"] = outcome, row["end"] or time.monotonic()
        if self._live is not None:
            self._live.update(self.table())

    def table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(title="aecc score", expand=False)
        for column in ("submission", "name", "elapsed", "stage / outcome"):
            table.add_column(column)
        now = time.monotonic()
        with self._lock:
            for sha in self._order:
                row = self._rows[sha]
                elapsed = "" if row["start"] is None else f"{(row['end'] or now) - row['start']:.0f} s"
                table.add_row(sha[:12], Text(escape_name(row["name"])[1:-1]), elapsed, Text(row["message"][:100]))
        return table

    def __enter__(self) -> "Board":
        if self.live:
            from rich.live import Live

            self._live = Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(*exc)
            self._live = None
