"""The task registry is the paper's Table 1 as data: every Table 1 task is present, Track B is exactly
the paper's check-mark column, hidden is exactly the dagger datasets, every task X-ARES 0.1.3 cannot
run says why, and a normalised score is the paper's equation (1) on the scale X-ARES returns, so an
EER of 0.1 counts 0.9 and an X-ARES mAP of 0.45 counts 0.45 (not 0.0045). An invalid registry or task
module is refused with the task and key named.

The registry is also checked field by field against X-ARES 0.1.3's own task modules, copied out of
the runtime image (which installs exactly that release) and read with `ast` (no torch on the host).
"""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path

import jsonschema
import pytest

from harness.errors import ConfigError, UsageError
from harness.tasks.arguments import (
    TaskSourceKind,
    inspect_task_module,
    resolve_task_argument,
)
from harness.tasks.registry import (
    DEFAULT_REGISTRY,
    SCHEMA_PATH,
    Bounds,
    Direction,
    TaskEntry,
    Visibility,
    load_registry,
    registry_from_dict,
)

# The paper's Table 1 (arXiv:2501.15302): dataset -> (metric, #, Track B check mark).
PAPER_TABLE1 = {
    "Speech Commands": ("Acc", 30, True),
    "LibriCount": ("Acc", 11, True),
    "VoxLingua107": ("Acc", 33, True),
    "VoxCeleb1": ("Acc", 1251, True),
    "LibriSpeech": ("Acc", 2, True),
    "Fluent Speech Commands": ("Acc", 248, True),
    "VocalSound": ("Acc", 6, True),
    "CREMA-D": ("Acc", 5, True),
    "speechocean762": ("MSE", 3, False),
    "ASV2015": ("EER", 2, True),
    "ESC-50": ("Acc", 50, True),
    "FSD50k": ("mAP", 200, False),
    "UrbanSound 8k": ("Acc", 10, True),
    "DESED": ("Segment-F1", 10, True),
    "FSD18-Kaggle": ("mAP", 41, False),
    "Clotho": ("Recall@1", None, False),
    "Inside/outside car": ("Acc", 2, True),
    "Finger snap sound": ("Acc", 2, True),
    "Key scratching car": ("Acc", 2, True),
    "Subway broadcast": ("Acc", 2, True),
    "LiveEnv sounds": ("mAP", 18, False),
    "MAESTRO": ("Acc", 88, True),
    "GTZAN Genre": ("Acc", 10, True),
    "NSynth-Instruments": ("Acc", 11, True),
    "NSynth-Pitch": ("Acc", 128, True),
    "Free Music Archive Small": ("Acc", 8, True),
}
PAPER_HIDDEN = {"Inside/outside car", "Finger snap sound", "Key scratching car", "Subway broadcast", "LiveEnv sounds"}
PAGE_ONLY = {"LibriSpeech-Phoneme"}
PAGE_BASELINE_ROWS = {
    "asvspoof (mini)", "crema_d", "esc50", "fluentspeechcommands_kws", "freemusicarchive_genre", "fsdkaggle2018",
    "gtzan", "libricount", "librispeech_male_female(mini)", "nsynth_instument", "ravdess", "speechcommandsv1",
    "urbansound8k", "vocalsound", "voxceleb1 (mini)", "voxlingua33 (mini)",
}
EXPECTED_UNSUPPORTED = {"speechocean762", "nsynth_pitch", "librispeech_phoneme"}  # no X-ARES 0.1.3 module
#: disabled=True in X-ARES 0.1.3, scored by the harness anyway (XaresTask ignores the flag), and said so
EXPECTED_OVERRIDDEN = {"finger_snap", "key_scratching", "liveenv"}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture()
def raw() -> dict:
    return json.loads(DEFAULT_REGISTRY.read_text())


def _by_paper_name(registry) -> dict:
    return {e.paper_name: e for e in registry if e.paper_name}


# ---- the data says what the paper says ----------------------------------------------------------


def test_schema_is_valid_and_registry_conforms(raw):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert list(raw)[0] == "schema_version"
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    assert errors == []


def test_every_paper_table1_task_is_present_with_its_metric_and_classes(registry):
    by_paper = _by_paper_name(registry)
    assert set(by_paper) == set(PAPER_TABLE1)
    for paper_name, (metric, classes, _) in PAPER_TABLE1.items():
        entry = by_paper[paper_name]
        assert entry.paper_metric == metric, paper_name
        assert entry.paper_classes == classes, paper_name
        assert entry.track_a, paper_name
        assert "paper_table1" in entry.sources


