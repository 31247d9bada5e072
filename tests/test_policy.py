"""The guard, table-driven: each row is a tool call and the decision it must get.

The policy runs against a throwaway repository (tmp) with the harness layout, hidden data
splits and planted symlinks, and against Program objects parsed from program.md texts
written here, so every phase can be exercised. The hook itself is run as Claude Code runs
it, through hooks/launch, in a copy of the repository.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval import config, rules
from eval.clock import START_CAP_S
from hooks.guard import policy
from hooks.guard.commands import COMMANDS, DATE, GREP, SED, Form
from hooks.guard.options import option_table

MAIN = Path(__file__).resolve().parent.parent
ALLOW, DENY = "allow", "deny"

PROGRAM = """---
task:
  metric: val_bpb
  direction: minimize
  evaluator: eval.scoring.bpb:score
  budget_seconds: {budget}
  grace_seconds: 60
sandbox:
  score_seconds: 300
phases:
  - name: hyperparameters
    instructions: Tune the knobs.
    web: false
  - name: architecture
    instructions: Change the model.
  - name: moonshot
    instructions: Read papers.
    web: true
    domains: [arxiv.org, github.com]
  - name: webnodomains
    instructions: Web without a list.
    web: true
current_phase: {phase}
---
# autoresearch
"""


def program(phase: str = "hyperparameters", budget: int = 300) -> config.Program:
    return config.parse(PROGRAM.format(phase=phase, budget=budget))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A repository with the harness layout, the hidden splits and symlinks pointing at them."""
    root = tmp_path_factory.mktemp("guard") / "repo"
    files = {
        "train.py": "print('train')\n",
        "scratchpad.md": "# scratchpad\n",
        "program.md": PROGRAM.format(phase="hyperparameters", budget=300),
        "run.sh": "#!/bin/sh\n",
        "results.tsv": "id\tval_bpb\n",
        "eval/config.py": "",
        "hooks/policy.py": "",
        "sandbox/limits.py": "",
        ".claude/settings.json": "{}",
        ".git/config": "[credential]\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "data/train.bin": "t",
        "data/val.bin": "v",
        "data/test.bin": "x",
        "data/manifest.json": "{}",
        "runs/1/train.log": "step 1\n",
        "runs/1/metrics.json": "{}",
        "runs/confirm/log.jsonl": '{"test": 1.0}\n',
        "notes/a.md": "",
        "hideout/-rf": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "scratchpad2.md").symlink_to(root / "eval" / "config.py")
    (root / "valdata").symlink_to(root / "data" / "val.bin")
    (root / "trainlink.py").symlink_to("train.py")
    (root / "outside").symlink_to("/etc")
    return root


def run(repo: Path, tool: str, tool_input: dict, phase: str = "hyperparameters", cwd: str | None = None):
    return policy.decide(tool, tool_input, repo, program(phase), cwd=str(repo) if cwd is None else cwd)


# ------------------------------------------------------------------ Bash: the allowed forms

ALLOWED_COMMANDS = [
    "./run.sh",
    './run.sh -m "raise the learning rate to 3e-3"',
    "./run.sh -m 'weight tying'",
    "./run.sh status",
    "./run.sh status | tail -5",
    "./run.sh check",
    "ls",
    "ls -la",
    "ls -la runs/1",
    "ls --color=auto -lh data",
    "ls data",
    "ls .git",
    "ls *.py",
    "ls -R notes",
    "cat train.py",
    "cat -n train.py scratchpad.md",
    "cat runs/*/train.log",
    "cat data/manifest.json",
    "cat data/train.bin | head -c 100",
    "cat < train.py",
    "head -20 train.py",
    "head -n 50 train.py",
    "head -n50 train.py",
    "tail -n +10 train.py",
    "tail -5 runs/1/train.log",
    "wc -l train.py",
    "wc -l *.py",
    "grep -n lr train.py",
    "grep -rn 'learning_rate' train.py eval hooks",
    "grep -rn lr eval/",
    "grep -i -E 'lr|warmup' train.py",
    "grep -c def train.py",
    "grep -e lr -e wd train.py",
    "grep -n 'import' *.py",
    "grep -n x notes/* eval/*",
    "ls # comment",
    "grep -rn --include='*.py' optimizer eval hooks",
    "grep -n lr train.py 2>/dev/null",
    "grep -A3 -B2 'def main' train.py",
    "find . -name '*.py'",
    "find eval -type f -name '*.json'",
    "find . -maxdepth 2 -type d",
    "find data -name 'train*'",
    "find . -name '*.py' -not -path './.venv/*'",
    "find runs -newer train.py -name '*.json'",
    "find",
    "diff train.py scratchpad.md",
    "diff -u runs/1/train.log train.py",
    "sort -n results.tsv",
    "sort -t '\t' -k2 -n results.tsv | head -3",
    "uniq -c results.tsv",
    "cut -f1,2 results.tsv",
    "tr a-z A-Z < train.py",
    "cat train.py | tr -d ' '",
    "echo hello",
    "echo 'hello world' | wc -c",
    "echo -n done",
    "head -5 train.py && echo --- && tail -5 train.py",
    "cat train.py 2>/dev/null || true",
    "git diff --text HEAD~1",
    "pwd",
    "date",
    "date +%H:%M:%S",
    "date -u '+%Y-%m-%d'",
    "nl train.py",
    "file train.py",
    "stat train.py",
    "stat -c %s data/val.bin",
    "du -sh runs",
    "du -h -d 1",
    "tree -L 2",
    "sed -n '1,20p' train.py",
    "sed -n 5p train.py",
    "sed -n '$p' train.py",
    "sed -n '/def main/,/^$/p' train.py",
    "sed -n '1,5p;10,20p' train.py",
    "git log --oneline -n 10",
    "git log -p -1 -- train.py",
    "git --no-pager log --stat",
    "git show HEAD",
    "git show HEAD~1:train.py",
    "git diff",
    "git diff HEAD~1 -- train.py",
    "git diff --stat",
    "git diff --no-ext-diff",
    "git status",
    "git status --short",
    "git branch",
    "git branch -a -v",
    "git branch --list 'exp*'",
    "git branch --show-current",
    "git rev-parse HEAD",
    "git rev-parse --show-toplevel",
    "git ls-files",
    "git blame train.py",
    "git log --oneline | head -3 && git status",
    "ls; pwd",
    "grep -n lr train.py || echo none",
    "cat train.py | grep -n lr | head -5",
    "ls \\\n  -la",
    "ls\ncat train.py",
    "grep -n 'é' train.py",
    "echo 'a;b|c&d>e'",
    "'l's -la",
    "grep -n lr train.py 2>&1 | head",
    # honest habits of real agents (issue 16)
    "ls runs/ckpt-{200,300}",
    "cat runs/1/{train.log,metrics.json}",
    "echo {1..3}",
    "head -3 notes/{a,b}.md",
    "test -f train.py",
    "test -d runs && echo yes",
    "[ -f runs/1/metrics.json ] && cat runs/1/metrics.json",
    "[ -e data/val.bin ]",  # whether it exists, not what it holds
    "sha256sum train.py",
    "md5sum train.py scratchpad.md",
    "sha256sum data/train.bin",
    "rg -n lr train.py eval",
    "rg -l optimizer eval hooks",
    "find eval -name '*.py' | xargs head -3",
    "find runs -type f -name '*.json' | xargs grep -l val_bpb",
    "find eval -name '*.py' -print0 | xargs -0 wc -l",
    "git -C {repo} log --oneline -5",
    "git -C . diff",
    "./run.sh python -c 'import json; print(json.load(open(\"runs/1/metrics.json\")))'",
    "./run.sh python -m json.tool runs/1/metrics.json",
    "./run.sh python train.py --steps 1",
    "./run.sh python -c 'print(1)' | tail -3",
]

