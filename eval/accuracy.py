"""val_acc: top-1 next-byte accuracy on held-out text (higher is better)."""

from __future__ import annotations

from pathlib import Path

from eval.lm import check_causal, load_model, logits_of, read_split, windows


def score(model_path: Path, data_path: Path, seq_len: int, eval_bytes: int, options: dict) -> dict:
    model, n_params = load_model(model_path)
    data = read_split(data_path, eval_bytes)
    check_causal(model, data, seq_len)
    hits, count = 0, 0
    for x, y in windows(data, seq_len):
        hits += int((logits_of(model, x).argmax(-1) == y).sum())
        count += y.numel()
    return {"value": hits / count, "parameters": n_params, "scored_bytes": count}
