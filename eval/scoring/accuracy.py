"""val_acc: top-1 next-byte accuracy on held-out text (higher is better)."""

from __future__ import annotations

from pathlib import Path

from eval.scoring.lm import batches, check_causal, load_model, logits_of, scored_windows, window_options


def score(model_path: Path, data_path: Path, options: dict) -> dict:
    """options: seq_len (the exported model's window), eval_bytes (how much of the split is scored)."""
    seq_len, eval_bytes = window_options(options)
    model, n_params = load_model(model_path)
    x, y = scored_windows(data_path, seq_len, eval_bytes)
    check_causal(model, x)
    hits = sum(int((logits_of(model, xb).argmax(-1) == yb).sum()) for xb, yb in batches(x, y))
    return {"value": hits / y.numel(), "parameters": n_params, "scored_bytes": y.numel()}
