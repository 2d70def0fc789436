"""Helpers shared by the test modules (archives written field by field, the hostile suite's runner,
local package indexes), imported as `tests.support.*`."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
