"""Shared by the byte-level language-model evaluators: load, check and run the exported model.

The agent writes the model, so the harness checks what it can before trusting a number:
the interface (shapes, dtype) and causality. A model whose logits at position t change
when the bytes after t (or the other rows of the batch) change is peeking at its targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

VOCAB = 256
BATCH = 16
CAUSALITY_CUTS = (1, 3)  # eighths of seq_len where the future is swapped out
CAUSALITY_ATOL = 1e-3


class ModelRejected(RuntimeError):
    """The exported model breaks the contract; the message says how."""


def load_model(path: Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """Load the torch.export program; return (callable, parameter count)."""
    program = torch.export.load(str(path))
    n_params = sum(int(t.numel()) for t in program.state_dict.values())
    return program.module(), n_params


def read_split(path: Path, n_bytes: int) -> torch.Tensor:
    with open(path, "rb") as f:
        raw = f.read(n_bytes + 1)
    if len(raw) < 2:
        raise ModelRejected(f"{path} holds too little data to score")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()


def windows(data: torch.Tensor, seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping (inputs, targets) batches covering the scored bytes once."""
    n = (len(data) - 1) // seq_len
    x = data[: n * seq_len].view(n, seq_len)
    y = data[1 : n * seq_len + 1].view(n, seq_len)
    for i in range(0, n, BATCH):
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


def check_causal(model: Callable, data: torch.Tensor, seq_len: int) -> None:
    """Swap the future (and the other rows) for other real text; the past must not move."""
    n = (len(data) - 1) // seq_len
    if n < 4:
        return
    x = data[: n * seq_len].view(n, seq_len)[:BATCH]
    other = torch.roll(data[: n * seq_len].view(n, seq_len), shifts=n // 2, dims=0)[: len(x)]
    base = logits_of(model, x)
    if not torch.isfinite(base).all():
        return  # such a model scores NaN anyway, which is its verdict
    for eighth in CAUSALITY_CUTS:
        cut = max(1, seq_len * eighth // 8)
        probe = other.clone()
        probe[0, :cut] = x[0, :cut]
        moved = (logits_of(model, probe)[0, :cut] - base[0, :cut]).abs().max().item()
        if not moved <= CAUSALITY_ATOL:
            raise ModelRejected(
                f"the model is not causal: its logits before position {cut} changed by {moved:.3g} when only "
                "later bytes or other rows of the batch changed. It must not look ahead."
            )
