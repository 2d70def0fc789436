"""Which class in a submission folder is the encoder, decided by reading the files, never running them.

One implementation for two callers: the host's intake (`harness.stages.contents`, which must never
import submission code and wraps `DiscoveryError` into its `IntakeRejected`) and `python -m checker
PATH` on a participant's own machine or Colab, where only torch and the standard library can be
assumed. Hence the standard library only, and `ast` rather than `import`.

The order (the host's `--encoder` and the in-place CLI's `PATH:Class` are both an explicit choice):

1. an explicit `file.py:Class` wins;
2. else the manifest `aecc.json` at the root, `{"encoder": "file.py:Class"}` and no other key;
3. else the X-ARES rule, applied statically: the module-level names ending in `Encoder` (classes,
   defs, assignments and names bound by import, since X-ARES looks at `dir(module)`) of the
   top-level `.py` files whose name is importable. An import of a candidate defined in another
   top-level file is counted where it is defined. Exactly one candidate is chosen; otherwise the
   error lists every candidate and the two ways to choose (the manifest, or `--encoder`).

The template layout (participants fork https://github.com/jimbozhang/xares-template, whose README
says `cp template.py my_encoder.py` and edit the copy), so two files of the fork never count:

* `audio_encoder_checker.py`, the template's own checker, is never scanned (by name, as before);
* `template.py` is set aside when its text is one of the nine published versions of the
  template's `template.py` (`UPSTREAM_TEMPLATE_SHA256`, compared after normalising line endings,
  trailing spaces and trailing blank lines, so a Windows checkout still matches) **and** another
  candidate exists. The unchanged template defines `MyEncoder`, the class the participant's copy
  usually keeps, so counting it would make every fork that followed the README ambiguous. An
  unchanged template that is the only candidate is still chosen (the checker then reports its
  flaws), and an *edited* `template.py` always counts: we cannot tell an edit from an encoder.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import hashlib
import json
import re
import unicodedata
from pathlib import Path

MANIFEST_NAME = "aecc.json"
CHECKER_NAME = "audio_encoder_checker.py"
TEMPLATE_NAME = "template.py"
MAX_PARSED_BYTES = 10 * 1024 * 1024  # cap on any .py/json the discovery reads from a submission
SPEC = re.compile(r"^(?P<file>(?:[A-Za-z_]\w*/)*[A-Za-z_]\w*\.py):(?P<cls>[A-Za-z_]\w*)$", re.ASCII)

#: `template_fingerprint` of every version of template.py published in jimbozhang/xares-template:
#: the nine commits of its history that touched the file (2025-01-21 to 2025-02-02), newest first.
UPSTREAM_TEMPLATE_SHA256: frozenset[str] = frozenset({
    "de6d5e060825fc612ac0941fffba9463b974eda9d0df671d00d039f1b51359f6",  # 4996ae4 2025-02-02 (HEAD)
    "ce15db8294b9c52285513a23ed6415451e99051ac3422df9c4407a077e76675c",  # 8afda26 2025-02-02
    "d491a23b2cedfa58ca45dd06302b03c9b7fea1a560af5f2311e1cf4c847098f2",  # e823ef1 2025-02-02
    "36a45dd452d0ae5ea2dcc61863e25b15d8415f0359fa0798d9a5e109f4ad0214",  # 2234083 2025-02-02
    "2298cc9defdc4712badbe3b019273770f31e3a47cda6ed70503e785dfef94884",  # 4d8f671 2025-01-29
    "cd901a3a7b4ed1dc5786c54b4350c38caf92d650c773127c771f5da46e8a3947",  # ea0f228 2025-01-25
    "b456d233825b15bd464bd81bd3c357e3f53bc6d518aff56b2ff0797984e984c2",  # 7809f7d 2025-01-21
    "03e347909221d11ea920b1781907fba63a150da0d9f86f44f54fafdf4b05fba7",  # 561f2f8 2025-01-21
    "00762c53f1a243ceaa113ae34c6de46d3d453fe637732da34645ce7f5e2ac57e",  # 9d3dc9b 2025-01-21
})

__all__ = ["CHECKER_NAME", "MANIFEST_NAME", "TEMPLATE_NAME", "UPSTREAM_TEMPLATE_SHA256", "Candidate", "Discovered",
           "DiscoveryError", "EncoderSource", "Reason", "discover", "module_names", "parse_spec", "quote_name",
           "require_binding", "scrub", "template_fingerprint"]


class Reason(str, enum.Enum):
    """Why discovery could not decide. The values are `harness.stages.rejection.RejectReason` ids,
    except `invalid_spec` (a malformed `--encoder`), which is the caller's usage error."""

    MANIFEST_INVALID = "manifest_invalid"
    ENCODER_NOT_FOUND = "encoder_not_found"
    ENCODER_AMBIGUOUS = "encoder_ambiguous"
    SYNTAX_ERROR = "syntax_error"
    TOO_LARGE = "too_large"
    INVALID_SPEC = "invalid_spec"


