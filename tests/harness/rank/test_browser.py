"""What a person sees in a real browser: index.html, opened from disk in headless Chromium with no
network, shows both leaderboards in rank order with tie markers, flags a published value that does
not match its recomputation, draws a bar chart per track, renders a hostile encoder name as text,
and re-sorts a table when a column header is clicked (twice: the other way). The page loads nothing:
no src attribute, no absolute link, a Content-Security-Policy of default-src 'none'.

Chromium comes from Debian's `chromium` package, which scripts/host-tools.sh installs (`make test`
runs it); the screenshot is kept under the test's tmp dir and copied to $AECC_TEST_ARTIFACTS if set.
"""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.rank.board import BoardSpec, build_board
from harness.rank.outputs import write_site
from tests.harness.rank.helpers import HOSTILE_CLASS, scenario, sha_of, write_reference

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, ("chromium is missing: run `bash scripts/host-tools.sh` (as root on Debian: apt-get install "
                   "chromium), which `make test` does first")
    return found


def browse(page: Path, tmp: Path, *extra: str, query: str = "") -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    profile.mkdir()
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *extra,
               page.resolve().as_uri() + query]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dom(page: Path, tmp: Path, query: str = "") -> "Dom":
    return Dom(browse(page, tmp, "--dump-dom", query=query).stdout)


