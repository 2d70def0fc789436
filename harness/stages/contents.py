"""What a submission contains, read without running it: its encoder and its requirements.

Encoder discovery never imports submission code (the host must not): `--encoder file.py:Class`
wins, then the manifest `aecc.json` (`{"encoder": "file.py:Class"}`, no other key), else the
X-ARES rule applied statically with `ast`, with the template rule (an unchanged copy of the
published template's `template.py` beside another candidate is set aside). The rule itself lives
in `checker.discover`, standard library only, so that `python -m checker PATH` on a participant's
machine decides exactly as intake does; this module keeps the host's API (`discover_encoder`,
`EncoderRef`) and turns `checker.discover.DiscoveryError` into `IntakeRejected` (or `UsageError`
for a malformed `--encoder`). `requirements.txt` may hold only requirement lines (see
`parse_requirements`). The policy in full: `harness.stages.intake`'s docstring.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from checker import discover as _discover

# CHECKER_NAME and EncoderSource are part of the intake API (re-exported by harness.stages.intake)
from checker.discover import CHECKER_NAME, DiscoveryError, EncoderSource  # noqa: F401
from checker.discover import SPEC as _SPEC
from harness.errors import UsageError
from harness.stages.rejection import (
    IntakeRejected,
    Problem,
    RejectReason,
    reject,
    escape_name,
)

MiB = 1024 * 1024
REQUIREMENTS_NAME = "requirements.txt"
_MAX_PARSED_BYTES = _discover.MAX_PARSED_BYTES  # cap on any .py/json/txt the host reads from a submission
_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_R = RejectReason


@dataclass(frozen=True)
class Requirements:
    lines: tuple[str, ...] = ()
    torch_pin: str | None = None  # "2.2.1" from `torch==2.2.1`
    torch_specifier: str | None = None  # any torch specifier, e.g. ">=2.1", for the build to check

    def __post_init__(self) -> None:
        if not isinstance(self.lines, tuple) or not all(isinstance(x, str) for x in self.lines):
            raise TypeError("Requirements.lines must be a tuple of str")

    def to_dict(self) -> dict[str, Any]:
        return {"lines": list(self.lines), "torch_pin": self.torch_pin, "torch_specifier": self.torch_specifier}


@dataclass(frozen=True)
class EncoderRef:
    file: str  # POSIX path relative to the submission root
    class_name: str
    source: EncoderSource

    def __post_init__(self) -> None:
        if not _SPEC.match(f"{self.file}:{self.class_name}") or not isinstance(self.source, EncoderSource):
            raise TypeError(f"invalid EncoderRef {self.file!r}:{self.class_name!r} ({self.source!r})")

    @property
    def spec(self) -> str:
        return f"{self.file}:{self.class_name}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "class": self.class_name, "source": self.source.value}


def _rejected(err: DiscoveryError) -> Exception:
    """`checker.discover`'s verdict in the host's error types: a malformed `--encoder` is the
    caller's usage error; everything else is the submission's, under the same reason id."""
    if err.reason is _discover.Reason.INVALID_SPEC:
        return UsageError(f"invalid --encoder {escape_name(str(err.value))}", expected="file.py:ClassName",
                          found=err.detail, fix=err.fix)
    return reject(RejectReason(err.reason.value), err.entry, err.detail, **({"fix": err.fix} if err.fix else {}))


def parse_spec(spec: str, origin: str) -> tuple[str, str]:
    try:
        return _discover.parse_spec(spec, origin)
    except DiscoveryError as err:
        raise _rejected(err) from None


def _read_capped(path: Path, entry: str, reason: RejectReason) -> bytes:
    if not path.is_file() or path.is_symlink():
        raise reject(reason, entry, "is not a regular file")
    if path.stat().st_size > _MAX_PARSED_BYTES:
        raise reject(_R.TOO_LARGE, entry, f"over {_MAX_PARSED_BYTES} bytes; the host will not parse it")
    return path.read_bytes()


def discover_encoder(root: Path, override: str | None = None) -> EncoderRef:
    """Locate the encoder class: `override`, then `aecc.json`, then the X-ARES rule with the template
    rule (`checker.discover`).

    Raises:
        IntakeRejected: the submission's to fix (manifest_invalid, encoder_not_found,
            encoder_ambiguous listing the candidates and the two ways to choose, syntax_error, too_large).
        UsageError: `override` is not `file.py:ClassName`.
    """
    try:
        found = _discover.discover(root, override)
    except DiscoveryError as err:
        raise _rejected(err) from None
    return EncoderRef(found.file, found.class_name, found.source)


# ---------------------------------------------------------------- requirements.txt

_OPTION_WHY = {
    ("-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links", "--trusted-host"):
        "changes where packages come from; the build installs only from the harness's package set, offline",
    ("-e", "--editable"): "editable installs run a package's own build code; put the code inside your ZIP",
    ("-r", "--requirement", "-c", "--constraint"): "includes read other files; list everything in this file",
}


def _option_problem(lineno: int, token: str) -> Problem:
    name = token.split("=", 1)[0] if token.startswith("--") else token[:2]
    why = next((w for opts, w in _OPTION_WHY.items() if name in opts), "only --hash is allowed")
    if name == "--hash":
        why = "a --hash option must follow a requirement on the same line"
    return Problem(_R.REQUIREMENT_OPTION, REQUIREMENTS_NAME, f"line {lineno}: option {name}: {why}")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's reading: backslash continuations joined, ` #` comments removed."""
    buf, start = "", 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = lineno
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        yield start, re.sub(r"(^|\s+)#.*$", "", buf + line).strip()
        buf = ""
    if buf:
        yield start, re.sub(r"(^|\s+)#.*$", "", buf).strip()


