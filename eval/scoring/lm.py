"""Shared by the language-model evaluators (bytes, or the ids of a frozen vocabulary): load, check, run the model.

The scored windows are spread evenly over the whole held-out split (not its first bytes),
so a small, fixed scoring budget still covers every kind of text in it.

The agent writes the model, so the harness checks what it can before trusting a number:
the archive before anything in it is deserialised (eval/scoring/archive.py: no pickle, no code),
the operations in its graph (no file access: a program may not open the split it is scored on,
which is mounted at a secret path besides), the interface (shapes) and causality. A model
whose logits at position t change when the tokens after t, or the other rows of the batch,
change is peeking at its targets. Every check takes the vocabulary size: 256 for bytes.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from eval.scoring import archive

VOCAB = 256
BATCH = 32
CAUSALITY_ATOL = 1e-3
OP_NAMESPACES = ("aten", "prims")
IO_OPS = ("from_file", "save", "load", "_print")  # aten ops that touch files by name, or print


WINDOW_DEFAULTS = {"seq_len": 256, "eval_bytes": 1 << 16, "eval_tokens": 1 << 14}  # task.options may set them
WINDOW_MINIMA = {"seq_len": 8, "eval_bytes": 1024, "eval_tokens": 64}


def window_options(options: dict, amount: str = "eval_bytes") -> tuple[int, int]:
    """(seq_len, how many bytes or tokens are scored) from the task's options, with the defaults; a clear
    error for bad values. amount: the option that says how much (eval_bytes, eval_tokens)."""
    seq_len, how_much = options.get("seq_len", WINDOW_DEFAULTS["seq_len"]), options.get(amount, WINDOW_DEFAULTS[amount])
    for name, value in (("seq_len", seq_len), (amount, how_much)):
        low = WINDOW_MINIMA[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"options.{name}: {value!r} must be a whole number of at least {low}")
    return seq_len, how_much


class ModelRejected(RuntimeError):
    """The exported model breaks the contract; the message says how."""


def load_model(path: Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """Check the archive, load the torch.export program, vet its operations; return (callable, parameter count)."""
    try:
        program = archive.load(path)
    except archive.UnsafeArchive as e:
        raise ModelRejected(f"the exported archive was refused before loading: {e}") from None
    check_ops(program)
    n_params = sum(int(t.numel()) for t in program.state_dict.values())
    return program.module(), n_params


def check_ops(program) -> None:
    """Only tensor operators (aten, prims) and tuple indexing; none that opens a file or takes a path."""
    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op != "call_function" or node.target is operator.getitem:
                continue
            target = node.target
            name = target.name() if isinstance(target, torch._ops.OpOverload) else str(target)
            paths = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, str) and "/" in a]
            namespace = name.partition("::")[0]
            if namespace not in OP_NAMESPACES or any(op in name for op in IO_OPS) or paths:
                raise ModelRejected(f"the exported model calls {name}{' on ' + paths[0] if paths else ''}: "
                                    "only tensor operations are allowed, nothing that reads files or prints")


def scored_windows(path: Path, seq_len: int, n_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of n_bytes // seq_len non-overlapping byte windows spread evenly over the split."""
    return windows(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8).long(), seq_len, n_bytes)


def windows(data: torch.Tensor, seq_len: int, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of n_tokens // seq_len non-overlapping windows of `data` (token ids), spread evenly."""
    n = min(max(1, n_tokens // seq_len), (len(data) - 1) // seq_len)
    if n < 1:
        raise ModelRejected(f"the split holds fewer than seq_len={seq_len} tokens: nothing to score")
    starts = torch.linspace(0, len(data) - seq_len - 1, n).long()
    rows = data[starts[:, None] + torch.arange(seq_len + 1)]
    return rows[:, :-1], rows[:, 1:]


def batches(x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(x), BATCH):
        yield x[i : i + BATCH], y[i : i + BATCH]


def logits_of(model: Callable, x: torch.Tensor, vocab: int = VOCAB) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (*x.shape, vocab):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        what = "byte" if vocab == VOCAB else "token"
        raise ModelRejected(f"the model must map {tuple(x.shape)} {what} ids to {(*x.shape, vocab)} logits, "
                            f"got {shape}")
    return out.float()


def check_causal(model: Callable, x: torch.Tensor, vocab: int = VOCAB) -> None:
    """Every cut position, in random rows, with the batch shuffled: the past must not move.

    Each probe row i keeps the first c_i tokens of window perm[i] and continues with other
    real text; its logits before c_i must equal those of window perm[i] in the unshuffled
    batch. The cuts cover every position 1..seq_len-1, the rows and the shuffle are random,
    so a model cannot look ahead, or at its neighbours, anywhere without being seen.
    NaN and inf must stay where they were too.
    """
    rows, seq_len = x[:BATCH], x.shape[1]
    if len(rows) < 2 or len(x) < 2:
        return
    base = logits_of(model, rows, vocab)
    other = torch.roll(x, shifts=max(1, len(x) // 2), dims=0)
    rng = secrets.SystemRandom()
    cuts = list(range(1, seq_len))
    rng.shuffle(cuts)
    for start in range(0, len(cuts), len(rows)):
        chunk = cuts[start : start + len(rows)]
        perm = rng.sample(range(len(rows)), len(chunk))
        probe = other[rng.sample(range(len(x)), len(chunk))].clone()
        for i, (row, cut) in enumerate(zip(perm, chunk, strict=True)):
            probe[i, :cut] = rows[row, :cut]
        out = logits_of(model, probe, vocab)
        for i, (row, cut) in enumerate(zip(perm, chunk, strict=True)):
            same = torch.isclose(out[i, :cut], base[row, :cut], atol=CAUSALITY_ATOL, rtol=0, equal_nan=True)
            if not same.all():
                position = int((~same).nonzero()[0][0])
                raise ModelRejected(
                    f"the model is not causal: its logits at position {position} changed when only the tokens "
                    f"from position {cut} on, or the other rows of the batch, changed. It must not look ahead."
                )
