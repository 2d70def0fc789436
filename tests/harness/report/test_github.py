"""GitHub step summary invariant: the summary of a template fork's gate shows every check with its
status, each failed check with its fix, expected and found, the torch flavour the encoder ran on,
the timings and the sizes of the images used; a run without a report is an infrastructure error,
never a verdict on the encoder. Text from the encoder cannot become Markdown or HTML (no link,
image, tag, heading or extra table cell, no escape from a code block), and no output value can set
another output. The image cache's key changes with what the images are made from and with nothing
else; the validated copy of a checkout leaves out its .git and follows no link.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from markdown_it import MarkdownIt

from harness.report import github
from harness.results import Check, ValidationReport, Verdict

SHA = "ab" * 32
CHAIN = [
    {"reference": "debian:bookworm-slim", "layer": "root", "size_bytes": 74_800_000},
    {"reference": "aecc/base:c0602eeb816b1633", "layer": "base", "size_bytes": 319_764_871},
    {"reference": "aecc/torch:2.13.0-cpu-0123456789abcdef", "layer": "torch-2.13.0-cpu", "size_bytes": 1_050_000_000},
    {"reference": f"aecc/submission:{SHA[:12]}-fedcba9876543210", "layer": f"submission-{SHA[:12]}",
     "size_bytes": 1_056_000_000},
]
IMAGES = [  # as `aecc images list --json` prints them: the pulled root is not among them
    {"reference": "aecc/base:c0602eeb816b1633", "layer": "base", "image_id": "sha256:c473528e6aae",
     "size_bytes": 319_764_871, "created": "2026-11-29T01:27:13", "current": True, "harness_commit": "x"},
    {"reference": "aecc/torch:2.13.0-cpu-0123456789abcdef", "layer": "torch-2.13.0-cpu", "image_id": "sha256:1",
     "size_bytes": 1_050_000_000, "created": "2026-11-29T01:30:00", "current": False, "harness_commit": "x"},
    {"reference": f"aecc/submission:{SHA[:12]}-fedcba9876543210", "layer": f"submission-{SHA[:12]}",
     "image_id": "sha256:2", "size_bytes": 1_056_000_000, "created": "2026-11-29T01:31:00", "current": False,
     "harness_commit": "x"},
    {"reference": "aecc/torch:2.11.0-bbf4e7540f472c06", "layer": "torch-2.11.0", "image_id": "sha256:3",
     "size_bytes": 5_150_000_000, "created": "2026-11-29T01:06:35", "current": True, "harness_commit": "x"},
]


def report(*checks: Check, status: Verdict = Verdict.FAILED, **submission) -> dict:
    sub = {"source": "/tmp/fork", "sha256": SHA, "encoder_file": "my_encoder.py", "encoder_class": "TinyConvEncoder",
           "encoder_source": "xares_rule", "files": 10, "bytes": 30000, "image": CHAIN[-1]["reference"],
           "torch_version": "2.13.0", "torch_flavour": "cpu", **submission}
    checks = checks or (
        Check("intake", "passed", "10 files, encoder my_encoder.py:TinyConvEncoder (xares_rule)"),
        Check("build", "passed", "torch 2.13.0 (cpu); image aecc/submission:abab"),
        Check("output_rank", "passed", "output is [B, T', D]"),
        Check("output_dim_match", "failed", "the output's last dimension differs from output_dim", expected=256,
              found=128, fix="set output_dim to the size of the last dimension forward returns",
              log="/root/.aecc/logs/validate-abab-1/check.log"),
        Check("padding_sensitivity", "warning", "frames covering a clip change when it is zero-padded"),
        Check("cuda", "skipped", "no GPU visible"),
    )
    return ValidationReport(status, sub, "cpu", checks, {}, {"intake_s": 0.1, "build_s": 42.0, "check_s": 20.5,
                                                              "total_s": 70.0}).to_dict()


def html_of(markdown: str) -> str:
    """GitHub renders summaries as CommonMark with tables (and raw HTML): so does this."""
    return MarkdownIt("commonmark").enable("table").render(markdown)


def section(markdown: str, title: str) -> str:
    part = markdown.split(f"### {title}\n", 1)[1]
    return part.split("\n### ", 1)[0]


# ------------------------------------------------------------------------------------ content


def test_summary_shows_checks_fixes_flavour_timings_and_sizes():
    text = github.render_summary(report(), exit_code=1, images=IMAGES, chain=CHAIN, timings={"gate: install": 31.0},
                                 cache="miss: images built here", event="pull_request", artifact="aecc-validate-report")
    assert text.startswith("## AECC validate: ❌ failed for `my_encoder.py` class `TinyConvEncoder`")
    table = section(text, "Checks")
    for check_id, status in [("intake", "passed"), ("build", "passed"), ("output_rank", "passed"),
                             ("output_dim_match", "failed"), ("padding_sensitivity", "warning"), ("cuda", "skipped")]:
        assert re.search(rf"^\| `{check_id}` \| [a-z-]+ \| \S+ {status} \|", table, re.M), check_id
    fix = section(text, "What to fix")
    assert "#### ❌ `output_dim_match`" in fix
    assert "**Fix:** set output\\_dim to the size of the last dimension forward returns" in fix
    assert "expected:\n\n```text\n256\n```" in fix and "found:\n\n```text\n128\n```" in fix
    assert "`check.log` (in the artifact's logs)" in fix
    assert "output_rank" not in fix  # only failed checks are in the fix list
    assert "| torch | 2\\.13\\.0, **cpu** flavour (the `+cpu` build" in text
    assert "| exit code | 1 (0 no rule or scoring check failed, 1 otherwise, 2 infrastructure) |" in text
    assert "**will be excluded\\: output\\_dim\\_match failed\\: " in text  # the verdict's first line
    verdict = section(text, "Verdict")
    assert "will be excluded: output_dim_match failed: the output's last dimension differs" in verdict
    assert "rule (excludes the submission):" in verdict and "advice (worth fixing; costs no points):" in verdict
    assert "| event | pull\\_request |" in text and "artifact aecc\\-validate\\-report" in text
    timings = section(text, "Timings")
    assert "| build | 42.0 |" in timings and "| total | 70.0 |" in timings and "| gate\\: install | 31.0 |" in timings
    images = section(text, "Images")
    assert "| root | `debian:bookworm-slim` | 75 MB | 75 MB |" in images
    assert "| torch\\-2\\.13\\.0\\-cpu | `aecc/torch:2.13.0-cpu-0123456789abcdef` | 1.05 GB | 730 MB |" in images
    assert "torch-2.11.0" not in images  # images of other chains are not "the layers used"
    assert "### Advice" in text and "padding" in section(text, "Advice")
    assert "padding" not in fix  # advice is not a fix the gate asks for


def test_a_passed_run_has_no_fix_section_and_says_so():
    checks = (Check("intake", "passed", "ok"), Check("output_dim_match", "passed", "D == output_dim"))
    text = github.render_summary(report(*checks, status=Verdict.PASSED), exit_code=0, images=IMAGES, chain=CHAIN)
    assert text.startswith("## AECC validate: ✅ passed")
    assert "**passes \\(0 advisories\\)**" in text
    assert "### What to fix" not in text


def test_cuda_flavour_is_named_as_what_the_t4_runs():
    text = github.render_summary(report(torch_flavour="cuda", torch_version="2.11.0"), exit_code=1)
    assert "2\\.11\\.0, **cuda** flavour (PyPI's CUDA build, what the T4 evaluation runs)" in text


def test_no_report_is_an_infrastructure_error_not_a_verdict():
    text = github.render_summary(None, exit_code=2)
    assert text.startswith("## AECC validate: 🛠️ infrastructure error")
    assert "wrote no usable report (exit code 2). Not your encoder's fault" in text
    assert "### Checks" not in text and "No submission image was built" in text


def test_an_error_report_is_not_the_encoders_fault():
    checks = (Check("intake", "passed", "ok"), Check("fetch", "failed", "infrastructure: engine gone"))
    text = github.render_summary(report(*checks, status=Verdict.ERROR), exit_code=2)
    assert "infrastructure error" in text.splitlines()[0] and "not your encoder's fault" in text.lower()


def test_long_values_are_cut_and_the_summary_stays_under_githubs_limit():
    log_tail = "Traceback (most recent call last):\n" + "x" * 10_000
    many = tuple(Check("forward_lengths", "failed", "m" * 400, found=log_tail, fix="f") for i in range(300))
    text = github.render_summary(report(*many), exit_code=1)
    assert len(text.encode()) <= github.SUMMARY_CAP + 200
    assert "more characters in the JSON report" in text
    assert text.rstrip().endswith("(summary cut; the artifact has it all)")


# ------------------------------------------------------------------------------------ injection

HOSTILE = ("ok | injected cell | <img src=https://evil.example/p.png> ![pixel](https://evil.example/q.png) "
           "[click](https://evil.example) <script>alert(1)</script> **bold** &amp;\n## Forged heading\n"
           "| forged | row | here |")


def test_encoder_text_cannot_become_markdown_or_html():
    fence_breaker = "before\n```\n## Forged heading in a block\n````\n<img src=https://evil.example/f.png>"
    checks = (
        Check("intake", "passed", HOSTILE),
        Check("output_dim_match", "failed", HOSTILE, expected=HOSTILE, found=fence_breaker, fix=HOSTILE),
        Check("padding_sensitivity", "warning", HOSTILE, fix=HOSTILE),
    )
    md = github.render_summary(report(*checks, encoder_class="Evil|<b>Encoder</b>", encoder_file="a`b.py"),
                               exit_code=1, images=IMAGES, chain=CHAIN)
    html = html_of(md)
    for forbidden in ("<img", "<script", "<a ", "<strong>bold", "<b>", "evil.example/p.png\""):
        assert forbidden not in html, forbidden
    assert "Forged heading" not in "".join(re.findall(r"<h[1-6]>.*?</h[1-6]>", html))
    # Each table keeps its shape: the check table has 3 cells a row and one row per check.
    tables = re.findall(r"<table>.*?</table>", html, re.S)
    check_table = next(t for t in tables if "<th>check</th>" in t)
    rows = re.findall(r"<tr>(.*?)</tr>", check_table, re.S)
    assert len(rows) == 1 + len(checks)
    assert all(len(re.findall(r"<t[hd]", row)) == 4 for row in rows)
    # The text is still there, shown literally: a reader sees what the encoder said.
    assert "&lt;img src=https://evil.example/p.png&gt;" in html and "| forged | row | here |" in html
    # The block holding `found` is one block from its fence to the closing one.
    blocks = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", html, re.S)
    assert any("## Forged heading in a block" in b and "````" in b and "&lt;img" in b for b in blocks)


def test_control_and_bidi_characters_are_spelled_out():
    text = github.md_text("evil\u202eEncoder\x1b[31m\x00")
    assert "\u202e" not in text and "\x1b" not in text and "\x00" not in text
    assert "\\\\u202e" in text and "\\\\x1b" in text  # shown as \u202e, \x1b (the backslash escaped)


def test_a_name_is_a_code_span_only_when_it_cannot_end_one():
    assert github.md_name("my_encoder.py") == "`my_encoder.py`"
    assert github.md_name("aecc/torch:2.13.0-cpu-0123") == "`aecc/torch:2.13.0-cpu-0123`"
    assert github.md_name("a`b|c") == "a\\`b\\|c"


# ------------------------------------------------------------------------------------ outputs


def parse_outputs(text: str) -> dict[str, str]:
    """GitHub's reading of $GITHUB_OUTPUT: `name=value` lines and `name<<DELIM` heredocs."""
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            else:
                raise AssertionError(f"unterminated heredoc for {name}")
            values[name] = "\n".join(body)
        elif line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_an_output_value_cannot_set_another_output(tmp_path):
    out = tmp_path / "github_output"
    out.write_text("earlier=1\n")
    github.write_outputs(out, {"failed-checks": "a\nstatus=passed\nexit-code<<EOF\n0\nEOF", "status": "failed"})
    values = parse_outputs(out.read_text())
    assert values == {"earlier": "1", "failed-checks": "a\nstatus=passed\nexit-code<<EOF\n0\nEOF", "status": "failed"}
    with pytest.raises(ValueError):
        github.write_outputs(out, {"bad\nname": "x"})


