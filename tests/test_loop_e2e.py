"""The research loop end to end: the real Claude Code CLI, real sandboxed training, real git.

A scripted model runs the baseline, tries to run again before recording the verdict (refused),
records it, makes train.py worse and runs it. The harness must keep the baseline, discard the
candidate (train.py restored, its diff under a ref), write both to the ledger, and hand each
verdict back to the model, as the PostToolUse hook's additionalContext, in the next request.
"""

from __future__ import annotations

import json

import git

from eval.record import ledger
from loop.messages_server import MessagesServer
from tests.claude_cli import run_claude
from tests.conftest import write_program
from tests.test_sandbox import TINY_BIGRAM

GOOD_LR, BAD_LR = "lr=0.1", "lr=0.0"


def bash(name: str, command: str) -> list[dict]:
    return [{"type": "tool_use", "id": f"toolu_{name}", "name": "Bash", "input": {"command": command}}]


def tool(name: str, tool_name: str, **tool_input) -> list[dict]:
    return [{"type": "tool_use", "id": f"toolu_{name}", "name": tool_name, "input": tool_input}]


def test_keep_then_discard_with_verdicts_fed_back(repo, tmp_path):
    write_program(repo, metric="val_acc", direction="maximize", evaluator="eval.scoring.accuracy:score",
                  budget=2, seeds=2)
    (repo / "train.py").write_text(TINY_BIGRAM)
    r = git.Repo(repo)
    r.git.add(A=True)
    r.git.commit("-q", "-m", "tiny task", "--author", "test <test@example.com>")
    (repo / "STOP").write_text("")  # let the session end when the script does (the Stop hook is tested elsewhere)
    scratchpad, train = repo / "scratchpad.md", repo / "train.py"
    turns = [
        bash("baseline", "./run.sh -m 'baseline'"),
        bash("too_soon", "./run.sh -m 'again before taking notes'"),
        tool("read_notes", "Read", file_path=str(scratchpad)),
        tool("note", "Edit", file_path=str(scratchpad), old_string="## Experiment log",
             new_string="## Experiment log\n\n- r0001 | keep | baseline"),
        tool("read_train", "Read", file_path=str(train)),
        tool("worsen", "Edit", file_path=str(train), old_string=GOOD_LR, new_string=BAD_LR),
        bash("candidate", "./run.sh -m 'no learning at all'"),
        [{"type": "text", "text": "Recorded."}],
    ]
    with MessagesServer(turns) as srv:
        run = run_claude(repo, "Run the research loop.", srv.url, home=tmp_path / "home", timeout=400)
        results = {t.tool_use_id.removeprefix("toolu_"): t for t in srv.tool_results()}
        mains = [json.dumps(q.body) for q in srv.requests if q.kind == "main"]
    assert run.returncode == 0, run.stderr

    assert not results["baseline"].is_error, results["baseline"].content[-2000:]
    assert "VERDICT: KEEP" in mains[1]  # the request right after the baseline run carries the verdict
    assert results["too_soon"].is_error and "scratchpad.md" in results["too_soon"].content
    assert not results["candidate"].is_error or "VERDICT" in results["candidate"].content, results["candidate"].content
    assert "VERDICT: DISCARD" in mains[7] and "refs/autoresearch/discarded/r0002" in mains[7]

    rows = ledger.read(repo)
    assert [(row["id"], row["status"]) for row in rows] == [("r0001", "keep"), ("r0002", "discard")]
    assert len(rows[0]["values"]) == 2 and len(rows[1]["values"]) == 1  # the baseline got its extra seed
    assert GOOD_LR in train.read_text() and BAD_LR not in train.read_text()  # restored to the best
    assert BAD_LR in r.git.show("refs/autoresearch/discarded/r0002:train.py")
    assert "Autoresearch-Experiment: r0001" in r.head.commit.message
    assert GOOD_LR in r.head.commit.tree["train.py"].data_stream.read().decode()
    assert "r0001 | keep" in scratchpad.read_text()  # the notes stay; the next keep commits them
    assert (repo / "progress.png").exists() and (repo / "results.tsv").read_text().count("\n") == 3
