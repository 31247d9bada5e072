"""val_bpb: bits per byte of held-out text under the model (lower is better)."""

from __future__ import annotations

import math
from pathlib import Path

import torch.nn.functional as F

from eval.scoring.lm import batches, check_causal, load_model, logits_of, scored_windows, window_options


def score(model_path: Path, data_path: Path, options: dict) -> dict:
    """options: seq_len (the exported model's window), eval_bytes (how much of the split is scored)."""
    seq_len, eval_bytes = window_options(options)
    model, n_params = load_model(model_path)
    x, y = scored_windows(data_path, seq_len, eval_bytes)
    check_causal(model, x)
    nats = 0.0
    for xb, yb in batches(x, y):
        logits = logits_of(model, xb)
        nats += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum").item()
    return {"value": nats / y.numel() / math.log(2), "parameters": n_params, "scored_bytes": y.numel()}
