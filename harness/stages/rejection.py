"""Why intake refuses a submission: stable reason ids, the rule each enforces, and the error.

Shared by the archive checks (`harness.stages.intake`) and the checks of what a submission contains
(`harness.stages.contents`). Names chosen by participants are shown escaped (`escape_name`), so ANSI, RTL
and other control characters never reach a terminal raw.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from checker.discover import quote_name, scrub
from harness.errors import IntakeError

MANIFEST_NAME = "aecc.json"
_MAX_REPORTED = 5


class RejectReason(str, enum.Enum):
    """Stable ids for why intake refused a submission (they appear in reports and JSON)."""

    ABSOLUTE_PATH = "absolute_path"
    PARENT_TRAVERSAL = "parent_traversal"
    BACKSLASH = "backslash"
    NUL_BYTE = "nul_byte"
    DRIVE_LETTER = "drive_letter"
    CONTROL_CHAR = "control_char"
    INVALID_NAME = "invalid_name"
    PATH_TOO_LONG = "path_too_long"
    TOO_DEEP = "too_deep"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    ENCRYPTED = "encrypted"
    OVERLAPPING_ENTRIES = "overlapping_entries"
    DUPLICATE_NAME = "duplicate_name"
    TOO_MANY_ENTRIES = "too_many_entries"
    TOO_LARGE = "too_large"
    RATIO_EXCEEDED = "ratio_exceeded"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    NOT_A_ZIP = "not_a_zip"
    UNSUPPORTED_COMPRESSION = "unsupported_compression"
    MANIFEST_INVALID = "manifest_invalid"
    ENCODER_NOT_FOUND = "encoder_not_found"
    ENCODER_AMBIGUOUS = "encoder_ambiguous"
    SYNTAX_ERROR = "syntax_error"
    REQUIREMENT_OPTION = "requirement_option"
    REQUIREMENT_URL = "requirement_url"
    REQUIREMENT_PATH = "requirement_path"
    REQUIREMENT_SYNTAX = "requirement_syntax"
    REQUIREMENT_COMPANION = "requirement_companion"


_R = RejectReason
_ENCODER_FIX = (f'name the encoder in {MANIFEST_NAME} at the submission root, e.g. '
                '{"encoder": "template.py:MyEncoder"}, or pass --encoder file.py:ClassName')
_ARCHIVE_FIX = "re-create the ZIP from a plain folder of regular files (e.g. `cd folder && zip -r ../sub.zip .`)"
_RULES: dict[RejectReason, tuple[str, str]] = {
    _R.ABSOLUTE_PATH: ("relative paths only", "remove the leading '/' from entry names; " + _ARCHIVE_FIX),
    _R.PARENT_TRAVERSAL: ("no '..' path component", _ARCHIVE_FIX),
    _R.BACKSLASH: ("'/' as the only separator, no backslash in names", "zip on Linux/macOS or with a tool that writes '/'"),
    _R.NUL_BYTE: ("no NUL byte in names", "rename the file"),
    _R.DRIVE_LETTER: ("no drive letter (C:) in names", _ARCHIVE_FIX),
    _R.CONTROL_CHAR: ("no control or bidi-override characters in names", "rename the file with printable characters"),
    _R.INVALID_NAME: ("UTF-8 names with no empty or '.' component", "rename the file"),
    _R.PATH_TOO_LONG: ("paths and components within the length limits", "shorten the path"),
    _R.TOO_DEEP: ("directory depth within the limit", "flatten the directory tree"),
    _R.SYMLINK: ("regular files and directories only", "replace the symlink with the file it points to"),
    _R.SPECIAL_FILE: ("regular files and directories only", "remove devices, FIFOs and sockets"),
    _R.ENCRYPTED: ("unencrypted entries", "zip without a password"),
    _R.OVERLAPPING_ENTRIES: ("entries that do not share bytes", _ARCHIVE_FIX),
    _R.DUPLICATE_NAME: ("names unique after Unicode NFC + case folding, none both file and directory",
                        "rename one of the colliding entries"),
    _R.TOO_MANY_ENTRIES: ("at most max_entries entries", "pack many small files into one (e.g. one weights file)"),
    _R.TOO_LARGE: ("sizes within max_entry_bytes / max_total_bytes",
                   "shrink the submission, or let the encoder download its weights at first construction"),
    _R.RATIO_EXCEEDED: ("compression ratio at most max_ratio", "do not ship highly repetitive filler data"),
    _R.CORRUPT: ("a readable ZIP with correct CRCs", _ARCHIVE_FIX),
    _R.TRUNCATED: ("a complete ZIP file", "the upload was cut short: send the file again"),
    _R.EMPTY: ("at least one file", "zip the folder holding your encoder"),
    _R.NOT_A_ZIP: ("a ZIP archive", "send a .zip file (not .tar.gz, .rar or .7z)"),
    _R.UNSUPPORTED_COMPRESSION: ("stored, deflate, bzip2 or lzma compression", "re-zip with default (deflate) compression"),
    _R.MANIFEST_INVALID: (f'{MANIFEST_NAME} = {{"encoder": "file.py:ClassName"}}', _ENCODER_FIX),
    _R.ENCODER_NOT_FOUND: ("an encoder class whose name ends in 'Encoder'", _ENCODER_FIX),
    _R.ENCODER_AMBIGUOUS: ("exactly one module-level name ending in 'Encoder' (the X-ARES rule)", _ENCODER_FIX),
    _R.SYNTAX_ERROR: ("Python 3.11 source that parses", "fix the syntax error at the line shown"),
    _R.REQUIREMENT_OPTION: ("requirement lines only (name, version, extras, markers, --hash)",
                            "remove the option line; the build installs from the harness's own package set"),
    _R.REQUIREMENT_URL: ("packages by name and version", "use `name==version` of a release on PyPI, "
                         "or put the code inside your ZIP"),
    _R.REQUIREMENT_PATH: ("packages by name and version", "put the code inside your ZIP and import it directly"),
    _R.REQUIREMENT_SYNTAX: ("PEP 508 requirement lines", "fix the line shown (e.g. `numpy>=1.24`)"),
    _R.REQUIREMENT_COMPANION: ("torchaudio, torchvision and torchcodec builds made for the submission's torch "
                               "(harness/layers/companions.json)",
                               "pin the companion version the message names, or leave its version out"),
}



def escape_name(name: str, limit: int = 200) -> str:
    """Quote a participant-chosen name so it is unambiguous and inert on a terminal."""
    return quote_name(name, limit)


@dataclass(frozen=True)
class Problem:
    reason: RejectReason
    entry: str | None
    detail: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, RejectReason):
            raise TypeError(f"reason must be a RejectReason, not {self.reason!r}")

    def render(self) -> str:
        where = escape_name(self.entry) if self.entry is not None else "(archive)"
        return f"[{self.reason.value}] {where}: {scrub(self.detail)}"


class IntakeRejected(IntakeError):
    """Intake refused the submission. `reason`/`entry` are the first problem's; `problems` has all."""

    def __init__(self, problems: Sequence[Problem], *, expected: str | None = None,
                 fix: str | None = None) -> None:
        if not problems:
            raise TypeError("IntakeRejected needs at least one problem")
        self.problems = tuple(problems)
        self.reason = self.problems[0].reason
        self.entry = self.problems[0].entry
        rule, default_fix = _RULES[self.reason]
        lines = [p.render() for p in self.problems[:_MAX_REPORTED]]
        if len(self.problems) > _MAX_REPORTED:
            lines.append(f"... and {len(self.problems) - _MAX_REPORTED} more")
        super().__init__(
            f"submission refused at intake ({self.reason.value}): {len(self.problems)} problem(s)",
            expected=expected or rule, found="\n            ".join(lines), fix=fix or default_fix)


def reject(reason: RejectReason, entry: str | None, detail: str, **kw: str) -> IntakeRejected:
    return IntakeRejected([Problem(reason, entry, detail)], **kw)
