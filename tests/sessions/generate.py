"""Regenerate the bundled sessions: `.venv/bin/python -m tests.sessions.generate [NAME ...]`.

No model is available here, so each session is the real Claude Code CLI driven by scripted
turns (loop/messages_server.py) in a scratch harness repo with real sandboxed training: the
CLI writes the transcript in its own format, the SessionStart hook the start state, the
SessionEnd hook copies the transcript to sessions/; both land here as NAME.jsonl and
NAME.start.json. Training is real, so the recorded numbers differ from one generation to
the next; the scripts do not depend on them. Takes 6 to 15 minutes on two (busy) CPU cores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from loop.messages_server import MessagesServer
from tests.claude_cli import run_claude
from tests.conftest import REPO, build_repo, make_corpus
from tests.test_sandbox import TINY_BIGRAM

HERE = Path(__file__).resolve().parent
PROMPT = "Run the research loop."
PROGRAM = """---
task:
  metric: val_bpb
  direction: minimize
  evaluator: eval.scoring.bpb:score
  budget_seconds: {budget}
  grace_seconds: {grace}
  seed: 1337
  options: {{seq_len: 64, eval_bytes: 16384}}
sandbox: {{memory_gb: 2, pids: 128, shm_mb: 256, output_mb: 64, score_seconds: 120}}
phases:
  - {{name: hyperparameters, instructions: Tune one knob per experiment., web: false}}
  - {{name: moonshot, instructions: Bold ideas from papers; cite the paper in the hypothesis., web: true,
      domains: [arxiv.org]}}
current_phase: {phase}
verdict: {{rule: noise, k: 2.2, seeds: 2, min_spread: 0.0}}
budget: {{hours: 8, experiments: {experiments}}}
---
# autoresearch (bundled session)