def test_track_a_is_exactly_the_paper_table1(registry):
    assert {e.paper_name for e in registry.track_a()} == set(PAPER_TABLE1)


def test_track_b_equals_the_paper_checkmark_column(registry):
    expected = {name for name, (_, _, b) in PAPER_TABLE1.items() if b}
    assert {e.paper_name for e in registry.track_b()} == expected


def test_knn_scored_is_track_b_minus_what_xares_does_not_knn(registry):
    # The paper puts DESED and MAESTRO in Track B; X-ARES 0.1.3 sets do_knn=False for both.
    scored = {e.name for e in registry if e.knn_scored}
    not_scored = {e.name for e in registry.track_b()} - scored
    assert not_scored == {"desed", "maestro", "nsynth_pitch"}


def test_hidden_is_exactly_the_dagger_datasets(registry):
    assert {e.paper_name for e in registry.hidden()} == PAPER_HIDDEN
    assert all(e.xares_private for e in registry.hidden())
    assert {e.name for e in registry.public()} == {e.name for e in registry} - {e.name for e in registry.hidden()}


def test_page_table1_and_baselines_are_covered(registry):
    page_names = {e.page_name for e in registry if e.page_name}
    assert page_names == set(PAPER_TABLE1) | PAGE_ONLY
    assert {e.page_baseline_name for e in registry if e.page_baseline_name} == PAGE_BASELINE_ROWS
    phoneme = registry.get("librispeech_phoneme")
    assert not phoneme.track_a and not phoneme.supported


def test_unsupported_tasks_are_exactly_the_known_ones_and_say_why(registry):
    assert {e.name for e in registry if not e.supported} == EXPECTED_UNSUPPORTED
    for e in registry:
        if e.supported:
            assert e.xares_module and e.config_function and e.eval_weight, e.name
        else:
            assert e.unsupported_reason and len(e.unsupported_reason) > 20, e.name
    assert "no task module" in registry.get("speechocean762").unsupported_reason
    assert {e.name for e in registry if e.overrides_xares_disabled} == EXPECTED_OVERRIDDEN
    assert {e.name for e in registry if e.supported and e.xares_disabled} == EXPECTED_OVERRIDDEN
    assert {e.name: e.pretrained_dependencies for e in registry if e.pretrained_dependencies} == {
        "librispeech": ("qwen2",), "clotho": ("bert-base-uncased:tokenizer",)}
    assert all(e.audio_tar_globs for e in registry if e.supported)


def test_weights_and_metrics_follow_xares(registry):
    # A few spot values, so that this holds without the X-ARES sources too.
    assert registry.get("esc50").eval_weight == 400
    assert registry.get("maestro").eval_weight == 65
    assert registry.get("maestro").metric == "segmentf1_micro"
    assert registry.get("asvspoof2015").metric == "accuracy"  # paper: EER
    assert registry.get("asvspoof2015").paper_metric == "EER"
    assert registry.get("fsdkaggle2018").metric == "accuracy"  # paper: mAP
    assert registry.get("inside_outside_car").config_function == "finger_snap_config"  # sic in X-ARES 0.1.3


# ---- normalisation ------------------------------------------------------------------------------


def _entry(**overrides) -> TaskEntry:
    fields = dict(name="t", formal_name="T", domain="sound", metric="accuracy", direction="higher", worst=0, best=1,
                  track_a=True, track_b=False, visibility="public", supported=True, xares_module="tasks.t_task",
                  config_function="t_config", eval_weight=10)
    fields.update(overrides)
    fields.update(xares_bounds=Bounds(fields["worst"], fields["best"]), bounds_follow="xares")
    return TaskEntry(**fields)


def test_accuracy_normalises_to_itself(registry):
    assert registry.get("esc50").normalise(0.8) == pytest.approx(0.8)
    assert registry.get("esc50").direction is Direction.HIGHER


def test_eer_lower_is_better_normalises_inverted():
    eer = _entry(metric="EER", direction="lower", worst=1, best=0)
    assert eer.normalise(0.1) == pytest.approx(0.9)
    assert eer.normalise(0.0) == 1.0 and eer.normalise(1.0) == 0.0


def test_map_uses_the_xares_scale_not_the_papers(registry):
    fsd = registry.get("fsd50k")
    assert fsd.paper_bounds.best == 100 and fsd.xares_bounds.best == 1 and fsd.bounds_follow == "xares"
    assert fsd.normalise(0.45) == pytest.approx(0.45)  # X-ARES returns mAP in 0..1


