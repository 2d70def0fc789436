"""The bench's groups whose inputs are not the demo suite and the good example: the generated suites
(`large`, `batch-large`, `hours`, `repeats`), the CREPE example (`lock`) and the ASR set with its
stand-in models (`asr`).

Each generates or copies its own data, takes long, and runs once or once per repeat; kept apart from
the demo-suite scenarios so that those read as one comparison with bare X-ARES. Mixed into `Bench`
(bench/scenarios.py), whose helpers (`harness_score`, `direct_xares`, `validate_once`, `fresh_home`)
and state (`rec`, `work`, `args`) these methods use.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from bench.sampling import CONTAINERS, RssSampler, progress, tail, timed_run

REPO = Path(__file__).resolve().parent.parent


class BeyondDemo:
    """The groups large, batch-large, hours, repeats, lock and asr, as methods of `Bench`."""

    _suite_envs: dict[str, Path]  # generated suites by key, once per bench (`suite_env`; set by Bench)

    # -- the generated suites: larger (37 min) and 3 hours ------------------------------------------

    def suite_env(self, key: str) -> Path:
        """The env holding suite `key`, generated on first use. It lives in --suites-dir, outside the
        scratch folder: generation is idempotent, so a later bench only re-hashes the shards (a second
        or two for the 3-hour suite's 0.4 GB, against a minute and more to write them again)."""
        if key not in self._suite_envs:
            from bench import large_suite

            suite = large_suite.SUITES[key]
            # One env per suite: bare X-ARES copies its whole env for every run, and the larger
            # suite's runs must not copy the 3-hour suite's 0.4 GB with it.
            env = Path(self.args.suites_dir).resolve() / key
            env.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            manifest = suite.generate(env)
            subprocess.run(["chmod", "-R", "a+rX", str(env)], check=True)
            self.rec.add(f"{key}_audio_h", manifest["audio_seconds"] / 3600)
            progress(f"{suite.title}: {manifest['audio_seconds'] / 3600:.2f} h of audio in {env / suite.name}, "
                     f"ready in {time.monotonic() - t0:.1f} s")
            self._suite_envs[key] = env
        return self._suite_envs[key]

    def large_env(self) -> Path:
        return self.suite_env("large")

    def large(self, repeat: int) -> None:
        self.suite_runs("large", repeat, prepared=True)

    def hours(self, repeat: int) -> None:
        # No prepared first here: the 3-hour target is on the later submissions, and a
        # prepare of 3 hours plus one more first submission would add minutes to every repeat.
        self.suite_runs("hours", repeat, prepared=False)

    def suite_runs(self, key: str, repeat: int, prepared: bool) -> None:
        """Bare X-ARES, a first and a second submission on suite `key` (metrics `<key>_*`); with
        `prepared`, also `aecc data prepare` then a first submission in a fresh AECC_HOME."""
        from bench import large_suite

        suite = large_suite.SUITES[key]
        env, tasks = self.suite_env(key), [suite.task_file]
        home = self.fresh_home(f"{key}-{repeat}")
        order = ("direct", "harness") if repeat % 2 else ("harness", "direct")
        direct = first = second = ahead_prepare = ahead_first = None
        with RssSampler() as sampler:
            for which in order:
                if which == "direct":
                    direct = self.direct_xares(repeat, env_dir=env, tasks=tasks, label=f"{key}-direct")
                    continue
                first, first_result, _ = self.harness_score(f"{key}-first-{repeat}", home, sampler, env_dir=env,
                                                            tasks=tasks)
                second, second_result, _ = self.harness_score(f"{key}-second-{repeat}", home, sampler, env_dir=env,
                                                              tasks=tasks)
                if prepared:
                    ahead_prepare, ahead_first, _ = self.prepared_first(
                        f"{key}-prepared-{repeat}", sampler, (first_result or second_result or {}).get("submission"),
                        env_dir=env, tasks=tasks)
                for name, result in (("first", first_result), ("second", second_result)):
                    for stage, value in ((result or {}).get("timings") or {}).items():
                        metric = f"{key}_{name}_stage_{stage}"
                        self.rec.define(metric, "s", f"{suite.title}, {name} submission: the harness's {stage} timing")
                        self.rec.add(metric, value)
        self.rec.add(f"{key}_direct_s", direct)
        self.rec.add(f"{key}_first_s", first)
        self.rec.add(f"{key}_second_s", second)
        if first and direct:
            self.rec.add(f"ratio_{key}_first_vs_direct", first / direct)
        if second and direct:
            self.rec.add(f"ratio_{key}_second_vs_direct", second / direct)
        entry = {"repeat": repeat, "direct_s": direct, "first_s": first, "second_s": second}
        if prepared:
            self.rec.add(f"{key}_data_prepare_s", ahead_prepare)
            self.rec.add(f"{key}_first_prepared_s", ahead_first)
            if ahead_first and direct:
                self.rec.add(f"ratio_{key}_first_prepared_vs_direct", ahead_first / direct)
            if ahead_first and first:
                self.rec.add(f"ratio_{key}_first_prepared_vs_first", ahead_first / first)
            entry.update(data_prepare_s=ahead_prepare, first_prepared_s=ahead_first)
        self.rec.record(key, entry)
        progress(f"{suite.title} r{repeat}: bare {direct} s, first {first} s, second {second} s"
                 + (f", data prepare {ahead_prepare} s then first {ahead_first} s" if prepared else ""))

    def batch_large(self, repeat: int) -> None:
        """K throwaway submissions in one `aecc score` on the larger suite (fresh AECC_HOME: it
        prepares once) against K bare X-ARES runs on it (each decodes the data again)."""
        from bench import large_suite

        k = self.args.batch_k
        env, tasks = self.large_env(), [large_suite.TASK_FILE]
        order = ("batch", "direct") if repeat % 2 == 0 else ("direct", "batch")
        walls: dict[str, float | None] = {}
        for which in order:
            if which == "direct":
                runs = [self.direct_xares(repeat * 100 + i, env_dir=env, tasks=tasks, label="batch-large-direct")
                        for i in range(k)]
                walls["direct"] = None if None in runs else sum(runs)
                continue
            walls["batch"], peak = self.batch_once(f"batch-large-{repeat}", k, env_dir=env, tasks=tasks,
                                                   group="batch-large")
            self.rec.add("batch_large_rss_peak_mib", peak / 2**20 if peak else None)
        self.rec.add("batch_large_s", walls.get("batch"))
        self.rec.add("batch_large_direct_s", walls.get("direct"))
        if walls.get("batch") and walls.get("direct"):
            self.rec.add("ratio_batch_large_vs_direct", walls["batch"] / walls["direct"])
        self.rec.record("batch-large", {"repeat": repeat, "k": k, "order": order,
                                        **{f"{w}_s": v for w, v in walls.items()}})
        progress(f"batch of {k} on the larger suite r{repeat}: batch {walls.get('batch')} s, "
                 f"bare X-ARES x{k} {walls.get('direct')} s")

    # -- Track A repeats ------------------------------------------------------------------------------

    def repeats(self) -> None:
        """What repeats cost and what they buy: the score stage with 1 vs N repeats on the larger suite;
        Track A's spread over 10 seeds per task (demo and larger suite) and the repeats that bring the
        standard error of the mean under 0.005 (n >= (std / 0.005)^2)."""
        import math

        from bench import large_suite

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

        from harness import demodata as demo
        from harness.tasks import models

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
        CONTAINERS.add(name)
        rc, seconds, _ = timed_run(cmd, self.work / "logs" / "asr-standins.log")
        CONTAINERS.discard(name)
        if rc != 0:
            self.rec.error("asr", f"building the stand-in models exited {rc}", tail(self.work / "logs" / "asr-standins.log"))
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
