"""The checks that run the encoder's forward: output type and shape, frame counts across lengths,
finiteness, determinism, batch independence, CUDA, memory and throughput.

Each method is one check (or one family of checks sharing a forward) and records its results
through `CheckerBase`; see `checker.contract` for the ids and what each one means.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from checker.common import (
    BATCH_ATOL_REL,
    BATCH_RTOL,
    DETERMINISM_ATOL,
    DETERMINISM_RTOL,
    FRAME_TOLERANCE_ABS,
    FRAME_TOLERANCE_REL,
    LENGTHS_S,
    LONG_INPUT_S,
    SEED,
    THROUGHPUT_REFERENCE_HOURS,
    CheckerBase,
    F,
    P,
    S,
    SubmissionCodeError,
    W,
    call_submission,
    memory_limit_bytes,
    peak_rss_bytes,
)
from checker.watchdog import WARMUP_BUDGET_S, WARMUP_SECONDS

#: the input of X-ARES 0.1.3's own checker (`audio_encoder_checker.check_audio_encoder`)
XARES_CHECK_SHAPE = (2, 50000)


class ForwardChecks(CheckerBase):

    def noise(self, batch: int, seconds: float, seed: int) -> Any:
        """Inputs come from their own generator: what the encoder draws from the global RNG
        cannot change them."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, max(1, int(round(seconds * self.sr))), generator=gen) * 0.1

    def forward(self, x: Any, where: str = "forward") -> tuple[Any, float]:
        """One eval-mode forward on self.device; returns (output, wall seconds)."""
        import torch

        x = x.to(self.device)
        self._sync(torch)
        started = time.monotonic()
        # Every call is watched: one past its budget ends the process with the report naming it.
        with self.watchdog.call(where, int(x.shape[0]), x.shape[-1] / self.sr), torch.inference_mode():
            out = call_submission(where, self.encoder, x)
            self._sync(torch)
        return out, time.monotonic() - started

    def _sync(self, torch: Any) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    @staticmethod
    def as_cpu(torch: Any, out: Any) -> Any:
        """A float64 CPU copy of a tensor output (None for anything else) for comparisons."""
        if not isinstance(out, torch.Tensor):
            return None
        return out.detach().to("cpu").to(torch.float64)

    def check_cuda(self, torch: Any) -> None:
        if self.blocked("cuda"):
            return
        if self.o.device == "cpu" or not torch.cuda.is_available():
            why = "--device cpu was requested" if self.o.device == "cpu" else "no CUDA device is visible in this container"
            self.add("cuda", S, f"not run: {why}; the T4 evaluation moves the encoder to cuda:0, so check it on a GPU "
                     "machine too (the t4 profile)")
            return
        self.begin("cuda")
        try:
            call_submission("eval", self.encoder.eval)
            call_submission("to(cuda)", self.encoder.to, "cuda")
        except SubmissionCodeError as err:
            self.fail_submission("cuda", err, "moving the encoder to CUDA raised",
                                 expected="encoder.to('cuda') works", fix="see the traceback")
            return
        self.device = "cuda"
        torch.cuda.reset_peak_memory_stats()
        try:
            out, seconds = self.forward(self.noise(2, 1.0, SEED + 1), "forward on cuda")
        except SubmissionCodeError as cuda_err:
            self.device = "cpu"
            try:
                call_submission("to(cpu)", self.encoder.to, "cpu")
                self.forward(self.noise(2, 1.0, SEED + 1), "forward on cpu")
            except SubmissionCodeError:
                self.add("cuda", S, "not judged: forward fails on the CPU as well; see forward_basic",
                         details=cuda_err.details())
                return
            self.fail_submission("cuda", cuda_err, "forward works on the CPU but raises on CUDA",
                                 expected="forward(audio.cuda()) works", fix="keep every tensor on audio.device")
            return
        cap = torch.cuda.get_device_capability()
        self.add("cuda", P, f"moved to CUDA and ran forward on {torch.cuda.get_device_name()}",
                 details={"capability": f"{cap[0]}.{cap[1]}", "forward_s": round(seconds, 4),
                          "is_t4_class": cap == (7, 5)})

    def check_forward_basic(self, torch: Any) -> None:
        """X-ARES's own call (`audio_encoder_checker.py`: `encoder(torch.randn(2, 50000))`), after a
        timed warm-up on the shortest input that sets the budgets of every later call."""
        if self.blocked("forward_basic"):
            return
        self.begin("forward_basic")
        try:
            call_submission("eval", self.encoder.eval)
        except SubmissionCodeError as err:
            self.fail_submission("forward_basic", err, "encoder.eval() raised", expected="encoder.eval() works",
                                 fix="see the traceback")
            return
        warmup = None
        if self.watchdog.budget.reference is None:
            # A warm-up that raises is not X-ARES's call: forward_lengths reports the 0.5 s input.
            try:
                _, seconds = self.forward(self.noise(1, WARMUP_SECONDS, SEED + 2), "warm-up forward")
                warmup = {"seconds": WARMUP_SECONDS, "wall_s": round(seconds, 4), "budget_s": WARMUP_BUDGET_S}
                self.report.timings["warmup_s"] = round(seconds, 4)
            except SubmissionCodeError as err:
                warmup = {"seconds": WARMUP_SECONDS, "raised": err.summary}
        gen = torch.Generator().manual_seed(SEED + 1)
        self.basic_input = torch.randn(*XARES_CHECK_SHAPE, generator=gen)
        try:
            out, seconds = self.forward(self.basic_input)
        except SubmissionCodeError as err:
            self.fail_submission("forward_basic", err, f"forward raised {type(err.exc).__name__} on X-ARES's own check "
                                 f"input, torch.randn{XARES_CHECK_SHAPE}",
                                 expected=f"forward(torch.randn{XARES_CHECK_SHAPE}) returns [2, T', output_dim]",
                                 fix="see the traceback; X-ARES calls encoder(audio) with audio of shape [B, T]")
            return
        self.outputs["forward_basic"] = out
        self.report.timings["forward_basic_s"] = round(seconds, 4)
        self.add("forward_basic", P, f"forward ran on {self.device} in eval mode on X-ARES's own check input",
                 details={"input_shape": list(XARES_CHECK_SHAPE), "device": self.device, "warmup": warmup})

    def check_forward_timeout(self) -> None:
        """Reached only when every forward returned within its budget (a hang ends the process)."""
        budget = self.watchdog.budget.to_dict()
        self.add("forward_timeout", P, f"every forward call returned within its budget ({budget['calls']} calls; "
                 f"warm-up {self.report.timings.get('warmup_s', 0):.3g} s of a fixed {WARMUP_BUDGET_S:g} s)",
                 details=budget)

    def check_outputs(self, torch: Any) -> None:
        # The shape checks do not wait for output_type: an int tensor of the right shape should
        # hear about its dtype only.
        if self.blocked("output_type"):
            return self._block_rest(("output_dtype", "output_rank", "output_batch", "output_dim_match"))
        out = self.outputs["forward_basic"]
        if not isinstance(out, torch.Tensor):
            fix = "return the tensor itself" + (", not a tuple/list/dict" if isinstance(out, (tuple, list, dict)) else "")
            self.add("output_type", F, "forward must return a torch.Tensor", expected="torch.Tensor [B, T', D]",
                     found=type(out).__name__, fix=fix)
        else:
            self.add("output_type", P, "a torch.Tensor", details={"dtype": str(out.dtype)})
            if not out.dtype.is_floating_point:
                self.add("output_dtype", F, "forward must return floating-point embeddings",
                         expected="a floating dtype (float32)", found=str(out.dtype), fix="return out.float()")
            elif out.dtype in (torch.float16, torch.bfloat16):
                self.add("output_dtype", W, f"{out.dtype} output loses precision in the probes and bfloat16 has no "
                         "native support on the T4 (sm_75)", expected="float32", found=str(out.dtype),
                         fix="return out.float()")
            else:
                self.add("output_dtype", P, f"a {out.dtype} tensor", details={"dtype": str(out.dtype)})
        if self.report.get("output_dtype") is None:
            self.blocked("output_dtype")
        if self.blocked("output_rank"):
            return self._block_rest(("output_batch", "output_dim_match"))
        if not isinstance(out, torch.Tensor):
            self.add("output_rank", S, "not run: the output is not a tensor (see output_type)")
            return self._block_rest(("output_batch", "output_dim_match"))
        shape = list(out.shape)
        if out.dim() != 3:
            self.add("output_rank", F, "forward must return frame embeddings [B, T', D] (X-ARES pools them itself)",
                     expected="a 3-D tensor [B, T', D]", found=f"{out.dim()}-D {shape}",
                     fix="return [B, T', D]; for one embedding per clip use out.unsqueeze(1)" if out.dim() == 2 else "return [B, T', D]")
        else:
            self.add("output_rank", P, f"3-D output {shape}", details={"shape": shape})
        if not self.blocked("output_batch"):
            if shape[0] == 2:
                self.add("output_batch", P, "the batch size is preserved")
            else:
                self.add("output_batch", F, "passed in a batch of 2 clips, but the encoder returned a different batch size",
                         expected="B = 2", found=f"B = {shape[0]} (shape {shape})", fix="keep dimension 0 as the batch")
        if not self.blocked("output_dim_match"):
            dim = self.report.get("attr_output_dim").details["output_dim"]
            if shape[2] == dim:
                self.add("output_dim_match", P, f"D = output_dim = {dim}")
            else:
                self.add("output_dim_match", F, "the last dimension of the output must equal output_dim",
                         expected=f"D = {dim}", found=f"D = {shape[2]} (shape {shape})",
                         fix="set output_dim to the real embedding size")

    def _estimate(self, seconds: float) -> float | None:
        """Wall seconds a forward on `seconds` of audio would take, from the lengths tried so far.

        Extrapolates with the exponent seen between the two longest lengths (clamped to 1..2), so
        an encoder whose cost grows quadratically (global attention) is not under-estimated.
        """
        done = sorted((r["seconds"], r["wall_s"]) for r in self.lengths if r["status"] == "ok" and r["wall_s"] > 0)
        if not done:
            return None
        (s1, t1), (s2, t2) = (done[-2] if len(done) > 1 else done[-1]), done[-1]
        exponent = 1.0
        if s2 > s1 and t2 > t1 > 0.01:
            exponent = min(2.0, max(1.0, math.log(t2 / t1) / math.log(s2 / s1)))
        return t2 * (seconds / s2) ** exponent * 1.5

    def _try_length(self, torch: Any, seconds: float) -> dict:
        row: dict = {"seconds": seconds, "samples": int(round(seconds * self.sr)), "frames": None,
                     "expected_frames": None, "wall_s": 0.0, "status": "ok"}
        estimate = self._estimate(seconds)
        remaining = self.o.max_seconds - self.elapsed()
        if estimate is not None and estimate > remaining:
            row.update(status="skipped", reason=f"estimated {estimate:.0f} s exceeds the {remaining:.0f} s left of --max-seconds")
            return row
        try:
            out, wall = self.forward(self.noise(1, seconds, SEED + 10 + int(seconds * 10)), f"forward on {seconds:g} s")
        except SubmissionCodeError as err:
            oom = type(err.exc).__name__ in ("OutOfMemoryError", "MemoryError")
            row.update(status="raised", error=err.summary, traceback=err.tail, out_of_memory=oom)
            if self.device == "cuda":
                torch.cuda.empty_cache()
            return row
        row["wall_s"] = round(wall, 4)
        if isinstance(out, torch.Tensor) and out.dim() == 3:
            row["frames"] = int(out.shape[1])
        self.outputs[f"{seconds:g}s"] = out
        return row

    def _lengths_result(self, check_id: str, rows: list[dict]) -> None:
        raised = [r for r in rows if r["status"] == "raised"]
        skipped = [r for r in rows if r["status"] == "skipped"]
        table = [{k: v for k, v in r.items() if k != "traceback"} for r in rows]
        if raised:
            first = raised[0]
            what = "ran out of memory" if first.get("out_of_memory") else "raised"
            self.add(check_id, F, f"forward {what} on a {first['seconds']:g} s input; X-ARES sends clips of any length "
                     "up to 10 minutes", expected="forward works at every length", found=first["error"],
                     fix="handle short and long inputs (pad very short ones, chunk long ones inside forward)",
                     details={"lengths": table, "traceback": first["traceback"]})
        elif skipped and len(skipped) == len(rows):
            self.add(check_id, S, f"not run: {skipped[0]['reason']}; inputs of "
                     + ", ".join(f"{r['seconds']:g} s" for r in skipped) + " were not tried", details={"lengths": table})
        elif skipped:
            self.add(check_id, W, "some lengths were not tried within the time budget: "
                     + ", ".join(f"{r['seconds']:g} s" for r in skipped), details={"lengths": table})
        else:
            self.add(check_id, P, "forward ran on " + ", ".join(f"{r['seconds']:g} s" for r in rows),
                     details={"lengths": table})

    def check_lengths(self, torch: Any) -> None:
        if self.blocked("forward_lengths"):
            return
        rows = []
        for seconds in LENGTHS_S:
            self.begin("forward_lengths", running_seconds=seconds, lengths=rows[:])
            rows.append(self._try_length(torch, seconds))
            self.lengths = rows[:]
        self._lengths_result("forward_lengths", rows)

    def check_long_input(self, torch: Any) -> None:
        if self.blocked("long_input"):
            return
        self.begin("long_input", running_seconds=LONG_INPUT_S)
        row = self._try_length(torch, LONG_INPUT_S)
        self.lengths.append(row)
        self._lengths_result("long_input", [row])

    def check_frames(self) -> None:
        """output_frames_positive and frames_track_hop, from every length tried so far."""
        for check_id in ("output_frames_positive", "frames_track_hop"):
            self.report.checks = [c for c in self.report.checks if c.id != check_id]
        rows = [r for r in self.lengths if r["status"] == "ok" and r["frames"] is not None]
        if not self.blocked("output_frames_positive"):
            zero = [r["seconds"] for r in rows if r["frames"] <= 0]
            table = {f"{r['seconds']:g}s": r["frames"] for r in rows}
            if zero:
                self.add("output_frames_positive", F, "the encoder returned no frames for some inputs; X-ARES then has "
                         "nothing to pool", expected="T' > 0 for every input length",
                         found="T' = 0 for " + ", ".join(f"{s:g} s" for s in zero),
                         fix="pad the input to at least one window, or round the frame count up",
                         details={"frames": table})
            else:
                self.add("output_frames_positive", P, "T' > 0 at every length", details={"frames": table})
        if self.blocked("frames_track_hop"):
            return
        hop = self.report.get("attr_hop_size").details["hop_size_in_ms"]
        bad, table = [], []
        for r in rows:
            if r["frames"] <= 0:
                continue  # reported by output_frames_positive
            expected = r["seconds"] * 1000.0 / hop
            r["expected_frames"] = round(expected, 2)
            tolerance = max(FRAME_TOLERANCE_ABS, FRAME_TOLERANCE_REL * expected)
            table.append({"seconds": r["seconds"], "frames": r["frames"], "expected": round(expected, 2),
                          "tolerance": round(tolerance, 2)})
            if abs(r["frames"] - expected) > tolerance:
                bad.append(r)
        if not table:
            self.add("frames_track_hop", S, "not run: no input length produced frames")
            return
        if bad:
            r = bad[-1]
            implied = r["seconds"] * 1000.0 / r["frames"]
            self.add("frames_track_hop", F, f"T' does not follow duration / hop_size_in_ms: hop_size_in_ms says {hop:g} ms "
                     f"but the frames are {implied:.3g} ms apart", expected=f"about {r['expected_frames']:g} frames for "
                     f"{r['seconds']:g} s at {hop:g} ms", found=f"{r['frames']} frames",
                     fix=f"set hop_size_in_ms to {implied:.3g}, or fix the frame rate", details={"lengths": table})
        else:
            self.add("frames_track_hop", P, f"T' follows duration / {hop:g} ms at every length", details={"lengths": table})

    def check_finite(self, torch: Any) -> None:
        self.report.checks = [c for c in self.report.checks if c.id != "finite"]
        if self.blocked("finite"):
            return
        bad = {}
        if not any(isinstance(o, torch.Tensor) for o in self.outputs.values()):
            self.add("finite", S, "not run: the output is not a tensor (see output_type)")
            return
        for label, out in self.outputs.items():
            if isinstance(out, torch.Tensor) and out.numel():
                finite = torch.isfinite(out)
                if not bool(finite.all()):
                    bad[label] = {"nan": int(torch.isnan(out).sum()) if out.dtype.is_floating_point else 0,
                                  "inf": int(torch.isinf(out).sum()) if out.dtype.is_floating_point else 0,
                                  "values": out.numel()}
        if bad:
            self.add("finite", F, "the output contains NaN or Inf", expected="finite values only",
                     found=", ".join(f"{k}: {v['nan']} NaN, {v['inf']} Inf" for k, v in bad.items()),
                     fix="look for log(0), division by zero or fp16 overflow", details={"outputs": bad})
        else:
            self.add("finite", P, "every output is finite", details={"outputs_checked": sorted(self.outputs)})

    def check_deterministic(self, torch: Any) -> None:
        if self.blocked("deterministic"):
            return
        self.begin("deterministic")
        first = self.as_cpu(torch, self.outputs["forward_basic"])
        if first is None:
            self.add("deterministic", S, "not run: the output is not a tensor (see output_type)")
            return
        # An empty output agrees with anything; compare on the shortest input that gives frames
        # (the official template emits none for 1 s and random values for longer inputs).
        probe = self.basic_input
        try:
            for seconds in (10.0, 60.0):
                if first.numel():
                    break
                probe = self.noise(1, seconds, SEED + 7)
                out, _ = self.forward(probe, "forward for the determinism check")
                first = self.as_cpu(torch, out)
                if first is None:
                    self.add("deterministic", S, "not run: the output is not a tensor (see output_type)")
                    return
            if not first.numel():
                self.add("deterministic", S, "not run: the encoder returned no frames for 1 s, 10 s or 60 s inputs")
                return
            second, _ = self.forward(probe, "second forward")
        except SubmissionCodeError as err:
            self.fail_submission("deterministic", err, "a second forward of the same input raised")
            return
        a, b = first, self.as_cpu(torch, second)
        if b is None or a.shape != b.shape:
            self.add("deterministic", F, "two forwards of the same input returned different shapes",
                     expected=str(list(a.shape)), found=str(list(b.shape)) if b is not None else type(second).__name__)
            return
        same = torch.allclose(a, b, rtol=DETERMINISM_RTOL, atol=DETERMINISM_ATOL, equal_nan=True)
        diff = float((a - b).nan_to_num(0).abs().max()) if a.numel() else 0.0
        if same:
            self.add("deterministic", P, "two eval forwards of the same input agree", details={"max_abs_diff": diff})
        else:
            self.add("deterministic", F, "two eval-mode forwards of the same input differ, so embeddings are not "
                     "reproducible", expected=f"allclose(rtol={DETERMINISM_RTOL}, atol={DETERMINISM_ATOL})",
                     found=f"max |difference| {diff:.3g}",
                     fix="no randomness in forward: call model.eval() on sub-modules, no dropout/noise at inference",
                     details={"max_abs_diff": diff})

    def _close(self, torch: Any, ref: Any, other: Any) -> tuple[bool, float]:
        if ref.shape != other.shape:
            return False, float("inf")
        if not ref.numel():
            return True, 0.0
        scale = float(ref.nan_to_num(0).abs().max())
        ok = torch.allclose(other, ref, rtol=BATCH_RTOL, atol=BATCH_ATOL_REL * max(scale, 1e-6), equal_nan=True)
        return ok, float((other - ref).nan_to_num(0).abs().max())

    def check_batch_independence(self, torch: Any) -> None:
        if self.blocked("batch_independence"):
            return self.blocked("padding_sensitivity")
        self.begin("batch_independence")
        clip = self.noise(1, 1.0, SEED + 3)
        other = self.noise(1, 2.0, SEED + 4) * 5  # louder, so batch statistics visibly move
        padded = torch.nn.functional.pad(clip, (0, other.shape[1] - clip.shape[1]))
        try:
            alone_padded = self.as_cpu(torch, self.forward(padded, "forward (clip alone)")[0])
            batch = self.as_cpu(torch, self.forward(torch.cat([padded, other]), "forward (clip with another)")[0])
            alone = self.as_cpu(torch, self.forward(clip, "forward (clip unpadded)")[0])
        except SubmissionCodeError as err:
            self.fail_submission("batch_independence", err, "forward raised on a batch of two clips")
            return self.blocked("padding_sensitivity")
        if batch.shape[1] == 0:
            self.add("batch_independence", S, "not run: the encoder returned no frames to compare")
            return self.blocked("padding_sensitivity")
        ok, diff = self._close(torch, alone_padded[0], batch[0])
        details = {"clip_s": 1.0, "batch_clip_s": 2.0, "max_abs_diff": diff}
        if ok:
            self.add("batch_independence", P, "a clip's embeddings do not depend on the other clips in its batch",
                     details=details)
        else:
            self.add("batch_independence", F, "a 1 s clip (zero-padded to 2 s) gives different embeddings alone and "
                     "in a batch with another, louder 2 s clip: the encoder mixes information across the batch, so a clip's "
                     "embedding depends on which clips X-ARES batches it with",
                     expected="the same frames (within a relative 1e-3)", found=f"max |difference| {diff:.3g}",
                     fix="normalise per clip (dim=1/2), never over dim 0; no BatchNorm in training mode", details=details)
            return self.blocked("padding_sensitivity")
        # Frames covering the clip, minus the last few whose window may reach into the padding.
        n = min(alone.shape[1], batch.shape[1])
        covered = max(0, n - 2) if n > 4 else n
        ok, diff = self._close(torch, alone[0, :covered], batch[0, :covered])
        details = {"frames_compared": covered, "max_abs_diff": diff}
        if ok:
            self.add("padding_sensitivity", P, "frames covering a clip are the same with or without zero padding",
                     details=details)
        else:
            self.add("padding_sensitivity", W, "frames covering a 1 s clip change when it is zero-padded to 2 s (as "
                     "happens in a batch with a longer clip): embeddings then depend on the batch's longest clip. "
                     "Common for global attention without a mask; not a contract violation",
                     expected="the same frames", found=f"max |difference| {diff:.3g}",
                     fix="mask padding if the model supports it", details=details)

    def check_throughput(self, torch: Any) -> None:
        if self.blocked("throughput"):
            return
        batch, seconds = 4, 10.0
        estimate = self._estimate(seconds)
        remaining = self.o.max_seconds - self.elapsed()
        if estimate is not None and 2 * batch * estimate > remaining / 2:
            batch = 1
        self.begin("throughput")
        x = self.noise(batch, seconds, SEED + 5)
        try:
            walls = [self.forward(x, "forward (throughput)")[1] for _ in range(2 if batch > 1 else 1)]
        except SubmissionCodeError as err:
            self.fail_submission("throughput", err, f"forward raised on a batch of {batch} x {seconds:g} s clips",
                                 expected="forward works on batches of several 10 s clips")
            return
        wall = max(min(walls), 1e-6)
        rate = batch * seconds / wall
        projected = THROUGHPUT_REFERENCE_HOURS * 3600 / rate
        self.report.throughput = {
            "device": self.device,
            "threads": torch.get_num_threads(),
            "batch": batch,
            "clip_seconds": seconds,
            "wall_s": round(wall, 4),
            "audio_seconds_per_second": round(rate, 2),
            "reference_hours": THROUGHPUT_REFERENCE_HOURS,
            "projected_seconds": round(projected, 1),
            "note": "measured on this device; a CPU figure is not a T4 projection",
        }
        self.add("throughput", P, f"{rate:.1f} s of audio per second on {self.device}; {THROUGHPUT_REFERENCE_HOURS:g} h "
                 f"of audio would take about {projected / 3600:.2f} h here", details=dict(self.report.throughput))

    def check_memory(self, torch: Any) -> None:
        rss = peak_rss_bytes()
        limit = memory_limit_bytes()
        cuda_peak = torch.cuda.max_memory_allocated() if self.device == "cuda" else None
        gpu_limit = os.environ.get("AECC_GPU_MEMORY_LIMIT_BYTES")
        gpu_limit = int(gpu_limit) if gpu_limit and gpu_limit.isdigit() else None
        self.report.resources.update(peak_rss_bytes=rss, peak_cuda_bytes=cuda_peak, memory_limit_bytes=limit,
                                     gpu_memory_limit_bytes=gpu_limit)
        details = dict(self.report.resources)
        notes = []
        if limit and rss > 0.8 * limit:
            notes.append(f"peak RSS {rss / 2**30:.2f} GiB is over 80 % of the {limit / 2**30:.2f} GiB limit")
        if cuda_peak and gpu_limit and cuda_peak > 0.9 * gpu_limit:
            notes.append(f"peak CUDA memory {cuda_peak / 2**30:.2f} GiB is over 90 % of {gpu_limit / 2**30:.2f} GiB")
        msg = f"peak RSS {rss / 2**20:.0f} MiB" + (f", peak CUDA {cuda_peak / 2**20:.0f} MiB" if cuda_peak else "")
        self.report.checks = [c for c in self.report.checks if c.id != "memory"]
        if notes:
            self.add("memory", W, "; ".join(notes) + " (measured in-process, advisory; the host measures the real "
                     "peak)", fix="lower memory use: chunk long inputs, free intermediate tensors", details=details)
        else:
            self.add("memory", P, msg + " (in-process, advisory; the host measures the real peak)", details=details)
