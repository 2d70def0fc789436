"""`aecc leaderboard` with the bootstrap, end to end on signed results with clips.npz: the document
(schema-checked) records B, the seed and the rule, carries each row's interval, rank distribution and
rank interval, and each value cell's interval; two packages of one encoder share a tie group, a
clearly weaker one is ranked apart; a result without clips.npz, a reference row and a clips file
changed after signing get no interval and say why (the last also warns); the same seed rebuilds the
same document; --bootstrap 0 is the plain rule. CSV, Markdown and the page show the intervals.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from harness import schemas
from harness.rank import bootstrap, formula
from harness.rank.board import BoardSpec, build_board
from harness.rank.outputs import render_csv, render_markdown
from harness.rank.page import render_page
from tests.harness.rank.helpers import bootstrap_scenario, sha_of

#: published rows over the scenario's two tasks
REFERENCE = "name,track,published,esc50,cremad\nBaseline,A,0.700,0.8,0.66\nBaseline,B,0.650,0.7,0.63\n"

SPEC = bootstrap.BootstrapSpec(resamples=300, seed=5)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("boot")
    results, signer = bootstrap_scenario(root)
    (root / "reference.csv").write_text(REFERENCE)
    return root, results, signer


def board_of(scenario, spec=SPEC, **extra):
    root, results, signer = scenario
    return build_board(BoardSpec(results=(results,), public_key=signer.public_path,
                                 references=(str(root / "reference.csv"),), bootstrap=spec, **extra))


def rows_by_sha(document, track):
    return {row["sha256"] or row["name"]: row for row in document["tracks"][track]["rows"]}


def test_the_document_carries_intervals_ranks_and_the_rule(scenario, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    document = board_of(scenario).document
    assert schemas.problems("leaderboard", document) == []
    assert document["bootstrap"]["resamples"] == 300 and document["bootstrap"]["seed"] == 5
    assert "ahead (strictly higher score) in at least 0.95" in document["tracks"]["B"]["tie_rule"]
    for track in ("A", "B"):
        rows = rows_by_sha(document, track)
        strong, copy, weak = rows[sha_of("strong")], rows[sha_of("copy")], rows[sha_of("weak")]
        # one encoder, two packages: one tie group; the weak encoder apart, below both intervals
        assert strong["tie_group"] is not None and strong["tie_group"] == copy["tie_group"]
        assert weak["tie_group"] is None or weak["tie_group"] != strong["tie_group"]
        assert weak["bootstrap"]["interval"][1] < min(strong["bootstrap"]["interval"][0],
                                                      copy["bootstrap"]["interval"][0])
        for row in (strong, copy, weak):
            boot = row["bootstrap"]
            assert boot["reason"] is None and sum(boot["rank_counts"]) == 300
            assert boot["interval"][0] <= row["score"] <= boot["interval"][1]
            low, high = boot["rank_interval"]
            assert low <= boot["rank_median"] <= high
            assert row["score_display"].startswith(formula.display(row["score"]) + " [")
            for name in ("esc50", "cremad"):
                cell = row["cells"][name]
                assert cell["interval"]["raw"][0] <= cell["raw"] <= cell["interval"]["raw"][1]
        # the reference rows and the result without clips.npz: no interval, and why
        plain = rows[sha_of("plain")]
        assert plain["bootstrap"]["interval"] is None and "no per-clip outputs" in plain["bootstrap"]["reason"]
        assert "interval" not in plain["cells"]["esc50"]
        reference = rows["Baseline"]
        assert reference["bootstrap"]["interval"] is None and "reference row" in reference["bootstrap"]["reason"]
    # Track A: the copies' repeats are drawn independently, so they are not equal in every resample
    copy_a = rows_by_sha(document, "A")
    lower = next(r for r in (copy_a[sha_of("strong")], copy_a[sha_of("copy")]) if r["tie_reason"])
    assert 0.0 < lower["bootstrap"]["upper_ahead"] < 0.95
    again = board_of(scenario).document
    assert json.dumps(again, sort_keys=True) == json.dumps(document, sort_keys=True)


def test_bootstrap_off_keeps_the_plain_rule(scenario):
    document = board_of(scenario, spec=bootstrap.BootstrapSpec(resamples=0)).document
    assert document["bootstrap"]["resamples"] == 0
    assert document["tracks"]["A"]["tie_rule"] == formula.RULES["tie_A"]
    for track in ("A", "B"):
        for row in document["tracks"][track]["rows"]:
            assert row["bootstrap"]["interval"] is None and row["tie_reason"] != "bootstrap"
            assert row["bootstrap"]["reason"] == "bootstrap off (--bootstrap 0)"


def test_a_clips_file_changed_after_signing_is_never_resampled(tmp_path):
    results, signer = bootstrap_scenario(tmp_path)
    clips = results / sha_of("weak") / "clips.npz"
    data = bytearray(clips.read_bytes())
    data[-10] ^= 0xFF
    clips.write_bytes(bytes(data))
    # verified: the signature covers the file's digest, so the whole result is rejected
    verified = build_board(BoardSpec(results=(results,), public_key=signer.public_path, bootstrap=SPEC)).document
    assert [r["detail"] for r in verified["rejected"]] == ["clips_mismatch"]
    # admitted unverified (--allow-unsigned, no key): still ranked by its values, but no interval, and a warning
    local = build_board(BoardSpec(results=(results,), allow_unsigned=True, bootstrap=SPEC)).document
    weak = rows_by_sha(local, "B")[sha_of("weak")]
    assert weak["rank"] is not None and weak["bootstrap"]["interval"] is None
    assert "does not match the digest" in weak["bootstrap"]["reason"]
    assert any("does not match the digest" in w for w in local["warnings"])
    assert rows_by_sha(local, "B")[sha_of("strong")]["bootstrap"]["interval"] is not None


def test_csv_markdown_and_page_show_the_intervals(scenario):
    document = board_of(scenario).document
    rows = list(csv.DictReader(io.StringIO(render_csv(document, "B"))))
    strong = next(r for r in rows if r["sha256"] == sha_of("strong"))
    want = rows_by_sha(document, "B")[sha_of("strong")]["bootstrap"]
    assert [float(strong["score_low"]), float(strong["score_high"])] == want["interval"]
    assert [int(strong["rank_low"]), int(strong["rank_high"])] == want["rank_interval"]
    plain = next(r for r in rows if r["sha256"] == sha_of("plain"))
    assert plain["score_low"] == "" and "no per-clip outputs" in plain["interval_note"]
    markdown = render_markdown(document, "B")
    assert "Rank 95%" in markdown and "\\[" in markdown and "300 resamples, seed 5" in markdown
    page = render_page(document)
    assert page.count('<svg class="chart blob"') == 2 and 'class="blob"' in page
    assert 'data-rank-interval="' in page and 'class="ci" data-interval="1"' in page
