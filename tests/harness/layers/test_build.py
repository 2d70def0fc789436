"""Image layers are keyed by the hash of what they are made from: an unchanged layer is a cache
hit, a changed input rebuilds that layer and those above only, and nothing a build was given to
reach the network (CA bundle, pip index credentials) ends up in an image."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from harness.errors import ImageBuildError
from harness.layers.build import build_chain
from harness.layers.model import (
    LABEL_FREEZE,
    LABEL_HARNESS_COMMIT,
    LABEL_HARNESS_VERSION,
    LABEL_INPUTS,
    LABEL_LAYER,
    LABEL_PARAMS,
    LABEL_PARENT,
    Layer,
    base_layer,
    image_ref,
    inputs_hash,
    runtime_layer,
)
from harness.layers.options import BuildOptions
from harness.layers.rootfs import image_or_none, resolve_root
from harness.layers.store import list_images, prune

TEST_REPO = "aecc/test-layer"


def make_layer(recipe: str, token: str, parent=None, sources=None) -> Layer:
    return Layer(
        name="test-layer",
        repository=TEST_REPO,
        recipe=recipe,
        parent=parent or base_layer(),
        params={"AECC_TEST_TOKEN": token},
        sources=sources or {},
    )


@pytest.fixture(scope="module", autouse=True)
def _prune_test_images(client):
    yield
    prune(client, everything=True, repositories=(TEST_REPO,))


def test_tag_is_a_function_of_the_inputs(tmp_path):
    root = "sha256:" + "0" * 64
    a = make_layer("echo a", "t")
    assert image_ref(a, root) == image_ref(make_layer("echo a", "t"), root)
    assert image_ref(a, root) != image_ref(make_layer("echo b", "t"), root)
    assert image_ref(a, root) != image_ref(make_layer("echo a", "u"), root)
    assert image_ref(a, root) != image_ref(a, "sha256:" + "1" * 64)
    src = tmp_path / "src"
    src.mkdir()
    (src / "agent.py").write_text("x = 1\n")
    with_src = make_layer("echo a", "t", sources={"agent": src})
    before = image_ref(with_src, root)
    (src / "agent.py").write_text("x = 2\n")
    assert image_ref(with_src, root) != before
    # Byte-compiled files are not inputs.
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "agent.cpython-311.pyc").write_bytes(b"junk")
    assert image_ref(with_src, root) == image_ref(make_layer("echo a", "t", sources={"agent": src}), root)


def test_a_change_below_changes_every_tag_above():
    root = "sha256:" + "0" * 64
    runtime = runtime_layer()
    other_torch = runtime_layer("2.10.0")
    assert image_ref(runtime.parent.parent.parent, root) == image_ref(other_torch.parent.parent.parent, root)
    assert image_ref(runtime, root) != image_ref(other_torch, root)
    assert [l.name for l in runtime.chain()] == ["base", "torch-2.11.0", "runtime-deps", "runtime"]


def test_second_build_of_an_unchanged_layer_is_a_cache_hit(client, base_image):
    layer = make_layer('echo "$AECC_TEST_TOKEN" > /opt/aecc/token', uuid.uuid4().hex)
    first = build_chain(client, layer, log=lambda m: None)
    assert [r.cached for r in first] == [True, False]  # base found, test layer built
    image_id = client.images.get(first[-1].image).id
    second = build_chain(client, layer, log=lambda m: None)
    assert [r.cached for r in second] == [True, True]
    assert second[-1].image == first[-1].image
    assert client.images.get(second[-1].image).id == image_id
    assert second[-1].seconds < first[-1].seconds

    changed = build_chain(client, make_layer('echo changed > /opt/aecc/token', layer.params["AECC_TEST_TOKEN"]),
                           log=lambda m: None)
    assert [r.cached for r in changed] == [True, False]
    assert changed[-1].image != first[-1].image


def test_provenance_labels(client, base_image):
    token = uuid.uuid4().hex
    layer = make_layer("true", token)
    ref = build_chain(client, layer, log=lambda m: None)[-1].image
    labels = client.images.get(ref).labels
    root = resolve_root(client, BuildOptions.from_environment(), log=lambda m: None)
    assert labels[LABEL_INPUTS] == inputs_hash(layer, root.id)
    assert labels[LABEL_LAYER] == "test-layer"
    assert labels[LABEL_PARENT] == base_image
    assert json.loads(labels[LABEL_PARAMS]) == {"AECC_TEST_TOKEN": token}
    assert labels[LABEL_HARNESS_VERSION]
    assert labels[LABEL_HARNESS_COMMIT]
    assert "pip==" in labels[LABEL_FREEZE]


def test_ca_bundle_and_index_credentials_never_enter_the_image(client, base_image, tmp_path):
    canary = f"AECC-CA-CANARY-{uuid.uuid4().hex}"
    password = f"PW{uuid.uuid4().hex}"
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text(f"# {canary}\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    options = BuildOptions(
        ca_bundle=bundle, pip_index_url=f"https://builder:{password}@pypi.corp.example/simple"
    )
    # The recipe proves both were visible during the build (it fails otherwise).
    recipe = (f'grep -q {canary} /run/aecc-build-secrets/ca.pem\n'
              f'grep -q {password} "$PIP_CONFIG_FILE"\n'
              'cp /etc/hostname /opt/aecc/built-here\n')
    ref = build_chain(client, make_layer(recipe, uuid.uuid4().hex), options, log=lambda m: None)[-1].image
    image = client.images.get(ref)
    config = json.dumps(image.attrs["Config"]) + json.dumps(image.history())
    assert canary not in config and password not in config and "PIP_CONFIG_FILE" not in config
    found = {canary.encode(): False, password.encode(): False}
    carry = b""
    for chunk in image.save(named=False):
        window = carry + chunk
        for needle in found:
            found[needle] = found[needle] or needle in window
        carry = window[-256:]
    assert found == {canary.encode(): False, password.encode(): False}
    assert "***@" in options.describe()["pip_index_url"]  # doctor never prints the credential


def test_failed_recipe_is_an_infra_error_naming_its_log(client, base_image):
    with pytest.raises(ImageBuildError) as err:
        build_chain(client, make_layer("echo broken-recipe-output; exit 7", uuid.uuid4().hex), log=lambda m: None)
    assert err.value.exit_code == 2
    assert err.value.log_path is not None and "broken-recipe-output" in err.value.log_path.read_text()
    assert "test-layer" in str(err.value)


def test_list_marks_current_and_prune_removes_stale(client, base_image):
    a = build_chain(client, make_layer("true", uuid.uuid4().hex), log=lambda m: None)[-1].image
    rows = {r.reference: r for r in list_images(client)}
    assert rows[base_image].current is True
    assert rows[a].current is False  # not a standard layer
    removed = prune(client, repositories=(TEST_REPO,), keep=())
    assert a in removed
    assert image_or_none(client, base_image) is not None


def test_build_cli_reports_cache_hits(client, base_image):
    aecc = str(Path(__import__("sys").executable).parent / "aecc")
    out = subprocess.run([aecc, "images", "build", "--target", "base", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        {"layer": "base", "image": base_image, "cached": True, "seconds": pytest.approx(0, abs=5), "log_path": None,
         "lock_path": None, "lock_digest": None, "lock_source": "none"}  # the base layer installs nothing to lock
    ]


def test_prune_spares_a_layer_another_image_was_built_on(client, base_image):
    lower_layer = make_layer("echo lower > /opt/aecc/lower", uuid.uuid4().hex)
    upper_layer = Layer(name="test-upper", repository=TEST_REPO, recipe="echo upper > /opt/aecc/upper",
                               parent=lower_layer, params={"AECC_TEST_TOKEN": uuid.uuid4().hex})
    built = build_chain(client, upper_layer, log=lambda m: None)
    lower, upper = built[-2].image, built[-1].image
    removed = prune(client, repositories=(TEST_REPO,), keep=(upper,))
    assert upper not in removed and lower not in removed  # lower is upper's parent
    assert prune(client, repositories=(TEST_REPO,)) == [upper, lower]  # children first