def test_summary_command_appends_the_summary_and_sets_outputs(tmp_path, monkeypatch):
    (tmp_path / "report.json").write_text(json.dumps(report()))
    (tmp_path / "j.xml").write_text("<testsuite/>")
    (tmp_path / "images.json").write_text(json.dumps(IMAGES))
    (tmp_path / "chain.json").write_text(json.dumps(CHAIN))
    summary, outputs = tmp_path / "step_summary.md", tmp_path / "github_output"
    summary.write_text("an earlier step's summary\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    assert github.main(["summary", "--report", str(tmp_path / "report.json"), "--junit", str(tmp_path / "j.xml"),
                        "--exit-code", "1", "--images", str(tmp_path / "images.json"),
                        "--chain", str(tmp_path / "chain.json"), "--timing", "gate: load=3.5"]) == 0
    text = summary.read_text()
    assert text.startswith("an earlier step's summary\n## AECC validate: ❌ failed")
    assert "| event | push |" in text and "| gate\\: load | 3.5 |" in text
    assert parse_outputs(outputs.read_text()) == {
        "status": "failed", "exit-code": "1", "failed-checks": "output_dim_match", "torch-flavour": "cpu",
        "verdict": "will be excluded: output_dim_match failed: the output's last dimension differs from output_dim",
        "report": str(tmp_path / "report.json"), "junit": str(tmp_path / "j.xml")}


