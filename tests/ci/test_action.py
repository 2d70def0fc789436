"""CI gate invariant: a fork of the X-ARES template that adds examples/workflows/aecc-gate.yml gets a
job that passes when its encoder meets the contract and fails, saying which check and how to fix it,
when it does not; it runs on a runner without a GPU (the `+cpu` torch build) and needs no write
permission, so pull requests from forks work. The action and the workflow follow GitHub's published
schemas; the action's inputs reach its script only through `env:`.

The engine test runs the composite action's own steps as a runner would (`run:` lines through bash
with the step's `env:`, each step's `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` files, the `if:`
conditions, actions/cache and upload-artifact simulated on the file system) on two fork-shaped
checkouts (tests/fixtures/encoders/gate_fork_*): a `push` of the good fork with an empty cache, then a
`pull_request` of the broken one that restores the cache the first saved. torch's `+cpu` wheel
comes from a package index on the host (this machine reaches no PyTorch index); everything else
from PyPI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.report.github import md_code_block, md_text

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / ".github" / "actions" / "aecc-validate" / "action.yml"
WORKFLOW = REPO / "examples" / "workflows" / "aecc-gate.yml"
SCRIPT = REPO / "scripts" / "ci-gate.sh"
FIXTURES = REPO / "tests" / "fixtures" / "encoders"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
DOCKER0 = "172.17.0.1"


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, timeout=120)


# ------------------------------------------------------------------------------------ schemas, shape


def test_action_and_workflow_follow_githubs_schemas():
    for schema, path in (("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW)):
        result = check_jsonschema(schema, path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_action_and_workflow(tmp_path):
    action = tmp_path / "action.yml"
    action.write_text(re.sub(r"(?m)^      shell: bash\n", "", ACTION.read_text()))  # composite `run` needs a shell
    workflow = tmp_path / "workflow.yml"
    workflow.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert check_jsonschema("vendor.github-actions", action).returncode != 0
    assert check_jsonschema("vendor.github-workflows", workflow).returncode != 0


def test_inputs_reach_the_script_through_env_only():
    action = load_yaml(ACTION)
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    script = SCRIPT.read_text()
    used_inputs = set(re.findall(r"inputs\.([\w-]+)", ACTION.read_text()))
    assert used_inputs <= set(action["inputs"]), used_inputs - set(action["inputs"])
    runs = [s for s in steps if "run" in s]
    assert [s["id"] for s in runs] == ["install", "validate"]
    for step in runs:
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], f"an expression in the text of step {step['id']}: script injection"
        assert step["run"] == f'bash "$GITHUB_ACTION_PATH/../../../scripts/ci-gate.sh" {step["id"]}'
        for name in step.get("env", {}):
            assert f"{name}" in script, f"{name} is set by the action but never read by the script"
    uses = [s["uses"] for s in steps if "uses" in s]
    assert not any(u.startswith("dorny/") for u in uses)  # check runs need a write token
    junit = next(s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@"))
    assert str(junit["with"]["annotate_only"]).lower() == "true"
    assert {u.split("@")[0] for u in uses} == {"actions/setup-python", "actions/cache/restore", "actions/cache/save",
                                              "actions/upload-artifact", "mikepenz/action-junit-report"}


def test_workflow_runs_on_pushes_and_pull_requests_with_a_read_only_token():
    workflow = load_yaml(WORKFLOW)
    assert {"push", "pull_request"} <= set(workflow["on"]) and "pull_request_target" not in workflow["on"]
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"  # a hosted runner without a GPU
    checkout, gate = job["steps"]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["persist-credentials"] is False
    assert gate["uses"].endswith("/.github/actions/aecc-validate@main")


# ------------------------------------------------------------------------------------ a runner, in small


_REF = re.compile(r"^(?:inputs\.([\w-]+)|steps\.([\w-]+)\.outputs\.([\w-]+))$")


def parse_outputs(text: str) -> dict[str, str]:
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        if re.match(r"^[\w-]+<<", line):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


@dataclass
class Job:
    """One run of the composite action on a fresh runner: what GitHub would show of it."""

    rc: dict[str, int] = field(default_factory=dict)  # run steps' exit codes, by id
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    log: str = ""
    summary: str = ""
    skipped: list[str] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)
    annotations: list[str] = field(default_factory=list)
    failed: bool = False


class Runner:
    """Runs the action's steps the way GitHub's runner does, for the two kinds of step it has: `run`
    steps (bash, the step's env, fresh GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files) and the actions
    it uses, simulated on the file system (a cache store shared between runs, artifacts)."""

    def __init__(self, action_tree: Path, venv: Path, cache_store: Path, job_env: dict[str, str]):
        self.action_path = action_tree / ".github" / "actions" / "aecc-validate"
        self.action = load_yaml(self.action_path / "action.yml")
        self.venv = venv
        self.cache_store = cache_store
        self.job_env = job_env

    def _value(self, text: Any, inputs: dict[str, str], job: Job) -> str:
        def resolve(expr: str) -> str:
            m = _REF.match(expr.strip())
            assert m, f"expression the test runner does not know: {expr!r}"
            if m.group(1):
                return inputs[m.group(1)]
            return job.outputs.get(m.group(2), {}).get(m.group(3), "")

        if isinstance(text, bool):  # YAML's true: GitHub hands actions the string "true"
            return str(text).lower()
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: resolve(m.group(1)), str(text))

    def _condition(self, text: str | None, inputs: dict[str, str], job: Job) -> bool:
        if text is None:
            return not job.failed  # GitHub's implicit success()
        expr = str(text).strip().removeprefix("${{").removesuffix("}}").strip()
        result, status_function = True, False
        for term in (t.strip() for t in expr.split("&&")):
            if term == "!cancelled()":
                status_function = True
                continue
            m = re.fullmatch(r"([\w.-]+) (==|!=) '([^']*)'", term)
            assert m, f"condition the test runner does not know: {term!r}"
            value = self._value("${{ " + m.group(1) + " }}", inputs, job)
            result &= (value == m.group(3)) if m.group(2) == "==" else (value != m.group(3))
        return result and (status_function or not job.failed)

    def run(self, workspace: Path, runner_temp: Path, event: str, with_: dict[str, str]) -> Job:
        inputs = {name: str(spec.get("default", "")) for name, spec in self.action["inputs"].items()}
        inputs.update({k: str(v) for k, v in with_.items()})
        job = Job()
        runner_temp.mkdir(parents=True)
        for step in self.action["runs"]["steps"]:
            sid = step.get("id") or step["name"]
            if not self._condition(step.get("if"), inputs, job):
                job.skipped.append(sid)
                continue
            if "run" in step:
                files = runner_temp / "_runner_file_commands"
                files.mkdir(exist_ok=True)
                out_file, summary_file = files / f"set_output_{sid}", files / f"step_summary_{sid}"
                out_file.touch()
                summary_file.touch()
                env = {**self.job_env, "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp),
                       "GITHUB_EVENT_NAME": event, "GITHUB_OUTPUT": str(out_file),
                       "GITHUB_STEP_SUMMARY": str(summary_file), "GITHUB_ACTION_PATH": str(self.action_path),
                       **{k: self._value(v, inputs, job) for k, v in step.get("env", {}).items()}}
                script = files / f"{sid}.sh"
                script.write_text(step["run"])
                # GitHub's `shell: bash`: bash --noprofile --norc -eo pipefail {0}
                proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      timeout=1800)  # one log, in order, as the runner shows (and scans) it
                job.log += f"--- {sid} (rc {proc.returncode})\n{proc.stdout}"
                job.rc[sid] = proc.returncode
                job.outputs[sid] = parse_outputs(out_file.read_text())
                job.summary += summary_file.read_text()
                job.failed |= proc.returncode != 0
                continue
            uses, args = step["uses"].split("@")[0], {k: self._value(v, inputs, job) for k, v in step["with"].items()}
            if uses == "actions/setup-python":
                assert args["python-version"] == "3.11"  # the venv on PATH stands for it
            elif uses == "actions/cache/restore":
                job.outputs[sid] = self._restore(Path(args["path"]), args["key"], args["restore-keys"])
            elif uses == "actions/cache/save":
                target = self.cache_store / args["key"]
                assert not target.exists(), "a cache key is saved once"
                shutil.copytree(args["path"], target)
            elif uses == "actions/upload-artifact":
                job.artifacts[args["name"]] = Path(args["path"])
            elif uses == "mikepenz/action-junit-report":
                assert args["annotate_only"] == "true"
                suite = ET.parse(args["report_paths"]).getroot()
                job.annotations += [case.get("name") for case in suite.iter("testcase") if case.find("failure")
                                    is not None]
            else:  # pragma: no cover
                raise AssertionError(f"step the test runner does not know: {uses}")
        return job

    def _restore(self, path: Path, key: str, prefix: str) -> dict[str, str]:
        exact = self.cache_store / key
        candidates = [exact] if exact.is_dir() else sorted(p for p in self.cache_store.iterdir()
                                                            if p.name.startswith(prefix))
        if not candidates:
            return {}  # a miss sets no cache-hit
        shutil.copytree(candidates[-1], path)
        return {"cache-hit": str(candidates[-1] == exact).lower(), "cache-matched-key": candidates[-1].name}


def fork_checkout(fixture: str, dest: Path) -> Path:
    """The fixture as actions/checkout leaves a fork: its files, the gate's workflow, a .git folder."""
    shutil.copytree(FIXTURES / f"gate_fork_{fixture}", dest)
    (dest / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(WORKFLOW, dest / ".github" / "workflows" / "aecc-gate.yml")
    git = ["git", "-C", str(dest), "-c", "user.name=participant", "-c", "user.email=p@example.org",
           "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "my encoder"]):
        subprocess.run(git + args, check=True, capture_output=True, timeout=60)
    return dest


def action_tree(dest: Path) -> Path:
    """This repository as the runner downloads it for `uses: OWNER/REPO/.github/actions/...@ref`:
    the files of the ref (here: tracked and not ignored), no .git."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def gate_step(workflow: dict) -> dict:
    (job,) = workflow["jobs"].values()
    return next(s for s in job["steps"] if s.get("uses", "").endswith("/.github/actions/aecc-validate@main"))


# ------------------------------------------------------------------------------------ the script alone


def script_env(tmp_path: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "runner-temp").mkdir(exist_ok=True)
    (tmp_path / "workspace").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "AECC_HOME", "PYTHONPATH")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", RUNNER_TEMP=str(tmp_path / "runner-temp"),
               GITHUB_WORKSPACE=str(tmp_path / "workspace"), GITHUB_OUTPUT=str(tmp_path / "output"),
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"), GITHUB_EVENT_NAME="push", **extra)
    for name in ("output", "summary.md"):
        (tmp_path / name).touch()
    return env


def test_a_checkout_that_cannot_be_read_is_an_error_with_a_summary(tmp_path):
    env = script_env(tmp_path, Path(sys.executable).parent, AECC_GATE_PATH="no-such-folder")
    proc = subprocess.run(["bash", str(SCRIPT), "validate"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "::error title=aecc-validate::could not copy the checkout at no-such-folder" in proc.stdout
    assert (tmp_path / "summary.md").read_text().startswith("## AECC validate: 🛠️ infrastructure error")
    outputs = parse_outputs((tmp_path / "output").read_text())
    assert outputs["status"] == "error" and outputs["exit-code"] == "2" and outputs["report"] == ""


def test_harness_ref_without_a_repository_is_refused(tmp_path):
    env = script_env(tmp_path, Path(sys.executable).parent, AECC_GATE_HARNESS_REF="v1")
    env.pop("GITHUB_ACTION_REPOSITORY", None)
    proc = subprocess.run(["bash", str(SCRIPT), "install"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "set harness-repository" in proc.stdout


def test_harness_ref_installs_that_ref_of_the_repository(tmp_path):
    # The repository at a tag, reached by URL as pip reaches GitHub; the action's own tree is not used.
    repo = action_tree(tmp_path / "harness-repo")
    (repo / "harness" / "AT_THE_TAG").write_text("v-test\n")
    git = ["git", "-C", str(repo), "-c", "user.name=m", "-c", "user.email=m@example.org", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"], ["tag", "v-test"]):
        subprocess.run(git + args, check=True, capture_output=True, timeout=60)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = script_env(tmp_path, venv / "bin", AECC_GATE_HARNESS_REF="v-test",
                     AECC_GATE_HARNESS_REPOSITORY=f"file://{repo}")
    proc = subprocess.run(["bash", str(SCRIPT), "install"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
                           capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path).stdout.strip()
    installed = Path(where).parent
    assert installed == tmp_path / "runner-temp" / "aecc-src" / "aecc-harness" / "harness"
    assert (installed / "AT_THE_TAG").read_text() == "v-test\n"
    assert (installed.parent / "images" / "torch" / "build.sh").is_file()  # editable: the recipes are there
    outputs = parse_outputs((tmp_path / "output").read_text())
    assert outputs["cache-key"].startswith(outputs["cache-restore-prefix"])
    assert outputs["cache-path"] == str(tmp_path / "runner-temp" / "aecc-image-cache")


# ------------------------------------------------------------------------------------ the engine run


@pytest.fixture(scope="module")
def gate(tmp_path_factory, client):
    if not TORCH_WHEEL.is_file():
        pytest.skip(f"the +cpu torch wheel is not on this machine ({TORCH_WHEEL})")
    from tests.support.index import LocalIndex

    root = tmp_path_factory.mktemp("gate")
    venv = root / "venv"  # stands for actions/setup-python's Python: the action installs the harness into it
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    tree = action_tree(root / "actions" / "aecc-harness")
    (root / "cache-store").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "AECC_HOME", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", CI="true", GITHUB_ACTIONS="true", RUNNER_OS="Linux",
               RUNNER_ARCH="X64",
               # A workflow-level `env:` an organizer with a plain-HTTP mirror would set (pip refuses
               # plain HTTP from any other host).
               AECC_PIP_TRUSTED_HOST=DOCKER0)
    with LocalIndex(root / "index") as index:
        index.add_file(TORCH_WHEEL, "torch")
        yield Runner(tree, venv, root / "cache-store", env), index, root
        built = set()
        for path in root.glob("run-*/aecc-gate/chain.json"):
            built |= {e["reference"] for e in json.loads(path.read_text())
                      if e["layer"].startswith(("submission-", "torch-2.13.0-cpu"))}
        for ref in sorted(built, key=lambda r: not r.startswith("aecc/submission:")):  # the torch layer last
            try:  # the torch layer's tag names this index's port: no later run can use it
                client.images.remove(ref)
            except Exception:
                pass


def run_fork(gate, fixture: str, event: str) -> tuple[Job, Path]:
    runner, index, root = gate
    workspace = fork_checkout(fixture, root / f"workspace-{fixture}")
    with_ = dict(gate_step(load_yaml(workspace / ".github" / "workflows" / "aecc-gate.yml"))["with"])
    with_["torch-index-url"] = index.url()
    runner_temp = root / f"run-{fixture}"
    job = runner.run(workspace, runner_temp, event, with_)
    (root / f"job-{fixture}.log").write_text(job.log + "\n--- summary\n" + job.summary)
    return job, runner_temp / "aecc-gate"


def junit_cases(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    suite = ET.parse(path).getroot()
    return suite, {case.get("name"): case for case in suite.iter("testcase")}


def between_stop_commands(log: str) -> str:
    m = re.search(r"^::stop-commands::([0-9a-f]{32})$(.*?)^::\1::$", log, re.S | re.M)
    assert m, "aecc validate's output is not fenced off from workflow commands"
    return m.group(2)


@pytest.mark.slow
def test_gate_passes_a_good_fork_and_fails_a_broken_one_saying_why(gate, client, capsys):
    # --- a push of the good fork, nothing cached yet: builds the +cpu torch layer, passes, saves the cache
    job, out = run_fork(gate, "good", "push")
    assert job.rc == {"install": 0, "validate": 0}, job.log[-6000:]
    assert not job.failed and job.skipped == []
    validate = job.outputs["validate"]
    assert validate["status"] == "passed" and validate["exit-code"] == "0" and validate["torch-flavour"] == "cpu"
    assert validate["failed-checks"] == "" and validate["cache-save"] == "true"
    assert "intake: checking the archive" in between_stop_commands(job.log)

    report = json.loads((out / "report.json").read_text())
    sub = report["submission"]
    assert (sub["encoder_file"], sub["encoder_class"]) == ("my_encoder.py", "TinyConvEncoder")
    assert (sub["torch_version"], sub["torch_flavour"], report["profile"]) == ("2.13.0", "cpu", "cpu")
    fixture_files = sum(1 for p in (FIXTURES / "gate_fork_good").rglob("*") if p.is_file())
    assert sub["files"] == fixture_files + 1  # + the workflow file; .git left out
    assert {c["id"]: c["status"] for c in report["checks"]}["output_dim_match"] == "passed"

    suite, cases = junit_cases(out / "junit.xml")
    assert suite.get("failures") == "0" and "output_dim_match" in cases and len(cases) == len(report["checks"])

    summary = job.summary
    assert summary.startswith("## AECC validate: ✅ passed for `my_encoder.py` class `TinyConvEncoder`")
    assert "| torch | 2\\.13\\.0, **cpu** flavour" in summary
    assert re.search(r"^\| `output_dim_match` \| rule \| ✅ passed \|", summary, re.M)
    assert "### What to fix" not in summary
    assert validate["verdict"] == report["verdict"]["headline"] and validate["verdict"].startswith("passes (")
    assert f"aecc-gate: {validate['verdict']}" in job.log
    assert re.search(r"^\| torch\\-2\\.13\\.0\\-cpu \| `aecc/torch:2\.13\.0-cpu-[0-9a-f]{16}` \| [\d.]+ [GM]B \|",
                     summary, re.M)
    assert re.search(r"^\| gate\\: aecc validate \| [\d.]+ \|", summary, re.M)
    assert "| image cache | miss\\: images built here\\; saved 3 images" in summary

    chain = json.loads((out / "chain.json").read_text())
    assert [e["layer"] for e in chain][:3] == ["root", "base", "torch-2.13.0-cpu"]
    torch_ref = chain[2]["reference"]
    labels = client.images.get(torch_ref).labels
    assert re.search(r"^torch==2\.13\.0\+cpu$", labels["org.aecc.pip-freeze"], re.M)  # the +cpu build
    (saved,) = list(gate[0].cache_store.iterdir())
    with tarfile.open(saved / "images.tar") as tar:
        tags = {t for entry in json.load(tar.extractfile("manifest.json")) for t in entry.get("RepoTags") or []}
    assert tags == {e["reference"] for e in chain[:3]}  # root, base, torch: not the submission's own layer
    where = subprocess.run([str(gate[0].venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
                           capture_output=True, text=True, check=True, timeout=60, cwd=gate[2]).stdout.strip()
    assert Path(where) == gate[0].action_path.parents[2] / "harness" / "__init__.py"  # the action's own tree
    assert job.artifacts == {"aecc-validate-report": out}

    # --- a pull request of the broken fork on a fresh runner: the cache restores, the gate fails with the fix.
    # A fresh runner has none of the images: the torch layer must come back from the cache, not be rebuilt.
    client.images.remove(chain[3]["reference"])
    client.images.remove(torch_ref)
    job, out = run_fork(gate, "broken", "pull_request")
    assert job.rc == {"install": 0, "validate": 1}, job.log[-6000:]
    assert f"Loaded image: {torch_ref}" in job.log and "building aecc/torch" not in job.log
    assert job.failed
    assert job.skipped == ["Save the image cache"]  # a pull request restores the cache and saves none
    validate = job.outputs["validate"]
    assert validate["status"] == "failed" and validate["exit-code"] == "1"
    assert validate["failed-checks"] == "output_dim_match" and "cache-save" not in validate
    assert job.annotations == ["output_dim_match"]  # annotations only, from the JUnit file
    assert job.artifacts == {"aecc-validate-report": out}

    suite, cases = junit_cases(out / "junit.xml")
    assert suite.get("failures") == "1"
    report = json.loads((out / "report.json").read_text())
    (failed,) = [c for c in report["checks"] if c["status"] == "failed"]
    assert failed["id"] == "output_dim_match" and failed["fix"]
    assert "256" in str(failed["expected"]) and "128" in str(failed["found"])
    failure = cases["output_dim_match"].find("failure")
    assert failure is not None and f"expected: {failed['expected']}\nfound: {failed['found']}\nfix: {failed['fix']}" \
        in failure.text
    summary = job.summary
    assert summary.startswith("## AECC validate: ❌ failed for `my_encoder.py` class `TinyConvEncoder`")
    assert re.search(r"^\| `output_dim_match` \| rule \| ❌ failed \|", summary, re.M)
    headline = report["verdict"]["headline"]
    assert headline.startswith("will be excluded: output_dim_match failed") and validate["verdict"] == headline
    assert f"```text\n{headline}\n" in summary
    fix_section = summary.split("### What to fix", 1)[1]
    assert "#### ❌ `output_dim_match`" in fix_section and f"**Fix:** {md_text(failed['fix'], 1000)}" in fix_section
    assert f"expected:\n\n{md_code_block(failed['expected'])}" in fix_section
    assert f"found:\n\n{md_code_block(failed['found'])}" in fix_section
    assert "| torch | 2\\.13\\.0, **cpu** flavour" in summary and "| event | pull\\_request |" in summary
    assert "| image cache | hit\\: " in summary and re.search(r"^\| gate\\: load the image cache \| [\d.]+ \|",
                                                              summary, re.M)
    assert list((out / "logs").glob("*check.log")), "the failed check's log is in the artifact"
    assert f"::error title=AECC contract::{headline}: see the job summary" in job.log

    with capsys.disabled():  # the sizes, for the record
        sizes = {e["layer"]: e["size_bytes"] for e in json.loads((out / "chain.json").read_text())}
        print(f"\n[ci gate] image sizes in bytes, each with the layers under it: {json.dumps(sizes)}")