Edit train.py, run ./run.sh -m "hypothesis", record the verdict in scratchpad.md, repeat.
"""
SLOW_LR, GOOD_LR, TOO_LOW_LR = "LEARNING_RATE = 2e-5", "LEARNING_RATE = 2e-3", "LEARNING_RATE = 2e-6"
# The showcase's train.py is the project's, made small enough to take many steps in a few CPU seconds,
# with a learning rate far too low: the fix is then large against the seed-to-seed noise.
SHOWCASE_KNOBS = (("N_LAYER = 4", "N_LAYER = 2"), ("N_HEAD = 4", "N_HEAD = 2"), ("N_EMBD = 128", "N_EMBD = 64"),
                  ("BATCH_SIZE = 32", "BATCH_SIZE = 16"), ("WARMUP_STEPS = 20", "WARMUP_STEPS = 2"), (GOOD_LR, SLOW_LR))
LOG = "## Experiment log"
GRACE = 120  # start-up and export on a busy two-core machine can take a minute; a replay's runs need it too

Turn = list[dict]


def use(name: str, tool: str, text: str = "", **tool_input) -> Turn:
    lead = [{"type": "text", "text": text}] if text else []
    return lead + [{"type": "tool_use", "id": f"toolu_{name}", "name": tool, "input": tool_input}]


def bash(name: str, command: str, text: str = "") -> Turn:
    return use(name, "Bash", text, command=command)


def say(text: str) -> Turn:
    return [{"type": "text", "text": text}]


def note(name: str, repo: Path, line: str) -> Turn:
    return use(name, "Edit", file_path=str(repo / "scratchpad.md"), old_string=LOG, new_string=f"{LOG}\n\n- {line}")


def edit_train(name: str, repo: Path, old: str, new: str, text: str = "") -> Turn:
    return use(name, "Edit", text, file_path=str(repo / "train.py"), old_string=old, new_string=new)


def read(name: str, path: Path) -> Turn:
    return use(name, "Read", file_path=str(path))


def showcase(repo: Path) -> list[Turn]:
    """The demo: a baseline, a kept learning-rate fix, a discarded step too far, notes after each."""
    pad, train = repo / "scratchpad.md", repo / "train.py"
    return [
        read("read_notes", pad, ),
        bash("baseline", "./run.sh -m 'baseline'", "No experiments yet: the baseline first."),
        note("note_r0001", repo, "r0001 | keep | baseline | unchanged train.py | lr 2e-5 looks far too low"),
        read("read_train", train),
        edit_train("raise_lr", repo, SLOW_LR, GOOD_LR, "Hypothesis: at 2e-5 the model barely moves in a short budget."),
        bash("run_lr", "./run.sh -m 'raise the learning rate 100x, 2e-5 to 2e-3'"),
        note("note_r0002", repo, "r0002 | keep | lr 2e-3 | learning rate 100x | the budget is short: lr matters most"),
        read("reread_train", train),
        edit_train("lower_lr", repo, GOOD_LR, TOO_LOW_LR, "Check the other side: an even lower rate should lose."),
        bash("run_low", "./run.sh -m 'learning rate 2e-6, the opposite direction'"),
        note("note_r0003", repo, "r0003 | discard | lr 2e-6 | too low | keep lr near 2e-3"),
        say("Three experiments done: the budget in program.md is spent."),
    ]


def crash_and_timeout(repo: Path) -> list[Turn]:
    pad, train = repo / "scratchpad.md", repo / "train.py"
    return [
        bash("baseline", "./run.sh -m 'baseline'"),
        read("read_notes", pad),
        note("note_r0001", repo, "r0001 | keep | baseline | - | -"),
        read("read_train", train),
        edit_train("typo", repo, "torch.optim.Adam(", "torch.optim.Adamm(", "Try a different optimizer call."),
        bash("run_typo", "./run.sh -m 'optimizer rewrite'"),
        note("note_r0002", repo, "r0002 | crash | - | Adamm typo | read the log tail before running"),
        read("reread_train", train),
        edit_train("sleep", repo, "t0 = time.time()", "time.sleep(3600)\nt0 = time.time()", "Warm up the loader."),
        bash("run_sleep", "./run.sh -m 'wait for the data loader to warm up'"),
        note("note_r0003", repo, "r0003 | timeout | - | sleep before training | the harness kills at budget + grace"),
        say("Crash and timeout recorded; train.py is back at the baseline. Budget spent."),
    ]


def forbidden(repo: Path) -> list[Turn]:
    pad = repo / "scratchpad.md"
    return [
        bash("pip", "pip install lightgbm", "A better library would help."),
        bash("curl", "curl -s https://example.com/data.txt", "More data then."),
        read("read_eval", repo / "eval" / "bpb.py"),
        use("edit_eval", "Edit", "Maybe the metric is too strict.", file_path=str(repo / "eval" / "bpb.py"),
            old_string="def score", new_string="def score_"),
        bash("push", "git push origin research", "Back the work up."),
        bash("count", "wc -l train.py", "Fine: back to the loop. How big is train.py?"),
        bash("baseline", "./run.sh -m 'baseline after the refusals'"),
        read("read_notes", pad),
        note("note_r0001", repo, "r0001 | keep | baseline | - | pip, curl, eval/ edits and git push are refused"),
        say("Baseline recorded; the one experiment of the budget is done."),
    ]


def moonshot(repo: Path) -> list[Turn]:
    """The human ran the hyperparameter baseline, then moved current_phase to moonshot and started this session."""
    train = repo / "train.py"
    return [
        use("fetch_paper", "WebFetch", "The phase allows arxiv.org.", url="https://arxiv.org/abs/1412.6980",
            prompt="What learning rate does Adam recommend?"),
        use("fetch_other", "WebFetch", url="https://evil.example.com/val.bin", prompt="Download it."),
        read("read_train", train),
        edit_train("paper_lr", repo, "lr=0.1", "lr=0.05", "Following arXiv:1412.6980, a smaller step size."),
        bash("run_paper", "./run.sh -m 'arXiv:1412.6980: halve the Adam step size'"),
        read("read_notes", repo / "scratchpad.md"),
        note("note_r0002", repo, "r0002 | see verdict | lr 0.05 | Adam paper | -"),
        say("Recorded. The experiment budget is spent."),
    ]


def premature_stop(repo: Path) -> list[Turn]:
    train = repo / "train.py"
    return [
        bash("baseline", "./run.sh -m 'baseline'"),
        read("read_notes", repo / "scratchpad.md"),
        note("note_r0001", repo, "r0001 | keep | baseline | - | -"),
        say("The baseline is recorded. Shall I continue?"),  # the Stop hook refuses: budget left
        read("read_train", train, ),
        edit_train("double_lr", repo, "lr=0.1", "lr=0.2", "Right: the budget is not spent. Next: a larger step."),
        bash("run_lr", "./run.sh -m 'double the Adam step size'"),
        note("note_r0002", repo, "r0002 | see verdict | lr 0.2 | - | -"),
        say("Two experiments done: the budget is spent."),
    ]


def human_baseline_then_moonshot(repo: Path) -> None:
    """Before the moonshot session: the human's own baseline and note, then the steering edit to program.md."""
    subprocess.run(["./run.sh", "-m", "baseline"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    pad = repo / "scratchpad.md"
    pad.write_text(pad.read_text().replace(LOG, f"{LOG}\n\n- r0001 | keep | baseline | run by the human | -"))
    program = repo / "program.md"
    program.write_text(program.read_text().replace("current_phase: hyperparameters", "current_phase: moonshot"))


def showcase_train() -> str:
    text = (REPO / "train.py").read_text()
    for old, new in SHOWCASE_KNOBS:
        if text.count(old) != 1:
            raise SystemExit(f"train.py no longer says {old!r} once: update SHOWCASE_KNOBS")
        text = text.replace(old, new)
    return text


# name -> (turns, train.py, budget, grace, experiments, what happens before the session)
SESSIONS: dict[str, tuple[Callable[[Path], list[Turn]], str, float, float, int, Callable[[Path], None] | None]] = {
    "showcase": (showcase, showcase_train(), 4, GRACE, 3, None),
    "crash_and_timeout": (crash_and_timeout, TINY_BIGRAM, 2, 60, 3, None),  # the timeout costs budget + grace
    "forbidden": (forbidden, TINY_BIGRAM, 2, GRACE, 1, None),
    "moonshot": (moonshot, TINY_BIGRAM, 2, GRACE, 2, human_baseline_then_moonshot),
    "premature_stop": (premature_stop, TINY_BIGRAM, 2, GRACE, 2, None),
}


def generate(name: str, root: Path, corpus: Path) -> None:
    script, train, budget, grace, experiments, before = SESSIONS[name]
    program = PROGRAM.format(budget=budget, grace=grace, phase="hyperparameters", experiments=experiments)
    repo = build_repo(root / name, corpus, program)
    (repo / "train.py").write_text(train)
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", *identity, "commit", "-q", "-am", "the session's train.py"], cwd=repo, check=True)
    if before is not None:
        before(repo)
    with MessagesServer(script(repo)) as server:
        run = run_claude(repo, PROMPT, server.url, home=root / f"{name}-home", timeout=900)
    if run.returncode != 0 or run.session_id is None:
        raise RuntimeError(f"{name}: the CLI failed ({run.returncode}): {run.stderr[-2000:]}")
    for suffix in (".jsonl", ".start.json"):
        shutil.copyfile(repo / "sessions" / f"{run.session_id}{suffix}", HERE / f"{name}{suffix}")
    print(f"{name}: {run.duration_s:.0f}s, {len(run.permission_denials)} denials -> tests/sessions/{name}.jsonl")


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="sessions-") as tmp:
        corpus = make_corpus(Path(tmp) / "corpus")
        for name in names or SESSIONS:
            generate(name, Path(tmp), corpus)


if __name__ == "__main__":
    main(sys.argv[1:])
