"""Bring an existing training script under the harness: `./run.sh adopt PATH --metric M --direction D`.

A legacy script loads its own data file, trains for its own number of epochs, prints its own
metric and saves a checkpoint. The harness needs more: the training split from
$AUTORESEARCH_DATA, the seed it chooses, a stop at the budget, and the model exported with
torch.export for a scorer that alone sees the held-out rows. What adopt does, in order
(nothing is written until every check has passed; the script at PATH is never written):

  1. checks: the script parses and uses torch; the metric is one the table evaluator knows
     (eval/scoring/tabular.py) in its own direction; the table is a numeric CSV; the repository is a
     harness clone with no experiments yet and no uncommitted train.py or program.md.
  2. data: splits the table 70/15/15 by row hash and freezes it under data/ with a manifest
     (eval/data.py's freeze: frozen data is never replaced silently).
  3. train.py: the script with a shim in front (seeds, the budget, the export) and a few
     marked edits: its data file's name -> AUTORESEARCH_DATA, its constant seeds ->
     AUTORESEARCH_SEED, a budget stop at the top of each epoch loop. What it could not edit
     it lists as manual steps, with any preprocessing fitted outside the model (a scaler,
     fit_transform, X.mean(0)): the scorer feeds the exported model the raw columns. The
     modules and packages beside the script that it imports are copied in as task.code
     (never over a file of the repository).
  4. program.md: the front matter for the task (metric, direction, evaluator, options),
     keeping the sandbox, verdict and budget settings already there; train.py and program.md
     are committed by the harness.
  5. the baseline: one experiment (eval/experiment.py). If it fails, adopt reads the outcome
     and the log and says what the script still needs (exit 3); train.py stays committed for
     the fix.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from eval import config
from eval.data import DataError, freeze, hidden
from eval.record import history, ledger
from eval.scoring import tabular

BUDGET_STOP = "if autoresearch_time_left() <= 0:  # autoresearch: stop at the budget\n{indent}    break\n"
SEED_CALLS = {"seed", "manual_seed", "manual_seed_all"}  # random.seed, np.random.seed, torch.manual_seed, ...
# Preprocessing fitted on the data outside the model: the scorer feeds the exported model the raw columns.
FITTED = {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "Normalizer", "QuantileTransformer",
          "PowerTransformer", "PCA", "fit_transform"}
STATISTICS = {"mean", "std", "var", "min", "max", "amin", "amax"}  # X.mean(0): a normalisation constant
SHIM_END = "# --- end of the shim: the original script follows (adopt's edits: see the adoption commit) ---\n"
SHIM = '''\
# --- autoresearch adoption shim, written by `./run.sh adopt` (commands/adopt.py) ---
# The harness runs this file with no arguments, in a sandbox, and gives it the seed, the time
# budget, the training split and the only writable dir as AUTORESEARCH_* variables, and SIGURG
# at the budget (its clock starts before this file runs). The shim seeds the usual generators,
# offers autoresearch_time_left() for the training loop (0 once SIGURG came), and when
# the script ends exports the model it last saved with torch.save (the module or its
# state_dict) to $AUTORESEARCH_OUT/model.pt2: float (batch, @FEATURES@) features in, (batch,
# classes) logits or (batch,) predictions out. The harness scores that program on rows this
# file never sees; what the script prints is not the score.
import atexit as _ar_atexit
import gc as _ar_gc
import os as _ar_os
import random as _ar_random
import signal as _ar_signal
import time as _ar_time
import warnings as _ar_warnings

import torch as _ar_torch

AUTORESEARCH_SEED = int(_ar_os.environ.get("AUTORESEARCH_SEED", 0))
AUTORESEARCH_BUDGET_S = float(_ar_os.environ.get("AUTORESEARCH_BUDGET_S", "inf"))
AUTORESEARCH_DATA = _ar_os.environ.get("AUTORESEARCH_DATA", @DATA@)
AUTORESEARCH_OUT = _ar_os.environ.get("AUTORESEARCH_OUT", ".")
AUTORESEARCH_FEATURES = @FEATURES@
_ar_t0 = []  # when the training loop first asked for the time left
_ar_stopped = []  # the harness's SIGURG: the budget is spent
_ar_saved = []  # the module of the script's last torch.save
_ar_torch_save = _ar_torch.save


def autoresearch_time_left():
    """Seconds of the training budget left, counted from the first call (one epoch at least), 0 after SIGURG."""
    if not _ar_t0:
        _ar_t0.append(_ar_time.time())
        return AUTORESEARCH_BUDGET_S
    return 0.0 if _ar_stopped else AUTORESEARCH_BUDGET_S - (_ar_time.time() - _ar_t0[0])


def _ar_tensors(obj, found):
    if isinstance(obj, _ar_torch.Tensor):
        found.add(obj.data_ptr())
    elif isinstance(obj, dict):
        for value in obj.values():
            _ar_tensors(value, found)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _ar_tensors(value, found)
    return found


def _ar_state(module):
    return {t.data_ptr() for t in module.state_dict().values()}


def _ar_module_of(obj):
    """The module torch.save was given: itself, or the largest module whose whole state is in it."""
    if isinstance(obj, _ar_torch.nn.Module):
        return obj
    saved = _ar_tensors(obj, set())
    if _ar_saved and _ar_state(_ar_saved[0]) == saved:  # the same state_dict saved again: no search
        return _ar_saved[0]
    with _ar_warnings.catch_warnings():  # isinstance wakes deprecated lazy objects up
        _ar_warnings.simplefilter("ignore")
        modules = [m for m in _ar_gc.get_objects() if isinstance(m, _ar_torch.nn.Module)]
    states = [(m, _ar_state(m)) for m in modules]
    matches = [(len(state), i) for i, (m, state) in enumerate(states) if state and state <= saved]
    return states[max(matches)[1]][0] if matches else None


def _ar_save(obj, *args, **kwargs):
    module = _ar_module_of(obj)
    if module is not None:
        _ar_saved[:] = [module]
    return _ar_torch_save(obj, *args, **kwargs)


@_ar_atexit.register
def _ar_export():
    _ar_torch.save = _ar_torch_save
    if not _ar_saved:
        print("autoresearch: the script saved no model with torch.save, so none was exported", flush=True)
        return
    model = _ar_saved[0].to("cpu").float().eval()
    batch = _ar_torch.export.Dim("batch", min=1, max=1 << 20)
    with _ar_torch.no_grad():
        example = (_ar_torch.zeros(2, AUTORESEARCH_FEATURES),)
        program = _ar_torch.export.export(model, example, dynamic_shapes=({0: batch},))
    _ar_os.makedirs(AUTORESEARCH_OUT, exist_ok=True)
    _ar_torch.export.save(program, _ar_os.path.join(AUTORESEARCH_OUT, "model.pt2"))


_ar_torch.save = _ar_save
_ar_signal.signal(_ar_signal.SIGURG, lambda *_: _ar_stopped.append(True))
_ar_random.seed(AUTORESEARCH_SEED)
_ar_torch.manual_seed(AUTORESEARCH_SEED)
try:
    import numpy as _ar_numpy

    _ar_numpy.random.seed(AUTORESEARCH_SEED % 2**32)
except ImportError:
    pass
'''
PHASES = [
    {"name": "hyperparameters", "web": False, "instructions":
        "Tune the obvious knobs first: learning rate and schedule, batch size, epochs for the budget, "
        "regularization, model width. One knob per experiment."},
    {"name": "architecture", "web": False, "instructions":
        "Change the model itself: depth, normalization, activations, initialization, the loss. "
        "Keep what the hyperparameter phase found."},
]
BODY = """
# autoresearch: {name}

