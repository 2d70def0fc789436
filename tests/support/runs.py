"""The containers a run starts, as the tests see them: `run_stage` recorded in every module of the
harness that calls it for scoring, so that a test can hold each container's mounts, environment and
log to what it promises (labels, keys, the audio only after the go)."""

from __future__ import annotations

from typing import Any


def record_runs(monkeypatch: Any, modules: tuple[Any, ...] | None = None) -> list[tuple[Any, Any]]:
    """(RunSpec, RunResult) of every container started through `modules` (default: the sandbox
    itself, the check and encode stages and the warm-started trusted stages), in the order they ended."""
    from harness.sandbox import run as sandbox_run
    from harness.sandbox import warm
    from harness.stages import check as check_stage
    from harness.stages import encode as encode_stage

    original = sandbox_run.run_stage
    seen: list[tuple[Any, Any]] = []

    def recording(client, profile, spec, log_path, **kw):
        result = original(client, profile, spec, log_path, **kw)
        seen.append((spec, result))
        return result

    for module in modules or (sandbox_run, check_stage, encode_stage, warm):
        monkeypatch.setattr(module, "run_stage", recording)
    return seen