class EncoderSource(str, enum.Enum):
    """How the encoder was chosen (the `encoder_source` of a validation report)."""

    OVERRIDE = "override"
    MANIFEST = "manifest"
    XARES_RULE = "xares_rule"


#: (kind, imported-from module, original name); kind is class, def, import or assign
Binding = tuple[str, "str | None", "str | None"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A module-level name ending in `Encoder` in one top-level file."""

    file: str
    name: str
    kind: str

    @property
    def spec(self) -> str:
        return f"{self.file}:{self.name}"

    def describe(self) -> str:
        return f"{self.spec} ({self.kind})"


@dataclasses.dataclass(frozen=True)
class Discovered:
    """The encoder: `file` relative to the root (POSIX), its class name, and how it was chosen.

    `set_aside` names the files that defined candidates but were not counted, with why (the
    unchanged template), so a report can say what discovery decided and on what grounds.
    """

    file: str
    class_name: str
    source: EncoderSource
    set_aside: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The file name is not held to SPEC: `python -m checker my-encoder.py` should reach the
        # checker's `import` check, which explains why X-ARES cannot import it. The host's
        # `EncoderRef` holds it to SPEC (its rule only scans importable names anyway).
        if not self.file.endswith(".py") or not self.class_name.isidentifier() \
                or not isinstance(self.source, EncoderSource):
            raise TypeError(f"invalid encoder {self.file!r}:{self.class_name!r} ({self.source!r})")

    @property
    def spec(self) -> str:
        return f"{self.file}:{self.class_name}"


class DiscoveryError(Exception):
    """Discovery could not name one encoder; the submission's to fix (except `INVALID_SPEC`).

    Args:
        reason: stable id (see `Reason`).
        entry: the file it is about (None: the submission as a whole).
        detail: what was found, for the participant.
        candidates: every candidate seen, when there were several.
        fix: a fix specific to this case (None: the caller's general advice applies).
        value: the offending `file.py:Class` text, for `INVALID_SPEC`.
    """

    def __init__(self, reason: Reason, entry: str | None, detail: str, *, candidates: tuple[Candidate, ...] = (),
                 fix: str | None = None, value: str | None = None) -> None:
        self.reason = Reason(reason)
        self.entry = entry
        self.detail = detail
        self.candidates = tuple(candidates)
        self.fix = fix
        self.value = value
        where = quote_name(entry) if entry is not None else "(submission)"
        super().__init__(f"[{self.reason.value}] {where}: {detail}")

    @property
    def expected(self) -> str:
        return _EXPECTED[self.reason]

    @property
    def advice(self) -> str:
        """The fix to show: the specific one, else the two ways to name the encoder."""
        return self.fix or TWO_WAYS_FIX


TWO_WAYS_FIX = (f'name the encoder in {MANIFEST_NAME} at the submission root, e.g. '
                '{"encoder": "my_encoder.py:MyEncoder"}, or pass --encoder file.py:ClassName')
_EXPECTED = {
    Reason.MANIFEST_INVALID: f'{MANIFEST_NAME} = {{"encoder": "file.py:ClassName"}}',
    Reason.ENCODER_NOT_FOUND: "an encoder class whose name ends in 'Encoder'",
    Reason.ENCODER_AMBIGUOUS: "exactly one module-level name ending in 'Encoder' (the X-ARES rule)",
    Reason.SYNTAX_ERROR: "Python 3.11 source that parses",
    Reason.TOO_LARGE: f"files discovery reads of at most {MAX_PARSED_BYTES} bytes",
    Reason.INVALID_SPEC: "file.py:ClassName",
}


# ------------------------------------------------------------------ names shown to people


def scrub(text: str) -> str:
    """Escape control, format (bidi), separator and unassigned characters; keep the rest readable."""
    out = []
    for ch in text:
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)


def quote_name(name: str, limit: int = 200) -> str:
    """Quote a participant-chosen name so it is unambiguous and inert on a terminal (the same form
    as `harness.stages.rejection.escape_name`, which the host uses for everything else)."""
    s = scrub(name.replace("\\", "\\\\").replace("'", "\\'"))
    return "'" + (s[:limit] + "..." if len(s) > limit else s) + "'"


# ------------------------------------------------------------------ reading without running


def parse_spec(spec: str, origin: str) -> tuple[str, str]:
    """`'pkg/file.py:MyEncoder'` -> `('pkg/file.py', 'MyEncoder')`.

    Raises:
        DiscoveryError: INVALID_SPEC when `origin` is "--encoder" (the caller's usage error),
            MANIFEST_INVALID otherwise.
    """
    m = SPEC.match(spec) if isinstance(spec, str) else None
    if m is None or not m["cls"].endswith("Encoder"):
        detail = (f"{origin} must be 'file.py:ClassName': a relative path of importable names and a "
                  f"class name ending in 'Encoder'; got {quote_name(str(spec))}")
        if origin == "--encoder":
            raise DiscoveryError(Reason.INVALID_SPEC, None, detail, value=str(spec),
                                 fix="e.g. --encoder template.py:MyEncoder")
        raise DiscoveryError(Reason.MANIFEST_INVALID, MANIFEST_NAME, detail)
    return m["file"], m["cls"]


def read_capped(path: Path, entry: str, reason: Reason) -> bytes:
    """The bytes of a regular file (not a link) of at most MAX_PARSED_BYTES.

    Raises:
        DiscoveryError: `reason` when it is not a regular file; TOO_LARGE when it is too big.
    """
    if not path.is_file() or path.is_symlink():
        raise DiscoveryError(reason, entry, "is not a regular file")
    if path.stat().st_size > MAX_PARSED_BYTES:
        raise DiscoveryError(Reason.TOO_LARGE, entry, f"over {MAX_PARSED_BYTES} bytes; the host will not parse it")
    return path.read_bytes()


def module_names(root: Path, rel: str) -> dict[str, Binding]:
    """Module-level names of `rel` as `dir(module)` would show them, found by parsing, never importing.

    Raises:
        DiscoveryError: SYNTAX_ERROR naming the line, or as `read_capped`.
    """
    try:
        tree = ast.parse(read_capped(root / rel, rel, Reason.ENCODER_NOT_FOUND), filename=rel)
    except SyntaxError as exc:
        raise DiscoveryError(Reason.SYNTAX_ERROR, rel, f"line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise DiscoveryError(Reason.SYNTAX_ERROR, rel, f"cannot be parsed: {exc}") from None
    names: dict[str, Binding] = {}

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


def template_fingerprint(data: bytes) -> str | None:
    """sha256 of `data` as text with LF line endings, no trailing spaces and no trailing blank lines
    (None for bytes that are not UTF-8): what a checkout on any OS leaves of the same file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def is_upstream_template(data: bytes) -> bool:
    """True when `data` is one of the published versions of the template's template.py."""
    return template_fingerprint(data) in UPSTREAM_TEMPLATE_SHA256


def require_binding(root: Path, file: str, cls: str, origin: str) -> None:
    """`file` exists under `root` and binds `cls` at module level.

    Raises:
        DiscoveryError: ENCODER_NOT_FOUND, naming what the file does define.
    """
    path = root / file
    if not path.is_file() or path.is_symlink():
        raise DiscoveryError(Reason.ENCODER_NOT_FOUND, file, f"named by {origin}, but there is no such file")
    names = module_names(root, file)
    if cls not in names:
        found = sorted(n for n in names if n.endswith("Encoder"))
        raise DiscoveryError(Reason.ENCODER_NOT_FOUND, file, f"{origin} names {cls}, which {file} does not define; "
                                                             f"names ending in Encoder there: {', '.join(found) or 'none'}")


# ------------------------------------------------------------------ the rule


def top_level_modules(root: Path) -> list[str]:
    """The top-level `.py` files X-ARES could import by name, minus the template's checker."""
    return sorted(p.name for p in root.iterdir() if p.suffix == ".py" and p.stem.isidentifier()
                  and p.name != CHECKER_NAME and p.is_file() and not p.is_symlink())


def candidates_in(root: Path, modules: list[str], class_name: str | None = None) -> list[Candidate]:
    """Every module-level name ending in `Encoder` (or named `class_name`) in `modules`, each counted
    where it is defined."""
    def wanted(name: str | None) -> bool:
        return name == class_name if class_name is not None else bool(name and name.endswith("Encoder"))

    table = {f: module_names(root, f) for f in modules}
    found = []
    for file, names in table.items():
        for name, (kind, module, original) in sorted(names.items()):
            if not wanted(name):
                continue
            defined_in = table.get(f"{module}.py", {}) if module else {}
            if kind == "import" and original in defined_in and wanted(original):
                continue  # counted where it is defined
            found.append(Candidate(file, name, kind))
    return found


def _two_ways(example: Candidate | None) -> str:
    spec = example.spec if example is not None else "file.py:ClassName"
    return (f'choose one, in either of two ways: a manifest {MANIFEST_NAME} at the submission root containing '
            f'{{"encoder": "{spec}"}}, or the option --encoder {spec}')


def _ambiguous(candidates: list[Candidate]) -> DiscoveryError:
    listing = ", ".join(c.describe() for c in candidates)
    classes = [c for c in candidates if c.kind in ("class", "import", "assign")]
    example = next((c for c in classes if c.file != TEMPLATE_NAME), classes[0] if classes else None)
    fix = _two_ways(example)
    if any(c.file == TEMPLATE_NAME for c in candidates):
        fix += (f"; if {TEMPLATE_NAME} is only the template's example, delete it (an unchanged copy of the "
                "published template is set aside automatically; this one has been edited)")
    detail = f"{len(candidates)} candidates: {listing}; X-ARES itself would refuse a module with more than one"
    return DiscoveryError(Reason.ENCODER_AMBIGUOUS, candidates[0].file, detail, candidates=tuple(candidates), fix=fix)


def by_rule(root: Path, modules: list[str], class_name: str | None = None) -> Discovered:
    """The X-ARES rule with the template rule (module doc) over `modules`; `class_name` keeps only
    the candidates of that name (an explicit class without a file).

    Raises:
        DiscoveryError: ENCODER_NOT_FOUND / ENCODER_AMBIGUOUS (listing the candidates and the two
            ways to choose), or SYNTAX_ERROR / TOO_LARGE from reading a file.
    """
    candidates = candidates_in(root, modules, class_name)
    set_aside: tuple[str, ...] = ()
    if any(c.file != TEMPLATE_NAME for c in candidates) and any(c.file == TEMPLATE_NAME for c in candidates) \
            and is_upstream_template(read_capped(root / TEMPLATE_NAME, TEMPLATE_NAME, Reason.ENCODER_NOT_FOUND)):
        names = ", ".join(c.name for c in candidates if c.file == TEMPLATE_NAME)
        set_aside = (f"{TEMPLATE_NAME} ({names}): an unchanged copy of the published X-ARES template",)
        candidates = [c for c in candidates if c.file != TEMPLATE_NAME]
    if len(candidates) == 1 and candidates[0].kind in ("class", "import", "assign"):
        return Discovered(candidates[0].file, candidates[0].name, EncoderSource.XARES_RULE, set_aside)
    scanned = ", ".join(modules) or "no top-level .py files"
    if not candidates:
        if class_name is not None:
            raise DiscoveryError(Reason.ENCODER_NOT_FOUND, None, f"no module-level name {class_name} in {scanned}")
        raise DiscoveryError(Reason.ENCODER_NOT_FOUND, None, f"no module-level name ending in 'Encoder' in {scanned}")
    raise _ambiguous(candidates)


def read_manifest(root: Path) -> Discovered | None:
    """The encoder named by `aecc.json`, checked statically; None when there is no manifest.

    Raises:
        DiscoveryError: MANIFEST_INVALID, or ENCODER_NOT_FOUND when it names what is not there.
    """
    manifest = root / MANIFEST_NAME
    if not (manifest.exists() or manifest.is_symlink()):
        return None
    raw = read_capped(manifest, MANIFEST_NAME, Reason.MANIFEST_INVALID)
    try:
        data = json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise DiscoveryError(Reason.MANIFEST_INVALID, MANIFEST_NAME,
                             f"not valid JSON: line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise DiscoveryError(Reason.MANIFEST_INVALID, MANIFEST_NAME, "not UTF-8") from None
    if not isinstance(data, dict) or set(data) != {"encoder"} or not isinstance(data["encoder"], str):
        raise DiscoveryError(Reason.MANIFEST_INVALID, MANIFEST_NAME,
                             'must be a JSON object with exactly one key, "encoder", whose value is a string')
    file, cls = parse_spec(data["encoder"], MANIFEST_NAME)
    require_binding(root, file, cls, MANIFEST_NAME)
    return Discovered(file, cls, EncoderSource.MANIFEST)


def discover(root: Path, override: str | None = None, *, class_name: str | None = None) -> Discovered:
    """Locate the encoder class under `root`: `override`, then `aecc.json`, then the X-ARES rule.

    Args:
        root: the submission's root folder.
        override: an explicit `file.py:Class` (the host's `--encoder`); checked statically.
        class_name: an explicit class without a file (`python -m checker DIR:Class`): the rule,
            restricted to candidates of that name, skipping the manifest.

    Raises:
        DiscoveryError: see `Reason`; nothing of the submission is ever imported.
    """
    root = Path(root)
    if override is not None:
        file, cls = parse_spec(override, "--encoder")
        require_binding(root, file, cls, "--encoder")
        return Discovered(file, cls, EncoderSource.OVERRIDE)
    if class_name is not None:
        found = by_rule(root, top_level_modules(root), class_name)
        return dataclasses.replace(found, source=EncoderSource.OVERRIDE)
    return read_manifest(root) or by_rule(root, top_level_modules(root))