def test_summary_command_without_or_with_a_broken_report_says_error(tmp_path, monkeypatch):
    summary, outputs = tmp_path / "s.md", tmp_path / "o"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    (tmp_path / "broken.json").write_text(json.dumps({"status": "passed", "checks": []}))  # not schema-valid
    for name in ("absent.json", "broken.json"):
        github.main(["summary", "--report", str(tmp_path / name), "--junit", str(tmp_path / "absent.xml"),
                     "--exit-code", "2"])
        values = parse_outputs(outputs.read_text())
        assert (values["status"], values["exit-code"], values["report"], values["junit"]) == ("error", "2", "", "")
    assert summary.read_text().count("## AECC validate: 🛠️ infrastructure error") == 2


# ------------------------------------------------------------------------------------ cache key


def test_cache_key_follows_the_requirements_and_the_image_sources(tmp_path, monkeypatch):
    req = tmp_path / "requirements.txt"
    req.write_bytes(b"loguru\ntorch==2.13.0\n")
    key, prefix = github.cache_key(req, flavour="cpu", index_url="https://download.pytorch.org/whl/cpu", arch="X64")
    assert key.startswith(prefix) and prefix.startswith("aecc-images-v1-X64-")
    assert github.cache_key(req, flavour="cpu", index_url="https://download.pytorch.org/whl/cpu", arch="X64") \
        == (key, prefix)
    req.write_bytes(b"loguru\r\ntorch==2.13.0\r\n")  # the same file from a Windows checkout
    assert github.cache_key(req, flavour="cpu", index_url="https://download.pytorch.org/whl/cpu", arch="X64")[0] == key
    req.write_bytes(b"loguru\ntorch==2.2.1\n")
    other, same_prefix = github.cache_key(req, flavour="cpu", index_url="https://download.pytorch.org/whl/cpu",
                                          arch="X64")
    assert other != key and same_prefix == prefix  # a partial hit still finds the base layer
    assert github.cache_key(req, flavour="cpu", index_url="http://mirror/simple", arch="X64")[1] != prefix
    assert github.cache_key(req, flavour="cpu", index_url="https://download.pytorch.org/whl/cpu", arch="ARM64")[1] \
        != prefix
    # A changed recipe is a new cache: the digest covers images/ and harness/layers/.
    fake = tmp_path / "tree"
    for rel in github.IMAGE_SOURCES:
        (fake / rel).mkdir(parents=True)
        (fake / rel / "build.sh").write_text("echo 1\n")
    before = github.harness_digest(fake)
    (fake / "images" / "build.sh").write_text("echo 2\n")
    assert github.harness_digest(fake) != before


