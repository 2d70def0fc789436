"""Fixtures for the task tests: model stores and data folders (tests/support/models.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests.support.models import lay_out_data, write_store


@pytest.fixture()
def make_store(tmp_path) -> Callable[..., object]:
    counter = iter(range(1000))

    def make(dependencies: Sequence[str] = ("qwen2", "bert-base-uncased:tokenizer"), **kw):
        return write_store(tmp_path / f"store{next(counter)}", dependencies, **kw)

    return make


@pytest.fixture()
def lay_out() -> Callable[..., Path]:
    return lay_out_data
