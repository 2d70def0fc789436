"""What a submission contains, read without running it: its encoder and its requirements.

Encoder discovery never imports submission code (the host must not): `--encoder file.py:Class`
wins, then the manifest `aecc.json` (`{"encoder": "file.py:Class"}`, no other key), else the
X-ARES rule applied statically with `ast` (see `discover_encoder`). `requirements.txt` may hold
only requirement lines (see `parse_requirements`). The policy in full: `harness.intake`'s docstring.
"""

from __future__ import annotations

import ast
import enum
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import UsageError
from harness.rejection import MANIFEST_NAME, IntakeRejected, Problem, RejectReason, _reject, escape_name

MiB = 1024 * 1024
REQUIREMENTS_NAME = "requirements.txt"
CHECKER_NAME = "audio_encoder_checker.py"
_MAX_PARSED_BYTES = 10 * MiB  # cap on any .py/json/txt the host reads from a submission
_SPEC = re.compile(r"^(?P<file>(?:[A-Za-z_]\w*/)*[A-Za-z_]\w*\.py):(?P<cls>[A-Za-z_]\w*)$", re.ASCII)
_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_R = RejectReason


class EncoderSource(str, enum.Enum):
    OVERRIDE = "override"
    MANIFEST = "manifest"
    XARES_RULE = "xares_rule"


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


def _parse_spec(spec: str, origin: str) -> tuple[str, str]:
    m = _SPEC.match(spec) if isinstance(spec, str) else None
    if m is None or not m["cls"].endswith("Encoder"):
        detail = (f"{origin} must be 'file.py:ClassName': a relative path of importable names and a "
                  f"class name ending in 'Encoder'; got {escape_name(str(spec))}")
        if origin == "--encoder":
            raise UsageError(f"invalid --encoder {escape_name(str(spec))}", expected="file.py:ClassName",
                             found=detail, fix="e.g. --encoder template.py:MyEncoder")
        raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME, detail)
    return m["file"], m["cls"]


def _read_capped(path: Path, entry: str, reason: RejectReason) -> bytes:
    if not path.is_file() or path.is_symlink():
        raise _reject(reason, entry, "is not a regular file")
    if path.stat().st_size > _MAX_PARSED_BYTES:
        raise _reject(_R.TOO_LARGE, entry, f"over {_MAX_PARSED_BYTES} bytes; the host will not parse it")
    return path.read_bytes()


_Binding = tuple[str, str | None, str | None]  # (kind, imported-from module, original name)


def _module_names(root: Path, rel: str) -> dict[str, _Binding]:
    """Module-level names of `rel` as `dir(module)` would show them, found by parsing, never importing."""
    try:
        tree = ast.parse(_read_capped(root / rel, rel, _R.ENCODER_NOT_FOUND), filename=rel)
    except SyntaxError as exc:
        raise _reject(_R.SYNTAX_ERROR, rel, f"line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _reject(_R.SYNTAX_ERROR, rel, f"cannot be parsed: {exc}") from None
    names: dict[str, _Binding] = {}

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                names[node.name] = ("class", None, None)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names[node.name] = ("def", None, None)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    names[a.asname or a.name.split(".")[0]] = ("import", None, None)
            elif isinstance(node, ast.ImportFrom):
                module = node.module if node.level <= 1 else None
                for a in node.names:
                    if a.name != "*":
                        names[a.asname or a.name] = ("import", module, a.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            names[n.id] = ("assign", None, None)
            # names bound inside module-level if/try/with/for/while are module attributes too
            for block in ("body", "orelse", "finalbody"):
                if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                visit(handler.body)

    visit(tree.body)
    return names


def _require_binding(root: Path, file: str, cls: str, origin: str) -> None:
    path = root / file
    if not path.is_file() or path.is_symlink():
        raise _reject(_R.ENCODER_NOT_FOUND, file, f"named by {origin}, but there is no such file")
    names = _module_names(root, file)
    if cls not in names:
        found = sorted(n for n in names if n.endswith("Encoder"))
        raise _reject(_R.ENCODER_NOT_FOUND, file, f"{origin} names {cls}, which {file} does not define; "
                                                  f"names ending in Encoder there: {', '.join(found) or 'none'}")


def discover_encoder(root: Path, override: str | None = None) -> EncoderRef:
    """Locate the encoder class: `override`, then `aecc.json`, then the X-ARES rule (see module doc)."""
    if override is not None:
        file, cls = _parse_spec(override, "--encoder")
        _require_binding(root, file, cls, "--encoder")
        return EncoderRef(file, cls, EncoderSource.OVERRIDE)
    manifest = root / MANIFEST_NAME
    if manifest.exists() or manifest.is_symlink():
        raw = _read_capped(manifest, MANIFEST_NAME, _R.MANIFEST_INVALID)
        try:
            data = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME, f"not valid JSON: line {exc.lineno}: {exc.msg}") from None
        except UnicodeDecodeError:
            raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME, "not UTF-8") from None
        if not isinstance(data, dict) or set(data) != {"encoder"} or not isinstance(data["encoder"], str):
            raise _reject(_R.MANIFEST_INVALID, MANIFEST_NAME,
                          'must be a JSON object with exactly one key, "encoder", whose value is a string')
        file, cls = _parse_spec(data["encoder"], MANIFEST_NAME)
        _require_binding(root, file, cls, MANIFEST_NAME)
        return EncoderRef(file, cls, EncoderSource.MANIFEST)

    modules = sorted(p.name for p in root.iterdir() if p.suffix == ".py" and p.stem.isidentifier()
                     and p.name != CHECKER_NAME and p.is_file() and not p.is_symlink())
    table = {f: _module_names(root, f) for f in modules}
    candidates = []
    for file, names in table.items():
        for name, (kind, module, original) in sorted(names.items()):
            if not name.endswith("Encoder"):
                continue
            defined_in = table.get(f"{module}.py", {}) if module else {}
            if kind == "import" and original in defined_in and original.endswith("Encoder"):
                continue  # counted where it is defined
            candidates.append((file, name, kind))
    if len(candidates) == 1 and candidates[0][2] in ("class", "import", "assign"):
        return EncoderRef(candidates[0][0], candidates[0][1], EncoderSource.XARES_RULE)
    listing = ", ".join(f"{f}:{n} ({k})" for f, n, k in candidates)
    scanned = ", ".join(modules) or "no top-level .py files"
    if not candidates:
        raise _reject(_R.ENCODER_NOT_FOUND, None, f"no module-level name ending in 'Encoder' in {scanned}")
    raise _reject(_R.ENCODER_AMBIGUOUS, candidates[0][0], f"{len(candidates)} candidates: {listing}; "
                  "X-ARES itself would refuse a module with more than one")


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
        raise _reject(_R.REQUIREMENT_SYNTAX, REQUIREMENTS_NAME, "not UTF-8 text") from None
    return parse_requirements(text)
