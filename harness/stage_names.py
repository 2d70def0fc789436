"""The pipeline's stages, by name: one enum that the sandbox profiles (a policy per stage), the
stages themselves, the pipelines and the journal (a state per stage) share.

It sits at the bottom of the import graph, beside `harness.errors`, so that the journal can take
it without importing the sandbox, and the sandbox without importing the journal.
"""

from __future__ import annotations

import enum


class Stage(str, enum.Enum):
    """Pipeline stages that run in containers (docs/DESIGN.md, "Pipeline")."""

    BUILD = "build"
    FETCH = "fetch"
    CHECK = "check"
    PREPARE = "prepare"
    ENCODE = "encode"
    SCORE = "score"