You are an autonomous ML researcher. Your job: make `train.py` (adopted from `{name}`) reach a
better `{metric}` ({direction}), computed by the harness on held-out rows of the table, within
a fixed training budget. The harness trains, scores and decides; you think, edit and record.

## The loop

1. Read `scratchpad.md`: the current best, what was tried, what failed.
2. Form ONE hypothesis and edit `train.py` to test it: one change per experiment.
3. Run `./run.sh -m "your hypothesis in one line"` (no `&`, pipes or redirections) and wait.
4. Read the verdict. KEEP: the harness committed `train.py`. DISCARD, CRASH, TIMEOUT: it restored
   `train.py` to the best version and saved your attempt under a git ref.
5. Record the experiment id, verdict and lesson in `scratchpad.md` (Experiment log:
   `id | verdict | metric | change | lesson`); the next `./run.sh` is refused until you do.
6. Go to 1. NEVER STOP: do not ask whether to continue.

## Rules

- Edit only `train.py` and `scratchpad.md`. No new packages, no network, no git commands that write.
- Keep the shim at the top of `train.py` and its contract: read the training rows from
  `AUTORESEARCH_DATA` (a CSV with a header; the target column is `{target}`), stop when
  `autoresearch_time_left()` reaches 0, save the model with `torch.save` (or export it yourself to
  `$AUTORESEARCH_OUT/model.pt2`). The model's forward takes the raw float features, in the
  CSV's column order: put any preprocessing inside the model, or the scorer will not apply it.
