"""`aecc leaderboard [RESULTS...] --out SITE`: verify results, rank both tracks, write a static site.

Exit 0 when every result given was ranked, 1 when any was rejected (the site is still written and
lists it), 2 for a usage error (no key, a missing folder, a bad reference file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="verify signed results and write both leaderboards (JSON, CSV, Markdown, a static page)",
        description="Rank verified results (and published reference rows) with the paper's formula: each task's "
                    "metric normalised to [0, 1] with the registry's worst/best, averaged with X-ARES eval_weight.",
    )
    p.add_argument("results", nargs="*", metavar="RESULTS",
                   help="folders holding <sha256>/result.json and result.dsse.json (what `aecc score --out` writes)")
    p.add_argument("--out", required=True, metavar="SITE",
                   help="write leaderboard.json, leaderboard-{A,B}.csv/.md, index.html and results/ here")
    p.add_argument("--pubkey", metavar="PEM", help="the organizer's public key (signing.pub): every result is "
                                                    "verified with it")
    p.add_argument("--task-set", metavar="NAME",
                   help="rank over a registry task set (paper, icme2025-final); default: the tasks present")
    p.add_argument("--missing", choices=("zero", "exclude"), default="zero",
                   help="a failed or not-run task counts 0 at full weight (zero, default) or is left out with "
                        "the weights renormalised (exclude)")
    p.add_argument("--reference", action="append", default=[], metavar="CSV",
                   help="published rows to rank alongside (columns name, track, published, <task>...); a name such "
                        "as icme2025-final reads harness/tasks/published/NAME.csv; repeatable")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="local use only: rank unsigned results too, marked unverified (a bad signature is still "
                        "rejected)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                   help="paired bootstrap resamples over test clips (and Track A repeats) for intervals, rank "
                        "distributions and significance-aware ties (default 1000; 0: off)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="SEED",
                   help="the bootstrap's seed, recorded in leaderboard.json (default 0)")
    p.add_argument("--tie-confidence", type=float, default=0.95, metavar="P",
                   help="adjacent rows with per-clip data share a tie group unless the upper one is ahead in at "
                        "least this share of resamples (default 0.95)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from rich.table import Table
    from rich.text import Text

    from harness.rank.board import BoardSpec, build_board
    from harness.rank.bootstrap import BootstrapSpec
    from harness.rank.formula import display
    from harness.rank.outputs import write_site

    spec = BoardSpec(results=tuple(Path(r) for r in args.results), references=tuple(args.reference),
                     public_key=Path(args.pubkey) if args.pubkey else None, task_set=args.task_set,
                     missing=args.missing, allow_unsigned=args.allow_unsigned,
                     bootstrap=BootstrapSpec(resamples=args.bootstrap, seed=args.bootstrap_seed,
                                             tie_confidence=args.tie_confidence))
    started = time.monotonic()
    board = build_board(spec)
    elapsed = time.monotonic() - started
    written = write_site(board, Path(args.out))
    document = board.document
    out = console()
    for message in document["warnings"]:
        out.print(Text("warning: ", style="yellow") + Text(message), highlight=False)
    for track in ("A", "B"):
        data = document["tracks"][track]
        table = Table(title=f"{data['title']}: {len(data['tasks'])} tasks, task set {document['task_set']['name']}")
        for column in ("rank", "rank 95%", "name", "score", "public", "published", "provenance", "status"):
            table.add_column(column, justify="right" if column in ("rank", "score", "public") else "left")
        for row in data["rows"]:
            rank = "-" if row["rank"] is None else (f"={row['rank']}" if row["tie_group"] else str(row["rank"]))
            interval = row["bootstrap"]["rank_interval"]
            rank_interval = "" if interval is None else (
                str(interval[0]) if interval[0] == interval[1] else f"{interval[0]}\u2013{interval[1]}")
            published = "" if row["published"] is None else row["published"] + (
                " ok" if row["published_matches"] else " MISMATCH")
            table.add_row(rank, rank_interval, Text(row["name"]), row["score_display"], display(row["score_public"]),
                          Text(published, style="" if row["published_matches"] is not False else "red"),
                          row["provenance_label"], row["status"])
        out.print(table)
    for rejected in document["rejected"]:
        detail = f"/{rejected['detail']}" if rejected["detail"] else ""
        out.print(Text("rejected: ", style="red") + Text(f"{rejected['source']}: [{rejected['problem']}{detail}] "
                                                         f"{rejected['message']}"), highlight=False)
    boot = document["bootstrap"]
    out.print(Text(f"bootstrap: {boot['resamples']} resamples, seed {boot['seed']}, ties separated at "
                   f"{boot['tie_confidence']:g} of resamples; board built in {elapsed:.1f} s"
                   if boot["resamples"] else "bootstrap: off (--bootstrap 0): no intervals, the plain tie rule"),
              highlight=False)
    out.print(Text(f"site: {written['page']} (leaderboard.json, leaderboard-A/B.csv, .md beside it)"),
              highlight=False)
    return 1 if document["rejected"] else 0
