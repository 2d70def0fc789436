"""Verification comes before ranking: a result is ranked only when its signature verifies against
the organizer's public key, and then from the signed payload; a tampered, foreign-key or unsigned
result is listed as rejected with the verifier's reason and never ranked. `--allow-unsigned` admits
unsigned results, marked, but never one whose signature fails. Results and envelopes are made here
with a fresh Ed25519 key, exactly as the scoring run signs them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.rank.board import BoardSpec, build_board
from harness.rank.inputs import RejectProblem, display_name, load_results
from harness.rank.model import Provenance
from tests.harness.rank.helpers import Signer, result_doc, sha_of, task, write_result


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer(tmp_path / "keys")


def _two(root: Path, signer: Signer | None) -> tuple[dict, dict]:
    good = result_doc("good", [task("esc50", 0.8, 0.7), task("cremad", 0.6, 0.5)])
    other = result_doc("other", [task("esc50", 0.7, 0.6), task("cremad", 0.5, 0.4)])
    write_result(root, good, signer)
    write_result(root, other, signer)
    return good, other


def test_signed_results_verify_and_rank_from_the_signed_payload(tmp_path, signer):
    good, other = _two(tmp_path / "R", signer)
    inputs = load_results([tmp_path / "R"], public_key=signer.public_path)
    assert inputs.rejected == ()
    assert {r.sha256 for r in inputs.results} == {good["submission"]["sha256"], other["submission"]["sha256"]}
    assert all(r.provenance is Provenance.VERIFIED and r.key_id == signer.key_id for r in inputs.results)
    doc = build_board(BoardSpec(results=(tmp_path / "R",), public_key=signer.public_path)).document
    rows = doc["tracks"]["A"]["rows"]
    assert [r["name"] for r in rows] == [f"TinyEncoder ({sha_of('good')[:8]})", f"TinyEncoder ({sha_of('other')[:8]})"]
    assert all(r["verified"] and r["provenance"] == "verified" for r in rows)
    assert rows[0]["link"] == f"results/{sha_of('good')}/result.dsse.json"
    assert doc["verification"]["public_key_id"] == signer.key_id


def test_a_result_changed_after_signing_is_rejected_and_never_ranked(tmp_path, signer):
    good, other = _two(tmp_path / "R", signer)
    # the participant (or anyone) raises a score in result.json after signing
    path = tmp_path / "R" / other["submission"]["sha256"] / "result.json"
    forged = json.loads(path.read_text())
    forged["tasks"][0]["track_a"] = 0.99
    path.write_text(json.dumps(forged))
    for allow in (False, True):  # --allow-unsigned does not admit a failed signature
        doc = build_board(BoardSpec(results=(tmp_path / "R",), public_key=signer.public_path,
                                    allow_unsigned=allow)).document
        assert [r["name"] for r in doc["tracks"]["A"]["rows"]] == [f"TinyEncoder ({sha_of('good')[:8]})"]
        (rejected,) = doc["rejected"]
        assert rejected["problem"] == "signature" and rejected["detail"] == "result_mismatch"
        assert rejected["sha256"] == other["submission"]["sha256"]


def test_a_changed_envelope_payload_is_rejected(tmp_path, signer):
    good, _ = _two(tmp_path / "R", signer)
    folder = tmp_path / "R" / good["submission"]["sha256"]
    envelope = json.loads((folder / "result.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["tasks"][0]["track_b"] = 0.99
    envelope["payload"] = base64.b64encode(json.dumps(statement, separators=(",", ":")).encode()).decode()
    (folder / "result.dsse.json").write_text(json.dumps(envelope))
    (folder / "result.json").unlink()
    inputs = load_results([tmp_path / "R"], public_key=signer.public_path)
    assert [r.problem for r in inputs.rejected] == [RejectProblem.SIGNATURE]
    assert inputs.rejected[0].detail == "bad_signature"
    assert len(inputs.results) == 1


def test_a_result_signed_with_another_key_is_rejected(tmp_path, signer):
    _two(tmp_path / "R", Signer(tmp_path / "stranger"))
    inputs = load_results([tmp_path / "R"], public_key=signer.public_path)
    assert inputs.results == ()
    assert {(r.problem, r.detail) for r in inputs.rejected} == {(RejectProblem.SIGNATURE, "unknown_key")}


def test_unsigned_results_are_rejected_unless_allowed_and_then_marked(tmp_path, signer):
    _two(tmp_path / "R", None)
    inputs = load_results([tmp_path / "R"], public_key=signer.public_path)
    assert inputs.results == () and {r.problem for r in inputs.rejected} == {RejectProblem.UNSIGNED}
    allowed = load_results([tmp_path / "R"], public_key=signer.public_path, allow_unsigned=True)
    assert allowed.rejected == () and {r.provenance for r in allowed.results} == {Provenance.UNSIGNED}
    doc = build_board(BoardSpec(results=(tmp_path / "R",), allow_unsigned=True)).document
    assert all(r["provenance"] == "unsigned" and not r["verified"] for r in doc["tracks"]["A"]["rows"])
    assert all(r["link"].endswith("/result.json") for r in doc["tracks"]["A"]["rows"])
    assert any("do not publish" in w for w in doc["warnings"])


def test_results_without_a_key_or_allow_unsigned_are_a_usage_error(tmp_path, signer):
    _two(tmp_path / "R", signer)
    with pytest.raises(UsageError, match="--pubkey"):
        load_results([tmp_path / "R"])
    with pytest.raises(UsageError, match="does not exist"):
        load_results([tmp_path / "absent"], public_key=signer.public_path)
    with pytest.raises(UsageError, match="private key"):
        load_results([tmp_path / "R"], public_key=_private_pem(tmp_path, signer))


def _private_pem(tmp_path: Path, signer: Signer) -> Path:
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "signing.key"
    path.write_bytes(signer.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def test_schema_folder_and_duplicate_problems_are_rejected_with_reasons(tmp_path, signer):
    root = tmp_path / "R"
    good = result_doc("good", [task("esc50", 0.8, 0.7)])
    write_result(root, good, None)
    # an unsigned result that breaks the schema
    broken = root / sha_of("broken")
    broken.mkdir()
    (broken / "result.json").write_text(json.dumps({"schema_version": 1, "tasks": []}))
    # a result filed under another submission's digest
    moved = root / sha_of("elsewhere")
    moved.mkdir()
    (moved / "result.json").write_text(json.dumps(result_doc("moved", [task("esc50", 0.1, 0.1)])))
    # the same submission given twice (a second RESULTS root)
    write_result(tmp_path / "R2", good, None)
    inputs = load_results([root, tmp_path / "R2"], allow_unsigned=True)
    problems = sorted(r.problem.value for r in inputs.rejected)
    assert problems == ["directory_mismatch", "duplicate", "schema"]
    assert [r.sha256 for r in inputs.results] == [good["submission"]["sha256"]]


def test_display_name_prefers_the_result_name_and_strips_control_characters():
    doc = result_doc("x", [task("esc50", 0.5, 0.5)], encoder_class="My\u202eEncoder")
    assert display_name(doc, sha_of("x")) == f"MyEncoder ({sha_of('x')[:8]})"
    assert display_name({**doc, "name": "Team \x07Rocket"}, sha_of("x")) == "Team Rocket"
    assert display_name({**doc, "name": "x" * 500}, sha_of("x")).endswith("\u2026")


def test_a_non_registry_task_without_a_weight_is_left_out_and_the_reason_said(tmp_path):
    # the helper's records carry no eval_weight: a custom task cannot be weighted (tests/harness/tasks/test_custom.py
    # covers the ones that can)
    doc = result_doc("custom", [task("esc50", 0.8, 0.7),
                                task("my_task", 0.9, 0.9)])
    write_result(tmp_path / "R", doc, None)
    board = build_board(BoardSpec(results=(tmp_path / "R",), allow_unsigned=True)).document
    assert [t["task"] for t in board["tracks"]["A"]["tasks"]] == ["esc50"]
    assert any("'my_task': not ranked: not a registry task, and its TaskConfig.eval_weight is None" in w
               for w in board["warnings"])


def test_unreadable_or_non_finite_unsigned_results_are_rejected(tmp_path):
    root = tmp_path / "R"
    linked = root / sha_of("linked")
    linked.mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_text(json.dumps(result_doc("linked", [task("esc50", 0.5, 0.5)])))
    (linked / "result.json").symlink_to(tmp_path / "elsewhere.json")
    nan = write_result(root, result_doc("nan", [task("esc50", 0.5, 0.5)]), None)
    (nan / "result.json").write_text((nan / "result.json").read_text().replace('"track_a": 0.5', '"track_a": NaN'))
    inputs = load_results([root], allow_unsigned=True)
    assert inputs.results == ()
    assert {(r.sha256, r.problem) for r in inputs.rejected} == {
        (sha_of("linked"), RejectProblem.UNREADABLE), (sha_of("nan"), RejectProblem.INVALID_TASKS)}
