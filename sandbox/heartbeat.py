"""A sign of life in the run's output while the job prints nothing: elapsed, budget left, CPU, memory.

An adopted train.py may print nothing for minutes, and a silent terminal reads as a hang. After
QUIET_S seconds without output, `say` gets one short line written by the harness: it goes to the
terminal (and the agent's tool output), never into train.log, which holds the job's own output
only. Each further line waits for twice the silence of the one before (30 s, 60 s, 120 s...), so
a long run that train.py keeps silent still adds only a handful of lines to ./run.sh's short output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sandbox.job import Meter, OutputSink, Usage

QUIET_S = 30.0
TICK_S = 1.0


def clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


class Heartbeat:
    """Watches one job: wrap its sink with sink(), hand started() to the backend, use it as a context."""

    def __init__(self, say: Callable[[str], None], budget_s: float, prefix: str = "", quiet_s: float | None = None):
        self.say, self.budget_s, self.prefix = say, budget_s, prefix
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.t0 = self.output_at = self.beat_at = time.monotonic()
        self.meter: Meter | None = None
        self.measured: tuple[float, float] | None = None  # (when, CPU seconds) of the last measurement
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    def sink(self, inner: OutputSink) -> OutputSink:
        def forward(chunk: bytes) -> None:
            self.output_at = time.monotonic()
            inner(chunk)

        return forward

    def started(self, meter: Meter) -> None:
        self.meter, self.t0 = meter, time.monotonic()
        self.output_at = self.beat_at = self.t0

    def watch(self) -> None:
        quiet = self.quiet_s
        while not self.done.wait(TICK_S):
            now = time.monotonic()
            if now - max(self.output_at, self.beat_at) >= quiet:
                self.say(self.prefix + self.line(now))
                self.beat_at, quiet = time.monotonic(), quiet * 2

    def usage(self, now: float) -> str:
        """'CPU 1.9 cores, memory 412 MB': cores used since the last measurement (or the start)."""
        try:
            used = self.meter() if self.meter else Usage(None, None)
        except Exception:  # the job ended meanwhile, or the engine is busy: no figures this time
            used = Usage(None, None)
        parts = []
        if used.cpu_seconds is not None:
            since, before = self.measured or (self.t0, 0.0)
            parts.append(f"CPU {(used.cpu_seconds - before) / max(now - since, 1e-9):.1f} cores")
            self.measured = (now, used.cpu_seconds)
        if used.memory_mb is not None:
            parts.append(f"memory {used.memory_mb:.0f} MB")
        return ", ".join(parts)

    def line(self, now: float) -> str:
        elapsed, left = now - self.t0, self.budget_s - (now - self.t0)
        budget = (f"{clock(left)} of the {self.budget_s:g} s budget left" if left > 0 else
                  f"{clock(-left)} past the {self.budget_s:g} s budget (the export uses the grace)")
        usage = self.usage(now)
        return (f"[harness] no output for {now - self.output_at:.0f} s; {clock(elapsed)} elapsed, {budget}"
                + (f"; {usage}" if usage else ""))