DENIED_COMMANDS = [
    # package managers, in every spelling
    "pip install numpy",
    "pip3 install numpy",
    "'p'ip install x",
    "p\\ip install x",
    '"pip" install x',
    "python3 -m pip install x",
    "python -m pip install x",
    "/usr/bin/pip3 install x",
    "uv pip install x",
    "uvx ruff",
    "conda install numpy",
    "mamba install numpy",
    "poetry add x",
    "npm install x",
    "npx x",
    "apt-get install x",
    "brew install x",
    "cargo install x",
    "go install x",
    "env X=1 pip install x",
    # interpreters and shells
    "python3 train.py",
    "python -c 'print(1)'",
    "python3.11 -c 1",
    "node -e 1",
    "perl -e 1",
    "ruby -e 1",
    "awk '{print}' train.py",
    "bash -c 'ls'",
    "sh -c ls",
    "zsh",
    "bash run.sh",
    "eval ls",
    "exec ls",
    "source .venv/bin/activate",
    ". .venv/bin/activate",
    "xargs rm < train.py",
    "nohup ./run.sh",
    "timeout 10 ls",
    "time ls",
    "command ls",
    "nice ./run.sh",
    # network, containers, privileges
    "curl https://example.com",
    "wget http://x",
    "nc -l 80",
    "ssh host",
    "scp a host:b",
    "rsync -a . host:",
    "git clone https://github.com/x/y",
    "git fetch",
    "git pull",
    "git push origin main",
    "git push --force",
    "git remote -v",
    "docker ps",
    "docker run -it ubuntu",
    "sudo ls",
    "su -",
    # destructive and writing
    "rm -rf runs",
    "rm train.py",
    "mv train.py x.py",
    "cp eval/config.py train.py",
    "chmod +x train.py",
    "ln -s data/val.bin v",
    "touch x",
    "mkdir x",
    "truncate -s 0 results.tsv",
    "dd if=data/val.bin of=x",
    "tee program.md < train.py",
    "echo x | tee -a eval/config.py",
    "sed -i 's/a/b/' program.md",
    "sed -i.bak 's/a/b/' train.py",
    "sed 's/a/b/' train.py",
    "sed -n '1w eval/config.py' train.py",
    "sed -n '1p;w x' train.py",
    "sed -n '1e id' train.py",
    "sed --in-place -n 1p train.py",
    "sort -o results.tsv results.tsv",
    "sort --output=x train.py",
    "sort --compress-program=sh train.py",
    "uniq train.py out.txt",
    "uniq runs/*/*",
    "tree -o out.txt",
    "find . -delete",
    "find . -exec cat {} ;",
    "find . -exec cat '{}' ';'",
    "find . -execdir ls ';'",
    "find . -ok rm ';'",
    "find . -fprint out.txt",
    "find . -fls out.txt",
    "find -L .",
    "find . -name *.py",
    "echo x > train.py",
    "echo x >> scratchpad.md",
    "cat train.py > /tmp/x",
    "ls > /dev/null",
    "ls &> /dev/null",
    "cat <<EOF\nx\nEOF",
    "cat <<< x",
    "ls 2>>/dev/null",
    "ls >&2",
    "ls |& cat",
    "kill 1",
    "pkill -f run.sh",
    "cd eval && ls",
    # git writes and tricks
    "git commit -am x",
    "git add train.py",
    "git checkout train.py",
    "git reset --hard HEAD~1",
    "git stash",
    "git rebase -i HEAD~3",
    "git tag v1",
    "git config user.name x",
    "git branch -D main",
    "git branch new-branch",
    "git branch -m old new",
    "git -c core.pager=sh log",
    "git -C /etc log",
    "git --git-dir=/tmp/x log",
    "git --exec-path=/tmp log",
    "git diff --ext-diff",
    "git log --output=train.py",
    "git log --out=train.py",
    "git show --textconv HEAD",
    "git diff --no-index /etc/passwd train.py",
    "git blame --contents=data/val.bin train.py",
    "git lg",
    "git",
    # chains around ./run.sh
    "./run.sh; curl x",
    "./run.sh && ls",
    "ls && ./run.sh",
    "./run.sh &",
    "./run.sh & ",
    "./run.sh | tee log",
    "./run.sh 2>&1 | tee log",
    "cd /tmp && ./run.sh",
    "cd eval && ./run.sh",
    "cd {repo} && ./run.sh && rm -rf runs",
    "cd {repo} || ./run.sh",
    "./run.sh; rm -rf x",
    "./run.sh | tail -5 | sh",
    "./run.sh | tail -f",
    "./run.sh | grep val_bpb",
    "./run.sh 2>/dev/null | tail -5",
    "timeout 5 bash -c ./run.sh",
    "timeout -s KILL 5 ./run.sh",
    "timeout 600 ./run.sh --budget 1",
    "source evil && ./run.sh",
    "source .venv/bin/activate && python train.py",
    ". /tmp/.venv/bin/activate && ./run.sh",
    "./run.sh && ./run.sh",
    "cd {repo} && cd /tmp && ./run.sh",
    "./run.sh python",
    "./run.sh python eval/config.py",
    "./run.sh python -c 'x' > out.txt",
    "./run.sh python -c",
    "./run.sh python $(cat x)",
    "./run.sh > log.txt",
    "./run.sh\n./run.sh",
    "X=1 ./run.sh",
    "env X=1 ./run.sh",
    "./run.sh --budget 10",
    "./run.sh prepare",
    "./run.sh loop",
    "./run.sh check --budget 600",
    "./run.sh check &",
    "./run.sh -m",
    "./run.sh -m ''",
    "./run.sh -m 'a\nb'",
    "./run.sh -m " + "x" * 400,
    "./run.sh -m $(id)",
    './run.sh -m "$HOME"',
    "/work/main/run.sh",
    "run.sh",
    "sh ./run.sh",
    # substitution, expansion, syntax
    "ls $(pwd)",
    "ls `pwd`",
    'echo "$(id)"',
    "echo $HOME",
    "echo ${HOME}",
    "echo $((1+1))",
    "cat <(ls)",
    "diff <(ls) <(ls eval)",
    "ls $IFS/etc",
    "echo $'\\x41'",
    "(ls)",
    "{ ls; }",
    "f() { ls; }; f",
    "if true; then ls; fi",
    "for f in *; do cat $f; done",
    "while true; do ls; done",
    "! ls",
    "X=1 ls",
    "ls ~",
    "cat ~/.ssh/id_rsa",
    "ls [a-z]*",
    "cat **/*.py",
    # brace expansion: every word it makes passes the path rules
    "cat data/{train,val}.bin",
    "cat {data,notes}/val.bin",
    "head -c 10 data/{val,test}.bin",
    "cat runs/{1,confirm}/log.jsonl",
    "ls {x}",
    "ls {a,b",
    "{rm,-rf,runs}",
    "echo {1..100000}",
    "cat d{at,ta}a/val.bin",
    # xargs runs only read-only commands on what find prints, and every printed name is checked
    "find . | xargs cat",
    "find data | xargs cat",
    "find . -name '*.bin' | xargs head -c 10",
    "find . -name 'val*' -o -name x | xargs cat",
    "find notes | xargs rm",
    "find eval | xargs git log",
    "find eval | xargs -I X cat X",
    "ls | xargs cat",
    "cat train.py | xargs cat",
    "find . -name valdata | xargs cat",
    "test -f /etc/passwd",
    "[ -f train.py",
    "sha256sum -c sums.txt",
    "md5sum data/val.bin",
    "rg lr",
    "rg lr .",
    "rg --pre sh lr train.py",
    "rg -L lr eval",
    "rg x data",
    "git -C /tmp log",
    "git -C eval log",
    "git -C {repo} push",
    "grep -n x *",  # * includes valdata, a symlink to data/val.bin
    "",
    "   ",
    "ls 'unterminated",
    # reading outside the repo, the hidden splits and .git
    "cat data/val.bin",
    "cat data/test.bin",
    "cat data/*",
    "cat data/v*",
    "cat dat?/val.bin",
    "cat DATA/VAL.BIN",  # the same file on a case-insensitive disk (macOS)
    "grep -r x DATA",
    "cat data/train.bin/../val.bin",
    "cat data/t*",
    'cat d\\ata/"val".bin',
    "cat -- data/val.bin",
    "head -c 100 data/val.bin",
    "grep -c . data/val.bin",
    "cat valdata",
    "cat ./data/../data/val.bin",
    "cat < data/val.bin",
    "grep -f data/val.bin train.py",
    "grep -f train.py -f data/val.bin train.py",
    "grep -e data/* train.py",
    "grep -r lr .",
    "grep -rn lr",
    "grep -r lr data",
    "grep -r x *",
    "grep -R lr eval",
    "diff -r . eval",
    "diff -N data notes",  # flat, yet -N prints every file only in data/ in full
    "diff . eval",
    "cat .git/config",
    "cat .git/*",
    # the test-split scores of ./run.sh confirm
    "cat runs/confirm/log.jsonl",
    "cat runs/*/log.jsonl",
    "tail RUNS/Confirm/log.jsonl",
    "grep -r x runs",
    "grep -rn x runs/confirm",
    "cat ../../etc/passwd",
    "cat /etc/passwd",
    "cat outside/passwd",
    "ls /",
    "ls ..",
    "ls ../../*",
    "cat /e*/passwd",
    "find / -name id_rsa",
    "find .. -name x",
    "stat /etc/shadow",
    "tail -f runs/1/train.log",
    # obfuscated names, absolute paths, look-alikes, limits
    "/bin/ls",
    "/usr/bin/cat train.py",
    "./ls",
    "\u0440ip install x",  # Cyrillic er
    "\uff50\uff49\uff50 install x",  # fullwidth pip
    "l\u0455 -la",  # Cyrillic dze
    "ls\u00a0-la",  # no-break space
    "ls\u200b",
    "ls -la\r",
    "ls \x00",
    "ls " + "a" * 5000,
    "echo " + "x " * 2100,
    "cat train.py; " * 500,
    "less train.py",
    "xxd data/val.bin",
    "strings data/val.bin",
    "jq . data/manifest.json",
    "date -s 2020-01-01",
    "date 0101010120",
    "grep",
    "head -n",
    "ls --sort time",
    "git blame --ignore-revs-file=data/val.bin train.py",
    "pwd extra",
    "tr a b c",
    "diff a b c",
]


