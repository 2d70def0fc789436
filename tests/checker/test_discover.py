"""Encoder discovery (`checker.discover`) decides by reading files, never by running them, and decides
the same for the host's intake and for `python -m checker`: in the template layout (a fork of
jimbozhang/xares-template with the participant's encoder in its own file) the unchanged upstream
template.py is set aside and the participant's class is chosen; when discovery cannot decide, its
error lists every candidate and the two ways to choose (aecc.json, --encoder).
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import pytest

from checker import discover
from checker.discover import (
    TEMPLATE_NAME,
    UPSTREAM_TEMPLATE_SHA256,
    Discovered,
    DiscoveryError,
    EncoderSource,
    Reason,
    template_fingerprint,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
FORK_GOOD = FIXTURES / "template_fork_good"
FORK_BROKEN = FIXTURES / "template_fork_broken"


def fork_copy(tmp_path: Path, source: Path = FORK_GOOD) -> Path:
    root = tmp_path / "fork"
    shutil.copytree(source, root)
    return root


def refused(root: Path, reason: Reason, **kw) -> DiscoveryError:
    with pytest.raises(DiscoveryError) as info:
        discover.discover(root, **kw)
    assert info.value.reason is reason, str(info.value)
    return info.value


# ------------------------------------------------------------------ the template rule


def test_the_fixture_template_is_the_published_one() -> None:
    # If this fails, the fixtures' template.py was edited: they must stay byte-for-byte upstream.
    for fork in (FORK_GOOD, FORK_BROKEN):
        assert template_fingerprint((fork / TEMPLATE_NAME).read_bytes()) in UPSTREAM_TEMPLATE_SHA256


@pytest.mark.parametrize("transform", [
    lambda t: t.replace("\n", "\r\n"),  # a Windows checkout (core.autocrlf)
    lambda t: t.replace("\n", "  \n"),  # trailing spaces added by an editor
    lambda t: "\ufeff" + t + "\n\n\n",  # a BOM and trailing blank lines
])
def test_fingerprint_ignores_what_a_checkout_changes(transform) -> None:
    text = (FORK_GOOD / TEMPLATE_NAME).read_text()
    assert template_fingerprint(transform(text).encode("utf-8")) in UPSTREAM_TEMPLATE_SHA256


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("self.output_dim = 128", "self.output_dim = 256"),
    lambda t: t.replace("int(x.shape[1] / 16000 / 40)", "int(x.shape[1] / 640)"),
    lambda t: t + "# mine\n",
])
def test_any_edit_makes_template_py_a_candidate(edit) -> None:
    text = (FORK_GOOD / TEMPLATE_NAME).read_text()
    assert template_fingerprint(edit(text).encode("utf-8")) not in UPSTREAM_TEMPLATE_SHA256
    assert template_fingerprint(b"\xff\xfe not utf-8") is None


@pytest.mark.parametrize("fork", [FORK_GOOD, FORK_BROKEN], ids=["good", "broken"])
def test_fork_layout_chooses_the_participants_file(fork: Path) -> None:
    found = discover.discover(fork)
    assert (found.file, found.class_name, found.source) == ("my_encoder.py", "MyEncoder", EncoderSource.XARES_RULE)
    assert len(found.set_aside) == 1 and found.set_aside[0].startswith("template.py (MyEncoder)")


def test_windows_checkout_of_a_fork_is_decided_the_same(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    (root / TEMPLATE_NAME).write_bytes((root / TEMPLATE_NAME).read_bytes().replace(b"\n", b"\r\n"))
    assert discover.discover(root).spec == "my_encoder.py:MyEncoder"


def test_unchanged_template_alone_is_still_chosen(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    (root / "my_encoder.py").unlink()
    assert discover.discover(root) == Discovered("template.py", "MyEncoder", EncoderSource.XARES_RULE)


def test_template_is_only_set_aside_for_another_candidate(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    (root / "my_encoder.py").write_text("class Helper:\n    pass\n")
    assert discover.discover(root).spec == "template.py:MyEncoder"


def test_edited_template_beside_a_copy_lists_candidates_and_two_ways(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    template = root / TEMPLATE_NAME
    template.write_text(template.read_text().replace("self.output_dim = 128", "self.output_dim = 64"))
    err = refused(root, Reason.ENCODER_AMBIGUOUS)
    assert [c.spec for c in err.candidates] == ["my_encoder.py:MyEncoder", "template.py:MyEncoder"]
    assert "my_encoder.py:MyEncoder (class)" in err.detail and "template.py:MyEncoder (class)" in err.detail
    assert '"encoder": "my_encoder.py:MyEncoder"' in err.advice and "aecc.json" in err.advice
    assert "--encoder my_encoder.py:MyEncoder" in err.advice
    assert "delete it" in err.advice  # the edited template: the third way out, named


def test_two_ways_without_the_template(tmp_path: Path) -> None:
    root = tmp_path / "sub"
    root.mkdir()
    (root / "a.py").write_text("class AEncoder: pass\n")
    (root / "b.py").write_text("class BEncoder: pass\n")
    err = refused(root, Reason.ENCODER_AMBIGUOUS)
    assert "aecc.json" in err.advice and "--encoder a.py:AEncoder" in err.advice and "delete" not in err.advice


def test_manifest_and_override_still_win_in_a_fork(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    assert discover.discover(root, "template.py:MyEncoder").source is EncoderSource.OVERRIDE
    (root / "aecc.json").write_text(json.dumps({"encoder": "template.py:MyEncoder"}))
    assert discover.discover(root) == Discovered("template.py", "MyEncoder", EncoderSource.MANIFEST)


def test_class_name_restricts_the_rule(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    assert discover.discover(root, class_name="MyEncoder").spec == "my_encoder.py:MyEncoder"
    # an explicit class need not end in Encoder: the checker's class_name check reports that
    assert discover.discover(root, class_name="FrameModel") == Discovered("my_encoder.py", "FrameModel",
                                                                          EncoderSource.OVERRIDE)
    refused(root, Reason.ENCODER_NOT_FOUND, class_name="NopeEncoder")


def test_the_repository_example_fork_is_found() -> None:
    assert discover.discover(REPO / "examples" / "template_fork").spec == "template.py:TinyConvEncoder"


def test_the_template_checker_never_counts(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    (root / "audio_encoder_checker.py").write_text("class CheckerEncoder: pass\n")
    assert discover.discover(root).spec == "my_encoder.py:MyEncoder"


# ------------------------------------------------------------------ reading, never running


def test_discovery_never_executes_code(tmp_path: Path) -> None:
    root = tmp_path / "sub"
    root.mkdir()
    canary = tmp_path / "executed"
    (root / "boom.py").write_text(f"open({str(canary)!r}, 'w').write('x')\nclass BoomEncoder: pass\n")
    assert discover.discover(root).class_name == "BoomEncoder"
    assert not canary.exists()


def test_malformed_override_is_the_callers_usage_error(tmp_path: Path) -> None:
    err = refused(fork_copy(tmp_path), Reason.INVALID_SPEC, override="my_encoder.py")
    assert err.value == "my_encoder.py" and err.fix


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = fork_copy(tmp_path)
    (root / "broken.py").write_text("x = 1\n\ndef f(:\n")
    err = refused(root, Reason.SYNTAX_ERROR)
    assert err.entry == "broken.py" and "line 3" in err.detail


def test_hostile_names_are_quoted_inert() -> None:
    assert discover.quote_name("a\x1b[31m\u202eb'") == "'a\\x1b[31m\\u202eb\\''"


@pytest.mark.parametrize("module", ["discover.py", "junit.py", "__main__.py"])
def test_in_place_modules_import_only_stdlib_and_the_checker(module: str) -> None:
    tree = ast.parse((REPO / "checker" / module).read_text())
    mods = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
            for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    # torch is imported inside functions of __main__, never at module level
    assert mods - {"__future__", "checker", "torch"} <= set(sys.stdlib_module_names), mods
    top = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[0]
           for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert "torch" not in top and "harness" not in mods


def test_reasons_are_intake_reasons() -> None:
    from harness.stages.rejection import RejectReason

    for reason in Reason:
        if reason is not Reason.INVALID_SPEC:
            assert RejectReason(reason.value)