class Dom(html.parser.HTMLParser):
    """The few things the tests read from the rendered DOM: per table, its rows (data-name) and cells
    (class, data attributes, text); every element's tag and attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.elements: list[tuple[str, dict]] = []
        self.tables: dict[str, list[dict]] = {}
        self._table: str | None = None
        self._row: dict | None = None
        self._cell: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table and "data-name" in attrs:
            self._row = {"name": attrs["data-name"], "cells": []}
            self.tables[self._table].append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = {"class": attrs.get("class", ""), "attrs": attrs, "text": ""}
            self._row["cells"].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def names(self, table: str) -> list[str]:
        return [r["name"] for r in self.tables[table]]

    def cell(self, table: str, name: str, cls: str) -> dict:
        row = next(r for r in self.tables[table] if r["name"] == name)
        return next(c for c in row["cells"] if cls in c["class"].split())

    def table_attr(self, table: str, key: str) -> str | None:
        return next(a.get(key) for t, a in self.elements if t == "table" and a.get("id") == table)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    results, signer = scenario(root)
    board = build_board(BoardSpec(results=(results,), public_key=signer.public_path,
                                  references=(str(write_reference(root)),)))
    write_site(board, root / "site")
    return root / "site"


ALPHA, BETA = f"TinyEncoder ({sha_of('alpha')[:8]})", f"BetaEncoder ({sha_of('beta')[:8]})"
GAMMA, HOSTILE = f"GammaEncoder ({sha_of('gamma')[:8]})", f"{HOSTILE_CLASS} ({sha_of('hostile')[:8]})"


def test_rows_ranks_ties_mismatch_and_charts_as_rendered(site, tmp_path):
    page = dom(site / "index.html", tmp_path)
    assert ("html", {"lang": "en", "data-ready": "1"}) in page.elements, "the page's script did not run"
    assert page.names("table-A") == [ALPHA, "Twin", "Baseline", BETA, HOSTILE, GAMMA]
    ranks = [page.cell("table-A", n, "rank")["text"].split() for n in page.names("table-A")]
    assert ranks == [["=1", "T1"], ["=1", "T1"], ["3"], ["4"], ["5"], ["\u2013"]]
    assert page.names("table-B") == ["Baseline", ALPHA, BETA, HOSTILE, GAMMA]
    assert page.cell("table-B", ALPHA, "rank")["text"].split() == ["=1", "T1"]
    # Track A shows mean +- SE from the repeats
    assert page.cell("table-A", ALPHA, "se")["text"] == "\u00b1 0.004"
    # the published mismatch is flagged and shows both numbers; the match is ticked
    twin = page.cell("table-A", "Twin", "published")
    assert "mismatch" in twin["class"] and twin["text"] == "\u26a0 0.950 \u2260 0.947"
    assert page.cell("table-A", "Baseline", "published")["text"] == "0.921 \u2713"
    # cells say what they are: a failure counted 0, an infrastructure error, values
    row = next(r for r in page.tables["table-A"] if r["name"] == BETA)
    assert [c["text"] for c in row["cells"] if "task" in c["class"].split()] == ["failed (0)", "0.930", "0.970"]
    gamma = next(r for r in page.tables["table-A"] if r["name"] == GAMMA)
    assert "error" in [c["text"] for c in gamma["cells"]] and page.cell("table-A", GAMMA, "status")["text"] == \
        "incomplete"
    # one bar per row with a score, in each track's chart
    for track, rows in (("A", 6), ("B", 5)):
        assert ("svg", {"class": "chart", "id": f"chart-{track}", "role": "img"}) in [
            (t, {k: a[k] for k in ("class", "id", "role") if k in a}) for t, a in page.elements]
        bars = [a for t, a in page.elements if t == "g" and a.get("class") == "bar"]
        assert len(bars) == 6 + 5 and rows
    # the hostile name is text: no element was injected
    assert not [t for t, _ in page.elements if t in ("img", "iframe", "object", "embed")]
    assert HOSTILE in page.names("table-A")
    # rows link to their signed results, copied into the site
    link = next(a["href"] for t, a in page.elements if t == "a" and a.get("href", "").startswith(
        f"results/{sha_of('alpha')}"))
    assert link == f"results/{sha_of('alpha')}/result.dsse.json" and (site / link).is_file()


def test_clicking_a_header_sorts_and_clicking_again_reverses(site, tmp_path):
    once = dom(site / "index.html", tmp_path, query="?click=A:score")
    assert once.table_attr("table-A", "data-sorted") == "score:desc"
    assert once.names("table-A") == [GAMMA, ALPHA, "Twin", "Baseline", BETA, HOSTILE]
    twice = dom(site / "index.html", tmp_path, query="?click=A:score,A:score")
    assert twice.table_attr("table-A", "data-sorted") == "score:asc"
    assert twice.names("table-A") == [HOSTILE, BETA, "Baseline", "Twin", ALPHA, GAMMA]
    by_name = dom(site / "index.html", tmp_path, query="?click=B:name")
    assert by_name.names("table-B") == sorted(by_name.names("table-B"), key=str.lower)
    by_task = dom(site / "index.html", tmp_path, query="?click=A:task:cremad")
    # descending by cremad; the error cell (no value) sorts last
    assert by_task.names("table-A") == [ALPHA, "Twin", "Baseline", HOSTILE, BETA, GAMMA]
    by_rank = dom(site / "index.html", tmp_path, query="?click=A:score,A:rank")
    assert by_rank.names("table-A") == [ALPHA, "Twin", "Baseline", BETA, HOSTILE, GAMMA]


def test_the_page_loads_nothing_from_anywhere(site):
    text = (site / "index.html").read_text()
    parser = Dom(text)
    assert not [a for _, a in parser.elements if "src" in a]
    hrefs = [a["href"] for t, a in parser.elements if "href" in a]
    assert hrefs and not [h for h in hrefs if "://" in h or h.startswith("//")]
    csp = next(a["content"] for t, a in parser.elements if t == "meta" and a.get("http-equiv") ==
               "Content-Security-Policy")
    assert csp.startswith("default-src 'none';")
    assert "@import" not in text and "url(" not in text


def test_screenshot_of_both_tracks(site, tmp_path):
    shot = tmp_path / "leaderboard.png"
    browse(site / "index.html", tmp_path, "--window-size=1400,1500", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = os.environ.get("AECC_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "leaderboard.png")


def test_the_published_tables_in_the_browser(tmp_path):
    board = build_board(BoardSpec(references=("icme2025-final",), task_set="icme2025-final"))
    write_site(board, tmp_path / "site")
    page = dom(tmp_path / "site" / "index.html", tmp_path)
    assert page.names("table-A") == ["audiocodec", "GAEBT", "AudioX", "CMU", "Aluminumbox", "Probin", "SAMoVA"]
    assert [page.cell("table-A", n, "rank")["text"].split()[0] for n in page.names("table-A")] == \
        ["=1", "=1", "3", "4", "5", "6", "7"]
    flagged = [n for n in page.names("table-A") if "mismatch" in page.cell("table-A", n, "published")["class"]]
    assert flagged == ["audiocodec", "GAEBT", "CMU", "Aluminumbox", "Probin"]
    assert page.cell("table-A", "Aluminumbox", "published")["text"] == "\u26a0 0.807 \u2260 0.822"
    assert all(page.cell("table-B", n, "published")["text"].endswith("\u2713") for n in page.names("table-B"))
    shot = tmp_path / "published.png"
    browse(tmp_path / "site" / "index.html", tmp_path, "--window-size=1600,1300", f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000
    artifacts = os.environ.get("AECC_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "leaderboard-published.png")


def test_intervals_rank_intervals_and_the_blob_plot_as_rendered(tmp_path):
    """Scores read `mean [low, high]`, the rank carries its interval, and each track has a blob plot
    with one disc per row and rank seen (areas summing to every resample); a result without
    clips.npz shows no interval. The screenshot is kept at /tmp/aecc-bootstrap-page.png to look at."""
    from harness.rank.bootstrap import BootstrapSpec
    from tests.harness.rank.helpers import bootstrap_scenario

    results, signer = bootstrap_scenario(tmp_path)
    reference = tmp_path / "reference.csv"
    reference.write_text("name,track,published,esc50,cremad\nBaseline,A,0.700,0.8,0.66\nBaseline,B,0.650,0.7,0.63\n")
    board = build_board(BoardSpec(results=(results,), public_key=signer.public_path, references=(str(reference),),
                                  bootstrap=BootstrapSpec(resamples=400, seed=1)))
    write_site(board, tmp_path / "site")
    page = dom(tmp_path / "site" / "index.html", tmp_path)
    strong = f"StrongEncoder ({sha_of('strong')[:8]})"
    weak, plain = f"WeakEncoder ({sha_of('weak')[:8]})", f"PlainEncoder ({sha_of('plain')[:8]})"
    for track in ("A", "B"):
        rows = {r["name"]: r for r in board.document["tracks"][track]["rows"]}
        score = page.cell(f"table-{track}", strong, "score")["text"]
        low, high = rows[strong]["bootstrap"]["interval"]
        assert score == f"{rows[strong]['score_display'].split()[0]}[{low:.3f}, {high:.3f}]"
        rank = page.cell(f"table-{track}", weak, "rank")["text"]
        assert rank.endswith("[{}]".format("\u2013".join(str(v) for v in sorted(set(
            rows[weak]["bootstrap"]["rank_interval"])))))
        assert "[" not in page.cell(f"table-{track}", plain, "score")["text"]
        discs = [a for t, a in page.elements if t == "circle" and a.get("class") == "blob"
                 and a.get("cx") is not None]
        assert discs
    blobs = [a for t, a in page.elements if t == "svg" and "blob" in a.get("class", "")]
    assert [a["id"] for a in blobs] == ["blob-A", "blob-B"]
    shares = {}
    for t, a in page.elements:
        if t == "g" and a.get("class") == "blobrow":
            current = a["data-name"]
            shares[current] = 0.0
        elif t == "circle" and a.get("class") == "blob":
            shares[current] += float(a["data-share"])
    assert shares and all(abs(v - 1.0) < 1e-3 for v in shares.values())
    shot = Path("/tmp/aecc-bootstrap-page.png")
    browse(tmp_path / "site" / "index.html", tmp_path, "--window-size=1400,1700", f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000
    artifacts = os.environ.get("AECC_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "leaderboard-bootstrap.png")