- What `train.py` prints is not the score. Simpler code for an equal result is a win.
"""
DIAGNOSES = (  # (outcome, regex on the reason and train.py's log, what the script still needs), first match
    ("timeout", "", "it ran past the budget + grace and was killed: make the training loop stop when "
     "autoresearch_time_left() <= 0 (the shim defines it), or train fewer epochs"),
    ("overtime", "", "it went on computing after the harness's stop signal at the budget: make the training "
     "loop stop when autoresearch_time_left() <= 0 (the shim sets it to 0 at the signal), and keep the work "
     "after the loop (evaluation, saving) short"),
    ("crash", "ModuleNotFoundError", "it imports a package the sandbox's Python lacks: add the package to "
     "pyproject.toml's dependencies (the sandbox runs .venv), or drop the import"),
    ("crash", "the following arguments are required", "it needs command-line arguments, and the harness runs it "
     "with none: give every argument a default"),
    ("crash", "FileNotFoundError: (?!train.py did not leave)", "it opens a file that does not exist in the "
     "sandbox: read the rows from AUTORESEARCH_DATA (the training split, your CSV format), and write only "
     "relative paths (the working dir is the output dir)"),
    ("crash", "Read-only file system", "it writes outside its output dir: write only relative paths or under "
     "AUTORESEARCH_OUT"),
    ("crash", "saved no model", "it saved no model with torch.save: add torch.save(model.state_dict(), "
     "'model.pt') after training (the shim exports that module)"),
    ("crash", "did not leave an exported model", "no model.pt2 came out: see the log tail for the export error"),
    ("crash", "was rejected", "the scorer rejected the exported model: see the reason above"),
    ("oom", "", "it ran out of memory: lower the batch size or the model, or raise sandbox.memory_gb"),
    ("nan", "", "the model's outputs hold NaN or inf: check the learning rate and the loss"),
    ("crash", "", "it crashed: see the log tail"),
)


class AdoptError(RuntimeError):
    """The script or the repository cannot be adopted as asked; the message says what to do."""


@dataclass(frozen=True)
class Adapted:
    text: str  # the new train.py
    edits: list[str]  # what adopt changed, one line each
    manual: list[str]  # what it could not do: steps for the user


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_metric(metric: str, direction: str) -> str:
    """The table metric the name means, in its own direction, or an AdoptError that lists the choices."""
    name = tabular.metric_named(metric)
    if name is None:
        known = ", ".join(f"{m} ({d})" for m, (_, d, _) in tabular.METRICS.items())
        raise AdoptError(f"--metric {metric}: the table evaluator knows {known}. Another metric or data format "
                         "is the manual procedure in README (Bring your own task): ./run.sh prepare, an adapter "
                         "eval/scoring/yours.py with score(model_path, data_path, options), program.md")
    natural = tabular.METRICS[name][1]
    if direction != natural:
        raise AdoptError(f"--direction {direction}: {metric} ({name}) is better when it is "
                         f"{'higher' if natural == 'maximize' else 'lower'}; pass --direction {natural}")
    return name


def check_repo(repo: Path) -> None:
    history.check(repo)
    rows = ledger.read(repo)
    if rows:
        raise AdoptError(f"{repo} already holds {len(rows)} experiment(s) on {rows[0]['metric']}: one repository "
                         "researches one task. Adopt into a fresh clone of the harness, or move runs/ and "
                         "results.tsv away first")
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "train.py", "program.md"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout.strip()
    if dirty:
        raise AdoptError(f"uncommitted changes to train.py or program.md ({dirty!r}) would be replaced: "
                         "commit or move them first")


def sibling_code(script: Path) -> list[str]:
    """The modules and packages beside the script that it imports (and they import): task.code, copied in."""
    found: list[str] = []
    todo = [script]
    while todo:
        tree = ast.parse(todo.pop().read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}
        for name in sorted(names):
            module, package = script.parent / f"{name}.py", script.parent / name
            rel = f"{name}.py" if module.is_file() else name if (package / "__init__.py").is_file() else None
            if rel and rel not in found and (script.parent / rel) != script:
                found.append(rel)
                todo += [module] if module.is_file() else sorted(package.rglob("*.py"))
    return sorted(found)


def fitted_outside(tree: ast.AST) -> list[str]:
    """Preprocessing fitted on the data outside any forward(): scalers, fit_transform, normalisation constants."""
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "forward"
              for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in inside:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        axis = node.args or any(k.arg in ("axis", "dim") for k in node.keywords)
        if name in FITTED or (name in STATISTICS and axis and isinstance(node.func, ast.Attribute)):
            found.append((node.lineno, node.col_offset, f"line {node.lineno}: {ast.unparse(node)[:60]}"))
    return [text for *_, text in sorted(found)]


def check_code(repo: Path, script: Path, code: list[str]) -> None:
    """The sibling modules can join the repository: project paths, and nothing of the human's there replaced."""
    for rel in code:
        try:
            config.project_path(rel, "task.code", "adopt")
        except config.ConfigError as e:
            raise AdoptError(f"{script.name} imports {rel}, which cannot join the harness's repository ({e}); "
                             "rename the module") from None
        if (repo / rel).exists():
            raise AdoptError(f"{script.name} imports {rel}, but the repository already holds {rel}: move it away "
                             "(adopt never replaces your files)")