@pytest.mark.parametrize("command", ALLOWED_COMMANDS)
def test_bash_allowed(repo, command):
    decision = run(repo, "Bash", {"command": command.replace("{repo}", str(repo))})
    assert decision.decision == ALLOW, decision.reason


@pytest.mark.parametrize("command", DENIED_COMMANDS)
def test_bash_denied(repo, command):
    decision = run(repo, "Bash", {"command": command.replace("{repo}", str(repo))})
    assert decision.decision == DENY
    assert decision.reason


# ------------------------------------------------------------------ the other tools

# (tool, input with {repo} for the repository root, expected)
TOOL_CASES = [
    ("Edit", {"file_path": "{repo}/train.py", "old_string": "a", "new_string": "b"}, ALLOW),
    ("Edit", {"file_path": "train.py", "old_string": "a", "new_string": "b"}, ALLOW),
    ("Edit", {"file_path": "{repo}/scratchpad.md", "old_string": "a", "new_string": "b"}, ALLOW),
    ("Edit", {"file_path": "{repo}/notes/../train.py", "old_string": "a", "new_string": "b"}, ALLOW),
    ("Write", {"file_path": "{repo}/train.py", "content": "x"}, ALLOW),
    ("Write", {"file_path": "scratchpad.md", "content": "x"}, ALLOW),
    ("MultiEdit", {"file_path": "{repo}/train.py", "edits": []}, ALLOW),
    ("Edit", {"file_path": "{repo}/scratchpad2.md", "old_string": "a", "new_string": "b"}, DENY),
    ("Edit", {"file_path": "scratchpad2.md", "old_string": "a", "new_string": "b"}, DENY),
    ("Write", {"file_path": "{repo}/scratchpad2.md", "content": "x"}, DENY),
    ("Edit", {"file_path": "{repo}/trainlink.py", "old_string": "a", "new_string": "b"}, ALLOW),
    ("Edit", {"file_path": "{repo}/program.md", "old_string": "a", "new_string": "b"}, DENY),
    ("Edit", {"file_path": "program.md", "old_string": "a", "new_string": "b"}, DENY),
    ("Write", {"file_path": "{repo}/eval/config.py", "content": "x"}, DENY),
    ("Write", {"file_path": "{repo}/eval/new.py", "content": "x"}, DENY),
    ("Edit", {"file_path": "{repo}/hooks/policy.py", "old_string": "a", "new_string": "b"}, DENY),
    ("Write", {"file_path": "{repo}/sandbox/limits.py", "content": "x"}, DENY),
    ("Write", {"file_path": "{repo}/.claude/settings.json", "content": "{}"}, DENY),
    ("Write", {"file_path": "{repo}/.claude/settings.local.json", "content": "{}"}, DENY),
    ("Edit", {"file_path": "{repo}/run.sh", "old_string": "a", "new_string": "b"}, DENY),
    ("Write", {"file_path": "{repo}/results.tsv", "content": "x"}, DENY),
    ("Write", {"file_path": "{repo}/runs/1/metrics.json", "content": "{}"}, DENY),
    ("Write", {"file_path": "{repo}/.git/config", "content": ""}, DENY),
    ("Write", {"file_path": "{repo}/data/val.bin", "content": ""}, DENY),
    ("Write", {"file_path": "{repo}/eval/../train.py", "content": "x"}, ALLOW),
    ("Write", {"file_path": "{repo}/../train.py", "content": "x"}, DENY),
    ("Write", {"file_path": "/tmp/train.py", "content": "x"}, DENY),
    ("Write", {"file_path": "{repo}/sub/train.py", "content": "x"}, DENY),
    ("Write", {"file_path": "{repo}/TRAIN.py", "content": "x"}, DENY),
    ("Write", {"file_path": "", "content": "x"}, DENY),
    ("Write", {"content": "x"}, DENY),
    ("Edit", {"file_path": 7}, DENY),
    ("NotebookEdit", {"notebook_path": "{repo}/train.ipynb", "new_source": "x"}, DENY),
    ("Read", {"file_path": "{repo}/train.py"}, ALLOW),
    ("Read", {"file_path": "{repo}/program.md"}, ALLOW),
    ("Read", {"file_path": "{repo}/eval/config.py"}, ALLOW),
    ("Read", {"file_path": "{repo}/runs/1/train.log"}, ALLOW),
    ("Read", {"file_path": "{repo}/runs/confirm/log.jsonl"}, DENY),
    ("Read", {"file_path": "{repo}/data/train.bin"}, ALLOW),
    ("Read", {"file_path": "{repo}/data/manifest.json"}, ALLOW),
    ("Read", {"file_path": "scratchpad2.md"}, ALLOW),
    ("Read", {"file_path": "{repo}/data/val.bin"}, DENY),
    ("Read", {"file_path": "{repo}/data/test.bin"}, DENY),
    ("Read", {"file_path": "data/val.bin"}, DENY),
    ("Read", {"file_path": "{repo}/valdata"}, DENY),
    ("Read", {"file_path": "{repo}/notes/../data/val.bin"}, DENY),
    ("Read", {"file_path": "{repo}/data/other.bin"}, DENY),
    ("Read", {"file_path": "{repo}/.git/config"}, DENY),
    ("Read", {"file_path": "/etc/passwd"}, DENY),
    ("Read", {"file_path": "{repo}/../../etc/passwd"}, DENY),
    ("Read", {"file_path": "{repo}/outside/passwd"}, DENY),
    ("Read", {"file_path": "~/.ssh/id_rsa"}, DENY),
    ("Read", {"file_path": "/root/.ssh/id_rsa"}, DENY),
    ("Read", {}, DENY),
    ("Read", {"file_path": "{repo}/train.py\u0000"}, DENY),
    ("Read", {"file_path": "{repo}/Data/Val.bin"}, DENY),
    ("Task", {"prompt": "look at train.py", "description": "d", "subagent_type": "general-purpose"}, ALLOW),
    ("Agent", {"prompt": "x", "description": "d", "subagent_type": "Explore"}, ALLOW),
    ("Agent", {"prompt": "x", "description": "d", "run_in_background": True, "model": "haiku"}, ALLOW),
    ("Agent", {"prompt": "x", "description": "d", "isolation": None}, ALLOW),
    ("Agent", {"prompt": "x", "description": "d", "isolation": "worktree"}, DENY),
    ("Task", {"prompt": "x", "description": "d", "isolation": "worktree"}, DENY),
    ("Agent", {"prompt": "x", "description": "d", "isolation": "remote"}, DENY),
    ("TodoWrite", {"todos": []}, ALLOW),
    ("KillShell", {"shell_id": "1"}, ALLOW),
    ("CronCreate", {"cron": "* * * * *", "prompt": "x"}, DENY),
    ("Monitor", {"command": "tail -f x"}, DENY),
    ("Skill", {"skill": "x"}, DENY),
    ("AskUserQuestion", {"questions": []}, DENY),
    ("mcp__github__create_issue", {"title": "x"}, DENY),
    # Grep and Glob (newer CLIs): the path rules of Read, Grep searching whole trees as `grep -r` does
    ("Glob", {"pattern": "**/*"}, ALLOW),
    ("Glob", {"pattern": "*.py", "path": "{repo}/eval"}, ALLOW),
    ("Glob", {"pattern": "data/*"}, ALLOW),  # names only, as `ls data`
    ("Glob", {"pattern": "*", "path": "/etc"}, DENY),
    ("Glob", {"pattern": "../*"}, DENY),
    ("Glob", {"pattern": "/etc/*"}, DENY),
    ("Glob", {"pattern": "outside/*"}, DENY),
    ("Glob", {}, DENY),
    ("Grep", {"pattern": "lr", "path": "{repo}/train.py"}, ALLOW),
    ("Grep", {"pattern": "lr", "path": "{repo}/eval", "glob": "*.py"}, ALLOW),
    ("Grep", {"pattern": "lr", "path": "notes"}, ALLOW),
    ("Grep", {"pattern": "lr"}, DENY),  # the repository root holds data/ and .git
    ("Grep", {"pattern": "lr", "path": "{repo}/data"}, DENY),
    ("Grep", {"pattern": "lr", "path": "{repo}/data/val.bin"}, DENY),
    ("Grep", {"pattern": "lr", "path": "valdata"}, DENY),
    ("Grep", {"pattern": "lr", "path": "{repo}/runs"}, DENY),
    ("Grep", {"pattern": "x", "path": "/etc"}, DENY),
    ("SomeNewTool", {}, DENY),
    ("Bash", {"command": "ls", "run_in_background": True}, DENY),
    ("Bash", {"command": 5}, DENY),
    ("Bash", {}, DENY),
    ("Bash", {"command": "ls", "description": "list", "timeout": 1000}, ALLOW),
]


