"""Write the site: leaderboard.json, per-track CSV and Markdown, index.html, and a copy of every
ranked result's files, so that the folder is self-contained (rows link to `results/<sha>/...`
relative to it, and `aecc verify SITE/results --pubkey ...` checks them offline).

Every file is rendered from the validated document; a CSV cell that a spreadsheet would read as a
formula (a name starting with = + - @) is quoted with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from harness.attest import ENVELOPE_CAP, ENVELOPE_NAME, RESULT_NAME
from harness.errors import UsageError
from harness.rank.board import Board
from harness.rank.formula import display
from harness.rank.page import render_page
from harness.safeio import read_capped, write_atomic

JSON_NAME = "leaderboard.json"
PAGE_NAME = "index.html"


def csv_name(track: str) -> str:
    return f"leaderboard-{track}.csv"


def md_name(track: str) -> str:
    return f"leaderboard-{track}.md"


def _safe_csv(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return ""
    if cell["state"] == "value":
        return repr(cell["raw"])
    return cell["state"]


def render_csv(document: dict, track: str) -> str:
    """One row per leaderboard row: rank, tie group, name, scores (with the bootstrap's interval, rank
    interval and the share of resamples in which the row above is ahead, or why there is none),
    provenance, then each task's raw value (or its state: failed, not_run, error)."""
    board = document["tracks"][track]
    tasks = [t["task"] for t in board["tasks"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "tie_group", "name", "kind", "provenance", "status", "score", "score_se", "score_public",
                     "published", "published_matches", "sha256", "lock_sha256", *tasks, *_BOOT_COLUMNS])
    for row in board["rows"]:
        writer.writerow([
            row["rank"] if row["rank"] is not None else "", row["tie_group"] or "", _safe_csv(row["name"]), row["kind"],
            row["provenance"], row["status"], "" if row["score"] is None else repr(row["score"]),
            "" if row["score_se"] is None else repr(row["score_se"]),
            "" if row["score_public"] is None else repr(row["score_public"]), row["published"] or "",
            "" if row["published_matches"] is None else str(row["published_matches"]).lower(), row["sha256"] or "",
            row["lock_sha256"] or "", *[_cell_text(row["cells"].get(t)) for t in tasks], *_boot_cells(row),
        ])
    return buffer.getvalue()


#: the bootstrap's columns, after the tasks' (so that readers of the older columns read them unchanged)
_BOOT_COLUMNS = ("score_low", "score_high", "rank_median", "rank_low", "rank_high", "upper_ahead", "interval_note")


def _boot_cells(row: dict) -> list[str]:
    boot = row["bootstrap"]
    def number(value: float | None) -> str:
        return "" if value is None else repr(value)

    interval, ranks = boot["interval"] or (None, None), boot["rank_interval"] or (None, None)
    return [number(interval[0]), number(interval[1]), number(boot["rank_median"]), number(ranks[0]),
            number(ranks[1]), number(boot["upper_ahead"]), _safe_csv(boot["reason"] or "")]


def _md(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ") \
        .replace("[", "\\[").replace("]", "\\]").replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def render_markdown(document: dict, track: str) -> str:
    board = document["tracks"][track]
    rules = document["rules"]
    lines = [f"## {board['title']}", "",
             f"Task set `{document['task_set']['name']}` ({len(board['tasks'])} tasks, total weight "
             f"{board['total_weight']}); missing tasks: `{rules['missing_policy']}` ({rules['missing']}). "
             f"Ties: {board['tie_rule']}. Formula `{document['formula_version']}`.", "",
             "| Rank | Name | Score | Public | Published | Provenance | Status | Rank 95% |",
             "|---:|---|---:|---:|---|---|---|---:|"]
    for row in board["rows"]:
        rank = "\u2013" if row["rank"] is None else (f"={row['rank']} (T{row['tie_group']})" if row["tie_group"]
                                                     else str(row["rank"]))
        published = ""
        if row["published"] is not None:
            published = row["published"] + (" \u2713" if row["published_matches"]
                                             else f" \u2260 {display(row['score'])} \u26a0")
        ranks = row["bootstrap"]["rank_interval"]
        rank_interval = "" if ranks is None else f"{ranks[0]}\u2013{ranks[1]}"
        lines.append(f"| {rank} | {_md(row['name'])} | {_md(row['score_display'])} | {display(row['score_public'])} | "
                     f"{published} | {row['provenance_label']} | {row['status']} | {rank_interval} |")
    boot = document["bootstrap"]
    lines += ["", f"Intervals: {boot['method']} ({boot['resamples']} resamples, seed {boot['seed']})."
              if boot["resamples"] else "Intervals: off (--bootstrap 0).", ""]
    return "\n".join(lines)


def _copy_results(board: Board, site: Path) -> None:
    for loaded in board.inputs.results:
        target = site / "results" / loaded.sha256
        target.mkdir(parents=True, exist_ok=True)
        # The verified payload, not the file that was beside it: they are equal (the verifier checked),
        # and for an unsigned result this is the schema-checked document that was ranked.
        write_atomic(target / RESULT_NAME, json.dumps(loaded.result, indent=2, ensure_ascii=False) + "\n")
        if loaded.envelope is not None:
            write_atomic(target / ENVELOPE_NAME, read_capped(loaded.envelope, ENVELOPE_CAP))
        else:
            (target / ENVELOPE_NAME).unlink(missing_ok=True)


def write_site(board: Board, site: Path) -> dict[str, Path]:
    """Write every output into `site` (created if missing) and return them by kind.

    Raises:
        UsageError: `site` exists and is not a folder, or cannot be written.
    """
    site = Path(site)
    if site.exists() and not site.is_dir():
        raise UsageError(f"--out {site} is not a folder", expected="a folder (created if missing)",
                         found="a file", fix="choose another --out")
    try:
        site.mkdir(parents=True, exist_ok=True)
        document = board.document
        written = {"json": site / JSON_NAME, "page": site / PAGE_NAME}
        write_atomic(written["json"], json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        for track in ("A", "B"):
            written[f"csv-{track}"] = site / csv_name(track)
            written[f"md-{track}"] = site / md_name(track)
            write_atomic(written[f"csv-{track}"], render_csv(document, track))
            write_atomic(written[f"md-{track}"], render_markdown(document, track))
        _copy_results(board, site)
        write_atomic(written["page"], render_page(document))
    except OSError as exc:
        raise UsageError(f"cannot write the site into {site}", expected="a writable folder",
                         found=exc.strerror or str(exc), fix="choose another --out") from None
    return written
