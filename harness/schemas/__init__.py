"""The versioned JSON schemas of what the harness writes and reads, and the one helper that uses them.

Every document the harness writes (validation report, result, status, leaderboard, doctor) carries
`schema_version`, and `SCHEMA_VERSION` is the only place that number is written: a document is built
by a typed result's `to_dict()` and checked here before it leaves the process. Documents the harness
reads from a container (the checker's report) are checked with the same helper and the failure is
explained by the path of the offending field, not by a dump of the schema.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from harness.errors import InfraError

#: the version of every document schema in this folder; bumped together, on purpose
SCHEMA_VERSION = 1

SCHEMA_DIR = Path(__file__).resolve().parent


class SchemaViolation(InfraError):
    """A document does not follow its schema. Raised for what the harness itself wrote (a harness
    bug); callers reading untrusted documents catch it and record whose fault it is."""


def path(name: str) -> Path:
    """`result` -> .../schemas/result.schema.json"""
    return SCHEMA_DIR / f"{name}.schema.json"


@functools.lru_cache(maxsize=None)
def load(name: str) -> dict:
    return json.loads(path(name).read_text())


def explain(error: Any) -> str:
    """One line: where in the document, and what is wrong there."""
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"at {where}: {error.message[:300]}"


def problems(name: str, document: Any, limit: int = 5) -> list[str]:
    """Every way `document` breaks schema `name` (at most `limit`), explained; empty when it follows it."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load(name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [explain(e) for e in errors[:limit]]


def validate(name: str, document: Any) -> Any:
    """Return `document` if it follows schema `name`; raise SchemaViolation explaining why not."""
    found = problems(name, document)
    if found:
        raise SchemaViolation(
            f"a {name} document does not follow its schema",
            expected=f"a document valid against {path(name).name} (schema_version {SCHEMA_VERSION})",
            found="; ".join(found),
            fix="this is a harness bug when the harness wrote the document; report it with the document",
        )
    return document
