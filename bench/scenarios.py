"""The bench's scenarios on the demo suite: validate, images, score, parallel, batch and rss20, and
the `Bench` that runs every group (`bench/beyond_demo.py` and `bench/inventory.py` add the rest).

One object holds what the groups share (the engine, the scratch folder, the runtime image, the
throwaway submissions made so far, so that only those images are removed at the end), and each
group is one method that records into the same `Recorder`; the entry point (`bench/run.py`) only
picks and orders the groups.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

from bench.beyond_demo import BeyondDemo
from bench.bootstrap import BootstrapCost
from bench.inventory import Inventory
from bench.sampling import CHILDREN, CONTAINERS, Recorder, RssSampler, env_with, progress, spawn, tail, timed_run

REPO = Path(__file__).resolve().parent.parent
AECC = str(Path(sys.executable).parent / "aecc")
EXAMPLE = REPO / "examples" / "good_encoder"
DEMO_TASKS = REPO / "demo_tasks"


class Bench(BeyondDemo, Inventory, BootstrapCost):
    """One bench run: what the groups share, and one method per group (`bench/run.py` calls them)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from harness.layers.build import build_chain
        from harness.layers.model import runtime_layer
        from harness.sandbox import engine

        self.args = args
        self.client = engine.connect()
        self.rec = Recorder()
        self.work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="aecc-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.work.chmod(0o755)
        (self.work / "logs").mkdir(exist_ok=True)
        self.demo_env = Path(args.demo_env).resolve()
        self.tasks = sorted(DEMO_TASKS.glob("*_task.py"))
        self.throwaway_shas: set[str] = set()  # sha12 of every throwaway submission this bench made
        self.submission_images: set[str] = set()
        self.runtime = build_chain(self.client, runtime_layer(), log=progress)[-1].image
        self.home_counter = 0
        self._suite_envs: dict[str, Path] = {}

    # -- helpers ---------------------------------------------------------------------------------

    def fresh_home(self, label: str) -> Path:
        self.home_counter += 1
        home = self.work / "homes" / f"{self.home_counter:02d}-{label}"
        home.mkdir(parents=True)
        return home

    def throwaway(self, label: str) -> Path:
        """A copy of the example with a unique comment line: a new sha, so a new submission image."""
        dest = self.work / "submissions" / f"{label}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
        with open(dest / "encoder.py", "a") as fh:
            fh.write(f"# aecc bench throwaway {label} {uuid.uuid4().hex}\n")
        from harness.stages.intake import intake

        with tempfile.TemporaryDirectory(dir=self.work) as store:
            self.throwaway_shas.add(intake(dest, Path(store)).sha256[:12])
        return dest

    def score_cmd(self, submission: Path | Sequence[Path], out: Path, *extra: str, env_dir: Path | None = None,
                  tasks: Sequence[Path] | None = None, repeats: int = 1) -> list[str]:
        """`aecc score` with one Track A run per task unless asked, as bare X-ARES trains once."""
        subs = [submission] if isinstance(submission, Path) else list(submission)
        return [AECC, "score", *map(str, subs), "--data", str(env_dir or self.demo_env), "--tasks",
                *[str(t) for t in (tasks or self.tasks)], "--out", str(out), "--repeats", str(repeats), *extra]

    def read_result(self, out: Path) -> dict | None:
        found = sorted(out.glob("*/result.json"))
        return json.loads(found[0].read_text()) if found else None

    # -- validate --------------------------------------------------------------------------------

    def validate_once(self, source: Path, label: str, home: Path) -> tuple[float | None, dict | None]:
        report_path = self.work / "reports" / f"{label}.json"
        report_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.work / "logs" / f"{label}.log"
        rc, seconds, _ = timed_run([AECC, "validate", str(source), "--json-out", str(report_path)], log,
                                   env_with(home))
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
        if rc != 0 or report is None:
            self.rec.error(label, f"aecc validate exited {rc}", tail(log))
            return None, report
        if image := (report.get("submission") or {}).get("image"):
            self.submission_images.add(image)
        return seconds, report

    def validate_warm(self, repeat: int, home: Path) -> None:
        seconds, report = self.validate_once(EXAMPLE, f"validate-warm-{repeat}", home)
        build = next((c for c in (report or {}).get("checks", []) if c["id"] == "build"), {})
        cached = "(cached)" in build.get("message", "")
        if seconds is not None and not cached:
            self.rec.notes.append(f"validate-warm repeat {repeat}: the submission image was not cached")
        self.rec.add("validate_warm_s", seconds)
        self.rec.record("validate-warm", {"repeat": repeat, "wall_s": seconds, "submission_image_cached": cached,
                                          "timings": (report or {}).get("timings")})
        progress(f"validate warm r{repeat}: {seconds if seconds is None else round(seconds, 1)} s")

    def validate_cold(self, repeat: int, home: Path) -> None:
        sub = self.throwaway(f"validate-cold-{repeat}")
        seconds, report = self.validate_once(sub, f"validate-cold-{repeat}", home)
        timings = (report or {}).get("timings") or {}
        self.rec.add("validate_cold_build_s", seconds)
        self.rec.add("validate_cold_build_stage_s", timings.get("build_s"))
        self.rec.record("validate-cold", {"repeat": repeat, "wall_s": seconds, "timings": timings})
        progress(f"validate cold build r{repeat}: {seconds if seconds is None else round(seconds, 1)} s "
                 f"(build stage {timings.get('build_s')} s)")

    # -- images ----------------------------------------------------------------------------------

    def images_noop(self, repeat: int, home: Path) -> None:
        log = self.work / "logs" / f"images-noop-{repeat}.log"
        out_json = self.work / "logs" / f"images-noop-{repeat}.json"
        # --json goes to stdout, progress to stderr: split them for this one command.
        t0 = time.monotonic()
        with open(out_json, "wb") as out, open(log, "wb") as err:
            proc = subprocess.Popen([AECC, "images", "build", "--json"], stdout=out, stderr=err, env=env_with(home))
            CHILDREN.add(proc)
            rc = proc.wait()
            CHILDREN.discard(proc)
        seconds = time.monotonic() - t0
        try:
            layers = json.loads(out_json.read_text())
        except (OSError, json.JSONDecodeError):
            layers = []
        all_cached = bool(layers) and all(layer["cached"] for layer in layers)
        if rc != 0:
            self.rec.error("images-noop", f"aecc images build exited {rc}", tail(log))
            seconds = None
        elif not all_cached:
            self.rec.notes.append(f"images-noop repeat {repeat}: a layer was rebuilt (inputs changed during the "
                                  "bench, e.g. checker/ edited): not a no-op, left out")
            seconds = None
        self.rec.add("images_noop_s", seconds)
        self.rec.record("images-noop", {"repeat": repeat, "wall_s": seconds, "layers": layers})
        progress(f"images build (no-op) r{repeat}: {seconds if seconds is None else round(seconds, 1)} s")

    # -- score -----------------------------------------------------------------------------------

    def direct_xares(self, repeat: int, env_dir: Path | None = None, tasks: Sequence[Path] | None = None,
                     label: str = "direct") -> float | None:
        """X-ARES 0.1.3 itself, `--max-jobs 0` (one process), in the runtime image, as uid 10001,
        network off, with the cpu profile's CPU, memory and /dev/shm caps and none of its hardening."""
        from harness.sandbox.profiles import load_profile

        profile = load_profile("cpu")
        tasks = list(tasks or self.tasks)
        root = self.work / f"{label}-{repeat}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(env_dir or self.demo_env, root / "env", symlinks=False)
        (root / "enc").mkdir()
        shutil.copy2(EXAMPLE / "encoder.py", root / "enc" / "encoder.py")
        (root / "tasks").mkdir()
        for task in tasks:
            shutil.copy2(task, root / "tasks" / task.name)
        # Regular packages: xares's wheel installs a top-level `tasks` package in site-packages, and
        # a namespace package in the working directory would lose the import to it.
        (root / "enc" / "__init__.py").write_text("")
        (root / "tasks" / "__init__.py").write_text("")
        subprocess.run(["chmod", "-R", "a+rwX", str(root)], check=True)
        name = f"aecc-bench-direct-{uuid.uuid4().hex[:12]}"
        cmd = ["docker", "run", "--rm", "--name", name, "--network", "none", "--user", "10001:10001",
               "--cpus", f"{profile.cpus:g}", "--memory", str(profile.memory_bytes),
               "--memory-swap", str(profile.memory_bytes), "--shm-size", str(profile.shm_bytes),
               "-e", "HOME=/tmp", "-e", "PYTHONUNBUFFERED=1",
               "-v", f"{root}:/bench", "-w", "/bench", self.runtime,
               "python", "-m", "xares.run", "enc/encoder.py", *[f"tasks/{t.name}" for t in tasks],
               "--max-jobs", "0"]
        log = self.work / "logs" / f"{root.name}.log"
        CONTAINERS.add(name)
        rc, seconds, _ = timed_run(cmd, log)
        CONTAINERS.discard(name)
        text = tail(log, 20000)
        scores = {}
        for key, pattern in (("weighted_mlp", r"Weighted Average MLP Score for All Datasets:\s*(\S+)"),
                             ("weighted_knn", r"Weighted Average KNN Score for All Datasets:\s*(\S+)")):
            if m := re.search(pattern, text):
                scores[key] = m.group(1)
        ok = rc == 0 and "Scoring completed" in text
        self.rec.record(label, {"repeat": repeat, "wall_s": seconds, "exit_code": rc, "ok": ok, "scores": scores,
                                "command": cmd[cmd.index(self.runtime):]})
        if not ok:
            # xares.run logs stage errors and returns 0: the log, not the exit code, says if it scored.
            self.rec.error(label, f"X-ARES run directly did not complete (exit {rc})", text[-3000:])
            return None
        shutil.rmtree(root, ignore_errors=True)
        progress(f"X-ARES directly ({label}) r{repeat}: {seconds:.1f} s {scores}")
        return seconds

    def harness_score(self, label: str, home: Path, sampler: RssSampler, *extra: str, env_dir: Path | None = None,
                      tasks: Sequence[Path] | None = None, repeats: int = 1
                      ) -> tuple[float | None, dict | None, int | None]:
        sub = self.throwaway(label)
        out = self.work / "out" / label
        log = self.work / "logs" / f"{label}.log"
        rc, seconds, peak = timed_run(self.score_cmd(sub, out, *extra, env_dir=env_dir, tasks=tasks, repeats=repeats),
                                      log, env_with(home), sampler)
        result = self.read_result(out)
        if result is not None:
            self.submission_images.add(result["submission"]["image"])
        if rc != 0 or result is None or result.get("status") != "complete":
            self.rec.error(label, f"aecc score exited {rc}", tail(log))
            return None, result, peak
        return seconds, result, peak

    def prepared_first(self, label: str, sampler: RssSampler, encoder: dict | None, *, env_dir: Path | None = None,
                       tasks: Sequence[Path] | None = None) -> tuple[float | None, float | None, dict | None]:
        """`aecc data prepare` in a fresh AECC_HOME, then a first submission there: (prepare s, first s, result).

        The rate, hop and dimension come from `encoder` (an earlier result's `submission`): task files,
        as the bench's suites are, key the prepared data by all three (harness.data.prepare).
        """
        if not encoder:
            return None, None, None
        home = self.fresh_home(label)
        env_dir = env_dir or self.demo_env
        cmd = [AECC, "data", "prepare", str(env_dir), "--sample-rate", str(encoder["sampling_rate"]),
               "--hop-ms", str(encoder["hop_size_in_ms"]), "--output-dim", str(encoder["output_dim"]),
               "--tasks", *[str(t) for t in (tasks or self.tasks)]]
        log = self.work / "logs" / f"{label}-prepare.log"
        rc, prepare_s, _ = timed_run(cmd, log, env_with(home))
        if rc != 0:
            self.rec.error(label, f"aecc data prepare exited {rc}", tail(log))
            return None, None, None
        first, result, _ = self.harness_score(f"{label}-first", home, sampler, env_dir=env_dir, tasks=tasks)
        progress(f"{label}: data prepare {prepare_s:.1f} s, then first submission {first and round(first, 1)} s "
                 f"(stages {(result or {}).get('timings')})")
        return prepare_s, first, result

    def score(self, repeat: int) -> None:
        first_home = self.fresh_home(f"score-{repeat}")
        order = ("direct", "harness") if repeat % 2 else ("harness", "direct")
        direct = first = second = cold = ahead_prepare = ahead_first = None
        first_result = second_result = None
        with RssSampler() as sampler:
            for which in order:
                if which == "direct":
                    direct = self.direct_xares(repeat)
                    continue
                first, first_result, rss1 = self.harness_score(f"score-first-{repeat}", first_home, sampler)
                progress(f"harness first submission r{repeat}: {first and round(first, 1)} s "
                         f"(stages {(first_result or {}).get('timings')}), peak RSS {rss1 and rss1 // 2**20} MiB")
                second, second_result, rss2 = self.harness_score(f"score-second-{repeat}", first_home, sampler)
                progress(f"harness second submission r{repeat}: {second and round(second, 1)} s "
                         f"(stages {(second_result or {}).get('timings')}), peak RSS {rss2 and rss2 // 2**20} MiB")
                # The same again with every stage started only when its inputs are ready: what
                # the warm start (harness.sandbox.warm) saves, measured beside it.
                cold, cold_result, rss3 = self.harness_score(f"score-second-cold-{repeat}", first_home, sampler,
                                                             "--no-warm-start")
                progress(f"harness second submission, no warm start, r{repeat}: {cold and round(cold, 1)} s "
                         f"(stages {(cold_result or {}).get('timings')})")
                # The first submission again, after `aecc data prepare` in a fresh home: what preparing
                # ahead saves the first submission (issue "data").
                ahead_prepare, ahead_first, _ = self.prepared_first(
                    f"score-prepared-{repeat}", sampler, (first_result or second_result or {}).get("submission"))
                peaks = [p for p in (rss1, rss2, rss3) if p]
                if peaks:
                    self.rec.add("orchestrator_rss_peak_mib", max(peaks) / 2**20)
        self.rec.add("direct_xares_s", direct)
        self.rec.add("score_first_s", first)
        self.rec.add("score_second_s", second)
        for name, result in (("first", first_result), ("second", second_result)):
            for stage, value in ((result or {}).get("timings") or {}).items():
                metric = f"score_{name}_stage_{stage}"
                self.rec.define(metric, "s", f"`aecc score` {name} submission: the harness's own {stage} timing")
                self.rec.add(metric, value)
        if first and direct:
            self.rec.add("ratio_first_vs_direct", first / direct)
        if second and direct:
            self.rec.add("ratio_second_vs_direct", second / direct)
        if second and first:
            self.rec.add("ratio_second_vs_first", second / first)
        self.rec.add("data_prepare_s", ahead_prepare)
        self.rec.add("score_first_prepared_s", ahead_first)
        if ahead_first and direct:
            self.rec.add("ratio_first_prepared_vs_direct", ahead_first / direct)
        if ahead_first and first:
            self.rec.add("ratio_first_prepared_vs_first", ahead_first / first)
        if ahead_first and second:
            self.rec.add("ratio_first_prepared_vs_second", ahead_first / second)
        self.rec.add("score_second_cold_s", cold)
        if second and cold:
            self.rec.add("ratio_warm_vs_cold_second", second / cold)
        self.rec.record("score", {
            "repeat": repeat, "order": order, "direct_s": direct, "first_s": first, "second_s": second,
            "data_prepare_s": ahead_prepare, "first_prepared_s": ahead_first,
            "first": _result_digest(first_result), "second": _result_digest(second_result),
        })

    # -- parallel --------------------------------------------------------------------------------

    def parallel(self, repeat: int, home: Path) -> None:
        counts = self.args.parallel
        order = counts if repeat % 2 == 0 else list(reversed(counts))
        walls: dict[int, float] = {}
        for n in order:
            subs = [self.throwaway(f"par{n}-r{repeat}-{i}") for i in range(self.args.k)]
            pending = list(enumerate(subs))
            running: dict[int, tuple[subprocess.Popen, str]] = {}
            failed = []
            t0 = time.monotonic()
            with RssSampler() as sampler:
                while pending or running:
                    while pending and len(running) < n:
                        i, sub = pending.pop(0)
                        label = f"par{n}-r{repeat}-{i}"
                        proc = spawn(self.score_cmd(sub, self.work / "out" / label),
                                      self.work / "logs" / f"{label}.log", env_with(home))
                        sampler.watch(proc.pid)
                        running[proc.pid] = (proc, label)
                    time.sleep(0.2)
                    for pid, (proc, label) in list(running.items()):
                        if proc.poll() is not None:
                            CHILDREN.discard(proc)
                            del running[pid]
                            result = self.read_result(self.work / "out" / label)
                            if result is not None:
                                self.submission_images.add(result["submission"]["image"])
                            if proc.returncode != 0 or result is None or result.get("status") != "complete":
                                failed.append(label)
                                self.rec.error("parallel", f"{label}: aecc score exited {proc.returncode}",
                                               tail(self.work / "logs" / f"{label}.log"))
            wall = time.monotonic() - t0
            per_proc = [p for p in sampler.peaks.values() if p]
            entry = {"repeat": repeat, "n": n, "k": self.args.k, "wall_s": round(wall, 2), "failed": failed,
                     "rss_peak_per_process_mib": [round(p / 2**20, 1) for p in per_proc],
                     "rss_peak_sum_mib": round(sampler.sum_peak / 2**20, 1)}
            self.rec.record("parallel", entry)
            if failed:
                progress(f"parallel N={n} r{repeat}: {len(failed)} failed, not counted")
                continue
            walls[n] = wall
            throughput = self.args.k / wall * 60
            self.rec.define(f"parallel_n{n}_throughput_per_min", "submissions/min",
                            f"{self.args.k} submissions, {n} concurrent `aecc score` processes", better="higher")
            self.rec.add(f"parallel_n{n}_throughput_per_min", throughput)
            self.rec.define(f"parallel_n{n}_rss_sum_peak_mib", "MiB",
                            f"peak of the summed RSS of {n} concurrent `aecc score` process trees")
            self.rec.add(f"parallel_n{n}_rss_sum_peak_mib", sampler.sum_peak / 2**20)
            progress(f"parallel N={n} r{repeat}: {self.args.k} submissions in {wall:.1f} s = {throughput:.2f}/min, "
                     f"RSS sum peak {sampler.sum_peak / 2**20:.0f} MiB")
        base = min(counts)
        for n in counts:
            if n != base and n in walls and base in walls:
                self.rec.define(f"parallel_speedup_n{n}", "x", f"throughput with N={n} over N={base}", better="higher")
                self.rec.add(f"parallel_speedup_n{n}", walls[base] / walls[n])

    def parallel_warmup(self, home: Path) -> None:
        label = "parallel-warmup"
        progress("parallel: warm-up submission (fills the prepare cache of the shared AECC_HOME)")
        with RssSampler() as sampler:
            seconds, _, _ = self.harness_score(label, home, sampler)
        progress(f"parallel warm-up: {seconds and round(seconds, 1)} s")

    # -- batch, rss20 ------------------------------------------------------------------------------

    def batch(self, repeat: int) -> None:
        """K throwaway submissions three ways, each from a fresh AECC_HOME (so each prepares once):
        one batch, K sequential `aecc score` runs, K bare X-ARES runs."""
        k = self.args.batch_k
        order = ("batch", "sequential", "direct") if repeat % 2 == 0 else ("direct", "sequential", "batch")
        walls: dict[str, float | None] = {}
        for which in order:
            if which == "direct":
                runs = [self.direct_xares(repeat * 100 + i, label="batch-direct") for i in range(k)]
                walls["direct"] = None if None in runs else sum(runs)
                continue
            if which == "batch":
                walls["batch"], peak = self.batch_once(f"batch-{repeat}", k)
                self.rec.add("batch_rss_peak_mib", peak / 2**20 if peak else None)
            else:
                home = self.fresh_home(f"batch-{which}-{repeat}")
                subs = [self.throwaway(f"batch-{which}-{repeat}-{i}") for i in range(k)]
                total = 0.0
                for i, sub in enumerate(subs):
                    out = self.work / "out" / f"seq-{repeat}-{i}"
                    rc, seconds, _ = timed_run(self.score_cmd(sub, out), self.work / "logs" / f"seq-{repeat}-{i}.log",
                                               env_with(home))
                    result = self.read_result(out)
                    if rc != 0 or result is None:
                        self.rec.error("batch", f"sequential run {i} exited {rc}",
                                       tail(self.work / "logs" / f"seq-{repeat}-{i}.log"))
                        total = None
                        break
                    self.submission_images.add(result["submission"]["image"])
                    total += seconds
                walls["sequential"] = total
        self.rec.add("batch_s", walls.get("batch"))
        self.rec.add("batch_sequential_s", walls.get("sequential"))
        self.rec.add("batch_direct_s", walls.get("direct"))
        if walls.get("batch") and walls.get("sequential"):
            self.rec.add("ratio_batch_vs_sequential", walls["batch"] / walls["sequential"])
        if walls.get("batch") and walls.get("direct"):
            self.rec.add("ratio_batch_vs_direct", walls["batch"] / walls["direct"])
        self.rec.record("batch", {"repeat": repeat, "k": k, "order": order, **{f"{w}_s": v for w, v in walls.items()}})
        progress(f"batch of {k} r{repeat}: batch {walls.get('batch')} s, sequential {walls.get('sequential')} s, "
                 f"bare X-ARES x{k} {walls.get('direct')} s")

    def batch_once(self, label: str, k: int, *, env_dir: Path | None = None, tasks: Sequence[Path] | None = None,
                   group: str = "batch") -> tuple[float | None, int | None]:
        """One `aecc score` of k new throwaway submissions from a fresh AECC_HOME: (wall s or None if
        any submission did not score, peak RSS of its process tree)."""
        home = self.fresh_home(label)
        subs = [self.throwaway(f"{label}-{i}") for i in range(k)]
        out = self.work / "out" / label
        log = self.work / "logs" / f"{label}.log"
        with RssSampler() as sampler:
            rc, seconds, peak = timed_run(self.score_cmd(subs, out, env_dir=env_dir, tasks=tasks), log,
                                          env_with(home), sampler)
        results = sorted(out.glob("*/result.json"))
        for path in results:
            self.submission_images.add(json.loads(path.read_text())["submission"]["image"])
        if rc != 0 or len(results) != k:
            self.rec.error(group, f"the batch exited {rc} with {len(results)} of {k} results", tail(log))
            return None, peak
        return seconds, peak

    def rss20(self) -> None:
        """One `aecc score` with 20 submissions queued (one tiny task each): the orchestrator's RSS."""
        home = self.fresh_home("rss20")
        subs = [self.throwaway(f"rss20-{i}") for i in range(20)]
        out = self.work / "out" / "rss20"
        log = self.work / "logs" / "rss20.log"
        tones = [t for t in self.tasks if t.name == "tiny_tones_task.py"]
        with RssSampler() as sampler:
            rc, seconds, peak = timed_run(self.score_cmd(subs, out, tasks=tones), log, env_with(home), sampler)
        results = sorted(out.glob("*/result.json"))
        for path in results:
            self.submission_images.add(json.loads(path.read_text())["submission"]["image"])
        if rc != 0 or len(results) != 20:
            self.rec.error("rss20", f"exited {rc} with {len(results)} of 20 results", tail(log))
            return
        self.rec.add("batch_rss20_peak_mib", peak / 2**20 if peak else None)
        self.rec.add("batch_rss20_s", seconds)
        self.rec.record("rss20", {"wall_s": seconds, "rss_peak_mib": peak and round(peak / 2**20, 1)})
        progress(f"20 queued submissions: {seconds:.0f} s, orchestrator peak RSS {peak and peak // 2**20} MiB")


def _result_digest(result: dict | None) -> dict | None:
    if not result:
        return None
    return {
        "sha256": result["submission"]["sha256"], "image": result["submission"]["image"],
        "timings": result.get("timings"), "status": result.get("status"),
        "tasks": {t["task"]: {"track_a": t["track_a"], "track_b": t["track_b"], "outcome": t["outcome"]}
                  for t in result["tasks"]},
    }
