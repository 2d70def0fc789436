"""`make bench`: the harness's speed and memory, side by side with bare X-ARES, in one run.

Every figure is either a ratio against a baseline measured in the same run on the same machine
(harness and baseline runs are interleaved, repeat by repeat, so background load hits both), or a
count that does not depend on machine speed (bytes, RSS). Seconds are recorded too, but compare
seconds only between runs on the same machine (bench/compare.py warns when the machines differ).

Groups (`--only` takes a comma-separated subset):

  validate-warm  `aecc validate examples/good_encoder`, images and its submission image cached
  validate-cold  the same on a throwaway copy (unique comment line: new sha, new submission image):
                 the submission build is cold, only base/torch layers cached
  images-noop    `aecc images build`, every layer cached
  score          per repeat: X-ARES run directly (`python -m xares.run ... --max-jobs 0`, plain
                 `docker run` of the runtime image, a fresh copy of the demo env), a first
                 submission (fresh AECC_HOME: prepare cache empty; new sha: build runs) and a second
                 one at the same sample rate (same AECC_HOME: prepare cached); orchestrator peak RSS
  parallel       K throwaway submissions scored by N concurrent `aecc score` processes, for each N
                 in --parallel, after a warm-up that fills the prepare cache: throughput and speedup
  batch          K throwaway submissions: one `aecc score` batch, K sequential `aecc score` runs and K
                 bare X-ARES runs, each from a fresh AECC_HOME (ratios batch/sequential, batch/bare)
  rss20          peak RSS of one `aecc score` process with 20 queued submissions (one tiny task)
  large          the larger suite (bench/large_suite.py, about 37 min of audio): bare X-ARES, a first
                 and a second submission
  repeats        the score stage with 1 vs --repeats-n Track A repeats on the larger suite, and
                 Track A's spread over 10 seeds per task on the demo and the larger suite: how many
                 repeats bring the standard error under 0.005
  lock           the CREPE example (requirements: torchcrepe and its dependencies): a cold submission
                 build, then its lock-based rebuild after the image is removed
  sizes          image sizes (base, torch, runtime-deps, runtime, a submission) from the engine

Results: a rich table on stdout and `bench/results/<UTC timestamp>.json` (schema_version first).
The bench's own throwaway submission images (aecc/submission:<sha12 of a throwaway>-...) are
removed at the end unless --keep-images; nothing else is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SCHEMA_VERSION = 1
AECC = str(Path(sys.executable).parent / "aecc")
EXAMPLE = REPO / "examples" / "good_encoder"
DEMO_TASKS = REPO / "demo_tasks"
RESULTS = REPO / "bench" / "results"
GROUPS = ("validate-warm", "validate-cold", "images-noop", "score", "parallel", "batch", "rss20", "large", "repeats",
          "lock", "asr", "sizes")
ALIASES = {"validate": ("validate-warm", "validate-cold"), "images": ("images-noop",), "all": GROUPS}

#: (metric, comparison, threshold, what the issue asks)
TARGETS = (
    ("validate_warm_s", "<", 20.0, "validate warm under 20 s"),
    ("validate_cold_build_s", "<", 120.0, "validate with a cold submission build under 120 s (no downloads)"),
    ("ratio_first_vs_direct", "<=", 1.25, "first submission at most 1.25x bare X-ARES"),
    ("ratio_second_vs_direct", "<", 1.0, "second submission at the same sample rate below 1.0x bare X-ARES"),
    ("batch_rss20_peak_mib", "<", 300.0, "orchestrator RSS under 300 MB with 20 queued submissions"),
    ("ratio_batch_vs_sequential", "<", 1.0, "a batch of K faster than K sequential `aecc score` runs"),
    ("ratio_batch_vs_direct", "<=", 0.8, "a batch of K at most 0.8x K bare X-ARES runs"),
    ("ratio_large_first_vs_direct", "<=", 1.05, "larger suite: first submission at most 1.05x bare X-ARES"),
    ("ratio_large_second_vs_direct", "<=", 0.8, "larger suite: second submission at most 0.8x bare X-ARES"),
    ("ratio_crepe_lock_vs_cold", "<=", 1.0, "a lock-based rebuild of the CREPE example not slower than its first build"),
)

START = time.monotonic()


def progress(message: str) -> None:
    elapsed = int(time.monotonic() - START)
    print(f"[bench {elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr,
          flush=True)


# --- bookkeeping --------------------------------------------------------------------------------


class Recorder:
    """Metrics (repeated values), raw per-run records, errors and notes, in the JSON's shape."""

    def __init__(self) -> None:
        self.metrics: dict[str, dict] = {}
        self.raw: dict[str, list] = {}
        self.errors: list[dict] = []
        self.notes: list[str] = []

    def define(self, name: str, unit: str, description: str, better: str = "lower") -> None:
        self.metrics.setdefault(name, {"unit": unit, "better": better, "description": description, "values": []})

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.metrics[name]["values"].append(round(float(value), 4))

    def record(self, group: str, entry: dict) -> None:
        self.raw.setdefault(group, []).append(entry)

    def error(self, group: str, what: str, detail: str) -> None:
        progress(f"ERROR {group}: {what}: {detail[-400:]}")
        self.errors.append({"group": group, "what": what, "detail": detail[-4000:]})

    def summarised(self) -> dict[str, dict]:
        out = {}
        for name, m in self.metrics.items():
            values = m["values"]
            summary = {"median": None, "min": None, "max": None, "spread_rel": None, "n": len(values)}
            if values:
                median = statistics.median(values)
                summary.update(median=round(median, 4), min=min(values), max=max(values),
                               spread_rel=round((max(values) - min(values)) / median, 4) if median else 0.0)
            out[name] = {**m, **summary}
        return out


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class RssSampler:
    """Peak RSS of harness processes and their descendants (docker CLI processes excluded; the
    containers' memory is the engine's, not the orchestrator's), polled every `interval` s.

    Tracks each watched process's own peak (its tree) and the peak of the sum over all watched
    processes alive at the same moment."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.procs: dict[int, Any] = {}
        self.peaks: dict[int, int] = {}
        self.sum_peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, pid: int) -> None:
        with contextlib.suppress(self.psutil.Error):
            with self._lock:
                self.procs[pid] = self.psutil.Process(pid)
                self.peaks.setdefault(pid, 0)

    def _tree_rss(self, proc: Any) -> int:
        total = 0
        try:
            members = [proc, *proc.children(recursive=True)]
        except self.psutil.Error:
            return 0
        for p in members:
            try:
                if p.name().startswith("docker"):
                    continue
                total += p.memory_info().rss
            except self.psutil.Error:
                continue
        return total

    def sample(self) -> None:
        with self._lock:
            items = list(self.procs.items())
        total = 0
        for pid, proc in items:
            rss = self._tree_rss(proc)
            total += rss
            self.peaks[pid] = max(self.peaks[pid], rss)
        self.sum_peak = max(self.sum_peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


_CHILDREN: set[subprocess.Popen] = set()
_CONTAINERS: set[str] = set()


@contextlib.contextmanager
def _interruptible() -> Any:
    """On Ctrl-C or SIGTERM: SIGTERM to every harness process this bench started (each removes its
    own containers), `docker rm -f` of the baseline containers it named; then re-raise."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt:
        progress("interrupted: stopping the processes and containers this bench started")
        for child in list(_CHILDREN):
            with contextlib.suppress(OSError):
                child.send_signal(signal.SIGTERM)
        for child in list(_CHILDREN):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=60)
        for name in list(_CONTAINERS):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _spawn(cmd: Sequence[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "wb")
    proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    fh.close()
    _CHILDREN.add(proc)
    return proc


def timed_run(cmd: Sequence[str], log: Path, env: dict | None = None, sampler: RssSampler | None = None,
              cwd: Path | None = None) -> tuple[int, float, int | None]:
    """Run a command to its end: (exit code, wall seconds, peak tree RSS if sampled)."""
    t0 = time.monotonic()
    proc = _spawn(cmd, log, env, cwd)
    if sampler is not None:
        sampler.watch(proc.pid)
    rc = proc.wait()
    seconds = time.monotonic() - t0
    _CHILDREN.discard(proc)
    peak = sampler.peaks.get(proc.pid) if sampler is not None else None
    return rc, seconds, peak


def env_with(home: Path) -> dict:
    env = dict(os.environ)
    env["AECC_HOME"] = str(home)
    env.setdefault("COLUMNS", "160")
    return env


# --- the bench --------------------------------------------------------------------------------


class Bench:
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
        self._large_env: Path | None = None

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
            self.rec.error(label, f"aecc validate exited {rc}", _tail(log))
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
            _CHILDREN.add(proc)
            rc = proc.wait()
            _CHILDREN.discard(proc)
        seconds = time.monotonic() - t0
        try:
            layers = json.loads(out_json.read_text())
        except (OSError, json.JSONDecodeError):
            layers = []
        all_cached = bool(layers) and all(layer["cached"] for layer in layers)
        if rc != 0:
            self.rec.error("images-noop", f"aecc images build exited {rc}", _tail(log))
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
        _CONTAINERS.add(name)
        rc, seconds, _ = timed_run(cmd, log)
        _CONTAINERS.discard(name)
        text = _tail(log, 20000)
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
            self.rec.error(label, f"aecc score exited {rc}", _tail(log))
            return None, result, peak
        return seconds, result, peak

    def score(self, repeat: int) -> None:
        first_home = self.fresh_home(f"score-{repeat}")
        order = ("direct", "harness") if repeat % 2 else ("harness", "direct")
        direct = first = second = cold = None
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
        self.rec.add("score_second_cold_s", cold)
        if second and cold:
            self.rec.add("ratio_warm_vs_cold_second", second / cold)
        self.rec.record("score", {
            "repeat": repeat, "order": order, "direct_s": direct, "first_s": first, "second_s": second,
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
                        proc = _spawn(self.score_cmd(sub, self.work / "out" / label),
                                      self.work / "logs" / f"{label}.log", env_with(home))
                        sampler.watch(proc.pid)
                        running[proc.pid] = (proc, label)
                    time.sleep(0.2)
                    for pid, (proc, label) in list(running.items()):
                        if proc.poll() is not None:
                            _CHILDREN.discard(proc)
                            del running[pid]
                            result = self.read_result(self.work / "out" / label)
                            if result is not None:
                                self.submission_images.add(result["submission"]["image"])
                            if proc.returncode != 0 or result is None or result.get("status") != "complete":
                                failed.append(label)
                                self.rec.error("parallel", f"{label}: aecc score exited {proc.returncode}",
                                               _tail(self.work / "logs" / f"{label}.log"))
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
            home = self.fresh_home(f"batch-{which}-{repeat}")
            subs = [self.throwaway(f"batch-{which}-{repeat}-{i}") for i in range(k)]
            if which == "batch":
                out = self.work / "out" / f"batch-{repeat}"
                log = self.work / "logs" / f"batch-{repeat}.log"
                with RssSampler() as sampler:
                    rc, seconds, peak = timed_run(self.score_cmd(subs, out), log, env_with(home), sampler)
                results = sorted(out.glob("*/result.json"))
                ok = rc == 0 and len(results) == k
                for path in results:
                    self.submission_images.add(json.loads(path.read_text())["submission"]["image"])
                if not ok:
                    self.rec.error("batch", f"the batch exited {rc} with {len(results)} of {k} results", _tail(log))
                walls["batch"] = seconds if ok else None
                self.rec.add("batch_rss_peak_mib", peak / 2**20 if peak else None)
            else:
                total = 0.0
                for i, sub in enumerate(subs):
                    out = self.work / "out" / f"seq-{repeat}-{i}"
                    rc, seconds, _ = timed_run(self.score_cmd(sub, out), self.work / "logs" / f"seq-{repeat}-{i}.log",
                                               env_with(home))
                    result = self.read_result(out)
                    if rc != 0 or result is None:
                        self.rec.error("batch", f"sequential run {i} exited {rc}",
                                       _tail(self.work / "logs" / f"seq-{repeat}-{i}.log"))
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
            self.rec.error("rss20", f"exited {rc} with {len(results)} of 20 results", _tail(log))
            return
        self.rec.add("batch_rss20_peak_mib", peak / 2**20 if peak else None)
        self.rec.add("batch_rss20_s", seconds)
        self.rec.record("rss20", {"wall_s": seconds, "rss_peak_mib": peak and round(peak / 2**20, 1)})
        progress(f"20 queued submissions: {seconds:.0f} s, orchestrator peak RSS {peak and peak // 2**20} MiB")

    # -- the larger suite ---------------------------------------------------------------------------

    def large_env(self) -> Path:
        if self._large_env is None:
            import large_suite  # bench/large_suite.py, beside this file

            env = self.work / "large-env"
            large_suite.generate(env)
            subprocess.run(["chmod", "-R", "a+rX", str(env)], check=True)
            self._large_env = env
        return self._large_env

    def large(self, repeat: int) -> None:
        import large_suite

        env, tasks = self.large_env(), [large_suite.TASK_FILE]
        home = self.fresh_home(f"large-{repeat}")
        order = ("direct", "harness") if repeat % 2 else ("harness", "direct")
        direct = first = second = None
        with RssSampler() as sampler:
            for which in order:
                if which == "direct":
                    direct = self.direct_xares(repeat, env_dir=env, tasks=tasks, label="large-direct")
                    continue
                first, first_result, _ = self.harness_score(f"large-first-{repeat}", home, sampler, env_dir=env,
                                                            tasks=tasks)
                second, second_result, _ = self.harness_score(f"large-second-{repeat}", home, sampler, env_dir=env,
                                                              tasks=tasks)
                for name, result in (("first", first_result), ("second", second_result)):
                    for stage, value in ((result or {}).get("timings") or {}).items():
                        metric = f"large_{name}_stage_{stage}"
                        self.rec.define(metric, "s", f"larger suite, {name} submission: the harness's {stage} timing")
                        self.rec.add(metric, value)
        self.rec.add("large_direct_s", direct)
        self.rec.add("large_first_s", first)
        self.rec.add("large_second_s", second)
        if first and direct:
            self.rec.add("ratio_large_first_vs_direct", first / direct)
        if second and direct:
            self.rec.add("ratio_large_second_vs_direct", second / direct)
        self.rec.record("large", {"repeat": repeat, "direct_s": direct, "first_s": first, "second_s": second})
        progress(f"larger suite r{repeat}: bare {direct} s, first {first} s, second {second} s")

    # -- Track A repeats ------------------------------------------------------------------------------

    def repeats(self) -> None:
        """What repeats cost and what they buy: the score stage with 1 vs N repeats on the larger suite;
        Track A's spread over 10 seeds per task (demo and larger suite) and the repeats that bring the
        standard error of the mean under 0.005 (n >= (std / 0.005)^2)."""
        import math

        import large_suite

        n = self.args.repeats_n
        home = self.fresh_home("repeats")
        env, tasks = self.large_env(), [large_suite.TASK_FILE]
        stage: dict[int, float | None] = {}
        with RssSampler() as sampler:
            for count in (1, n):
                _, result, _ = self.harness_score(f"repeats-{count}", home, sampler, env_dir=env, tasks=tasks,
                                                  repeats=count)
                stage[count] = ((result or {}).get("timings") or {}).get("score_s")
        self.rec.add("repeats_score_stage_1_s", stage.get(1))
        self.rec.add(f"repeats_score_stage_{n}_s", stage.get(n))
        if stage.get(1) and stage.get(n):
            self.rec.add("ratio_repeats_n_vs_1", stage[n] / stage[1])
        spread = {}
        with RssSampler() as sampler:
            for suite, suite_env, suite_tasks in (("demo", self.demo_env, self.tasks), ("large", env, tasks)):
                _, result, _ = self.harness_score(f"spread-{suite}", home, sampler, env_dir=suite_env,
                                                  tasks=suite_tasks, repeats=10)
                for task in (result or {}).get("tasks", []):
                    values = (task.get("track_a_detail") or {}).get("values") or []
                    if len(values) < 2:
                        continue
                    std = statistics.stdev(values)  # the sample std: what the SE of a mean uses
                    spread[task["task"]] = {"suite": suite, "values": values, "mean": statistics.fmean(values),
                                            "std": std, "repeats_for_se_0005": max(1, math.ceil((std / 0.005) ** 2))}
        self.rec.record("repeats", {"score_stage_s": stage, "spread": spread})
        for name, row in spread.items():
            self.rec.define(f"track_a_std_{name}", "", f"Track A sample std over 10 seeds ({row['suite']} suite)")
            self.rec.add(f"track_a_std_{name}", row["std"])
            self.rec.define(f"track_a_repeats_for_se_0005_{name}", "repeats",
                            "repeats that bring the standard error of the mean under 0.005")
            self.rec.add(f"track_a_repeats_for_se_0005_{name}", row["repeats_for_se_0005"])
        progress(f"repeats: score stage 1 vs {n}: {stage}; spread: "
                 + ", ".join(f"{k} std {v['std']:.4f} (n>={v['repeats_for_se_0005']})" for k, v in spread.items()))

    # -- locks ----------------------------------------------------------------------------------------

    _crepe_image: str | None = None

    def _drop_crepe_image(self) -> None:
        if self._crepe_image:
            subprocess.run(["docker", "rmi", "-f", self._crepe_image], capture_output=True)
            self._crepe_image = None
        os.sync()
        time.sleep(5)  # let the engine's deletion and the kernel's writeback settle

    def lock(self, repeat: int) -> None:
        """The CREPE example: its first build resolves and downloads its requirements; with the image
        removed, the rebuild installs its lock (hash-checked, no resolution). Both download every
        wheel again (~210 MB from PyPI), so the network's moods weigh on both: one pair per repeat."""
        home = self.fresh_home(f"lock-{repeat}")
        dest = self.work / "submissions" / f"crepe-{uuid.uuid4().hex[:8]}"
        shutil.copytree(REPO / "examples" / "crepe_encoder", dest, ignore=shutil.ignore_patterns("__pycache__"))
        with open(dest / "crepe_encoder.py", "a") as fh:
            fh.write(f"# aecc bench lock {uuid.uuid4().hex}\n")
        builds = {}
        for which in ("cold", "lock"):
            # Both builds start from the same state: the CREPE image made just before (the previous
            # repeat's lock build, or this repeat's cold one) removed and the disk flushed. When only
            # the lock build followed such a removal it measured 1.23x the cold one (20261129T043041Z);
            # from the same state the two are at parity (20261129T055715Z).
            self._drop_crepe_image()
            seconds, report = self.validate_once(dest, f"lock-{which}-{repeat}", home)
            build = ((report or {}).get("timings") or {}).get("build_s")
            builds[which] = build
            self._crepe_image = ((report or {}).get("submission") or {}).get("image")
            source = (((report or {}).get("submission") or {}).get("lock") or {}).get("source")
            progress(f"CREPE build ({which}) r{repeat}: build stage {build} s, lock {source}")
        self.rec.add("crepe_build_cold_s", builds.get("cold"))
        self.rec.add("crepe_build_lock_s", builds.get("lock"))
        if builds.get("cold") and builds.get("lock"):
            self.rec.add("ratio_crepe_lock_vs_cold", builds["lock"] / builds["cold"])
        self.rec.record("lock", {"repeat": repeat, **builds})

    # -- ASR: the task that trains with a language model ------------------------------------------

    def asr(self) -> None:
        """LibriSpeech ASR (X-ARES's Track A trains an adapter into a causal LM) on the small generated
        set, with the test suite's stand-in models (tests/harness/tasks/standins.py: a 38k-parameter
        Qwen2 LM and tokenizers, built offline in the runtime image): Track A's time per repeat (the
        agent's own clock) and the score container's peak memory (the harness's cgroup sample)."""
        import random

        from harness.tasks import demo, models

        env = self.work / "asr-env"
        demo.generate(env, ["librispeech"], seed=0)
        store, ctl = self.work / "asr-models", self.work / "asr-ctl"
        for folder in (store, ctl):
            folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(0)
        (ctl / "sentences.json").write_text(json.dumps([demo.asr_sentence(rng) for _ in range(200)]))
        shutil.copy2(REPO / "tests" / "harness" / "tasks" / "standins.py", ctl / "standins.py")
        subprocess.run(["chmod", "-R", "a+rwX", str(env), str(store), str(ctl)], check=True)
        name = f"aecc-bench-standins-{uuid.uuid4().hex[:12]}"
        cmd = ["docker", "run", "--rm", "--name", name, "--network", "none", "--user", "10001:10001",
               "-e", "HOME=/tmp", "-v", f"{ctl}:/ctl:ro", "-v", f"{store}:/models", self.runtime,
               "python", "/ctl/standins.py", "--out", "/models", "--sentences", "/ctl/sentences.json"]
        _CONTAINERS.add(name)
        rc, seconds, _ = timed_run(cmd, self.work / "logs" / "asr-standins.log")
        _CONTAINERS.discard(name)
        if rc != 0:
            self.rec.error("asr", f"building the stand-in models exited {rc}", _tail(self.work / "logs" / "asr-standins.log"))
            return
        models.write_manifest(store, ["qwen2", "bert-base-uncased:tokenizer"], origin="local")
        progress(f"asr: stand-in models built in {seconds:.0f} s")
        home = self.fresh_home("asr")
        n = 3
        with RssSampler() as sampler:
            wall, result, _ = self.harness_score("asr", home, sampler, "--models", str(store), env_dir=env,
                                                 tasks=["librispeech"], repeats=n)
        if result is None or wall is None:
            return
        [task] = [t for t in result["tasks"] if t["task"] == "librispeech"]
        track_a_s = (task.get("timings") or {}).get("track_a_s")
        peak = ((result.get("resources") or {}).get("score") or {}).get("peak_host_memory_bytes")
        self.rec.add("asr_track_a_s", track_a_s)
        self.rec.add("asr_track_a_per_repeat_s", track_a_s / n if track_a_s else None)
        self.rec.add("asr_score_peak_mib", peak / 2**20 if peak else None)
        self.rec.add("asr_score_stage_s", (result.get("timings") or {}).get("score_s"))
        self.rec.record("asr", {"repeats": n, "track_a_values": (task.get("track_a_detail") or {}).get("values"),
                                "track_a_s": track_a_s, "score_peak_bytes": peak, "wall_s": wall})
        progress(f"asr: Track A x{n} in {track_a_s} s, score container peak {peak and peak // 2**20} MiB, "
                 f"WER_inv {(task.get('track_a_detail') or {}).get('values')}")

    # -- sizes, machine, versions ----------------------------------------------------------------

    def sizes(self) -> None:
        from harness.layers.build import current_ref
        from harness.layers.model import (
            base_layer,
            runtime_deps_layer,
            runtime_layer,
            torch_layer,
        )

        refs = {"base": base_layer(), "torch": torch_layer(),
                "runtime_deps": runtime_deps_layer(), "runtime": runtime_layer()}
        sizes = {}
        for name, layer in refs.items():
            ref = current_ref(self.client, layer)
            try:
                sizes[name] = (ref, int(self.client.images.get(ref).attrs["Size"]))
            except Exception as exc:  # noqa: BLE001 - a missing layer is recorded, not fatal
                self.rec.error("sizes", f"image {ref}", str(exc))
        sub = sorted(self.submission_images)
        if not sub:
            sub_dir = self.throwaway("sizes")
            seconds, _ = self.validate_once(sub_dir, "sizes-validate", self.fresh_home("sizes"))
            sub = sorted(self.submission_images)
        if sub:
            sizes["submission"] = (sub[0], int(self.client.images.get(sub[0]).attrs["Size"]))
        for name, (ref, size) in sizes.items():
            metric = f"image_size_{name}_mb"
            self.rec.define(metric, "MB", f"size of {ref.rsplit(':', 1)[0]} as the engine reports it (shared layers "
                                          "counted in full)")
            self.rec.add(metric, size / 1e6)
        if "submission" in sizes and "torch" in sizes:
            self.rec.define("image_size_submission_layer_mb", "MB",
                            "what a submission image adds over its torch layer (the example: no requirements)")
            self.rec.add("image_size_submission_layer_mb", (sizes["submission"][1] - sizes["torch"][1]) / 1e6)
        self.rec.record("sizes", {k: {"ref": ref, "bytes": size} for k, (ref, size) in sizes.items()})
        progress("image sizes: " + ", ".join(f"{k} {v[1] / 1e9:.2f} GB" for k, v in sizes.items()))

    def machine(self) -> dict:
        import psutil

        cpu_model = "unknown"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        info = self.client.info()
        version = self.client.version()
        return {
            "hostname": platform.node(),
            "cpu_model": cpu_model,
            "cpus": os.cpu_count(),
            "ram_bytes": psutil.virtual_memory().total,
            "kernel": platform.release(),
            "os": platform.platform(),
            "python": platform.python_version(),
            "docker_server_version": version.get("Version"),
            "docker_storage_driver": info.get("Driver"),
            "docker_cgroup_version": info.get("CgroupVersion"),
            "load_average_start": [round(x, 2) for x in os.getloadavg()],
            "other_containers_running_at_start": len(self.client.containers.list()),
        }

    def versions(self) -> dict:
        from harness import __version__
        from harness.layers.model import harness_commit

        labels = self.client.images.get(self.runtime).labels or {}
        freeze = dict(line.split("==", 1) for line in labels.get("org.aecc.pip-freeze", "").splitlines()
                      if "==" in line)
        return {
            "harness": __version__,
            "harness_commit": harness_commit(),
            "runtime_image": self.runtime,
            "runtime_image_harness_commit": labels.get("org.aecc.harness-commit"),
            "torch": freeze.get("torch"),
            "torchaudio": freeze.get("torchaudio"),
            "xares": freeze.get("xares"),
        }

    # -- cleanup ---------------------------------------------------------------------------------

    def remove_throwaway_images(self) -> list[str]:
        """Only aecc/submission tags that start with the sha12 of a throwaway this bench made."""
        import docker.errors

        from harness.stages.build import SUBMISSION_REPO

        removed = []
        for image in self.client.images.list(name=SUBMISSION_REPO):
            for tag in image.tags:
                repo, _, name = tag.rpartition(":")
                if repo == SUBMISSION_REPO and name[:12] in self.throwaway_shas and name[12:13] == "-":
                    try:
                        self.client.images.remove(tag, noprune=False)
                        removed.append(tag)
                    except docker.errors.APIError as exc:
                        progress(f"could not remove {tag}: {exc}")
        return removed


def _result_digest(result: dict | None) -> dict | None:
    if not result:
        return None
    return {
        "sha256": result["submission"]["sha256"], "image": result["submission"]["image"],
        "timings": result.get("timings"), "status": result.get("status"),
        "tasks": {t["task"]: {"track_a": t["track_a"], "track_b": t["track_b"], "outcome": t["outcome"]}
                  for t in result["tasks"]},
    }


# --- targets, table, JSON ---------------------------------------------------------------------


def evaluate_targets(metrics: dict[str, dict], notes: list[str]) -> list[dict]:
    out = []
    for metric, op, threshold, text in TARGETS:
        value = (metrics.get(metric) or {}).get("median")
        if value is None:
            out.append({"target": text, "metric": metric, "op": op, "threshold": threshold, "value": None,
                        "status": "not measured", "note": ""})
            continue
        ok = value < threshold if op == "<" else value <= threshold
        note = "" if ok else f"missed by {(value / threshold - 1) * 100:.0f} % ({value:.3g} vs {threshold:g})"
        out.append({"target": text, "metric": metric, "op": op, "threshold": threshold, "value": round(value, 4),
                    "status": "pass" if ok else "miss", "note": note})
    return out


# Which numbers explain each ratio target: (baseline metric, what the baseline is, prefix of the
# harness run's per-stage metrics or None, what the harness run is).
MISS_SOURCES = {
    "ratio_first_vs_direct": ("direct_xares_s", "bare X-ARES on the demo suite", "score_first_stage_",
                              "first submission"),
    "ratio_second_vs_direct": ("direct_xares_s", "bare X-ARES on the demo suite", "score_second_stage_",
                               "second submission"),
    "ratio_batch_vs_sequential": ("batch_sequential_s", "K sequential `aecc score` runs", None, "the batch"),
    "ratio_batch_vs_direct": ("batch_direct_s", "K bare X-ARES runs", "score_second_stage_",
                              "batch (a demo-suite second submission, by stage, for scale)"),
    "ratio_large_first_vs_direct": ("large_direct_s", "bare X-ARES on the larger suite", "large_first_stage_",
                                    "first submission on the larger suite"),
    "ratio_large_second_vs_direct": ("large_direct_s", "bare X-ARES on the larger suite", "large_second_stage_",
                                     "second submission on the larger suite"),
    "ratio_crepe_lock_vs_cold": ("crepe_build_cold_s", "the CREPE example's first build stage", None,
                                 "rebuild from its lock"),
}


def explain_misses(metrics: dict[str, dict], targets: list[dict]) -> list[str]:
    """Where a ratio target is missed: its own baseline, and which of the harness's stages took the time."""
    notes = []
    for t in targets:
        source = MISS_SOURCES.get(t["metric"])
        if t["status"] != "miss" or source is None:
            continue
        baseline_metric, baseline_text, stage_prefix, run_text = source
        baseline = (metrics.get(baseline_metric) or {}).get("median")
        if baseline is None:
            continue
        note = f"{t['metric']} {t['value']:.2f}x: {baseline_text} took {baseline:.1f} s (median)"
        stages = {k[len(stage_prefix):]: v["median"] for k, v in metrics.items()
                  if stage_prefix and k.startswith(stage_prefix) and v.get("median") is not None}
        if stages:
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(stages.items(), key=lambda kv: -kv[1]))
            note += f"; the {run_text}, by stage (medians): {parts}"
        notes.append(note)
    return notes


def render(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160)
    m = doc["machine"]
    title = (f"aecc bench {doc['created_utc']}  ({m['cpu_model']}, {m['cpus']} CPUs, {m['ram_bytes'] / 2**30:.0f} GiB, "
             f"docker {m['docker_server_version']}/{m['docker_storage_driver']}, harness "
             f"{doc['versions']['harness']} {doc['versions']['harness_commit'][:12]})")
    table = Table(title=title)
    for column in ("metric", "unit", "median", "min .. max", "n", "target", "status"):
        table.add_column(column)
    targets = {t["metric"]: t for t in doc["targets"]}
    for name, metric in doc["metrics"].items():
        target = targets.get(name)
        status = Text("")
        if target:
            style = {"pass": "green", "miss": "bold red"}.get(target["status"], "dim")
            status = Text(target["status"], style=style)
        fmt = (lambda v: "-" if v is None else (f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"))  # noqa: E731
        table.add_row(name, metric["unit"], fmt(metric["median"]),
                      f"{fmt(metric['min'])} .. {fmt(metric['max'])}" if metric["n"] > 1 else "",
                      str(metric["n"]), f"{target['op']} {target['threshold']:g}" if target else "", status)
    console.print(table)
    for t in doc["targets"]:
        if t["note"]:
            console.print(f"[bold]{t['metric']}[/]: {t['note']}", highlight=False)
    for note in doc["notes"]:
        console.print(f"note: {note}", highlight=False)
    for err in doc["errors"]:
        console.print(Text(f"error in {err['group']}: {err['what']}", style="red"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--demo-env", required=True, help="the demo suite's data (`python -m harness.tasks.demo DIR`)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every measurement (default 3)")
    parser.add_argument("--k", type=int, default=4, help="submissions per parallel measurement (default 4)")
    parser.add_argument("--batch-k", type=int, default=6, help="submissions per batch measurement (default 6)")
    parser.add_argument("--repeats-n", type=int, default=5, help="Track A repeats to price against 1 (default 5)")
    parser.add_argument("--parallel", default="1,2", help="concurrent `aecc score` processes to try (default 1,2)")
    parser.add_argument("--quick", action="store_true", help="a fast check: --repeats 1, --k 2")
    parser.add_argument("--only", help=f"comma-separated groups: {', '.join(GROUPS)} (aliases: validate, images)")
    parser.add_argument("--work", help="scratch folder (default: a new one under /tmp, removed at the end)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder (logs, results)")
    parser.add_argument("--keep-images", action="store_true", help="keep the throwaway submissions' images")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the JSON goes (default bench/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.k = 1, 2
    if args.repeats < 1 or args.k < 1:
        parser.error("--repeats and --k must be at least 1")
    try:
        args.parallel = sorted({int(n) for n in args.parallel.split(",")})
    except ValueError:
        parser.error("--parallel takes comma-separated integers, e.g. 1,2")
    if min(args.parallel) < 1:
        parser.error("--parallel values must be at least 1")
    groups: list[str] = []
    for name in (args.only.split(",") if args.only else ["all"]):
        name = name.strip()
        if name in ALIASES:
            groups += ALIASES[name]
        elif name in GROUPS:
            groups.append(name)
        else:
            parser.error(f"unknown group {name!r}; choose from {', '.join(GROUPS)}")
    args.groups = [g for g in GROUPS if g in groups]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (Path(args.demo_env) / "tiny_tones").is_dir():
        print(f"error: {args.demo_env} holds no demo suite; run `python -m harness.tasks.demo {args.demo_env}` "
              "(or `make demo-data`)", file=sys.stderr)
        return 2
    created = dt.datetime.now(dt.timezone.utc)
    bench = Bench(args)
    rec = bench.rec
    progress(f"groups {', '.join(args.groups)}; repeats {args.repeats}; K {args.k}; N {args.parallel}; "
             f"work {bench.work}")
    machine = bench.machine()
    versions = bench.versions()
    rec.define("validate_warm_s", "s", "`aecc validate examples/good_encoder`, images and submission image cached")
    rec.define("validate_cold_build_s", "s", "`aecc validate` of a new throwaway copy: cold submission build")
    rec.define("validate_cold_build_stage_s", "s", "the build stage's own timing inside that validate")
    rec.define("images_noop_s", "s", "`aecc images build`, every layer cached")
    rec.define("direct_xares_s", "s", "X-ARES 0.1.3 directly (`python -m xares.run --max-jobs 0`) on the demo suite")
    rec.define("score_first_s", "s", "`aecc score`, first submission (empty prepare cache, cold submission build)")
    rec.define("score_second_s", "s", "`aecc score`, second submission at the same sample rate (prepare cached)")
    rec.define("ratio_first_vs_direct", "x", "first submission / X-ARES directly, paired per repeat")
    rec.define("ratio_second_vs_direct", "x", "second submission / X-ARES directly, paired per repeat")
    rec.define("ratio_second_vs_first", "x", "second submission / first submission, paired per repeat")
    rec.define("score_second_cold_s", "s", "`aecc score --no-warm-start`, another second submission: "
               "each stage's container started only when its inputs are ready")
    rec.define("ratio_warm_vs_cold_second", "x", "second submission with warm start / without, paired per repeat")
    rec.define("orchestrator_rss_peak_mib", "MiB", "peak RSS of one `aecc score` process tree (docker excluded)")
    rec.define("batch_s", "s", f"one `aecc score` batch of {args.batch_k} throwaway submissions (fresh AECC_HOME)")
    rec.define("batch_sequential_s", "s", f"{args.batch_k} sequential `aecc score` runs (fresh AECC_HOME)")
    rec.define("batch_direct_s", "s", f"{args.batch_k} bare X-ARES runs")
    rec.define("ratio_batch_vs_sequential", "x", "the batch / the sequential runs, paired per repeat")
    rec.define("ratio_batch_vs_direct", "x", "the batch / the bare X-ARES runs, paired per repeat")
    rec.define("batch_rss_peak_mib", "MiB", "peak RSS of the batch's `aecc score` process tree")
    rec.define("batch_rss20_peak_mib", "MiB", "peak RSS of one `aecc score` with 20 queued submissions")
    rec.define("batch_rss20_s", "s", "20 submissions (tiny_tones only) in one `aecc score`")
    rec.define("large_direct_s", "s", "X-ARES directly on the larger suite (about 37 min of audio)")
    rec.define("large_first_s", "s", "`aecc score` on the larger suite, first submission (prepare runs)")
    rec.define("large_second_s", "s", "`aecc score` on the larger suite, second submission (prepare cached)")
    rec.define("ratio_large_first_vs_direct", "x", "larger suite: first submission / X-ARES directly")
    rec.define("ratio_large_second_vs_direct", "x", "larger suite: second submission / X-ARES directly")
    rec.define("repeats_score_stage_1_s", "s", "larger suite: the score stage with one Track A run")
    rec.define(f"repeats_score_stage_{args.repeats_n}_s", "s", f"larger suite: the score stage with {args.repeats_n}")
    rec.define("ratio_repeats_n_vs_1", "x", f"score stage with {args.repeats_n} Track A repeats / with 1")
    rec.define("crepe_build_cold_s", "s", "CREPE example: the build stage of its first build (resolves, downloads)")
    rec.define("crepe_build_lock_s", "s", "CREPE example: the build stage of a rebuild from its lock")
    rec.define("ratio_crepe_lock_vs_cold", "x", "lock-based rebuild / first build")
    rec.define("asr_track_a_s", "s", "LibriSpeech ASR on the small generated set, stand-in LM: Track A, 3 repeats "
               "(the score agent's clock)")
    rec.define("asr_track_a_per_repeat_s", "s", "the same, per repeat")
    rec.define("asr_score_peak_mib", "MiB", "the score container's peak memory (cgroup) while scoring ASR")
    rec.define("asr_score_stage_s", "s", "the score stage of the ASR run (container start, X-ARES import, both tracks)")
    failed = False

    def guarded(group: str, fn: Callable[..., None], *fn_args: Any) -> None:
        # A group that breaks is an error in the JSON, never the end of the bench: the other
        # groups' numbers (maybe an hour of them) are written all the same.
        try:
            fn(*fn_args)
        except Exception as exc:  # noqa: BLE001 (recorded with its traceback)
            import traceback

            rec.error(group, f"{type(exc).__name__}: {exc}", traceback.format_exc()[-4000:])
            progress(f"{group}: failed: {type(exc).__name__}: {exc} (recorded; the bench goes on)")

    try:
        with _interruptible():
            validate_home = bench.fresh_home("validate")
            if "validate-warm" in args.groups:
                progress("validate warm: warm-up run (untimed) so the example's image and caches exist")
                bench.validate_once(EXAMPLE, "validate-warmup", validate_home)
            parallel_home = None
            if "parallel" in args.groups:
                parallel_home = bench.fresh_home("parallel")
                bench.parallel_warmup(parallel_home)
            for r in range(args.repeats):
                progress(f"--- repeat {r + 1}/{args.repeats}")
                if "validate-warm" in args.groups:
                    guarded("validate-warm", bench.validate_warm, r, validate_home)
                if "validate-cold" in args.groups:
                    guarded("validate-cold", bench.validate_cold, r, validate_home)
                if "images-noop" in args.groups:
                    guarded("images-noop", bench.images_noop, r, validate_home)
                if "score" in args.groups:
                    guarded("score", bench.score, r)
                if "parallel" in args.groups:
                    guarded("parallel", bench.parallel, r, parallel_home)
                if "batch" in args.groups:
                    guarded("batch", bench.batch, r)
                if "large" in args.groups:
                    guarded("large", bench.large, r)
            if "rss20" in args.groups:
                guarded("rss20", bench.rss20)
            if "repeats" in args.groups:
                guarded("repeats", bench.repeats)
            if "lock" in args.groups:
                for r in range(args.repeats):
                    guarded("lock", bench.lock, r)
            if "asr" in args.groups:
                guarded("asr", bench.asr)
            if "sizes" in args.groups:
                guarded("sizes", bench.sizes)
    except KeyboardInterrupt:
        failed = True
        rec.notes.append("interrupted: partial results")
    finally:
        if not args.keep_images:
            removed = bench.remove_throwaway_images()
            progress(f"removed {len(removed)} throwaway submission image(s)")
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    metrics = {k: v for k, v in rec.summarised().items() if v["n"] or k in {t[0] for t in TARGETS}}
    if "parallel" in args.groups:
        rec.notes.append(parallel_note(metrics, args.parallel, machine["cpus"]))
    if "score" in args.groups:
        rec.notes.append("X-ARES baseline runs with --max-jobs 0 (every stage in one process): with its default "
                         "--max-jobs 1, xares.run 0.1.3 crashes on a CPU-only host in stage 1 (`i % num_gpus` with "
                         "torch.cuda.device_count() == 0: ZeroDivisionError).")
    targets = evaluate_targets(metrics, rec.notes)
    rec.notes.extend(explain_misses(metrics, targets))
    doc = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "args": {"repeats": args.repeats, "k": args.k, "parallel": args.parallel, "quick": args.quick,
                 "groups": args.groups, "demo_env": str(Path(args.demo_env).resolve()),
                 "tasks": [t.name for t in bench.tasks]},
        "machine": machine,
        "versions": versions,
        "metrics": metrics,
        "targets": targets,
        "notes": rec.notes,
        "errors": rec.errors,
        "raw": rec.raw,
        "wall_s": round(time.monotonic() - START, 1),
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{created.strftime('%Y%m%dT%H%M%SZ')}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    render(doc)
    print(f"results: {path}")
    if args.keep_work or rec.errors:
        print(f"scratch kept (logs): {bench.work}")
    else:
        shutil.rmtree(bench.work, ignore_errors=True)
    return 130 if failed else (1 if rec.errors else 0)


def parallel_note(metrics: dict[str, dict], counts: Sequence[int], cpus: int | None) -> str:
    base = min(counts)
    parts, stop = [], None
    previous = (metrics.get(f"parallel_n{base}_throughput_per_min") or {}).get("median")
    for n in counts:
        value = (metrics.get(f"parallel_n{n}_throughput_per_min") or {}).get("median")
        if value is None:
            continue
        parts.append(f"N={n}: {value:.2f}/min")
        if n != base and previous and stop is None and value < previous * 1.1:
            stop = n
        previous = value
    if not parts:
        return "parallel: not measured"
    where = (f"it stops scaling at N={stop} (less than +10 % throughput over N={stop - 1 if stop - 1 in counts else base})"
             if stop else f"it still scales up to N={max(counts)}")
    return (f"parallel throughput on {cpus} CPUs: {'; '.join(parts)}; {where}. Each container already gets the "
            "profile's 2 CPUs, so on a 2-core host concurrent submissions share the same cores.")


if __name__ == "__main__":
    sys.exit(main())
