"""The budget clock: the harness ends training, not train.py's reading of a variable.

The training job runs sandbox/launch.py, which imports torch (start-up the harness pays for) and
prints MARKER before any line of train.py runs. The clock starts at the first MARKER in the job's
output, so nothing train.py does can move it. At MARKER + budget it sends STOP_SIGNAL to every
process of the job, again every RESIGNAL_S (a handler installed late still hears one), and at the
stop + grace it kills the job: the grace is for the export. The CPU
time the job used after the stop is measured, and a run that used more than the step in flight
and an export need trained past its budget: outcome `overtime`, never kept.

The allowance after the stop, in CPU-seconds: OVERSHOOT of what the job used until the stop (the
step in flight, for a step of up to 2% of the budget), plus EXPORT_CPU_S (the export, and the
step in flight of a tiny budget). Measured on 2 CPU cores shared with other work (load 5-10),
torch 2.13, with the launcher's imports: after the stop, the default GPT used 3.6-4.5 CPU-seconds
(a 2 s budget: its first step, the slowest, then the export; up to 14 s of wall clock), the CLIP
example 3.7, TINY_BIGRAM (tests/test_sandbox.py) 2.3. A fixed figure rather than one per second
of grace: a long grace would otherwise hand a job on a busy machine more than its whole budget.

A compute budget (task.cpu_budget_seconds) is fair on a shared CPU where a wall budget is not: the
stop then comes once the job's processes have used that many CPU-seconds since the marker (read from
its meter every CPU_POLL_S), whatever the wall clock says; the wall budget stays as a backstop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sandbox.job import Control, OutputSink, Result
from sandbox.launch import MARKER, STOP_SIGNAL

START_CAP_S = 60.0  # the launcher's torch import on a loaded machine took up to 22 s; no marker by then: it failed
OVERSHOOT = 0.02  # of the CPU-seconds used until the stop: the step in flight
EXPORT_CPU_S = 10.0  # the export (see above): twice the most an honest run used
RESIGNAL_S = 1.0  # the stop signal is repeated until the job ends
CPU_POLL_S = 0.25  # how often a compute budget reads the job's CPU time (Docker: a 0.06 s exec)
MARK = MARKER.encode()


class Clock:
    """One training job's clock: wrap its sink with watch(), pass started() to Backend.run, then finish()."""

    def __init__(self, budget: float, grace: float, cpu_budget: float | None = None,
                 at_stop: Callable[[], None] = lambda: None):
        self.budget, self.grace, self.cpu_budget = budget, grace, cpu_budget
        self.at_stop = at_stop  # called once the stop signal is sent (the scorer warms up beside the export)
        self.control: Control | None = None
        self.t_start = self.t_marker = self.t_stop = None
        self.cpu_marker: float | None = None  # the job's CPU time at the marker (a compute budget runs from there)
        self.cpu_stop: float | None = None
        self.no_start = False  # killed for want of a marker within START_CAP_S
        self.marked, self.ended = threading.Event(), threading.Event()
        self.seen = b""  # the end of the output before the marker: a marker split over two chunks
        self.thread: threading.Thread | None = None

    def watch(self, sink: OutputSink) -> OutputSink:
        def watched(chunk: bytes) -> None:
            if not self.marked.is_set():
                seen = self.seen + chunk
                if MARK in seen:
                    self.t_marker = time.monotonic()
                    self.marked.set()
                self.seen = seen[-len(MARK):]
            sink(chunk)

        return watched

    def started(self, control: Control) -> None:
        self.control, self.t_start = control, time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def wait_until(self, t: float) -> bool:
        """Sleep until monotonic time t; True if the job ended first."""
        return self.ended.wait(max(0.0, t - time.monotonic()))

    def run(self) -> None:
        if not self.marked.wait(START_CAP_S) or self.ended.is_set():
            if not self.ended.is_set():
                self.no_start = True
                self.control.kill()
            return
        self.cpu_marker = self.control.meter().cpu_seconds
        if self.wait_until_spent():
            return
        self.t_stop = time.monotonic()
        self.cpu_stop = self.control.meter().cpu_seconds
        kill_at = self.t_marker + self.budget + self.grace
        self.control.signal(STOP_SIGNAL)
        try:
            self.at_stop()
        finally:  # whatever at_stop does, the job is stopped and, past the grace, killed
            while not self.wait_until(min(time.monotonic() + RESIGNAL_S, kill_at)):
                if time.monotonic() >= kill_at:
                    self.control.kill()
                    break
                self.control.signal(STOP_SIGNAL)

    def wait_until_spent(self) -> bool:
        """Sleep until the budget is spent (wall, or CPU-seconds when cpu_budget is set); True if the job ended."""
        deadline = self.t_marker + self.budget
        if self.cpu_budget is None:
            return self.wait_until(deadline)
        if self.cpu_marker is None:  # a backend that cannot meter cannot enforce it: the wall budget must do
            return self.wait_until(deadline)
        while time.monotonic() < deadline:
            used = self.control.meter().cpu_seconds
            if used is not None and used - self.cpu_marker >= self.cpu_budget:
                return False
            if self.wait_until(min(time.monotonic() + CPU_POLL_S, deadline)):
                return True
        return False

    def finish(self) -> None:
        """The job has ended (Backend.run returned or raised): stop the clock."""
        self.ended.set()
        self.marked.set()  # wakes a clock still waiting for the marker
        if self.thread is not None:
            self.thread.join()

    # --- what the clock measured, once finished ---

    def startup_seconds(self) -> float | None:
        return None if self.t_marker is None else self.t_marker - self.t_start

    def training_seconds(self, result: Result) -> float:
        """Wall clock of train.py: from the marker to the job's end (all of it when there was no marker)."""
        return max(0.0, result.seconds - (self.startup_seconds() or 0.0))

    def after_stop_seconds(self, result: Result) -> float | None:
        """Wall clock from the stop signal to the job's end; None when it ended before the stop."""
        if self.t_stop is None or self.t_start + result.seconds <= self.t_stop:
            return None
        return self.t_start + result.seconds - self.t_stop

    def after_stop_cpu(self, result: Result) -> float | None:
        if self.after_stop_seconds(result) is None or result.cpu_seconds is None or self.cpu_stop is None:
            return None
        return max(0.0, result.cpu_seconds - self.cpu_stop)

    def trained_cpu(self) -> float | None:
        """CPU-seconds of the job from the marker to the stop: the compute its budget bought."""
        if self.cpu_marker is None or self.cpu_stop is None:
            return None
        return max(0.0, self.cpu_stop - self.cpu_marker)

    def allowance(self) -> float:
        """CPU-seconds the job may use after the stop: the step in flight, and the export."""
        return OVERSHOOT * (self.cpu_stop or 0.0) + EXPORT_CPU_S

    def outcome(self, result: Result) -> tuple[str, str]:
        """("crash" | "overtime", reason) when the clock's figures decide the run; ("", "") otherwise."""
        if self.t_marker is None and not result.oom:
            if self.no_start:
                return "crash", (f"not train.py's doing: the harness's launcher (sandbox/launch.py) printed no "
                                 f"start marker within {START_CAP_S:g}s (importing torch hung); see the log")
            return "crash", ("not train.py's doing: the harness's launcher (sandbox/launch.py) ended before "
                             "starting train.py (importing torch failed); see the log")
        wall = self.after_stop_seconds(result)
        if wall is None:
            return "", ""
        cpu = self.after_stop_cpu(result)
        if cpu is None:
            return "crash", ("the compute after the stop signal could not be measured (the sandbox could not "
                             "read the job's CPU time), so the run cannot be compared with others: not kept")
        allowed = self.allowance()
        if cpu <= allowed:
            return "", ""
        killed = f"; killed at the stop + grace {self.grace:g}s" if result.timed_out else ""
        spent = f"{self.cpu_budget:g} CPU-s" if self.cpu_budget is not None else f"{self.budget:g}s"
        return "overtime", (f"trained past the budget: {cpu:.1f} CPU-s in the {wall:.1f}s after the stop signal "
                            f"at {spent}, allowed {allowed:.1f} ({OVERSHOOT:.0%} of its compute before the "
                            f"stop for the step in flight, {EXPORT_CPU_S:g} for the export){killed}. Stop training "
                            f"when SIGURG arrives or AUTORESEARCH_BUDGET_S is spent, then export")
