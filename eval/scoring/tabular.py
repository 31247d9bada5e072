"""A user's own table as a research task: the CSV format, its frozen split, and its evaluator.

The format is the plainest one a legacy script already reads: a CSV file with a header row
and numbers only, one column of which is the target (a class 0..C-1, or a real value). Rows go
to train / val / test by a hash of their text, so the split does not depend on row order, and
duplicated rows never straddle two splits. Each split is written as a CSV in the same format
(header included), so the user's own loader reads the training split unchanged.

The evaluator runs in the scoring sandbox: it feeds the exported model the features of the
held-out rows as a float (rows, features) tensor, in the CSV's column order, and scores its
outputs: (rows, classes) logits for a classification metric, (rows,) or (rows, 1) predictions
for a regression metric. Each row must be scored on its own (no batch statistics).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

SPLITS = {"train": 700, "val": 850, "test": 1000}  # cumulative per-mille of rows, by row hash
MIN_ROWS = 5  # per split: fewer cannot measure anything
BATCH = 1024
ROW_ATOL = 1e-4


class TableError(ValueError):
    """The table cannot be used as a task; the message names the row or column."""


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return (out.argmax(-1) == y.long()).float().mean().item()


def log_loss(out: torch.Tensor, y: torch.Tensor) -> float:
    return torch.nn.functional.cross_entropy(out, y.long()).item()


def mse(out: torch.Tensor, y: torch.Tensor) -> float:
    return ((out - y) ** 2).mean().item()


def r2(out: torch.Tensor, y: torch.Tensor) -> float:
    return 1.0 - ((out - y) ** 2).sum().item() / max(((y - y.mean()) ** 2).sum().item(), 1e-12)


# name -> (kind, direction, metric of (outputs, targets))
METRICS: dict[str, tuple[str, str, Callable[[torch.Tensor, torch.Tensor], float]]] = {
    "accuracy": ("classification", "maximize", accuracy),
    "error_rate": ("classification", "minimize", lambda out, y: 1.0 - accuracy(out, y)),
    "log_loss": ("classification", "minimize", log_loss),
    "mse": ("regression", "minimize", mse),
    "rmse": ("regression", "minimize", lambda out, y: math.sqrt(mse(out, y))),
    "mae": ("regression", "minimize", lambda out, y: (out - y).abs().mean().item()),
    "r2": ("regression", "maximize", r2),
}
ALIASES = {"acc": "accuracy", "error": "error_rate", "cross_entropy": "log_loss", "nll": "log_loss",
           "loss": "log_loss", "l2": "mse", "l1": "mae"}


def metric_named(name: str) -> str | None:
    """The table's metric a user's name means ('val_acc' -> 'accuracy'); None when it is not one."""
    bare = name.lower()
    for prefix in ("val_", "valid_", "test_"):
        bare = bare.removeprefix(prefix)
    return bare if bare in METRICS else ALIASES.get(bare)


def read_table(text: str, source: str, target: str | None = None) -> tuple[list[str], list[list[str]], int]:
    """(header, rows as their fields, index of the target column); every field must be a number."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(f.strip() for f in r)]
    if len(rows) < 2:
        raise TableError(f"{source}: needs a header row and data rows (CSV, numbers only)")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if target is None:
        column = len(header) - 1
    elif target in header:
        column = header.index(target)
    else:
        raise TableError(f"{source}: no column named {target!r}; the header has {header}")
    if len(header) < 2:
        raise TableError(f"{source}: needs at least one feature column besides the target")
    for n, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise TableError(f"{source}: line {n} has {len(row)} fields, the header has {len(header)}")
        for name, value in zip(header, row, strict=True):
            try:
                float(value)
            except ValueError:
                raise TableError(f"{source}: line {n}, column {name!r}: {value!r} is not a number "
                                 "(encode categories as numbers, classes as 0..C-1)") from None
    return header, [[f.strip() for f in r] for r in body], column


def check_target(header: list[str], rows: list[list[str]], column: int, kind: str, source: str) -> None:
    if kind != "classification":
        return
    bad = next((r[column] for r in rows if not float(r[column]).is_integer() or float(r[column]) < 0), None)
    if bad is not None:
        raise TableError(f"{source}: column {header[column]!r} is the class for a classification metric, "
                         f"but holds {bad!r}: classes must be 0, 1, ..., C-1")


def split_of(line: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(line.encode()).digest()[:4], "big") % 1000
    return next(name for name, upper in SPLITS.items() if bucket < upper)


def split_table(header: list[str], rows: list[list[str]], column: int, source: str) -> tuple[dict[str, bytes], dict]:
    """(split name -> CSV bytes, manifest) for eval.data.freeze."""
    lines: dict[str, list[str]] = {name: [] for name in SPLITS}
    for row in rows:
        line = ",".join(row)
        lines[split_of(line)].append(line)
    small = {name: len(ls) for name, ls in lines.items() if len(ls) < MIN_ROWS}
    if small:
        raise TableError(f"{source}: too few rows: the {tuple(small)} split(s) would get {tuple(small.values())} "
                         f"rows (at least {MIN_ROWS} each; splits are {SPLITS} per mille)")
    head = ",".join(header)
    blobs = {name: ("\n".join([head, *ls]) + "\n").encode() for name, ls in lines.items()}
    entries = {name: {"file": f"{name}.bin", "rows": len(lines[name]), "bytes": len(blobs[name]),
                      "sha256": hashlib.sha256(blobs[name]).hexdigest()} for name in SPLITS}
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    manifest = {"source": f"table {source}", "format": "csv", "columns": header, "target": header[column],
                "splits": entries, "hash": digest}
    return blobs, manifest


def load_split(path: Path, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, targets) of one frozen split, features in the CSV's column order."""
    header, rows, column = read_table(path.read_text(), path.name, target)
    values = torch.tensor([[float(f) for f in r] for r in rows], dtype=torch.float64)
    keep = [i for i in range(len(header)) if i != column]
    return values[:, keep].float(), values[:, column].float()


def outputs_of(model: Callable, x: torch.Tensor, kind: str) -> torch.Tensor:
    out = torch.cat([model(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]).float()
    if kind == "regression" and out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    want = "(rows, classes) logits" if kind == "classification" else "(rows,) predictions"
    if out.dim() != (2 if kind == "classification" else 1) or out.shape[0] != len(x):
        raise ValueError(f"the model must map {tuple(x.shape)} features to {want}, got {tuple(out.shape)}")
    return out


def score(model_path: Path, data_path: Path, options: dict) -> dict:
    """options: {"metric": a METRICS name, "target": the target column}. Scores every row of the split."""
    from eval.scoring.lm import ModelRejected, load_model

    kind, direction, metric = METRICS[options["metric"]]
    model, n_params = load_model(model_path)
    x, y = load_split(data_path, options["target"])
    out = outputs_of(model, x, kind)
    if kind == "classification" and out.shape[1] <= int(y.max()):
        raise ModelRejected(f"the model gives {out.shape[1]} class scores, but the split has class {int(y.max())}")
    flipped = outputs_of(model, x.flip(0), kind).flip(0)
    if not torch.allclose(out, flipped, atol=ROW_ATOL, rtol=0, equal_nan=True):
        raise ModelRejected("the model's output for a row depends on the other rows of the batch "
                            "(batch statistics?): each row must be scored on its own (model.eval())")
    return {"value": metric(out, y), "direction": direction, "parameters": n_params,
            "scored_bytes": data_path.stat().st_size}
