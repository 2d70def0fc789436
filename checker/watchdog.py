"""A forward call that never returns is answered in seconds, not at the stage's wall clock.

The rule, shared by the contract checker and the encode agent:

- The first forward call (the warm-up: the shortest input the checker sends, 0.5 s of audio; in
  encode, a 0.5 s crop of the first clip) gets a fixed budget, `WARMUP_BUDGET_S`. It is generous
  for the largest model a T4 can hold: the first call pays lazy initialisation, CUDA context and
  kernel selection, and 0.5 s of audio through a 1-billion-parameter model takes a few seconds even
  on a CPU.
- Every later call gets a budget from the encoder's own measured speed: the largest call that
  returned so far predicts the new one (linear in the batch, quadratic in the clip length, so global
  attention is covered), times `BUDGET_FACTOR`, plus `BUDGET_FLOOR_S`. A slow but steady encoder is
  never cut: its budget grows with its own measured time.

A call past its budget makes the watchdog thread hand the call to `on_timeout` (which writes what
the run found and names the call), then the process exits: the stage's container ends with it.
Python code that spins, `time.sleep`, and native code that releases the GIL (torch's operators do)
are all caught by the thread. Native code that spins holding the GIL would starve the thread, so
`faulthandler`'s C-level timer is armed as a backstop `BACKSTOP_GRACE_S` later: it prints every
thread's stack and exits, and the host's progressive report then names the check in progress.

Standard library only (the agent runs in submission images).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator

#: the shortest input the checker sends, and the length of encode's warm-up crop
WARMUP_SECONDS = 0.5
#: the first call's fixed budget (an encoder that never returns fails within 2 minutes of it)
WARMUP_BUDGET_S = 90.0
#: later calls: BUDGET_FLOOR_S + BUDGET_FACTOR x the time predicted from the largest call that returned
BUDGET_FACTOR = 10.0
BUDGET_FLOOR_S = 30.0
#: cost assumed to grow with clip length to this power when predicting a longer clip
LENGTH_EXPONENT = 2.0
#: faulthandler's hard stop, after the budget, for native code that holds the GIL
BACKSTOP_GRACE_S = 30.0


@dataclasses.dataclass(frozen=True)
class Call:
    """One forward call under watch: what it was given and how long it may take."""

    label: str
    batch: int
    seconds: float  # seconds of audio per clip
    budget_s: float
    started: float  # time.monotonic()
    predicted_s: float | None = None  # None for the warm-up

    def describe(self) -> str:
        size = f"{self.batch} x {self.seconds:g} s" if self.batch > 1 else f"{self.seconds:g} s"
        basis = "the warm-up's fixed budget" if self.predicted_s is None else \
            f"{BUDGET_FACTOR:g} x the {self.predicted_s:.3g} s its own speed predicts + {BUDGET_FLOOR_S:g} s"
        return f"{self.label} ({size} of audio) did not return within {self.budget_s:.0f} s ({basis})"

    def to_dict(self) -> dict[str, Any]:
        return {"call": self.label, "batch": self.batch, "clip_seconds": self.seconds,
                "budget_s": round(self.budget_s, 2),
                "predicted_s": None if self.predicted_s is None else round(self.predicted_s, 4),
                "elapsed_s": round(time.monotonic() - self.started, 2)}


@dataclasses.dataclass(frozen=True)
class Measured:
    batch: int
    seconds: float
    wall_s: float

    @property
    def size(self) -> float:
        return self.batch * self.seconds


class Budget:
    """Per-call budgets from the calls that returned (see the module's docstring)."""

    def __init__(self) -> None:
        self.reference: Measured | None = None
        self.calls = 0

    def predict(self, batch: int, seconds: float) -> float | None:
        ref = self.reference
        if ref is None:
            return None
        if seconds <= ref.seconds:
            scale = (batch * seconds) / ref.size
        else:
            scale = (batch / ref.batch) * (seconds / ref.seconds) ** LENGTH_EXPONENT
        return ref.wall_s * max(1.0, scale)

    def for_call(self, batch: int, seconds: float) -> tuple[float, float | None]:
        """(budget, predicted seconds); the warm-up has no prediction."""
        predicted = self.predict(batch, seconds)
        if predicted is None:
            return WARMUP_BUDGET_S, None
        return BUDGET_FLOOR_S + BUDGET_FACTOR * predicted, predicted

    def record(self, batch: int, seconds: float, wall_s: float) -> None:
        self.calls += 1
        measured = Measured(batch, seconds, wall_s)
        if self.reference is None or measured.size >= self.reference.size:
            self.reference = measured

    def to_dict(self) -> dict[str, Any]:
        ref = self.reference
        return {"warmup_budget_s": WARMUP_BUDGET_S, "factor": BUDGET_FACTOR, "floor_s": BUDGET_FLOOR_S,
                "length_exponent": LENGTH_EXPONENT, "calls": self.calls,
                "reference": None if ref is None else dataclasses.asdict(ref)}


class Watchdog:
    """Watches one forward call at a time; `on_timeout(call)` runs in the watchdog's thread, with
    the main thread still inside the call, and the process then exits with the code it returns."""

    #: the exit code when on_timeout itself fails
    FALLBACK_EXIT = 1

    def __init__(self, on_timeout: Callable[[Call], int]) -> None:
        self.budget = Budget()
        self._on_timeout = on_timeout
        self._lock = threading.Lock()
        self._active: Call | None = None

    @contextlib.contextmanager
    def call(self, label: str, batch: int, seconds: float) -> Iterator[Call]:
        budget, predicted = self.budget.for_call(batch, seconds)
        call = Call(label, batch, seconds, budget, time.monotonic(), predicted)
        timer = threading.Timer(budget, self._fire, args=(call,))
        timer.daemon = True
        with self._lock:
            self._active = call
        timer.start()
        faulthandler.dump_traceback_later(budget + BACKSTOP_GRACE_S, exit=True)
        try:
            yield call
        finally:
            faulthandler.cancel_dump_traceback_later()
            timer.cancel()
            with self._lock:  # a timeout being reported holds it until the process ends
                self._active = None
        self.budget.record(batch, seconds, time.monotonic() - call.started)

    def _fire(self, call: Call) -> None:
        with self._lock:
            if self._active is not call:
                return
            code = self.FALLBACK_EXIT
            try:
                code = self._on_timeout(call)
            except BaseException as exc:  # noqa: BLE001 (the process ends either way; say why)
                print(f"aecc-watchdog: reporting the timeout failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
