"""val_bpb: bits per byte of held-out text under the model (lower is better)."""

from __future__ import annotations

import math
from pathlib import Path

import torch.nn.functional as F

from eval.lm import check_causal, load_model, logits_of, read_split, windows


def score(model_path: Path, data_path: Path, seq_len: int, eval_bytes: int, options: dict) -> dict:
    model, n_params = load_model(model_path)
    data = read_split(data_path, eval_bytes)
    check_causal(model, data, seq_len)
    nats, count = 0.0, 0
    for x, y in windows(data, seq_len):
        logits = logits_of(model, x)
        nats += F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return {"value": nats / count / math.log(2), "parameters": n_params, "scored_bytes": count}


