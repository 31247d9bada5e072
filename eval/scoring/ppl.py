"""val_ppl: perplexity per word token of held-out text under the model (lower is better).

The held-out split stays text; the scorer turns it into ids with the vocabulary frozen from the
training split (eval/scoring/tokens.py, mounted with the data as options["artifacts"]), so the
model's ids are the scorer's. Same checks as the byte-level evaluators, at the vocabulary's size.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from eval.scoring import tokens
from eval.scoring.lm import ModelRejected, batches, check_causal, load_model, logits_of, window_options, windows


def score(model_path: Path, data_path: Path, options: dict) -> dict:
    """options: seq_len (the exported model's window), eval_tokens (how many held-out tokens are scored)."""
    if "artifacts" not in options:
        raise ModelRejected("no frozen vocabulary: prepare the data with --vocab words (./run.sh prepare ... "
                            "--vocab words), which the scorer reads to turn the held-out text into ids")
    vocab = tokens.read_vocab(Path(options["artifacts"]))
    seq_len, eval_tokens = window_options(options, "eval_tokens")
    model, n_params = load_model(model_path)
    ids = torch.tensor(tokens.encode(data_path.read_text(encoding="utf-8", errors="replace"), vocab))
    x, y = windows(ids, seq_len, eval_tokens)
    check_causal(model, x, len(vocab))
    nats = 0.0
    for xb, yb in batches(x, y):
        logits = logits_of(model, xb, len(vocab))
        nats += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum").item()
    per_token = nats / y.numel()
    return {"value": math.exp(per_token) if per_token < 700 else math.inf, "nats_per_token": per_token,
            "parameters": n_params, "scored_tokens": y.numel(), "vocabulary": len(vocab)}
