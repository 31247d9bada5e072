"""`./run.sh python ARGS`: the agent's own Python (`-c CODE`, `-m MODULE`, train.py), in the training sandbox.

Agents check things with Python: a result JSON, a tensor's shape, whether train.py compiles, a quick
test. On the host that Python could read the held-out splits, the harness's internals or the network,
so it runs where training runs instead: the same backend (never the unsafe one), no network, the
runtime read-only with the held-out sources masked (eval/heldout.py, proven by its scan), and of the
repository only what the agent may read anyway, at the same relative paths as on the host: the
editable files, results.tsv, runs/ (the sealed runs/confirm and runs/scorer shown empty) and the
training split data/train.bin. It is short (PYTHON_SECONDS), its output is capped and neutralised, it
writes nothing back and is no experiment: nothing goes to the ledger.
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

from eval import config, heldout
from eval.data import ARTIFACTS, DataError, load_manifest
from eval.record.text import visible
from eval.trial import project_code
from sandbox.backends import select_backend
from sandbox.gpu import has_gpu
from sandbox.job import SANDBOX_ENV, Job, Mask, Mount, SandboxFailed, SandboxUnavailable
from sandbox.runtime import python_executable

CODE = "/code"  # the repository's readable part, as the sandbox shows it (also the working directory)
SHOWN = ("train.py", "scratchpad.md", "results.tsv", "data/train.bin", "data/manifest.json")  # files, if present
SHOWN_DIRS = ("runs",)
SEALED = ("runs/confirm", "runs/scorer")  # inside runs/ but never the agent's to read (hooks/guard/paths.py)
PYTHON_SECONDS = 120
SMOKE_BUDGET_S = 10  # train.py run this way trains this long: a smoke test, not a measurement
OUTPUT_CAP = 64_000  # characters printed; Claude Code would cut a longer output anyway


def python_job(repo: Path, program: config.Program, args: list[str], masks: tuple[Mask, ...]) -> Job:
    """The job: `python ARGS` in /code, seeing what SHOWN names and the runtime with `masks` applied."""
    task = program.task
    files = dict.fromkeys((*SHOWN, *task.editable))  # the editable files the agent works on, then task.code
    shown = [name for name in files if (repo / name).is_file()] + [d for d in SHOWN_DIRS if (repo / d).is_dir()]
    shown += [rel for rel in (*task.code, f"data/{ARTIFACTS}") if (repo / rel).exists() and rel not in shown]
    sealed = tuple(Mask(f"{CODE}/{name}") for name in SEALED if (repo / name).is_dir())
    seq_len = program.task.options.get("seq_len")
    return Job(
        argv=[python_executable(), *args],
        mounts=[Mount(repo / name, f"{CODE}/{name}") for name in shown],
        env={**SANDBOX_ENV, "AUTORESEARCH_DATA": f"{CODE}/data/train.bin", "AUTORESEARCH_OUT": "/tmp/out",
             "AUTORESEARCH_BUDGET_S": str(SMOKE_BUDGET_S), "PYTHONPATH": CODE,
             **({"AUTORESEARCH_SEQ_LEN": str(seq_len)} if seq_len else {})},
        timeout_s=PYTHON_SECONDS,
        limits=program.limits,
        workdir=CODE,
        gpu=has_gpu(),
        owner=str((repo / "runs" / "python").resolve()),
        masks=masks + sealed,
    )


class Printer:
    """The job's output to our stdout as it comes: decoded, every control character escaped, capped."""

    def __init__(self, cap: int = OUTPUT_CAP):
        self.decode = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace").decode
        self.left, self.written = cap, 0

    def __call__(self, chunk: bytes) -> None:
        self.written += len(chunk)
        text = visible(self.decode(chunk))[: max(self.left, 0)]
        self.left -= len(text)
        sys.stdout.write(text)
        sys.stdout.flush()

    def close(self) -> None:
        if self.left <= 0:
            print(f"\n[./run.sh python: output cut at {OUTPUT_CAP:,} characters of {self.written:,} bytes]")


def run(repo: Path, args: list[str]) -> int:
    program = config.load(repo / "program.md")
    data_dir = repo / "data"
    backend = select_backend(unsafe=False)  # never unconfined: this is the agent's code
    masks = heldout.ensure(data_dir, load_manifest(data_dir), backend, say=lambda s: print(s, file=sys.stderr),
                           code=project_code(repo, program.task))
    printer = Printer()
    result = backend.run(python_job(repo, program, args, masks), printer)
    printer.close()
    if result.timed_out:
        print(f"[./run.sh python: stopped after {PYTHON_SECONDS} s]", file=sys.stderr)
        return 124
    if result.oom:
        print(f"[./run.sh python: out of memory (limit {program.limits.memory_gb:g} GB)]", file=sys.stderr)
    return 1 if result.exit_code is None else result.exit_code


USAGE = "usage: ./run.sh python -c CODE | -m MODULE | train.py [ARGS...]  (your Python, in the training sandbox)"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv  # all of it is Python's: no options of our own
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if args else 2
    try:
        return run(Path.cwd(), args)
    except (config.ConfigError, DataError, SandboxUnavailable, SandboxFailed) as e:
        print(f"./run.sh python: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
