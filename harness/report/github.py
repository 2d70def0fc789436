"""The CI gate of a template fork on GitHub Actions: the step summary, the step outputs, the image
cache's key and contents, and the copy of the checkout that is validated.

The composite action `.github/actions/aecc-validate` runs `scripts/ci-gate.sh`, which calls
`python -m harness.report.github SUBCOMMAND`. Everything here reads files and the environment
variables GitHub sets (`GITHUB_STEP_SUMMARY`, `GITHUB_OUTPUT`), so a test runs it exactly as a
runner does, without GitHub.

Why the summary is built with care: its text comes from the participant's encoder (messages,
expected/found values, class names), and on a `pull_request` from someone else's fork that encoder
is a stranger's. GitHub renders the summary as Markdown with some HTML, so untrusted text goes in
only as escaped text: every ASCII punctuation character backslash-escaped in prose and table cells
(no links, images, HTML, emphasis or `|` that would end a cell), control and bidi characters
spelled out (`escape_name`), and multi-line values in code fences longer than any backtick run
inside them. Our own Markdown is the only Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from checker.verdict import Summary
from harness.stages.rejection import escape_name

__all__ = ["cache_key", "collect_logs", "image_chain", "main", "md_code_block", "md_name", "md_text", "render_summary",
           "stage_checkout", "write_outputs"]

#: GitHub refuses a step summary over 1 MiB; ours stays far below, whatever the report holds
SUMMARY_CAP = 512 * 1024
#: longest value shown in full in the failed-checks section (a log tail, say); the artifact has the rest
VALUE_CAP = 2000
MESSAGE_CAP = 300
#: version of the cache's layout: bump when what is saved, or how, changes
CACHE_LAYOUT = "v1"
#: the harness sources that decide the image layers' tags (recipes, companion table, pinned pip)
IMAGE_SOURCES = ("images", "harness/layers")

STATUS_ICONS = {"passed": "✅", "failed": "❌", "warning": "⚠️", "skipped": "⏭️"}
OUTCOME_ICONS = {"passes": "✅", "scored_with_problems": "⚠️", "excluded": "❌"}
VERDICT_WORDS = {
    "passed": ("✅", "passed", "the encoder meets the contract"),
    "failed": ("❌", "failed", "the encoder must be fixed: see what to fix below"),
    "error": ("🛠️", "infrastructure error", "not your encoder's fault: the runner, the engine or the harness failed; "
              "rerun the job, and report it if it persists"),
}

_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


# ------------------------------------------------------------------------------------ escaping


def _plain(text: Any, limit: int) -> str:
    """Control, format (bidi) and separator characters spelled out, as every participant name is
    (`escape_name`, without its quotes; backslashes stay doubled, so the result is unambiguous)."""
    quoted = escape_name(text if isinstance(text, str) else json.dumps(text, default=str), limit)
    return quoted[1:-1].replace("\\'", "'")


def md_text(text: Any, limit: int = MESSAGE_CAP) -> str:
    """Untrusted text as inert Markdown for prose and table cells: one line, every ASCII punctuation
    character backslash-escaped (CommonMark's escapes), so it can open no link, image, HTML tag,
    emphasis, heading or table cell."""
    flat = " ".join(str(text).split()) if isinstance(text, str) else text
    return _MD_PUNCTUATION.sub(r"\\\1", _plain(flat, limit))


def md_name(text: Any, limit: int = 200) -> str:
    """A name (check id, file, class, image reference) in a code span when it is made only of
    characters that cannot end one or a table cell; else as escaped text."""
    if isinstance(text, str) and re.fullmatch(r"[A-Za-z0-9_.:/@+=-]{1,%d}" % limit, text):
        return f"`{text}`"
    return md_text(text, limit)


def md_code_block(text: Any, limit: int = VALUE_CAP) -> str:
    """Untrusted multi-line text in a fenced block: the fence is longer than any run of backticks in
    it, so the text cannot close the block; nothing inside a fence is interpreted."""
    raw = text if isinstance(text, str) else json.dumps(text, indent=2, default=str)
    if len(raw) > limit:
        raw = raw[:limit] + f"\n... ({len(raw) - limit} more characters in the JSON report)"
    body = "\n".join(_plain(line, limit) for line in raw.splitlines()) or " "
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f} GB" if abs(n) >= 1e9 else f"{n / 1e6:.0f} MB"


# ------------------------------------------------------------------------------------ summary


def _layer_rows(images: Sequence[Mapping[str, Any]],
                chain: Sequence[str | Mapping[str, Any]]) -> list[tuple[str, str, int | None, int | None]]:
    """(layer, reference, image size, this layer's own share) for each image of the chain, bottom first.

    Sizes come from `aecc images list --json`; the root file system, which that list leaves out when
    it was pulled (`debian:bookworm-slim`), from the chain's own entry. An image's size counts every
    layer under it; its own share is the difference to the image under it.
    """
    by_ref = {row["reference"]: row for row in images}
    rows, below = [], 0
    for i, entry in enumerate(chain):
        ref = entry if isinstance(entry, str) else str(entry.get("reference"))
        row = by_ref.get(ref) or ({} if isinstance(entry, str) else entry)
        size = int(row["size_bytes"]) if row.get("size_bytes") is not None else None
        layer = row.get("layer") or ("root" if i == 0 else "?")
        rows.append((str(layer), ref, size, None if size is None else size - below))
        below = size if size is not None else below
    return rows


def render_summary(
    report: Mapping[str, Any] | None,
    *,
    exit_code: int,
    images: Sequence[Mapping[str, Any]] = (),
    chain: Sequence[str | Mapping[str, Any]] = (),
    timings: Mapping[str, float] | None = None,
    cache: str | None = None,
    event: str | None = None,
    artifact: str | None = None,
) -> str:
    """The step summary: verdict, what ran (torch flavour, profile), the check table, every failed
    check with its fix, timings and the sizes of the images used.

    `report` is the validation report as written (schema: validation-report), or None when
    `aecc validate` wrote none; `images` is `aecc images list --json`; `chain` the images of the
    submission image and the layers under it, bottom first (`image_chain`).
    """
    out: list[str] = []
    status = report.get("status") if report else None
    if status not in VERDICT_WORDS:
        status = "error"
    icon, word, note = VERDICT_WORDS[status]
    verdict = Summary.from_dict(report["verdict"]) if report and report.get("verdict") else None
    if verdict is not None and verdict.outcome.value in OUTCOME_ICONS:
        icon = OUTCOME_ICONS[verdict.outcome.value]
    sub = (report or {}).get("submission") or {}
    encoder = (f"{md_name(sub['encoder_file'], 120)} class {md_name(sub.get('encoder_class', '?'), 120)}"
               if sub.get("encoder_file") else "")
    out.append(f"## AECC validate: {icon} {word}" + (f" for {encoder}" if encoder else ""))
    out.append("")
    if report is None:
        out.append(f"`aecc validate` wrote no usable report (exit code {exit_code}). {note[0].upper() + note[1:]}.")
    else:
        counts = {s: sum(c["status"] == s for c in report["checks"]) for s in ("passed", "failed", "warning", "skipped")}
        extra = f" {note[0].upper() + note[1:]}." if status == "error" else ""
        out.append(f"**{md_text(verdict.headline if verdict else note, 1000)}**{extra} Exit code {exit_code}; "
                   + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".")
    out.append("")

    flavour = sub.get("torch_flavour")
    facts = [("exit code", f"{exit_code} (0 no rule or scoring check failed, 1 otherwise, 2 infrastructure)")]
    if sub.get("torch_version") or flavour:
        what = {"cpu": "the `+cpu` build: checks run on the CPU; the T4 evaluation runs the CUDA build",
                "cuda": "PyPI's CUDA build, what the T4 evaluation runs"}.get(flavour or "", "unknown flavour")
        facts.append(("torch", f"{md_text(sub.get('torch_version') or '?', 40)}, **{md_text(flavour or '?', 10)}** "
                               f"flavour ({what})"))
    if report is not None:
        facts.append(("sandbox profile", md_text(report.get("profile", "?"), 60)))
    if sub.get("sha256"):
        facts.append(("submission", f"sha256 {md_name(sub['sha256'], 64)}, {md_text(sub.get('files', '?'))} files"))
    if event:
        facts.append(("event", md_text(event, 60)))
    if cache:
        facts.append(("image cache", md_text(cache, 200)))
    if artifact:
        facts.append(("full report", f"artifact {md_text(artifact, 100)} (JSON report, JUnit XML, stage logs)"))
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts] + [""]

    if report is not None:
        if verdict is not None:
            # The verdict in its own words, as every tool prints it: headline, then by level with fixes.
            out += ["### Verdict", "", md_code_block("\n".join(verdict.lines()), SUMMARY_CAP // 4), ""]
        out += ["### Checks", "", "| check | level | status | message |", "|---|---|---|---|"]
        for c in report["checks"]:
            out.append(f"| {md_name(c['id'], 80)} | {md_text(c.get('level') or '-', 20)} | "
                       f"{STATUS_ICONS.get(c['status'], '')} {md_text(c['status'], 20)} | {md_text(c['message'])} |")
        out.append("")
        counted = [i for i in verdict.items if not i.advisory or verdict.strict] if verdict else \
            [c for c in report["checks"] if c["status"] == "failed"]
        if counted:
            out += ["### What to fix", ""]
            for item in counted:
                c = item.to_dict() if verdict else item
                out.append(f"#### ❌ {md_name(c['id'], 80)}" + (f" ({md_text(c['level'], 20)})" if c.get("level") else ""))
                out.append("")
                out.append(md_text(c["message"], 1000))
                out.append("")
                if c.get("fix"):
                    out += [f"**Fix:** {md_text(c['fix'], 1000)}", ""]
                for key in ("expected", "found"):
                    if key in c and c[key] is not None:
                        out += [f"{key}:", "", md_code_block(c[key]), ""]
                if c.get("log"):
                    out += [f"log: {md_name(Path(str(c['log'])).name)} (in the artifact's logs)", ""]
        advice = [i for i in verdict.items if i.advisory and not verdict.strict] if verdict else []
        if advice:
            out += ["### Advice", ""] + [f"- {md_name(i.id, 80)} ({md_text(i.status, 20)}): {md_text(i.message)}"
                                          + (f" Fix: {md_text(i.fix)}" if i.fix else "") for i in advice]
            out.append("")

    steps = dict((report or {}).get("timings") or {})
    steps.update(timings or {})
    if steps:
        out += ["### Timings", "", "| step | seconds |", "|---|---:|"]
        out += [f"| {md_text(name.removesuffix('_s'), 60)} | {float(value):.1f} |" for name, value in steps.items()
                if isinstance(value, (int, float))]
        out.append("")

    out += ["### Images", ""]
    rows = _layer_rows(images, chain)
    if rows:
        out += ["| layer | reference | image size | this layer |", "|---|---|---:|---:|"]
        out += [f"| {md_text(layer, 60)} | {md_name(ref, 160)} | {_size(size)} | {_size(own)} |"
                for layer, ref, size, own in rows]
        out += ["", "Sizes as the engine reports them (`aecc images list --json`); an image's size includes the "
                    "layers under it."]
    else:
        out.append("No submission image was built (the run stopped before the build).")
    out.append("")
    text = "\n".join(out)
    if len(text.encode()) > SUMMARY_CAP:
        text = text.encode()[:SUMMARY_CAP].decode(errors="ignore") + "\n\n... (summary cut; the artifact has it all)\n"
    return text


# ------------------------------------------------------------------------------------ outputs


def write_outputs(path: Path, values: Mapping[str, Any]) -> None:
    """Append step outputs to `$GITHUB_OUTPUT` in the heredoc form, with a random delimiter that no
    value contains (a value can never set another output)."""
    lines = []
    for name, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise ValueError(f"bad output name {name!r}")
        text = "" if value is None else str(value)
        delimiter = f"aecc_{secrets.token_hex(16)}"
        while delimiter in text:  # pragma: no cover (2**-128)
            delimiter = f"aecc_{secrets.token_hex(16)}"
        lines.append(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))


# ------------------------------------------------------------------------------------ cache


def _file_digest(path: Path | None) -> str:
    if path is None or not path.is_file():
        return hashlib.sha256(b"no requirements.txt").hexdigest()
    # Line endings differ between a Windows editor and the runner's checkout: the same requirements.
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def harness_digest(root: Path | None = None) -> str:
    """sha256 over the sources that decide the layers' tags: a changed recipe is a new cache."""
    from harness.layers.model import REPO_ROOT, tree_hash

    root = root or REPO_ROOT
    digest = hashlib.sha256()
    for rel in IMAGE_SOURCES:
        digest.update(rel.encode() + b"\0" + tree_hash(root / rel).encode())
    return digest.hexdigest()


def cache_key(requirements: Path | None, *, flavour: str, index_url: str, arch: str = "") -> tuple[str, str]:
    """(key, restore prefix) of the image cache.

    The key: harness version and the digest of its image sources, the torch flavour and index, the
    runner's architecture, and the fork's requirements.txt (its torch pin picks the torch layer).
    The prefix leaves the requirements out: a fork that changed them still finds the base layer, and
    the torch layer when the pin did not change.
    """
    from harness import __version__

    index = hashlib.sha256(index_url.encode()).hexdigest()[:8]
    prefix = (f"aecc-images-{CACHE_LAYOUT}-{arch or 'any'}-{__version__}-{harness_digest()[:16]}-"
              f"{flavour}-{index}-")
    return prefix + _file_digest(requirements)[:16], prefix


def image_chain(client: Any, reference: str) -> list[dict[str, Any]]:
    """`reference` and every image under it, bottom (the root file system) first, each as
    `{"reference", "layer", "size_bytes"}` read from the engine.

    Follows each image's `org.aecc.parent` label down to `root@<image id>`, which is named by one of
    its tags (`debian:bookworm-slim` or the bootstrapped `aecc/rootfs:bookworm`).
    """
    from harness.layers.model import LABEL_LAYER, LABEL_PARENT

    chain: list[dict[str, Any]] = []
    ref: str | None = reference
    while ref:
        if ref.startswith("root@"):
            image = client.images.get(ref[len("root@"):])
            tags = sorted(image.tags or [])
            chain.append({"reference": tags[0] if tags else image.id, "layer": "root",
                          "size_bytes": int(image.attrs.get("Size", 0))})
            break
        if any(entry["reference"] == ref for entry in chain):
            raise ValueError(f"image chain loops at {ref}")
        image = client.images.get(ref)
        labels = image.labels or {}
        chain.append({"reference": ref, "layer": labels.get(LABEL_LAYER, "?"),
                      "size_bytes": int(image.attrs.get("Size", 0))})
        ref = labels.get(LABEL_PARENT)
    return list(reversed(chain))


# ------------------------------------------------------------------------------------ checkout


def stage_checkout(source: Path, dest: Path, *, exclude: Iterable[str] = (".git",)) -> int:
    """Copy the fork's working tree to `dest`, without its git metadata: what a participant would zip.

    Links, devices and the like are copied as what they are (never followed), so intake refuses them
    as it would in a ZIP. Returns the number of files copied.
    """
    source = Path(source)
    if source.is_symlink() or not source.is_dir():
        raise NotADirectoryError(f"{source} is not a folder")
    skip = set(exclude)
    dest.mkdir(parents=True, exist_ok=False)
    count = 0
    for entry in sorted(source.iterdir()):
        if entry.name in skip:
            continue
        target = dest / entry.name
        mode = entry.lstat().st_mode
        if stat.S_ISDIR(mode):
            shutil.copytree(entry, target, symlinks=True)
            count += sum(1 for p in target.rglob("*") if not p.is_dir() or p.is_symlink())
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(entry), target)
            count += 1
        else:
            shutil.copy2(entry, target)
            count += 1
    return count


# ------------------------------------------------------------------------------------ command line


def _load_json(path: str | None) -> Any:
    if not path:
        return None
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def _timing(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timing takes NAME=SECONDS, not {text!r}") from None


def _cmd_summary(args: argparse.Namespace) -> int:
    from harness import schemas

    report = _load_json(args.report)
    if report is not None and schemas.problems("validation-report", report):
        # Written by the harness, so this is a harness bug: shown as no report, never as a verdict.
        print(f"::warning::the validation report {args.report} does not follow its schema", file=sys.stderr)
        report = None
    text = render_summary(report, exit_code=args.exit_code, images=_load_json(args.images) or [],
                          chain=_load_json(args.chain) or [], timings=dict(args.timing or []), cache=args.cache,
                          event=args.event or os.environ.get("GITHUB_EVENT_NAME"), artifact=args.artifact)
    summary = args.summary_file or os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    outputs = args.output_file or os.environ.get("GITHUB_OUTPUT")
    if outputs:
        sub = (report or {}).get("submission") or {}
        failed = [c["id"] for c in (report or {}).get("checks", []) if c["status"] == "failed"]
        write_outputs(Path(outputs), {
            "status": (report or {}).get("status", "error"), "exit-code": args.exit_code,
            "verdict": ((report or {}).get("verdict") or {}).get("headline", ""),
            "failed-checks": " ".join(failed), "torch-flavour": sub.get("torch_flavour", ""),
            "report": args.report if report is not None else "",
            "junit": args.junit if args.junit and Path(args.junit).is_file() else "",
        })
    return 0


def _cmd_cache_key(args: argparse.Namespace) -> int:
    key, prefix = cache_key(Path(args.requirements) if args.requirements else None, flavour=args.flavour,
                            index_url=args.index_url, arch=args.arch or os.environ.get("RUNNER_ARCH", ""))
    if args.output_file or os.environ.get("GITHUB_OUTPUT"):
        write_outputs(Path(args.output_file or os.environ["GITHUB_OUTPUT"]),
                      {"cache-key": key, "cache-restore-prefix": prefix})
    print(key)
    return 0


def _cmd_chain(args: argparse.Namespace) -> int:
    from harness.sandbox import engine

    report = _load_json(args.report) or {}
    image = args.image or (report.get("submission") or {}).get("image")
    print(json.dumps(image_chain(engine.connect(), image) if image else []))
    return 0


def collect_logs(report: Mapping[str, Any], dest: Path, cap_bytes: int = 20 * 1024**2) -> list[Path]:
    """Copy the stage logs a report names (regular files only, each capped) into `dest`, for the
    artifact: a failed check's log holds the whole traceback."""
    named = [v for v in (report.get("logs") or {}).values() if isinstance(v, str)]
    named += [c["log"] for c in report.get("checks", []) if isinstance(c.get("log"), str)]
    copied: list[Path] = []
    for name in dict.fromkeys(named):
        path = Path(name)
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        target = dest / f"{path.parent.name}-{path.name}"
        dest.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src, open(target, "wb") as out:
            out.write(src.read(cap_bytes))
        copied.append(target)
    return copied


def _cmd_logs(args: argparse.Namespace) -> int:
    report = _load_json(args.report)
    copied = collect_logs(report, Path(args.dest)) if report else []
    print(f"copied {len(copied)} stage log(s)")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    count = stage_checkout(Path(args.source), Path(args.dest))
    print(f"staged {count} files of {escape_name(args.source)} (without .git)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.report.github",
                                     description="the CI gate of a template fork on GitHub Actions")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="append the step summary and set the step outputs")
    s.add_argument("--report", help="the JSON report `aecc validate --json-out` wrote (absent: none was written)")
    s.add_argument("--junit", help="the JUnit file (named in the outputs)")
    s.add_argument("--exit-code", type=int, required=True, help="aecc validate's exit code")
    s.add_argument("--images", help="`aecc images list --json` output")
    s.add_argument("--chain", help="JSON list of the image references used, bottom first (`chain`)")
    s.add_argument("--timing", type=_timing, action="append", help="NAME=SECONDS of a gate step (repeatable)")
    s.add_argument("--cache", help="what the image cache did, in words")
    s.add_argument("--event", help="the triggering event (default $GITHUB_EVENT_NAME)")
    s.add_argument("--artifact", help="name of the uploaded artifact")
    s.add_argument("--summary-file", help="default $GITHUB_STEP_SUMMARY, else stdout")
    s.add_argument("--output-file", help="default $GITHUB_OUTPUT")
    s.set_defaults(func=_cmd_summary)
    k = sub.add_parser("cache-key", help="print the image cache's key (and set cache-key, cache-restore-prefix)")
    k.add_argument("--requirements", help="the fork's requirements.txt")
    k.add_argument("--flavour", default="cpu", choices=("cpu", "cuda"))
    k.add_argument("--index-url", default="https://download.pytorch.org/whl/cpu")
    k.add_argument("--arch", help="default $RUNNER_ARCH")
    k.add_argument("--output-file", help="default $GITHUB_OUTPUT")
    k.set_defaults(func=_cmd_cache_key)
    c = sub.add_parser("chain", help="print the submission image and the layers under it (JSON, bottom first)")
    c.add_argument("--report", help="read the image from this validation report")
    c.add_argument("--image", help="or name it")
    c.set_defaults(func=_cmd_chain)
    g = sub.add_parser("stage", help="copy a checkout without its .git, as a participant would zip it")
    g.add_argument("source")
    g.add_argument("dest")
    g.set_defaults(func=_cmd_stage)
    lg = sub.add_parser("logs", help="copy the stage logs a report names into a folder (for the artifact)")
    lg.add_argument("--report", required=True)
    lg.add_argument("--dest", required=True)
    lg.set_defaults(func=_cmd_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
