"""How stored numbers read in every text the harness writes: the terminal, commits, the agent's context."""

from __future__ import annotations

import math


def value(x: float | None) -> str:
    """A metric value, delta or spread: six decimals; '-' when there is none (or it is not finite)."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.6f}"