def _requirement_problem(lineno: int, req_text: str) -> tuple[Problem | None, Requirement | None]:
    def bad(reason: RejectReason, detail: str) -> tuple[Problem, None]:
        return Problem(reason, REQUIREMENTS_NAME, f"line {lineno}: {detail}"), None

    if "://" in req_text or _VCS.match(req_text) or req_text.lower().startswith("file:"):
        return bad(_R.REQUIREMENT_URL, f"direct URL or VCS reference {escape_name(req_text)}")
    spec = req_text.split(";", 1)[0]
    if spec.startswith((".", "/", "~")) or "/" in spec or "\\" in spec or spec.lower().endswith(_ARCHIVE_SUFFIXES):
        return bad(_R.REQUIREMENT_PATH, f"local path or archive {escape_name(req_text)}")
    try:
        req = Requirement(req_text)
    except InvalidRequirement as exc:
        return bad(_R.REQUIREMENT_SYNTAX, f"not a PEP 508 requirement: {str(exc).splitlines()[0]}")
    if req.url:
        return bad(_R.REQUIREMENT_URL, f"direct reference {escape_name(req_text)}")
    return None, req


def parse_requirements(text: str) -> Requirements:
    """Validate requirements.txt text (allowed set in the module doc); refuse with every problem found."""
    problems: list[Problem] = []
    lines: list[str] = []
    torch: list[Requirement] = []
    for lineno, line in _logical_lines(text):
        if not line:
            continue
        tokens = line.split()
        cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        req_text, options = " ".join(tokens[:cut]), tokens[cut:]
        if not req_text:
            problems.append(_option_problem(lineno, options[0]))
            continue
        i, bad_option = 0, None
        while i < len(options) and bad_option is None:
            opt = options[i]
            value = opt[len("--hash="):] if opt.startswith("--hash=") else (
                options[i + 1] if opt == "--hash" and i + 1 < len(options) else None)
            i += 1 if opt.startswith("--hash=") else 2
            if opt.split("=", 1)[0] != "--hash":
                bad_option = _option_problem(lineno, opt)
            elif value is None or not _HASH.match(value):
                bad_option = Problem(_R.REQUIREMENT_OPTION, REQUIREMENTS_NAME,
                                     f"line {lineno}: --hash needs sha256/sha384/sha512:<hex>")
        problem, req = _requirement_problem(lineno, req_text)
        if problem or bad_option:
            problems.append(problem or bad_option)  # type: ignore[arg-type]
            continue
        if canonicalize_name(req.name) == "torch":  # type: ignore[union-attr]
            if torch:  # two pins would leave the build to guess which torch layer to use
                problems.append(Problem(_R.REQUIREMENT_SYNTAX, REQUIREMENTS_NAME,
                                        f"line {lineno}: torch is named a second time"))
            torch.append(req)  # type: ignore[arg-type]
        lines.append(line)
    if problems:
        raise IntakeRejected(problems)
    pin = spec = None
    if torch:
        specs = list(torch[0].specifier)
        spec = str(torch[0].specifier) or None
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            pin = specs[0].version
    return Requirements(tuple(lines), pin, spec)


def load_requirements(root: Path) -> Requirements:
    """`requirements.txt` at the submission root, or no requirements when there is none."""
    path = root / REQUIREMENTS_NAME
    if not (path.exists() or path.is_symlink()):
        return Requirements()
    try:
        text = _read_capped(path, REQUIREMENTS_NAME, _R.REQUIREMENT_SYNTAX).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise reject(_R.REQUIREMENT_SYNTAX, REQUIREMENTS_NAME, "not UTF-8 text") from None
    return parse_requirements(text)
