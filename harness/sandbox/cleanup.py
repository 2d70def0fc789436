"""Containers a harness left behind, and the labels that say whose they are.

Every container is labelled with its harness's PID, host and process start time; a SIGKILL of the
harness leaves its containers running or stopped, and `cleanup` removes those whose owner is gone
(the start time guards against a recycled PID). A running harness's containers are never touched
unless `everything` is asked for.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from harness.processes import alive, process_start, token_alive
from harness.sandbox import engine as eng
from harness.stage_names import Stage


def _own_start_time() -> str:
    return process_start(os.getpid()) or ""


def owner_labels(stage: Stage, run_id: str) -> dict[str, str]:
    return {
        eng.LABEL_MANAGED: "1",
        eng.LABEL_OWNER_PID: str(os.getpid()),
        eng.LABEL_OWNER_START: _own_start_time(),
        eng.LABEL_OWNER_HOST: socket.gethostname(),
        eng.LABEL_STAGE: stage.value,
        eng.LABEL_RUN: run_id,
    }


def cleanup(client: Any, *, everything: bool = False) -> list[str]:
    """Remove containers the harness left behind; returns their names.

    By default only those whose owning harness process is gone (on this host) are removed, so a
    cleanup never pulls the rug from under a running harness; `everything=True` removes all.
    """
    removed = []
    # The raw list, not `containers.list`: that inspects each container after listing it and
    # fails with 404 when one is removed in between (another harness finishing, say).
    for row in client.api.containers(all=True, filters={"label": f"{eng.LABEL_MANAGED}=1"}):
        labels = row.get("Labels") or {}
        name = (row.get("Names") or ["/?"])[0].lstrip("/")
        try:
            pid = int(labels.get(eng.LABEL_OWNER_PID, "0"))
        except ValueError:
            pid = 0
        # The start time guards against a recycled PID keeping a leftover alive forever.
        owner_alive = bool(alive(labels.get(eng.LABEL_OWNER_HOST), pid, labels.get(eng.LABEL_OWNER_START)))
        if everything or not owner_alive:
            try:
                client.api.remove_container(row["Id"], force=True, v=True)
                removed.append(name)
            except Exception:
                pass
    if not everything:
        remove_stale_scratch()
    return removed


#: `harness.processes.owner_token`'s shape: longer than a mkdtemp suffix, so never mistaken for one
TOKEN = re.compile(r"\d+x[0-9a-f]{10}")


def remove_stale_scratch() -> list[Path]:
    """Scratch folders (`$AECC_HOME/tmp/<kind>-<owner token>-*`: a warm stage's control folder, say)
    whose owning process is gone; a running harness's are never touched."""
    import shutil

    from harness import paths

    removed = []
    for folder in paths.scratch().glob("*-*x*-*"):
        token = next((p for p in folder.name.split("-") if TOKEN.fullmatch(p)), None)
        if token is not None and folder.is_dir() and not token_alive(token):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
