"""The score agent makes X-ARES find the model store where X-ARES looks: `./<org>/<name>` in the
working directory resolves to the store's read-only folder, for every repository of the manifest and
nothing else; an unsafe repository id or a foreign file in the way is refused; and the fetch agent
reports a host it cannot connect to instead of hanging."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from checker import models as fetch_agent
from checker.taskload import OFFLINE_ENV, force_offline, lay_out_models


def _store(root: Path, repos: list[str]) -> Path:
    for repo in repos:
        (root / repo).mkdir(parents=True)
        (root / repo / "config.json").write_text("{}")
    (root / "manifest.json").write_text(json.dumps({"models": [{"repo": r} for r in repos]}))
    return root


def test_each_repository_is_linked_under_its_hub_id(tmp_path):
    store = _store(tmp_path / "models", ["Qwen/Qwen2.5-0.5B", "google-bert/bert-base-uncased"])
    work = tmp_path / "work"
    work.mkdir()
    assert lay_out_models(store, work) == ["Qwen/Qwen2.5-0.5B", "google-bert/bert-base-uncased"]
    here = os.getcwd()
    os.chdir(work)
    try:
        # what X-ARES and transformers test: the hub id, relative to the working directory
        assert Path("Qwen/Qwen2.5-0.5B").exists() and Path("Qwen/Qwen2.5-0.5B/config.json").is_file()
        assert Path("google-bert/bert-base-uncased").is_dir()
        assert Path("Qwen/Qwen2.5-0.5B").resolve() == (store / "Qwen/Qwen2.5-0.5B").resolve()
    finally:
        os.chdir(here)
    assert sorted(p.name for p in work.iterdir()) == ["Qwen", "google-bert"]
    assert lay_out_models(store, work) == ["Qwen/Qwen2.5-0.5B", "google-bert/bert-base-uncased"]  # idempotent


@pytest.mark.parametrize("repo", ["../escape", "Qwen/..", ".hidden/x", "noslash"])
def test_an_unsafe_repository_id_is_refused(tmp_path, repo):
    store = tmp_path / "models"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"models": [{"repo": repo}]}))
    with pytest.raises(ValueError):
        lay_out_models(store, tmp_path)


def test_something_else_in_the_way_is_refused(tmp_path):
    store = _store(tmp_path / "models", ["Qwen/Qwen2.5-0.5B"])
    work = tmp_path / "work"
    (work / "Qwen" / "Qwen2.5-0.5B").mkdir(parents=True)  # e.g. a copy X-ARES downloaded earlier
    with pytest.raises(FileExistsError):
        lay_out_models(store, work)


def test_offline_variables_are_set_without_overriding(monkeypatch):
    for key in OFFLINE_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    force_offline()
    assert all(os.environ[key] == value for key, value in OFFLINE_ENV.items())


def test_the_fetch_agent_reports_a_host_it_cannot_reach(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        problem = fetch_agent.reachable(f"http://127.0.0.1:{port}")
    assert problem is not None and f"127.0.0.1:{port}" in problem
    answer = tmp_path / "answer.json"
    assert fetch_agent.fetch([], tmp_path, "https://hub.invalid", str(answer)) == 3
    data = json.loads(answer.read_text())
    assert data["ok"] is False and data["error"] == "unreachable" and data["host"] == "hub.invalid"
