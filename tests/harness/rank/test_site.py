"""The site is self-contained and says everything that made its numbers: leaderboard.json follows
its published schema and carries the task set, weights, rules, formula, harness and X-ARES versions
and lock digests; the per-track CSV and Markdown hold the same rows; every ranked result's signed
files are copied into SITE/results/<sha>/ and still verify there; untrusted names cannot become
markup or spreadsheet formulas.
"""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest

from harness import attest, schemas
from harness.rank.board import BoardSpec, build_board
from harness.rank.model import FORMULA_VERSION
from harness.rank.outputs import render_csv, write_site
from tests.harness.rank.helpers import (
    HOSTILE_CLASS,
    Signer,
    result_doc,
    scenario,
    sha_of,
    task,
    write_reference,
    write_result,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    results, signer = scenario(root)
    board = build_board(BoardSpec(results=(results,), public_key=signer.public_path,
                                  references=(str(write_reference(root)),)))
    written = write_site(board, root / "site")
    return board, written, root / "site", signer


def test_the_schema_is_valid_and_the_document_follows_it(built):
    board, written, site, _ = built
    schema = schemas.load("leaderboard")
    jsonschema.Draft202012Validator.check_schema(schema)
    on_disk = json.loads(written["json"].read_text())
    assert on_disk == board.document
    assert schemas.problems("leaderboard", on_disk) == []
    assert on_disk["schema_version"] == schemas.SCHEMA_VERSION and on_disk["formula_version"] == FORMULA_VERSION
    broken = json.loads(json.dumps(on_disk))
    broken["tracks"]["A"]["rows"][0]["cells"]["esc50"]["state"] = "maybe"
    assert schemas.problems("leaderboard", broken)


def test_the_document_states_what_made_the_numbers(built):
    doc = built[0].document
    assert doc["task_set"]["name"] == "present"
    assert doc["task_set"]["tasks"] == {"A": ["cremad", "esc50", "subway_broadcast"],
                                        "B": ["cremad", "esc50", "subway_broadcast"]}
    assert [(t["task"], t["weight"], t["public"]) for t in doc["tracks"]["A"]["tasks"]] == [
        ("cremad", 1116, True), ("esc50", 400, True), ("subway_broadcast", 5000, False)]
    assert doc["tracks"]["A"]["total_weight"] == 6516 and doc["tracks"]["A"]["public_weight"] == 1516
    assert doc["rules"]["missing_policy"] == "zero" and "0 at its full weight" in doc["rules"]["missing"]
    assert "2 * sqrt(SE_a^2 + SE_b^2)" in doc["rules"]["tie"]["A"] and "SE" not in doc["rules"]["tie"]["B"]
    assert "sqrt(sum_i (w_i/W)^2 * s_i^2 / n_i)" in doc["rules"]["spread"]
    assert "clamp" in doc["rules"]["clamp"]
    assert doc["harness"]["version"] and doc["xares"] == {"registry": "0.1.3", "results": ["0.1.3"]}
    alpha = next(s for s in doc["submissions"] if s["sha256"] == sha_of("alpha"))
    assert alpha["lock_sha256"] == "a" * 64 and alpha["provenance"] == "verified"
    row = next(r for r in doc["tracks"]["A"]["rows"] if r["sha256"] == sha_of("alpha"))
    assert row["lock_sha256"] == "a" * 64 and row["versions"]["xares"] == "0.1.3"
    cell = row["cells"]["esc50"]
    assert (cell["state"], cell["repeats"], cell["raw"]) == ("value", 3, pytest.approx(0.96))
    assert cell["std"] == pytest.approx((2 / 3) ** 0.5 * 0.01)
    beta = next(r for r in doc["tracks"]["A"]["rows"] if r["sha256"] == sha_of("beta"))
    assert beta["cells"]["cremad"] == {"state": "failed", "raw": None, "normalised": 0.0, "counted": True,
                                       "clamped": False, "weight": 1116, "repeats": 0, "std": None,
                                       "reason": "encode: out of memory (12 GiB)"}
    assert [r["problem"] for r in doc["rejected"]] == ["signature"]
    assert all(r["sha256"] != sha_of("tampered") for t in "AB" for r in doc["tracks"][t]["rows"])


def test_csv_and_markdown_hold_the_same_rows(built):
    board, written, _, _ = built
    for track in ("A", "B"):
        rows = list(csv.DictReader(io.StringIO(written[f"csv-{track}"].read_text())))
        expected = board.document["tracks"][track]["rows"]
        assert len(rows) == len(expected)
        for got, want in zip(rows, expected):
            assert got["name"].lstrip("'") == want["name"]
            assert got["rank"] == ("" if want["rank"] is None else str(want["rank"]))
            assert float(got["score"]) == want["score"]
        beta = next(r for r in rows if r["sha256"] == sha_of("beta"))
        assert beta["cremad"] == "failed" and beta["status"] == "partial"
        md = written[f"md-{track}"].read_text()
        assert md.startswith(f"## Track {track}") and "| Rank | Name | Score |" in md
    md_a = written["md-A"].read_text()
    assert "| =1 (T1) | Twin | 0.947 | 0.854 | 0.950 \u2260 0.947 \u26a0 |" in md_a
    assert "| \u2013 | GammaEncoder" in md_a  # incomplete: no rank
    assert "<img" not in md_a and "&lt;img" in md_a


def test_copied_results_verify_inside_the_site(built):
    board, _, site, signer = built
    copied = sorted(p.name for p in (site / "results").iterdir())
    assert copied == sorted(r.sha256 for r in board.inputs.results)
    outcomes = attest.verify_paths([site / "results"], attest.load_public_key(signer.public_path))
    assert outcomes and all(o.ok for o in outcomes)


def test_a_name_cannot_become_markup_or_a_formula(tmp_path):
    results = tmp_path / "R"
    write_result(results, result_doc("f", [task("esc50", 0.5, 0.5)], encoder_class="=HYPERLINK(\"x\")Encoder"),
                 None)
    write_result(results, result_doc("h", [task("esc50", 0.4, 0.4)], encoder_class=HOSTILE_CLASS), None)
    board = build_board(BoardSpec(results=(results,), allow_unsigned=True))
    write_site(board, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert HOSTILE_CLASS not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;Encoder" in page
    text = render_csv(board.document, "A")
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text


def test_exclude_policy_renormalises_and_the_page_says_so(tmp_path):
    results = tmp_path / "R"
    signer = Signer(tmp_path / "k")
    write_result(results, result_doc("a", [task("esc50", 0.8, 0.8), task("cremad", outcome="failed")]), signer)
    write_result(results, result_doc("b", [task("esc50", 0.5, 0.5), task("cremad", 0.5, 0.5)]), signer)
    doc = build_board(BoardSpec(results=(results,), public_key=signer.public_path, missing="exclude")).document
    rows = {r["sha256"]: r for r in doc["tracks"]["A"]["rows"]}
    assert rows[sha_of("a")]["score"] == pytest.approx(0.8) and rows[sha_of("a")]["rank"] == 1
    assert rows[sha_of("a")]["cells"]["cremad"]["counted"] is False
    assert doc["rules"]["missing_policy"] == "exclude"
    write_site(build_board(BoardSpec(results=(results,), public_key=signer.public_path, missing="exclude")),
               tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert "failed (left out)" in page and "--missing exclude" in page


def test_the_site_folder_must_be_a_folder(tmp_path, built):
    from harness.errors import UsageError

    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        write_site(built[0], tmp_path / "file")


def test_mixed_xares_versions_are_warned(tmp_path):
    results = tmp_path / "R"
    write_result(results, result_doc("a", [task("esc50", 0.8, 0.8)], xares="0.1.3"), None)
    write_result(results, result_doc("b", [task("esc50", 0.5, 0.5)], xares="0.2.0"), None)
    doc = build_board(BoardSpec(results=(results,), allow_unsigned=True)).document
    assert doc["xares"]["results"] == ["0.1.3", "0.2.0"]
    assert any("different X-ARES versions" in w for w in doc["warnings"])


def test_results_only_default_name_and_the_empty_track(tmp_path):
    results = tmp_path / "R"
    # a Track A-only task: Track B has nothing to rank over
    write_result(results, result_doc("a", [task("fsd50k", 0.4, None)]), None)
    doc = build_board(BoardSpec(results=(results,), allow_unsigned=True)).document
    assert doc["tracks"]["B"]["rows"] == [] and doc["tracks"]["B"]["tasks"] == []
    assert any("Track B: no task to rank over" in w for w in doc["warnings"])
    assert doc["tracks"]["A"]["rows"][0]["name"] == f"TinyEncoder ({sha_of('a')[:8]})"
