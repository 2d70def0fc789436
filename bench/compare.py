"""Compare two `make bench` results: is NEW slower (or bigger) than OLD beyond noise?

    python bench/compare.py bench/results/OLD.json bench/results/NEW.json

Per metric (the `metrics` object of each file), the medians are compared in the metric's bad
direction (`better: lower` for times, RSS and ratios; `better: higher` for throughput and speedup).
A change counts as a regression when it is worse by more than

    max(10 %, the larger relative spread (max - min) / median of either run)

so a metric whose repeats scattered by 30 % needs a 30 % move before it is flagged. Metrics that
only one file has are listed as missing (not a regression: the set of metrics grows with the
harness). Exit status: 1 if any regression, 0 otherwise, 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

MIN_RELATIVE = 0.10


@dataclasses.dataclass(frozen=True)
class Row:
    metric: str
    unit: str
    old: float | None
    new: float | None
    change: float | None  # relative change in the bad direction: +0.2 = 20 % worse
    threshold: float | None
    status: str  # regression | ok | improved | missing-in-old | missing-in-new | not-measured

    @property
    def regression(self) -> bool:
        return self.status == "regression"


def relative_spread(metric: dict) -> float:
    """(max - min) / median of a metric's repeats; 0 for a single value or a zero median."""
    median, low, high = metric.get("median"), metric.get("min"), metric.get("max")
    if median in (None, 0) or low is None or high is None:
        return 0.0
    return abs(high - low) / abs(median)


def compare_metric(name: str, old: dict, new: dict, min_relative: float = MIN_RELATIVE) -> Row:
    unit = new.get("unit") or old.get("unit") or ""
    a, b = old.get("median"), new.get("median")
    if a is None or b is None:
        return Row(name, unit, a, b, None, None, "not-measured")
    higher_is_better = (new.get("better") or old.get("better") or "lower") == "higher"
    threshold = max(min_relative, relative_spread(old), relative_spread(new))
    if a == 0:
        worse = b < 0 if higher_is_better else b > 0
        change = 0.0 if b == 0 else (float("inf") if worse else float("-inf"))
    else:
        change = (b - a) / abs(a)
        if higher_is_better:
            change = -change
    if change > threshold:
        status = "regression"
    elif change < -threshold:
        status = "improved"
    else:
        status = "ok"
    return Row(name, unit, a, b, change, threshold, status)


def compare(old: dict, new: dict, min_relative: float = MIN_RELATIVE) -> list[Row]:
    """One row per metric in either result, old's order first, then metrics only NEW has."""
    old_m, new_m = old.get("metrics") or {}, new.get("metrics") or {}
    rows = []
    for name in list(old_m) + [n for n in new_m if n not in old_m]:
        if name not in new_m:
            rows.append(Row(name, old_m[name].get("unit", ""), old_m[name].get("median"), None, None, None,
                            "missing-in-new"))
        elif name not in old_m:
            rows.append(Row(name, new_m[name].get("unit", ""), None, new_m[name].get("median"), None, None,
                            "missing-in-old"))
        else:
            rows.append(compare_metric(name, old_m[name], new_m[name], min_relative))
    return rows


def _load(path: Path) -> dict:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "metrics" not in data:
        raise ValueError(f"{path}: not a bench result (no `metrics`)")
    return data


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def render(rows: Sequence[Row], old: dict, new: dict, out: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out or sys.stdout, width=160 if out is None and not sys.stdout.isatty() else None)
    title = (f"bench compare: {old.get('created_utc', '?')} ({(old.get('versions') or {}).get('harness_commit', '?')[:12]})"
             f" -> {new.get('created_utc', '?')} ({(new.get('versions') or {}).get('harness_commit', '?')[:12]})")
    table = Table(title=title)
    for column in ("metric", "unit", "old median", "new median", "change (worse +)", "noise threshold", "status"):
        table.add_column(column)
    styles = {"regression": "bold red", "improved": "green", "ok": "", "not-measured": "dim"}
    for r in rows:
        change = "-" if r.change is None else f"{r.change * 100:+.1f} %"
        threshold = "-" if r.threshold is None else f"{r.threshold * 100:.0f} %"
        style = styles.get(r.status, "yellow")  # missing-in-*: yellow
        table.add_row(r.metric, r.unit, _fmt(r.old), _fmt(r.new), change, threshold,
                      Text(r.status, style=style))
    console.print(table)
    machine_old, machine_new = old.get("machine") or {}, new.get("machine") or {}
    if machine_old.get("cpu_model") != machine_new.get("cpu_model") or machine_old.get("cpus") != machine_new.get("cpus"):
        console.print("[yellow]note: the two runs are from different machines; compare ratios, not seconds[/]")
    regressions = [r.metric for r in rows if r.regression]
    console.print(f"{len(regressions)} regression(s)" + (f": {', '.join(regressions)}" if regressions else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="the earlier bench/results/*.json")
    parser.add_argument("new", type=Path, help="the later bench/results/*.json")
    parser.add_argument("--min-relative", type=float, default=MIN_RELATIVE,
                        help="smallest relative change ever flagged (default 0.10)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        old, new = _load(args.old), _load(args.new)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = compare(old, new, args.min_relative)
    if args.json:
        json.dump([dataclasses.asdict(r) for r in rows], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        render(rows, old, new)
    return 1 if any(r.regression for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