# ------------------------------------------------------------------------------------ checkout, logs


def test_staged_checkout_leaves_out_git_and_follows_no_link(tmp_path):
    fork = tmp_path / "fork"
    (fork / ".git" / "objects").mkdir(parents=True)
    (fork / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (fork / ".github" / "workflows").mkdir(parents=True)
    (fork / ".github" / "workflows" / "aecc-gate.yml").write_text("name: x\n")
    (fork / "examples" / "dasheng").mkdir(parents=True)
    (fork / "examples" / "dasheng" / "dasheng_encoder.py").write_text("x = 1\n")
    (fork / "my_encoder.py").write_text("class E: pass\n")
    (tmp_path / "secret").write_text("host secret")
    os.symlink(tmp_path / "secret", fork / "link.txt")
    dest = tmp_path / "staged"
    assert github.stage_checkout(fork, dest) == 4
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == [
        ".github", ".github/workflows", ".github/workflows/aecc-gate.yml", "examples", "examples/dasheng",
        "examples/dasheng/dasheng_encoder.py", "link.txt", "my_encoder.py"]
    assert (dest / "link.txt").is_symlink()  # copied as a link, for intake to refuse, never followed
    with pytest.raises(FileExistsError):
        github.stage_checkout(fork, dest)


def test_logs_named_by_the_report_are_collected_and_links_are_not(tmp_path):
    logs = tmp_path / "home" / "logs" / "validate-abab-1"
    logs.mkdir(parents=True)
    (logs / "check.log").write_text("Traceback ...\n")
    (tmp_path / "secret").write_text("host secret")
    os.symlink(tmp_path / "secret", logs / "fetch.log")
    data = report()
    data["logs"] = {"check": str(logs / "check.log"), "fetch": str(logs / "fetch.log"), "build": None}
    data["checks"][3]["log"] = str(logs / "check.log")
    copied = github.collect_logs(data, tmp_path / "artifact")
    assert [p.name for p in copied] == ["validate-abab-1-check.log"]
    assert copied[0].read_text() == "Traceback ...\n"


# ------------------------------------------------------------------------------------ engine


def test_image_chain_walks_the_parent_labels_down_to_the_root(client, base_image):
    chain = github.image_chain(client, base_image)
    assert [e["layer"] for e in chain] == ["root", "base"]
    assert chain[-1]["reference"] == base_image
    root = client.images.get(chain[0]["reference"])
    assert client.images.get(base_image).labels["org.aecc.parent"] == f"root@{root.id}"
    assert 0 < chain[0]["size_bytes"] < chain[1]["size_bytes"]
