"""`aecc leaderboard` writes the whole site and its exit code says whether every result given was
ranked: 0 all verified, 1 some rejected (the site still lists them), 2 a usage error (no key, an
unknown task set, nothing to rank). Reference rows alone are enough to reproduce the published
tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.harness.rank.helpers import (
    Signer,
    result_doc,
    scenario,
    sha_of,
    task,
    write_result,
)

OUTPUTS = {"leaderboard.json", "leaderboard-A.csv", "leaderboard-B.csv", "leaderboard-A.md", "leaderboard-B.md",
           "index.html"}


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


def test_verified_results_give_exit_0_and_the_site(tmp_path, capsys):
    signer = Signer(tmp_path / "keys")
    write_result(tmp_path / "R", result_doc("a", [task("esc50", 0.8, 0.7)]), signer)
    write_result(tmp_path / "R", result_doc("b", [task("esc50", 0.6, 0.5)]), signer)
    code, out = run(capsys, "leaderboard", tmp_path / "R", "--pubkey", signer.public_path, "--out", tmp_path / "site")
    assert code == 0, out
    assert OUTPUTS <= {p.name for p in (tmp_path / "site").iterdir()}
    assert (tmp_path / "site" / "results" / sha_of("a") / "result.dsse.json").is_file()
    doc = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert [r["sha256"] for r in doc["tracks"]["A"]["rows"]] == [sha_of("a"), sha_of("b")]
    assert "site:" in out and "index.html" in out


def test_a_rejected_result_gives_exit_1_and_is_listed(tmp_path, capsys):
    results, signer = scenario(tmp_path)
    code, out = run(capsys, "leaderboard", results, "--pubkey", signer.public_path, "--out", tmp_path / "site")
    assert code == 1
    assert "rejected:" in out and "signature/result_mismatch" in out
    doc = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert len(doc["rejected"]) == 1
    assert "Rejected results (1)" in (tmp_path / "site" / "index.html").read_text()


def test_the_published_tables_alone(tmp_path, capsys):
    code, out = run(capsys, "leaderboard", "--reference", "icme2025-final", "--task-set", "icme2025-final",
                    "--out", tmp_path / "site")
    assert code == 0, out
    assert "0.807 MISMATCH" in out and "0.641 ok" in out
    doc = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert sum(r["published_matches"] is True for r in doc["tracks"]["B"]["rows"]) == 7
    assert sum(r["published_matches"] is True for r in doc["tracks"]["A"]["rows"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--out", "SITE"], "nothing to rank"),
    (["R", "--out", "SITE"], "--pubkey"),
    (["--reference", "icme2025-final", "--task-set", "papr", "--out", "SITE"], "Did you mean: paper?"),
    (["--reference", "nowhere.csv", "--out", "SITE"], "reference nowhere.csv not found"),
])
def test_usage_errors_exit_2(tmp_path, capsys, argv, message):
    write_result(tmp_path / "R", result_doc("a", [task("esc50", 0.8, 0.7)]), Signer(tmp_path / "keys"))
    argv = [str(tmp_path / a) if a in ("R", "SITE") else a for a in argv]
    code, out = run(capsys, "leaderboard", *argv)
    assert code == 2 and message in out


def test_allow_unsigned_is_marked(tmp_path, capsys):
    write_result(tmp_path / "R", result_doc("a", [task("esc50", 0.8, 0.7)]), None)
    code, out = run(capsys, "leaderboard", tmp_path / "R", "--allow-unsigned", "--missing", "exclude",
                    "--out", tmp_path / "site")
    assert code == 0 and "unverified (--allow-unsigned)" in out and "do not publish" in out
    page = Path(tmp_path / "site" / "index.html").read_text()
    assert 'class="badge b-unsigned">unverified (--allow-unsigned)' in page
    assert f'href="results/{sha_of("a")}/result.json"' in page
