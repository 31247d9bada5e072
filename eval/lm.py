"""Shared by the byte-level language-model evaluators: load, check and run the exported model.

The scored windows are spread evenly over the whole held-out split (not its first bytes),
so a small, fixed scoring budget still covers every kind of text in it.

The agent writes the model, so the harness checks what it can before trusting a number:
the interface (shapes) and causality. A model whose logits at position t change when the
bytes after t (or the other rows of the batch) change is peeking at its targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

VOCAB = 256
BATCH = 32
CAUSALITY_CUTS = (1, 3)  # eighths of seq_len where the future is swapped out
CAUSALITY_ATOL = 1e-3


class ModelRejected(RuntimeError):
    """The exported model breaks the contract; the message says how."""


def load_model(path: Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """Load the torch.export program; return (callable, parameter count)."""
    program = torch.export.load(str(path))
    n_params = sum(int(t.numel()) for t in program.state_dict.values())
    return program.module(), n_params


def scored_windows(path: Path, seq_len: int, n_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of n_bytes // seq_len non-overlapping windows spread evenly over the split."""
    data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8).long()
    n = min(max(1, n_bytes // seq_len), (len(data) - 1) // seq_len)
    if n < 1:
        raise ModelRejected(f"{path} holds fewer than seq_len={seq_len} bytes: nothing to score")
    starts = torch.linspace(0, len(data) - seq_len - 1, n).long()
    rows = data[starts[:, None] + torch.arange(seq_len + 1)]
    return rows[:, :-1], rows[:, 1:]


def batches(x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(x), BATCH):
        yield x[i : i + BATCH], y[i : i + BATCH]


def logits_of(model: Callable, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (*x.shape, VOCAB):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelRejected(f"the model must map {tuple(x.shape)} byte ids to {(*x.shape, VOCAB)} logits, got {shape}")
    return out.float()


def check_causal(model: Callable, x: torch.Tensor) -> None:
    """Swap the future (and the other rows) for other real text; the past must not move."""
    if len(x) < 4:
        return
    rows = x[:BATCH]
    other = torch.roll(x, shifts=len(x) // 2, dims=0)[: len(rows)]
    base = logits_of(model, rows)
    if not torch.isfinite(base).all():
        return  # such a model scores NaN anyway, which is its verdict
    for eighth in CAUSALITY_CUTS:
        cut = max(1, x.shape[1] * eighth // 8)
        probe = other.clone()
        probe[0, :cut] = rows[0, :cut]
        moved = (logits_of(model, probe)[0, :cut] - base[0, :cut]).abs().max().item()
        if not moved <= CAUSALITY_ATOL:
            raise ModelRejected(
                f"the model is not causal: its logits before position {cut} changed by {moved:.3g} when only "
                "later bytes or other rows of the batch changed. It must not look ahead."
            )