def test_normalise_clamps_and_refuses_non_numbers(registry):
    esc = registry.get("esc50")
    assert esc.normalise(1.2) == 1.0 and esc.normalise(-0.3) == 0.0
    for bad in (math.nan, math.inf, "0.5", True):
        with pytest.raises(UsageError):
            esc.normalise(bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="speechocean762"):
        registry.get("speechocean762").normalise(0.2)


# ---- names and task modules ---------------------------------------------------------------------


def test_unknown_name_suggests_the_closest(registry):
    with pytest.raises(UsageError) as err:
        registry.get("esc5O")
    message = str(err.value)
    assert "Did you mean: esc50?" in message and "Available: " in message and "maestro" in message
    with pytest.raises(UsageError, match="Did you mean: asvspoof2015"):
        registry.get("asvspoof")  # the page's baseline name


def test_resolve_registry_name(registry):
    source = resolve_task_argument("esc50", registry=registry)
    assert source.kind is TaskSourceKind.REGISTRY
    assert (source.name, source.module, source.config_function) == ("esc50", "tasks.esc50_task", "esc50_config")
    with pytest.raises(UsageError, match="no module"):
        resolve_task_argument("speechocean762", registry=registry)
    # disabled in X-ARES 0.1.3, but scored by the harness (which records the override)
    assert resolve_task_argument("finger_snap", registry=registry).module == "tasks.finger_snap_task"


MODULE_HEAD = "from xares.task import TaskConfig\n\n"


def _module(tmp_path: Path, body: str, name: str = "my_task.py") -> Path:
    path = tmp_path / name
    path.write_text(MODULE_HEAD + body)
    return path


def test_module_with_one_config_function_is_accepted(tmp_path):
    path = _module(tmp_path, "def mine_config(encoder):\n    return TaskConfig(name='mine', encoder=encoder)\n")
    source = resolve_task_argument(str(path))
    assert source.kind is TaskSourceKind.MODULE
    assert (source.name, source.config_function, source.path) == ("mine", "mine_config", path.resolve())


@pytest.mark.parametrize(
    "body, found",
    [
        ("def helper(encoder):\n    return None\n", "none"),
        ("def a_config(e):\n    pass\n\ndef b_config(e):\n    pass\n", "def a_config"),
        ("from tasks.esc50_task import esc50_config\n\ndef mine_config(e):\n    pass\n", "import esc50_config"),
        ("from tasks.esc50_task import *\n\ndef mine_config(e):\n    pass\n", "star import"),
    ],
    ids=["zero", "two", "import-plus-def", "star-import"],
)
def test_module_without_exactly_one_config_function_is_refused(tmp_path, body, found):
    path = _module(tmp_path, body)
    with pytest.raises(UsageError) as err:
        resolve_task_argument(str(path))
    assert found in str(err.value) and "_config" in str(err.value)


def test_module_that_is_not_python_is_refused(tmp_path):
    with pytest.raises(UsageError, match="does not parse"):
        resolve_task_argument(str(_module(tmp_path, "def broken_config(:\n")))
    with pytest.raises(UsageError, match="no such file"):
        resolve_task_argument(str(tmp_path / "absent_task.py"))


# ---- an invalid registry is refused, naming the task and key --------------------------------------


def _esc50(raw: dict) -> dict:
    return next(t for t in raw["tasks"] if t["name"] == "esc50")


def test_unknown_key_names_task_and_key(raw):
    _esc50(raw)["weight"] = 3
    with pytest.raises(ConfigError) as err:
        registry_from_dict(raw)
    assert "esc50" in str(err.value) and "'weight'" in str(err.value) and "unknown key" in str(err.value)


def test_worst_equal_best_names_task(raw):
    task = _esc50(raw)
    task["worst"] = task["best"] = 1
    task["xares_bounds"] = {"worst": 1, "best": 1}
    task["paper_bounds"] = {"worst": 1, "best": 1}
    with pytest.raises(ConfigError) as err:
        registry_from_dict(raw)
    assert "esc50" in str(err.value) and "worst" in str(err.value)


def test_bad_enum_value_names_task_and_key(raw):
    _esc50(raw)["direction"] = "up"
    with pytest.raises(ConfigError) as err:
        registry_from_dict(raw)
    assert "esc50" in str(err.value) and "direction" in str(err.value)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"direction": "lower"}, "direction"),
        ({"supported": False}, "unsupported_reason"),
        ({"track_a": False}, "track_b"),
        ({"eval_weight": None}, "eval_weight"),
        ({"overrides_xares_disabled": True}, "overrides_xares_disabled"),  # esc50 is not disabled in X-ARES
        ({"audio_tar_globs": []}, "audio_tar_globs"),
    ],
)
def test_cross_field_rules_name_task_and_key(raw, change, key):
    _esc50(raw).update(change)
    with pytest.raises(ConfigError) as err:
        registry_from_dict(raw)
    assert "esc50" in str(err.value) and key in str(err.value)


