"""Shared fixtures: a real Docker engine (never mocked), the base image, scaled-down profiles.

Every test that starts containers must leave none behind; `no_leftover_containers` checks that
after each test for the containers this test process created.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    # Every test that talks to the engine does so through the `client` fixture: marking them here
    # keeps the marker true without anyone remembering to write it (`make test-unit` = not engine).
    for item in items:
        if "client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)
        if "slurm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session", autouse=True)
def aecc_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Logs and scratch of the run under test go to a temporary home; images stay in the engine.
    home = tmp_path_factory.mktemp("aecc-home")
    os.environ["AECC_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def client():
    from harness.sandbox import engine

    return engine.connect()


@pytest.fixture(scope="session")
def base_image(client) -> str:
    """The current base layer; built if absent (a cache hit after `make images`)."""
    from harness.layers.build import build_chain
    from harness.layers.model import base_layer

    return build_chain(client, base_layer(), log=lambda m: None)[-1].image


@pytest.fixture()
def small_profile():
    """The cpu profile scaled down so limits are hit in a second, not a minute."""
    from harness.sandbox.profiles import load_profile

    return load_profile("cpu").replace(
        memory_bytes=256 * 1024**2,
        tmp_bytes=16 * 1024**2,
        shm_bytes=16 * 1024**2,
        pids_limit=64,
        log_cap_bytes=64 * 1024,
    )


def _own_containers(client):
    """(id, name) of the containers this process created, from one raw list call (no inspect race)."""
    from harness.sandbox import engine

    rows = client.api.containers(
        all=True, filters={"label": [f"{engine.LABEL_MANAGED}=1", f"{engine.LABEL_OWNER_PID}={os.getpid()}"]}
    )
    return [(r["Id"], r["Names"][0].lstrip("/")) for r in rows]


@pytest.fixture(autouse=True)
def no_leftover_containers(request):
    yield
    if "client" not in request.fixturenames:
        return
    client = request.getfixturevalue("client")
    left = _own_containers(client)
    for container_id, _name in left:
        try:
            client.api.remove_container(container_id, force=True)
        except Exception:
            pass  # went away meanwhile
    assert not left, f"containers left behind: {[name for _id, name in left]}"