def matches_data(value: object, data: Path) -> bool:
    return isinstance(value, str) and bool(value) and (
        value in (str(data), data.name) or value.endswith("/" + data.name))


def adapt(source: str, data: Path, features: int) -> Adapted:
    """train.py: the shim, then the script with its data path, seeds and epoch loops edited."""
    tree = ast.parse(source)
    edits: list[tuple[int, int, int, int, str]] = []  # (line, col, end line, end col, new text), 1-based lines
    notes: list[tuple[int, str]] = []
    done: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and matches_data(node.value, data):
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, "AUTORESEARCH_DATA"))
            notes.append((node.lineno, f"the data file {node.value!r} -> AUTORESEARCH_DATA (the training split)"))
            done.add("data")
        elif isinstance(node, ast.Call) and (arg := seeded_constant(node)) is not None:
            edits.append((arg.lineno, arg.col_offset, arg.end_lineno, arg.end_col_offset, "AUTORESEARCH_SEED"))
            notes.append((arg.lineno, f"the fixed seed {arg.value!r} -> AUTORESEARCH_SEED (the harness's)"))
        elif (isinstance(node, ast.For) and "epoch" in ast.unparse(node.target).lower()
              and node.body[0].lineno > node.lineno):
            first = node.body[0]
            indent = " " * first.col_offset
            edits.append((first.lineno, 0, first.lineno, 0, indent + BUDGET_STOP.format(indent=indent)))
            notes.append((node.lineno, "the epoch loop stops when the budget is spent"))
            done.add("budget")
        elif isinstance(node, ast.Attribute) and node.attr == "save":
            done.add("save")
    lines = source.encode().splitlines(keepends=True)
    for line, col, end_line, end_col, text in sorted(edits, reverse=True):
        head, tail = lines[line - 1][:col], lines[end_line - 1][end_col:]
        lines[line - 1 : end_line] = [head + text.encode() + tail]
    body = b"".join(lines).decode()
    manual = []
    if "data" not in done:
        manual.append(f"read the data from AUTORESEARCH_DATA: no string {data.name!r} was found in the script")
    if "budget" not in done:
        manual.append("stop training at the budget: add `if autoresearch_time_left() <= 0: break` to the training "
                      "loop (no `for epoch in ...` loop was found); until then the harness kills it at budget + grace")
    if "save" not in done:
        manual.append("save the trained model: add torch.save(model.state_dict(), 'model.pt') after training")
    for where in fitted_outside(tree):
        manual.append(f"{where} fits preprocessing outside the model: the scorer feeds the exported model the raw "
                      "columns, so this scaling never reaches it and the score is wrong (often below chance). Move "
                      "it into forward: register the fitted constants as buffers and apply them there")
    future = max((n.end_lineno for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"),
                 default=0)
    body_lines = body.splitlines(keepends=True)
    shim = SHIM.replace("@DATA@", repr(data.name)).replace("@FEATURES@", str(features)) + SHIM_END
    text = "".join(body_lines[:future]) + shim + "".join(body_lines[future:])
    return Adapted(text, [f"line {n}: {note}" for n, note in sorted(notes)], manual)


def seeded_constant(call: ast.Call) -> ast.Constant | None:
    """The constant seed of random.seed(0), torch.manual_seed(0), add_argument('--seed', default=0)."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name in SEED_CALLS and len(call.args) == 1 and isinstance(call.args[0], ast.Constant) \
            and isinstance(call.args[0].value, int):
        return call.args[0]
    if name == "add_argument" and any(isinstance(a, ast.Constant) and a.value == "--seed" for a in call.args):
        default = next((k.value for k in call.keywords if k.arg == "default"), None)
        return default if isinstance(default, ast.Constant) and isinstance(default.value, int) else None
    return None


def program_text(repo: Path, script: Path, metric: str, direction: str, evaluator: str, options: dict,
                 budget: float | None, code: list[str] = ()) -> str:
    """program.md for the adopted task; the sandbox, verdict and budget settings already there are kept."""
    current = config.load(repo / "program.md")
    previous = yaml.safe_load(config.split_front_matter((repo / "program.md").read_text(), "program.md")[0])
    front = {
        "task": {"metric": metric, "direction": direction, "evaluator": evaluator, "train_file": "train.py",
                 "budget_seconds": budget or current.task.budget_seconds, "grace_seconds": current.task.grace_seconds,
                 "seed": current.task.seed, "options": options, **({"code": list(code)} if code else {})},
        **{k: previous[k] for k in ("sandbox", "verdict", "budget") if k in previous},
        "phases": PHASES,
        "current_phase": PHASES[0]["name"],
    }
    body = BODY.format(name=script.name, metric=metric, direction=direction, target=options.get("target", "?"))
    text = "---\n# Written by ./run.sh adopt; humans edit it to steer.\n" + yaml.safe_dump(front, sort_keys=False) \
        + "---\n" + body
    config.parse(text)  # fails here, before anything is written, if it is not a valid program.md
    return text


def commit(repo: Path, message: str, code: list[str] = ()) -> str:
    r = history.open_repo(repo)
    r.index.add(["train.py", "program.md", *code])
    return r.index.commit(message, author=history.HARNESS, committer=history.HARNESS).hexsha


def diagnose(metrics: dict) -> str:
    """What the failed baseline says the script still needs, from its outcome and log."""
    text = f"{metrics.get('reason', '')}\n{metrics.get('log_tail', '')}"
    return next(fix for outcome, clue, fix in DIAGNOSES if outcome == metrics["outcome"] and re.search(clue, text))


def adopt(repo: Path, script: Path, metric: str, direction: str, data: Path, target: str | None = None,
          budget: float | None = None, baseline: bool = True, force: bool = False,
          unsafe: bool = False, say=print) -> int:
    """Adopt script into repo; returns the exit status (0 baseline kept, 3 baseline failed)."""
    script, repo = script.resolve(), repo.resolve()
    if script == repo / "train.py":
        raise AdoptError("adopt replaces train.py: pass your script from another path (cp train.py ../mine.py)")
    try:
        source = script.read_text(encoding="utf-8")
        ast.parse(source)
    except (OSError, UnicodeDecodeError) as e:
        raise AdoptError(f"{script}: cannot read it: {e}") from None
    except SyntaxError as e:
        raise AdoptError(f"{script}: line {e.lineno}: not valid Python: {e.msg}") from None
    if not re.search(r"^\s*(import|from)\s+torch\b", source, re.MULTILINE):
        raise AdoptError(f"{script} does not use torch: the harness scores a torch.export program. Port the model "
                         "to a torch.nn.Module whose forward takes a float (batch, features) tensor, save it with "
                         "torch.save, and adopt again")
    name = check_metric(metric, direction)
    check_repo(repo)
    try:
        header, rows, column = tabular.read_table(data.read_text(encoding="utf-8"), str(data), target)
    except (OSError, UnicodeDecodeError) as e:
        raise AdoptError(f"{data}: cannot read it: {e}") from None
    tabular.check_target(header, rows, column, tabular.METRICS[name][0], str(data))
    blobs, manifest = tabular.split_table(header, rows, column, str(data.resolve()))
    manifest["hidden"] = hidden([data])  # the table's rows are the held-out ones too: training must not see it
    adapted = adapt(source, data, len(header) - 1)
    code = sibling_code(script)
    check_code(repo, script, code)
    options = {"metric": name, "target": header[column]}
    program = program_text(repo, script, metric, direction, "eval.scoring.tabular:score", options, budget, code)

    freeze(repo / "data", blobs, manifest, force)
    for rel in code:
        copy = shutil.copytree if (script.parent / rel).is_dir() else shutil.copyfile
        copy(script.parent / rel, repo / rel, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                   if copy is shutil.copytree else {}))
    (repo / "train.py").write_text(adapted.text)
    (repo / "program.md").write_text(program)
    edits = "".join(f"- {e}\n" for e in adapted.edits)
    sha = commit(repo, f"adopt {script.name}: {metric} ({direction}) on {data.name}\n\n"
                       f"Original: {script} (sha256 {sha256(source.encode())})\nEdits besides the shim:\n{edits}"
                       + (f"Project code (task.code, read-only in the sandbox): {', '.join(code)}\n" if code else ""),
                 code)
    say(report(script, data, manifest, adapted, sha, code))
    if not baseline:
        return 0
    from eval import experiment  # the sandbox and plotting stack: only a baseline needs it

    d = experiment.run_experiment(repo, f"baseline: {script.name} as adopted", budget, unsafe, say)
    say(experiment.verdict_text(d))
    if d["outcome"] == "ok":
        say(f"adopted: the baseline is {d['id']}. Run ./run.sh (or claude) to research; ./run.sh confirm at the end.")
        return 0
    metrics = json.loads((repo / "runs" / d["id"] / "metrics.json").read_text())
    say(f"adopt: the baseline failed ({d['outcome']}): {diagnose(metrics)}.\nFix train.py (adopted as {sha[:10]}) "
        "and run ./run.sh: the first kept run is the baseline.")
    return 3


def report(script: Path, data: Path, manifest: dict, adapted: Adapted, sha: str, code: list[str] = ()) -> str:
    split = ", ".join(f"{k} {v['rows']}" for k, v in manifest["splits"].items())
    lines = [f"adopt: {script} -> train.py (committed {sha[:10]}; the original is untouched)",
             f"data: {data} -> data/ (rows: {split}; target {manifest['target']!r}; manifest {manifest['hash'][:12]})",
             "edits:", *[f"  {e}" for e in adapted.edits or ["(none)"]],
             "  the shim in front seeds the run and exports the model saved with torch.save"]
    if code:
        lines.append(f"project code: {', '.join(code)} copied in as task.code (importable, read-only in the sandbox)")
    if adapted.manual:
        lines += ["still to do by hand (the baseline will show whether they matter):",
                  *[f"  - {m}" for m in adapted.manual]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sandbox.job import SandboxUnavailable

    ap = argparse.ArgumentParser(prog="./run.sh adopt", description=__doc__.splitlines()[0])
    ap.add_argument("script", type=Path, help="your training script (it is read, never written)")
    ap.add_argument("--metric", required=True, help=f"one of {', '.join(tabular.METRICS)}")
    ap.add_argument("--direction", required=True, choices=("minimize", "maximize"))
    ap.add_argument("--data", type=Path, required=True, help="your table: a CSV with a header, numbers only")
    ap.add_argument("--target", help="the target column (default: the last one)")
    ap.add_argument("--budget", type=float, help="training seconds per experiment (default: program.md's)")
    ap.add_argument("--no-baseline", action="store_true", help="set up only; the first ./run.sh is the baseline")
    ap.add_argument("--force", action="store_true", help="replace frozen data that differs")
    ap.add_argument("--unsafe-no-sandbox", action="store_true", help="run train.py unconfined if no sandbox exists")
    args = ap.parse_args(argv)
    try:
        return adopt(Path.cwd(), args.script, args.metric, args.direction, args.data, args.target, args.budget,
                     not args.no_baseline, args.force, args.unsafe_no_sandbox)
    except (AdoptError, tabular.TableError, DataError, config.ConfigError, history.NotAResearchRepo,
            SandboxUnavailable) as e:
        print(f"adopt: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
