"""val_bpb: bits per byte of held-out text under the model (lower is better)."""

from __future__ import annotations

import math
from pathlib import Path

import torch.nn.functional as F

from eval.lm import batches, check_causal, load_model, logits_of, scored_windows


def score(model_path: Path, data_path: Path, seq_len: int, eval_bytes: int, options: dict) -> dict:
    model, n_params = load_model(model_path)
    x, y = scored_windows(data_path, seq_len, eval_bytes)
    check_causal(model, x)
    nats = 0.0
    for xb, yb in batches(x, y):
        logits = logits_of(model, xb)
        nats += F.cross_entropy(logits.view(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum").item()
    return {"value": nats / y.numel() / math.log(2), "parameters": n_params, "scored_bytes": y.numel()}