@pytest.mark.parametrize(("tool", "tool_input", "expected"), TOOL_CASES)
def test_tools(repo, tool, tool_input, expected):
    filled = {k: v.replace("{repo}", str(repo)) if isinstance(v, str) else v for k, v in tool_input.items()}
    decision = run(repo, tool, filled)
    assert decision.decision == expected, decision.reason


# (phase, tool, input, expected)
WEB_CASES = [
    ("hyperparameters", "WebFetch", {"url": "https://arxiv.org/abs/1706.03762", "prompt": "x"}, DENY),
    ("architecture", "WebFetch", {"url": "https://arxiv.org/abs/1706.03762", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://arxiv.org/abs/1706.03762", "prompt": "x"}, ALLOW),
    ("moonshot", "WebFetch", {"url": "https://export.arxiv.org/abs/1", "prompt": "x"}, ALLOW),
    ("moonshot", "WebFetch", {"url": "http://github.com/karpathy/nanoGPT", "prompt": "x"}, ALLOW),
    ("moonshot", "WebFetch", {"url": "https://ARXIV.org./abs/1", "prompt": "x"}, ALLOW),
    ("moonshot", "WebFetch", {"url": "https://example.com/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://arxiv.org.evil.com/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://evilarxiv.org/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://arxiv.org@evil.com/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://evil.com\\@arxiv.org/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://evil.com#@arxiv.org", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "ftp://arxiv.org/x", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "file:///etc/passwd", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://\u0430rxiv.org/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": "https://127.0.0.1/", "prompt": "x"}, DENY),
    ("moonshot", "WebFetch", {"url": 42, "prompt": "x"}, DENY),
    ("webnodomains", "WebFetch", {"url": "https://arxiv.org/", "prompt": "x"}, DENY),
    ("hyperparameters", "WebSearch", {"query": "rotary embeddings"}, DENY),
    ("moonshot", "WebSearch", {"query": "rotary embeddings"}, ALLOW),
    ("moonshot", "WebSearch", {"query": "x", "allowed_domains": ["arxiv.org"]}, ALLOW),
    ("moonshot", "WebSearch", {"query": "x", "allowed_domains": ["export.arxiv.org", "github.com"]}, ALLOW),
    ("moonshot", "WebSearch", {"query": "x", "allowed_domains": ["arxiv.org", "example.com"]}, DENY),
    ("moonshot", "WebSearch", {"query": "x", "allowed_domains": "arxiv.org"}, DENY),
    ("webnodomains", "WebSearch", {"query": "x"}, DENY),
]


@pytest.mark.parametrize(("phase", "tool", "tool_input", "expected"), WEB_CASES)
def test_web(repo, phase, tool, tool_input, expected):
    decision = run(repo, tool, tool_input, phase=phase)
    assert decision.decision == expected, decision.reason


def test_case_count():
    assert len(ALLOWED_COMMANDS) + len(DENIED_COMMANDS) + len(TOOL_CASES) + len(WEB_CASES) >= 150


# ------------------------------------------------------------------ rewrites and reasons


FORMS = {name: rule for name, rule in {**COMMANDS, "grep": GREP, "sed": SED, "date": DATE}.items()
         if isinstance(rule, Form) and name not in ("pwd", "true", "false")}  # those three are bash builtins


def help_lines(tool: str) -> list[str]:
    """The option lines of `tool --help` (those that start with a dash), as this machine's tool prints them."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed here")
    text = subprocess.run([tool, "--help"], capture_output=True, text=True, env={"LC_ALL": "C", "PATH": os.defpath},
                          timeout=30).stdout
    return [option_spec(line) for line in text.splitlines() if line.strip().startswith("-")]


def option_spec(line: str) -> str:
    """The names part of a --help line (`-n, --lines=[-]NUM`): the columns that start with a dash (stat puts
    two spaces between -c and --format), up to the description."""
    columns = re.split(r"\s{2,}", line.strip())
    return " ".join(itertools.takewhile(lambda column: column.startswith("-"), columns))


@pytest.mark.parametrize("tool", sorted(FORMS))
def test_each_table_entry_is_one_real_option_of_the_tool(tool):
    """Every long name is the tool's own (so no table name is an abbreviation of another option), its short
    twins are listed on the same --help line (one option, not two), and it takes a value as the tool says."""
    lines, wrong = help_lines(tool), []
    for option in set(FORMS[tool].table.values()):
        longs = [n for n in option.names if n.startswith("--")]
        shorts = [n for n in option.names if not n.startswith("--")]
        for long in longs:
            specs = [x for x in lines if re.search(re.escape(long) + "(?![a-z0-9-])", x)]
            # the line that introduces the option (its short names, then a description), not one that mentions it
            spec = max(specs, key=lambda s: (sum(re.search(rf"{x}(?![\w-])", s) is not None for x in shorts),
                                             -len(s)), default=None)
            if spec is None:
                wrong.append(f"{long} is not an option of {tool}")
                continue
            twins = re.findall(r"(?<![\w-])(-\w)(?![\w-])", spec)
            wrong += [f"{s} and {long} are not one option: {spec}" for s in shorts if s not in twins]
            after = spec[spec.index(long) + len(long):]
            says = "optional" if after.startswith("[=") or f"{long}=" in after else (
                "required" if re.match(r"=| (?:[A-Z]+(?![a-z])|#|<)", after) else "")  # not " Ignore case ..."
            if says != option.value:
                wrong.append(f"{long} takes {option.value or 'no'} value, {tool} says {says or 'none'}: {spec}")
        if not longs and not any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", x) for x in lines
                                 for s in shorts):
            wrong.append(f"{shorts} is not an option of {tool}")
    assert wrong == []


@pytest.mark.parametrize("spec", ["-n|--lines=N -n", "--x --x=N", "lines", "---x", "-ab"])
def test_an_option_table_refuses_repeated_or_malformed_names(spec):
    with pytest.raises(ValueError):
        option_table(spec)


def test_an_abbreviated_long_option_is_refused_with_its_full_name(repo):
    reason = run(repo, "Bash", {"command": "grep --recurs x eval"}).reason
    assert "--recursive" in reason and "in full" in reason
    assert run(repo, "Bash", {"command": "grep --recursive x eval"}).decision == ALLOW
    assert "--lines=VALUE" in run(repo, "Bash", {"command": "head --lines 5 train.py"}).reason



def sized_file(tmp_path: Path, text: str) -> Path:
    """A repository whose train.py holds `text` (the caps depend on the file as it is)."""
    (tmp_path / "train.py").write_text(text)
    (tmp_path / "program.md").write_text(PROGRAM.format(phase="hyperparameters", budget=300))
    return tmp_path


CAP, LINE = policy.MAX_EDITED_BYTES, policy.MAX_LINE
SMALL = "x = 1\n" * 100
# (train.py before, tool, input without file_path, expected)
SIZE_CASES = [
    (SMALL, "Write", {"content": "y = 2\n" * (CAP // 6)}, ALLOW),  # just under the cap
    (SMALL, "Write", {"content": "y = 2\n" * (CAP // 6 + 1)}, DENY),
    (SMALL, "Write", {"content": "é" * (CAP // 2 + 1)}, DENY),  # bytes, not characters, count
    (SMALL, "Write", {"content": "s = '" + "a" * LINE + "'\n"}, DENY),
    (SMALL, "Write", {"content": "a" * LINE + "\n"}, ALLOW),
    (SMALL, "Edit", {"old_string": "x = 1\n", "new_string": "x = 1\n" * (CAP // 6)}, DENY),
    (SMALL, "Edit", {"old_string": "x = 1", "new_string": "x = 2" * 900, "replace_all": False}, DENY),
    (SMALL, "Edit", {"old_string": "x", "new_string": "y" * 3000, "replace_all": True}, DENY),  # 100 times
    (SMALL, "Edit", {"old_string": "x = 1", "new_string": "x = 2"}, ALLOW),
    (SMALL, "Edit", {"old_string": "x", "new_string": 5}, DENY),
    (SMALL, "MultiEdit", {"edits": [{"old_string": "x = 1", "new_string": "z" * 3000}] * 2}, ALLOW),
    (SMALL, "MultiEdit", {"edits": [{"old_string": "x = 1", "new_string": "z" * 3000},
                                    {"old_string": "z\n", "new_string": "z" * 1002 + "\n"}]}, DENY),
    (SMALL, "MultiEdit", {"edits": "x"}, DENY),
    # a file that is already over a cap (a human put it there) may still shrink or change elsewhere
    ("d = '" + "a" * (LINE + 10) + "'\nx = 1\n", "Edit", {"old_string": "x = 1", "new_string": "x = 2"}, ALLOW),
    ("x = 1\n" * (CAP // 5), "Edit", {"old_string": "x = 1\n" * 10, "new_string": ""}, ALLOW),
    ("x = 1\n" * (CAP // 5), "Edit", {"old_string": "x = 1\n", "new_string": "x = 1\nx = 1\n"}, DENY),
]


@pytest.mark.parametrize(("before", "tool", "tool_input", "expected"), SIZE_CASES)
def test_edits_are_capped_in_size_and_line_length(tmp_path, before, tool, tool_input, expected):
    repo = sized_file(tmp_path, before)
    decision = run(repo, tool, {"file_path": str(repo / "train.py"), **tool_input})
    assert decision.decision == expected, decision.reason


def test_the_size_reasons_name_the_cap(tmp_path):
    repo = sized_file(tmp_path, SMALL)
    big = run(repo, "Write", {"file_path": "train.py", "content": "#" * (CAP + 1)}).reason
    wide = run(repo, "Write", {"file_path": "train.py", "content": "#" * (LINE + 1)}).reason
    assert f"{CAP:,} bytes" in big and "scratchpad.md" in big
    assert f"{LINE:,} characters per line" in wide and "split" in wide


def test_worktree_isolation_is_refused_with_the_way_out(repo):
    reason = run(repo, "Agent", {"prompt": "x", "description": "d", "isolation": "worktree"}).reason
    assert "worktree" in reason and "leave `isolation` out" in reason



def test_experiment_gets_budget_timeout_in_foreground(repo):
    tool_input = {"command": './run.sh -m "x"', "description": "d", "run_in_background": True, "timeout": 5}
    decision = run(repo, "Bash", tool_input)
    assert decision.decision == ALLOW
    seeds = program().verdict.seeds
    assert decision.updated_input == {"command": './run.sh -m "x"', "description": "d",
                                      "timeout": int((seeds * (START_CAP_S + 300 + 60 + 300) + 60) * 1000)}
    small = policy.decide("Bash", {"command": "./run.sh"}, repo, program(budget=10), cwd=str(repo))
    assert small.updated_input == {"command": "./run.sh",
                                   "timeout": int((seeds * (START_CAP_S + 10 + 60 + 300) + 60) * 1000)}
    huge = policy.decide("Bash", {"command": "./run.sh"}, repo, program(budget=9000), cwd=str(repo))
    assert huge.updated_input["timeout"] == rules.BASH_TIMEOUT_CAP_MS


# The launch forms real agents use (issue 16): each is rewritten to the canonical call, and says what it dropped.
LAUNCH_FORMS = [
    ("./run.sh 2>&1", "./run.sh", "2>&1"),
    ("./run.sh 2>&1 | tail -50", "./run.sh", "| tail -50"),
    ("./run.sh | tail -n 20", "./run.sh", "| tail -n 20"),
    ("./run.sh | head -100", "./run.sh", "| head -100"),
    ("cd {repo} && ./run.sh", "./run.sh", "cd {repo} &&"),
    ("cd . && ./run.sh", "./run.sh", "cd . &&"),
    ("cd {repo}; ./run.sh -m 'wider mlp'", "./run.sh -m 'wider mlp'", "cd {repo} ;"),
    ("timeout 600 ./run.sh", "./run.sh", "timeout 600"),
    ("timeout 10m ./run.sh -m \"lr 3e-3\"", "./run.sh -m 'lr 3e-3'", "timeout 10m"),
    ("timeout 5 ./run.sh", "./run.sh", "timeout 5"),  # shorter than the run: the harness's own limit counts
    ("source .venv/bin/activate && ./run.sh", "./run.sh", "source .venv/bin/activate &&"),
    (". {repo}/.venv/bin/activate && ./run.sh", "./run.sh", ". {repo}/.venv/bin/activate &&"),
    ("cd {repo} && source .venv/bin/activate && timeout 900 ./run.sh -m \"tie weights\" 2>&1 | tail -40",
     "./run.sh -m 'tie weights'", "| tail -40"),
    ("cd {repo} && ./run.sh status", "./run.sh status", "cd {repo} &&"),
    ("timeout 60 ./run.sh python -c 'print(1)'", "./run.sh python -c 'print(1)'", "timeout 60"),
]


@pytest.mark.parametrize(("command", "canonical", "dropped"), LAUNCH_FORMS)
def test_launch_forms_are_rewritten_to_the_canonical_call(repo, command, canonical, dropped):
    decision = run(repo, "Bash", {"command": command.replace("{repo}", str(repo)), "description": "d"})
    assert decision.decision == ALLOW, decision.reason
    assert decision.updated_input["command"] == canonical
    assert decision.updated_input["description"] == "d"
    assert f"`{dropped.replace('{repo}', str(repo))}" in decision.reason and "rewritten" in decision.reason
    assert decision.experiment == (canonical.split()[1:2] not in (["status"], ["python"]))
    again = run(repo, "Bash", {"command": canonical})  # the canonical call is itself allowed as it is
    assert again.decision == ALLOW and again.updated_input in (None, {"command": canonical, **(
        {"timeout": again.updated_input["timeout"]} if again.updated_input else {})})


def test_wrappers_are_peeled_only_from_the_repository_root(repo):
    assert run(repo, "Bash", {"command": f"cd {repo} && ./run.sh"}, cwd=str(repo / "eval")).decision == DENY


def test_own_python_is_not_an_experiment(repo):
    decision = run(repo, "Bash", {"command": "./run.sh python -c 'print(1)'"})
    assert decision.decision == ALLOW and not decision.experiment and decision.updated_input is None


def test_every_problem_of_a_call_is_in_one_answer(repo):
    reason = run(repo, "Bash", {"command": "cd /tmp && python3 -c 'print(1)'; rm x; cat data/val.bin"}).reason
    assert reason.startswith("4 problems:"), reason
    for part in ("changing directory", "./run.sh python -c 'print(1)'", "`rm`", "validation and test splits"):
        assert part in reason


def test_the_command_is_named_before_its_quoting(repo):
    reason = run(repo, "Bash", {"command": "python -c 'import x' | jq .[0]"}).reason
    assert reason.index("./run.sh python") < reason.index("`jq`")
    assert run(repo, "Bash", {"command": "python -c \"print($X)\""}).reason.startswith("`python` runs on the host")


# Refused calls whose reason names a different call to the same end (after "instead: `...`"): that call is allowed.
ADVISED = [
    ("python3 -c 'import json; print(json.load(open(\"runs/1/metrics.json\"))[\"val_bpb\"])'",
     "./run.sh python -c 'import json; print(json.load(open(\"runs/1/metrics.json\"))[\"val_bpb\"])'"),
    ("python train.py", "./run.sh python train.py"),
    (".venv/bin/python -m json.tool runs/1/metrics.json", "./run.sh python -m json.tool runs/1/metrics.json"),
    ("uv run python -c 'import torch'", "./run.sh python -c 'import torch'"),
    ("uv run train.py", "./run.sh python train.py"),
    ("python3.11 -c 'print(1)'", "./run.sh python -c 'print(1)'"),
]
# Refused calls whose goal itself is forbidden: the reason says so.
FORBIDDEN_GOALS = [
    ("python -m pip install numpy", "installing packages is not allowed"),
    ("uv pip install numpy", "installing packages is not allowed"),
    ("cat data/{train,val}.bin", "only the harness reads"),
    ("./run.sh | tee runs/x.log", "runs/<id>/train.log"),
    ("cd /tmp && ./run.sh", "changing directory is not allowed"),
    ("source evil && ./run.sh", "nested shells"),
    ("timeout 5 bash -c ls", "accepted only around ./run.sh"),
]


@pytest.mark.parametrize(("command", "advised"), ADVISED)
def test_the_advised_call_is_named_and_allowed(repo, command, advised):
    decision = run(repo, "Bash", {"command": command})
    assert decision.decision == DENY and f"instead: `{advised}`" in decision.reason, decision.reason
    assert run(repo, "Bash", {"command": advised}).decision == ALLOW


@pytest.mark.parametrize(("command", "says"), FORBIDDEN_GOALS)
def test_a_forbidden_goal_is_said_to_be_forbidden(repo, command, says):
    decision = run(repo, "Bash", {"command": command})
    assert decision.decision == DENY and says in decision.reason, decision.reason


def test_every_advice_in_the_denied_table_is_allowed(repo):
    """Follow the advice of every refused call of this file: each call it offers must pass."""
    wrong = []
    for command in DENIED_COMMANDS + [c for c, _ in ADVISED + FORBIDDEN_GOALS]:
        reason = run(repo, "Bash", {"command": command.replace("{repo}", str(repo))}).reason
        for advised in re.findall(r"instead: `([^`]+)`", reason):
            if run(repo, "Bash", {"command": advised}).decision != ALLOW:
                wrong.append((command, advised))
    assert wrong == []


@pytest.mark.parametrize("word", ["a{b,c}d", "{1..3}", "{01..10}", "{c..a}", "x{-1..1}", "{a,b{c,d}}e", "a{,b}",
                                  "{a,b}}", "pre-{x,y}-{1,2}", "'{a,b}'{c,d}", "{a,b}*"])
def test_brace_expansion_makes_the_words_bash_makes(word):
    from hooks.guard import shell

    ours = [w.text for c in shell.parse(f"echo {word}").commands for w in c.words[1:]]
    theirs = subprocess.run(["bash", "-c", f"set -f; printf '%s\\n' {word}"], capture_output=True, text=True).stdout
    assert ours == theirs.splitlines()


def test_next_run_waits_until_the_scratchpad_records_the_verdict(tmp_path):
    root = tmp_path / "repo"
    (root / "runs" / "r0001").mkdir(parents=True)
    (root / "scratchpad.md").write_text("# notes\n")
    (root / "program.md").write_text(PROGRAM.format(phase="hyperparameters", budget=300))

    def decide() -> policy.Decision:
        return policy.decide("Bash", {"command": "./run.sh"}, root, program(), cwd=str(root))

    assert decide().decision == ALLOW  # r0001 is still running: no verdict yet
    (root / "runs" / "r0001" / "verdict.json").write_text("{}")
    refused = decide()
    assert refused.decision == DENY and "r0001" in refused.reason and "scratchpad.md" in refused.reason
    (root / "scratchpad.md").write_text("# notes\nr00010 | keep\n")  # a longer id is not this one
    assert decide().decision == DENY
    (root / "scratchpad.md").write_text("# notes\n- r0001 | discard | 1.23 | lr 3e-3 | too high\n")
    assert decide().decision == ALLOW
    assert policy.decide("Bash", {"command": "./run.sh status"}, root, program(), cwd=str(root)).decision == ALLOW


def test_a_phase_with_its_experiments_spent_refuses_more_runs(tmp_path):
    root = tmp_path / "repo"
    (root / "runs").mkdir(parents=True)
    capped = config.parse(PROGRAM.format(phase="architecture", budget=300).replace(
        "    instructions: Change the model.", "    instructions: Change the model.\n    max_experiments: 2"))
    row = {"status": "discard", "outcome": "ok", "metric": "val_bpb", "direction": "minimize", "mean": 1.0,
           "hypothesis": "h", "commit": "c" * 40}
    phases = ["hyperparameters", "architecture"]
    rows = [{**row, "id": f"r{i:04d}", "phase": p} for i, p in enumerate(phases, start=1)]
    (root / "runs" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def decide() -> policy.Decision:
        return policy.decide("Bash", {"command": "./run.sh"}, root, capped, cwd=str(root))

    assert decide().decision == ALLOW  # one architecture experiment of two
    rows.append({**row, "id": "r0003", "phase": "architecture"})
    (root / "runs" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    refused = decide()
    assert refused.decision == DENY and "architecture has used its 2 experiments" in refused.reason


def test_status_and_reads_are_not_rewritten(repo):
    assert run(repo, "Bash", {"command": "./run.sh status"}).updated_input is None
    assert run(repo, "Bash", {"command": "ls"}).updated_input is None


def test_websearch_is_limited_to_the_phase_domains(repo):
    decision = run(repo, "WebSearch", {"query": "muon optimizer"}, phase="moonshot")
    assert decision.updated_input == {
        "query": "muon optimizer",
        "allowed_domains": ["arxiv.org", "github.com"],
    }


def test_phase_switch_flips_webfetch(repo):
    fetch = {"url": "https://arxiv.org/abs/2002.05202", "prompt": "summary"}
    assert run(repo, "WebFetch", fetch, phase="architecture").decision == DENY
    assert run(repo, "WebFetch", fetch, phase="moonshot").decision == ALLOW


def test_experiment_must_run_from_the_repo_root(repo):
    assert run(repo, "Bash", {"command": "./run.sh"}, cwd=str(repo / "eval")).decision == DENY
    assert run(repo, "Bash", {"command": "ls"}, cwd="/tmp").decision == DENY
    assert run(repo, "Bash", {"command": "cat a.md"}, cwd=str(repo / "notes")).decision == ALLOW


def test_broken_program_blocks_only_what_depends_on_it(repo):
    error = config.ConfigError("program.md: invalid front matter:\n  task.budget_seconds: -1 is too small")
    run_ = policy.decide("Bash", {"command": "./run.sh"}, repo, error, cwd=str(repo))
    assert (
        run_.decision == DENY and "program.md is invalid" in run_.reason and "budget_seconds" in run_.reason
    )
    web = policy.decide("WebFetch", {"url": "https://arxiv.org/", "prompt": "x"}, repo, error, cwd=str(repo))
    assert web.decision == DENY and "ask the human" in web.reason
    read = policy.decide("Read", {"file_path": str(repo / "train.py")}, repo, error, cwd=str(repo))
    assert read.decision == ALLOW


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("pip install x", "installing packages"),
        ("python3 -m pip install x", "installing packages"),
        ("python3 -c 'print(1)'", "./run.sh python -c"),
        ("./run.sh | tee x.log", "runs/<id>/train.log"),
        ("ls {x}", "list the alternatives"),
        ("curl x", "network"),
        ("rm train.py", "Edit tool"),
        ("git commit -m x", "harness commits"),
        ("./run.sh; ls", "on its own"),
        ("cat data/val.bin", "validation and test splits"),
        ("cat runs/confirm/log.jsonl", "test-split scores"),
        ("cat runs/scorer/r0001.log", "scorer's raw output"),
        ("grep -rn lr .", "name the files"),
        ("sed -i s/a/b/ train.py", "sed -n"),
        ("ls $(pwd)", "command substitution"),
        ("/usr/bin/ls", "by name"),
        ("\u0440ip install x", "non-ASCII"),
        ("cat ../x", "outside the repository"),
    ],
)
def test_reasons_say_what_to_do(repo, command, hint):
    assert hint in run(repo, "Bash", {"command": command}).reason


def test_globs_cannot_smuggle_options(repo):
    hideout = str(repo / "hideout")
    assert run(repo, "Bash", {"command": "cat *"}, cwd=hideout).decision == DENY
    assert run(repo, "Bash", {"command": "cat hideout/*"}).decision == ALLOW


def test_symlink_reason_names_the_target(repo):
    decision = run(
        repo, "Edit", {"file_path": str(repo / "scratchpad2.md"), "old_string": "a", "new_string": "b"}
    )
    assert "eval/config.py" in decision.reason


def test_cached_bashlex_tables_equal_a_fresh_build():
    """hooks.guard.shell loads bashlex's LALR tables from a cache; they must equal what ply builds."""
    dump = (
        "import json, sys; p = sys.modules['bashlex.parser'].yaccparser; "
        "tables = [dict(p.action), dict(p.goto), [(q.name, q.len) for q in p.productions]]; "
        "print(json.dumps(tables, sort_keys=True))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", "import bashlex; " + dump],
        capture_output=True,
        text=True,
        check=True,
        cwd=MAIN,
    )
    for _ in range(2):  # the first run may build the cache; the second reads it
        cached = subprocess.run(
            [sys.executable, "-c", "from hooks.guard import shell; shell.load_bashlex(); " + dump],
            capture_output=True,
            text=True,
            check=True,
            cwd=MAIN,
        )
    assert fresh.stdout == cached.stdout and len(fresh.stdout) > 1000


# ------------------------------------------------------------------ the hook, as Claude Code runs it


@pytest.fixture
def hook_repo(tmp_path) -> Path:
    """A copy of the harness (hooks/, eval/, program.md) with the real virtual environment linked in."""
    root = tmp_path / "repo"
    shutil.copytree(MAIN / "hooks", root / "hooks", ignore=shutil.ignore_patterns("*.pyc", "*.tmp"))
    for name in ("eval", "sandbox"):  # what the guard imports
        shutil.copytree(MAIN / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "program.md").write_text(PROGRAM.format(phase="hyperparameters", budget=300))
    (root / "train.py").write_text("print(1)\n")
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return root


def hook(root: Path, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(root / "hooks" / "launch"), "pre_tool_use"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )


def answer(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["hookSpecificOutput"]


def event(root: Path, tool: str, tool_input: dict) -> str:
    return json.dumps(
        {
            "session_id": "s",
            "hook_event_name": "PreToolUse",
            "cwd": str(root),
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": "toolu_1",
        }
    )


def test_hook_answers_and_logs(hook_repo):
    out = answer(
        hook(hook_repo, event(hook_repo, "Bash", {"command": "./run.sh", "run_in_background": True}))
    )
    assert out == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow",
        "permissionDecisionReason": out["permissionDecisionReason"],
        "updatedInput": {"command": "./run.sh", "timeout": rules.run_timeout_ms(program())},
    }
    assert (
        answer(hook(hook_repo, event(hook_repo, "Bash", {"command": "pip install x"})))["permissionDecision"]
        == "deny"
    )
    lines = [json.loads(line) for line in (hook_repo / "runs" / "audit.jsonl").read_text().splitlines()]
    assert [(e["tool"], e["decision"], e["phase"], e["tool_use_id"]) for e in lines] == [
        ("Bash", "allow", "hyperparameters", "toolu_1"),
        ("Bash", "deny", "hyperparameters", "toolu_1"),
    ]
    assert lines[1]["input"] == "pip install x" and lines[1]["reason"]


@pytest.mark.parametrize("stdin", ["", "not json", "[]", '{"tool_name": "Bash"}', '{"tool_input": {}}'])
def test_hook_denies_garbage(hook_repo, stdin):
    assert answer(hook(hook_repo, stdin))["permissionDecision"] == "deny"


def test_hook_reads_program_md_on_every_call(hook_repo):
    fetch = event(hook_repo, "WebFetch", {"url": "https://arxiv.org/abs/1", "prompt": "x"})
    assert answer(hook(hook_repo, fetch))["permissionDecision"] == "deny"
    (hook_repo / "program.md").write_text(PROGRAM.format(phase="moonshot", budget=300))
    assert answer(hook(hook_repo, fetch))["permissionDecision"] == "allow"


def test_hook_denies_on_broken_program_md(hook_repo):
    (hook_repo / "program.md").write_text(PROGRAM.format(phase="hyperparameters", budget=-5))
    out = answer(hook(hook_repo, event(hook_repo, "Bash", {"command": "./run.sh"})))
    assert out["permissionDecision"] == "deny"
    assert "program.md is invalid" in out["permissionDecisionReason"]
    assert "budget_seconds" in out["permissionDecisionReason"]


def test_hook_denies_when_the_audit_log_cannot_be_written(hook_repo):
    (hook_repo / "runs").write_text("a file where the runs/ folder should be")
    out = answer(hook(hook_repo, event(hook_repo, "Read", {"file_path": str(hook_repo / "train.py")})))
    assert out["permissionDecision"] == "deny" and "audit" in out["permissionDecisionReason"]


def test_hook_denies_when_eval_is_broken(hook_repo):
    (hook_repo / "eval" / "config.py").write_text("raise RuntimeError('broken harness')\n")
    out = answer(hook(hook_repo, event(hook_repo, "Read", {"file_path": str(hook_repo / "train.py")})))
    assert out["permissionDecision"] == "deny" and "broken harness" in out["permissionDecisionReason"]


def test_launcher_blocks_without_the_virtual_environment(hook_repo):
    (hook_repo / ".venv").unlink()
    result = hook(hook_repo, event(hook_repo, "Read", {"file_path": str(hook_repo / "train.py")}))
    assert result.returncode == 2 and ".venv/bin/python" in result.stderr


def test_launcher_blocks_when_the_hook_crashes(hook_repo):
    (hook_repo / "hooks" / "pre_tool_use.py").write_text("import sys\nsys.exit(3)\n")
    result = hook(hook_repo, event(hook_repo, "Read", {"file_path": str(hook_repo / "train.py")}))
    assert result.returncode == 2


def test_launcher_rejects_unknown_events(hook_repo):
    result = subprocess.run(
        [str(hook_repo / "hooks" / "launch"), "nope"], input="{}", capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2


def test_settings_wire_the_hook_and_deny_the_obvious():
    settings = json.loads((MAIN / ".claude" / "settings.json").read_text())
    assert settings["permissions"]["defaultMode"] == "dontAsk"
    (entry,) = settings["hooks"]["PreToolUse"]
    assert entry["matcher"] == "*"
    assert entry["hooks"][0]["command"] == '"$CLAUDE_PROJECT_DIR"/hooks/launch pre_tool_use'
    deny = settings["permissions"]["deny"]
    assert {"Bash(pip *)", "Bash(curl *)", "Bash(git push *)", "Edit(program.md)", "Edit(eval/**)"} <= set(
        deny
    )
    assert os.access(MAIN / "hooks" / "launch", os.X_OK)


def test_task_editable_opens_its_files_to_edits_and_task_code_stays_read_only(tmp_path):
    (tmp_path / "model.py").write_text("WIDTH = 8\n")
    (tmp_path / "data.py").write_text("class Corpus: ...\n")
    text = PROGRAM.format(phase="hyperparameters", budget=300).replace(
        "  grace_seconds: 60\n", "  grace_seconds: 60\n  code: [data.py]\n  editable: [train.py, model.py]\n")
    multi = config.parse(text)
    edit = {"old_string": "WIDTH = 8", "new_string": "WIDTH = 16"}

    def decide(name: str, prog) -> policy.Decision:
        return policy.decide("Edit", {"file_path": name, **edit}, tmp_path, prog, cwd=str(tmp_path))

    assert decide("model.py", multi).decision == ALLOW
    assert decide("model.py", program()).decision == DENY  # not editable under the default task
    refused = decide("data.py", multi)
    assert refused.decision == DENY and "train.py, model.py and scratchpad.md" in refused.reason
    assert decide("model.py", config.ConfigError("broken")).decision == DENY  # a broken program.md: defaults only
    reads = policy.decide("Read", {"file_path": "data.py"}, tmp_path, multi, cwd=str(tmp_path))
    assert reads.decision == ALLOW


def test_the_dry_run_gets_a_timeout_that_covers_a_first_held_out_scan(repo):
    decision = run(repo, "Bash", {"command": "./run.sh check", "timeout": 120_000})
    assert decision.decision == ALLOW and decision.updated_input["timeout"] == policy.CHECK_TIMEOUT_MS
    assert not decision.experiment  # it is no experiment: no scratchpad gate, no ledger


def test_an_editable_name_that_is_a_symlink_to_the_harness_is_not_editable(tmp_path):
    (tmp_path / "program.md").write_text(PROGRAM.format(phase="hyperparameters", budget=300))
    (tmp_path / "model.py").symlink_to(tmp_path / "program.md")
    text = PROGRAM.format(phase="hyperparameters", budget=300).replace(
        "  grace_seconds: 60\n", "  grace_seconds: 60\n  editable: [train.py, model.py]\n")
    decision = policy.decide("Write", {"file_path": "model.py", "content": "x"}, tmp_path, config.parse(text),
                             cwd=str(tmp_path))
    assert decision.decision == DENY and "resolves to" in decision.reason and "program.md" in decision.reason