def test_a_disabled_task_scored_without_saying_so_is_refused(raw):
    next(t for t in raw["tasks"] if t["name"] == "liveenv")["overrides_xares_disabled"] = False
    with pytest.raises(ConfigError) as err:
        registry_from_dict(raw)
    assert "liveenv" in str(err.value) and "overrides_xares_disabled" in str(err.value)


def test_duplicate_name_is_refused(raw):
    raw["tasks"].append(copy.deepcopy(_esc50(raw)))
    with pytest.raises(ConfigError, match="esc50"):
        registry_from_dict(raw)


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_registry(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_registry(bad)


def test_entries_are_frozen(registry):
    with pytest.raises(Exception):
        registry.get("esc50").eval_weight = 1  # type: ignore[misc]
    assert registry.get("esc50").visibility is Visibility.PUBLIC


# ---- against the X-ARES 0.1.3 sources, from the runtime image --------------------------------------


@pytest.fixture(scope="module")
def xares_src(client, tmp_path_factory) -> Path:
    """X-ARES 0.1.3's `tasks/` and `xares/` packages, copied out of the runtime image."""
    import io
    import tarfile

    from harness.layers.build import build_chain
    from harness.layers.model import runtime_layer

    image = build_chain(client, runtime_layer(), log=lambda m: None)[-1].image
    root = tmp_path_factory.mktemp("xares013")
    container = client.containers.create(image, command=["true"])
    try:
        for package in ("tasks", "xares"):
            stream, _ = container.get_archive(f"/opt/venv/lib/python3.11/site-packages/{package}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                tar.extractall(root, filter="data")
    finally:
        container.remove(force=True)
    assert xares_version(client, image) == "0.1.3"
    return root


def xares_version(client, image: str) -> str:
    """The xares version the image reports (its metadata, not a guess from the layer's name)."""
    out = client.containers.run(image, ["python", "-c", "from importlib.metadata import version; print(version('xares'))"],
                                remove=True, network_mode="none")
    return out.decode().strip()


# TaskConfig defaults in xares/task.py 0.1.3
DEFAULTS = {"metric": "accuracy", "do_knn": True, "private": False, "disabled": False, "crop_length": None,
            "k_fold_splits": None, "task_type": "clip", "formal_name": None, "pretrained_dependencies": None}


def _module_facts(path: Path) -> dict:
    tree = ast.parse(path.read_text())
    (func,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_config")]
    facts = dict(DEFAULTS, config_function=func.name)
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TaskConfig":
            for kw in node.keywords:
                if kw.arg in ("name", "formal_name", "eval_weight", "metric", "do_knn", "private", "disabled",
                              "crop_length", "task_type", "pretrained_dependencies"):
                    facts[kw.arg] = ast.literal_eval(kw.value)
                elif kw.arg == "k_fold_splits":
                    # list(range(a, b)) in every 0.1.3 module: evaluate with nothing but list and range
                    code = compile(ast.Expression(kw.value), "<k_fold_splits>", "eval")
                    facts[kw.arg] = eval(code, {"__builtins__": {"list": list, "range": range}})  # noqa: S307
    if facts["formal_name"] is None:
        facts["formal_name"] = facts["name"]
    return facts


def test_registry_matches_xares_task_modules(registry, xares_src):
    modules = {f"tasks.{p.stem}": _module_facts(p) for p in sorted((xares_src / "tasks").glob("*_task.py"))}
    in_registry = {e.xares_module for e in registry if e.xares_module}
    assert in_registry == set(modules), "every X-ARES task module has exactly one registry entry"
    for entry in registry:
        if entry.xares_module is None:
            continue
        facts = modules[entry.xares_module]
        assert entry.name == facts["name"], entry.name
        assert entry.config_function == facts["config_function"], entry.name
        assert entry.eval_weight == facts["eval_weight"], entry.name
        assert entry.metric == facts["metric"], entry.name
        assert entry.xares_do_knn == facts["do_knn"], entry.name
        assert entry.xares_private == facts["private"], entry.name
        assert entry.xares_disabled == facts["disabled"], entry.name
        assert list(entry.pretrained_dependencies) == list(facts["pretrained_dependencies"] or []), entry.name
        assert entry.crop_length == facts["crop_length"], entry.name
        assert entry.task_type == facts["task_type"], entry.name
        assert entry.k_fold == (facts["k_fold_splits"] is not None), entry.name
        assert list(entry.k_fold_splits or []) == list(facts["k_fold_splits"] or []), entry.name
        expected_formal = facts["formal_name"] if facts["formal_name"] != facts["name"] else entry.formal_name
        assert entry.formal_name == expected_formal, entry.name
        # every X-ARES module passes the harness's own module check, with the same function
        assert inspect_task_module(xares_src / "tasks" / f"{entry.xares_module.split('.')[1]}.py").config_function \
            == facts["config_function"]


def test_metric_ids_are_xares_metric_ids(registry, xares_src):
    tree = ast.parse((xares_src / "xares" / "metrics.py").read_text())
    ids: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "ALL_METRICS":
            ids = {kw.arg for kw in node.value.keywords}
    assert ids and {e.metric for e in registry} <= ids


# ---- task sets: which tasks each named leaderboard ranks --------------------------------------------

# The organizers' final sheets (DataoceanAI/ICME2025-Audio-Encoder-Challenge @ d2e7f8ae, docs/result.json)
FINAL_A = {
    "asvspoof2015", "clotho", "cremad", "desed", "esc50", "finger_snap", "fluentspeechcommands", "freemusicarchive",
    "fsd50k", "fsdkaggle2018", "gtzan_genre", "inside_outside_car", "key_scratching", "libricount", "librispeech",
    "librispeechmalefemale", "liveenv", "maestro", "nsynthinstument", "ravdess", "speechcommandsv1",
    "subway_broadcast", "urbansound8k", "vocalimitations", "vocalsound", "voxceleb1", "voxlingua33",
}
FINAL_B = FINAL_A - {"clotho", "desed", "fsd50k", "fsdkaggle2018", "librispeech", "liveenv", "maestro"}


def test_task_sets_are_declared_and_every_task_lists_each(registry, raw):
    assert registry.task_set_names() == ["paper", "icme2025-final"]
    assert all(info.description and info.source for info in registry.task_sets)
    assert "d2e7f8ae9f7f4356ffc5c9f875bd1ba09ead5d03" in registry.task_set_info("icme2025-final").source
    for task in raw["tasks"]:
        assert set(task["task_sets"]) == {"paper", "icme2025-final"}, task["name"]


def test_the_paper_set_is_the_track_flags(registry):
    assert [e.name for e in registry.task_set("paper", "A")] == [e.name for e in registry.track_a()]
    assert [e.name for e in registry.task_set("paper", "B")] == [e.name for e in registry.track_b()]
    assert len(registry.task_set("paper", "A")) == 26 and len(registry.task_set("paper", "B")) == 21


def test_the_final_set_is_the_published_sheets(registry):
    from harness.tasks.registry import Track

    assert {e.name for e in registry.task_set("icme2025-final", Track.A)} == FINAL_A
    assert {e.name for e in registry.task_set("icme2025-final", Track.B)} == FINAL_B
    assert len(FINAL_A) == 27 and len(FINAL_B) == 20
    assert registry.get("librispeech").in_task_set("icme2025-final", "A")
    assert not registry.get("librispeech").in_task_set("paper", "A")
    assert not registry.get("esc50").in_task_set("no-such-set", "A")
    # the published CSV's columns are exactly the final Track A set
    header = (DEFAULT_REGISTRY.parent / "published" / "icme2025-final.csv").read_text().splitlines()[0].split(",")
    assert set(header[3:]) == FINAL_A


def test_an_unknown_task_set_is_refused_with_a_suggestion(registry):
    with pytest.raises(UsageError, match="Did you mean: paper?"):
        registry.task_set("papr", "A")
    with pytest.raises(UsageError, match="paper, icme2025-final"):
        registry.task_set_info("final")


@pytest.mark.parametrize("change, found", [
    ({"paper": ["A"], "icme2025-final": ["A", "B"]}, "task_sets.paper"),  # disagrees with track_b=true
    ({"paper": ["A", "B"], "icme2025-final": ["B"]}, "subset of Track A"),
    ({"paper": ["A", "B"], "icme2025-final": ["A", "C"]}, "task_sets"),
    ({"paper": ["A", "B"]}, "does not list exactly the declared sets"),
    ({"paper": ["A", "B"], "icme2025-final": ["A"], "other": []}, "undeclared"),
])
def test_a_task_set_entry_that_breaks_a_rule_names_task_and_key(raw, change, found):
    _esc50(raw)["task_sets"] = change
    with pytest.raises(ConfigError) as err:
        registry_from_dict(raw)
    assert "esc50" in str(err.value) and found in str(err.value)


def test_entries_built_in_code_need_no_task_sets():
    entry = _entry()
    assert entry.task_sets == {} and not entry.in_task_set("paper", "A")
