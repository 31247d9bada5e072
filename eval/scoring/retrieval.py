"""recall_at_1 (higher is better) or mean_rank (lower is better): image-to-caption retrieval.

The task of examples/clip: the exported model maps (images float (B, 3, H, W) in [0, 1], tokens
int64 (B, L)) to (image embeddings (B, D), text embeddings (B, D)). Every held-out image is
scored against every caption of its gallery by cosine similarity; the rank of its own caption
is 1 + the number of other captions that score at least as high (a tie counts against the
model: a constant model ranks its caption last, not first). A caption with the same tokens as
the image's own is also right and is not counted. options:
  metric: recall_at_1 (default; the share of images whose caption ranks first) | mean_rank
  folds:  k (default 1). The held-out pairs are dealt into k disjoint galleries (pair i goes to
          fold i mod k) and the metric is the mean over the folds; the per-fold values and their
          spread come back beside it. The model is trained once: this is k-fold evaluation, not
          k trainings (the harness's seeds measure training noise). A gallery of N/k captions is
          easier than one of N, so values compare only at the same k. Chance: recall_at_1 k/N,
          mean_rank (N/k + 1) / 2.
seq_len and eval_bytes, the language-model settings of program.md, do not apply and are ignored.

The model is the agent's, so the harness checks it first: only tensor operations in its graph
(eval.scoring.lm.check_ops), the interface, and that each embedding depends on its own input alone.
The images and the captions go in under two independent secret shuffles, twice; a model whose
image embeddings follow the captions beside them, the other rows or their place in the batch
(which could carry the pairing) gives different answers and is rejected.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from eval.scoring.lm import ModelRejected, load_model

BATCH = 256
INDEPENDENCE_ATOL = 1e-3
METRICS = {"recall_at_1": lambda ranks: float((ranks == 1).double().mean()),
           "mean_rank": lambda ranks: float(ranks.double().mean())}
DIRECTION = {"recall_at_1": "maximize", "mean_rank": "minimize"}  # checked against program.md by the harness


def load_pairs(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float in [0, 1], tokens int64) of a split written by examples/clip/prepare.py."""
    data = torch.load(path, weights_only=True)
    return data["images"].float() / 255, data["tokens"].long()


def embed(model: Callable, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-length (image, text) embeddings of the rows, in batches; the interface is checked on the way."""
    outs = []
    for i in range(0, len(images), BATCH):
        x, t = images[i : i + BATCH], tokens[i : i + BATCH]
        with torch.no_grad():
            out = model(x, t)
        shapes = [tuple(o.shape) for o in out] if isinstance(out, (tuple, list)) else type(out).__name__
        ok = (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(o, torch.Tensor) for o in out)
              and out[0].dim() == out[1].dim() == 2 and out[0].shape == out[1].shape and out[0].shape[0] == len(x))
        if not ok:
            raise ModelRejected(f"the model must map ({tuple(x.shape)} images, {tuple(t.shape)} tokens) to "
                                f"(image embeddings, text embeddings) of shape ({len(x)}, D) each, got {shapes}")
        outs.append([o.float() for o in out])
    return tuple(F.normalize(torch.cat(parts), dim=-1) for parts in zip(*outs, strict=True))


def shuffled(model: Callable, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The embeddings with images and captions fed in two independent random orders, put back in order."""
    rng = secrets.SystemRandom()
    p, q = (torch.tensor(rng.sample(range(len(images)), len(images))) for _ in range(2))
    image_emb, text_emb = embed(model, images[p], tokens[q])
    return image_emb[p.argsort()], text_emb[q.argsort()]


def check_independent(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if not torch.isclose(a, b, atol=INDEPENDENCE_ATOL, rtol=0, equal_nan=True).all():
        raise ModelRejected(f"the model's {what} embeddings changed with what else was in the batch: each must "
                            f"depend on its own {what} only, not on the other input, the other rows or its place")


def ranks(image_emb: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Rank (1 = first) of each image's own caption among the gallery's captions."""
    sim = image_emb @ text_emb.T
    right = (tokens[:, None, :] == tokens[None, :, :]).all(-1)  # the own caption, and any identical one
    own = sim.diagonal()[:, None]
    return 1 + ((sim >= own) & ~right).sum(-1)


def score(model_path: Path, data_path: Path, options: dict) -> dict:
    metric, folds = options.get("metric", "recall_at_1"), options.get("folds", 1)
    if metric not in METRICS:
        raise ValueError(f"options.metric: '{metric}' is not one of {sorted(METRICS)}")
    model, n_params = load_model(model_path)
    images, tokens = load_pairs(data_path)
    if not isinstance(folds, int) or isinstance(folds, bool) or not 1 <= folds <= len(images) // 2:
        raise ValueError(f"options.folds: {folds!r} must be a whole number from 1 to {len(images) // 2} "
                         f"(at least two pairs per fold; the held-out split has {len(images)})")
    image_emb, text_emb = shuffled(model, images, tokens)
    image_again, text_again = shuffled(model, images, tokens)
    check_independent(image_emb, image_again, "image")
    check_independent(text_emb, text_again, "text")
    if not (image_emb.isfinite().all() and text_emb.isfinite().all()):
        return {"value": math.nan, "parameters": n_params}
    per_fold = {name: [] for name in METRICS}
    for k in range(folds):
        fold = torch.arange(k, len(images), folds)
        r = ranks(image_emb[fold], text_emb[fold], tokens[fold])
        for name, of in METRICS.items():
            per_fold[name].append(of(r))
    means = {name: sum(values) / folds for name, values in per_fold.items()}
    spread = torch.tensor(per_fold[metric]).std().item() if folds > 1 else 0.0
    return {"value": means[metric], "parameters": n_params, "metric": metric, "direction": DIRECTION[metric],
            "pairs": len(images), "folds": folds,
            "fold_values": per_fold[metric], "fold_spread": spread, **means}
