#!/usr/bin/env bash
# The orchestrator. `./run.sh` runs one experiment; the subcommands are for humans and CI.
#   ./run.sh [-m "hypothesis"] [--budget S]   one experiment on train.py (what the agent calls)
#   ./run.sh check                            a dry run of seconds: imports, a few steps, export, evaluator
#   ./run.sh prepare [--corpus DIR | --split train=P,val=P,test=P] [--vocab words]   freeze the data
#   ./run.sh status                           the latest runs and the best result
#   ./run.sh python -c CODE|-m MOD|train.py   the agent's own Python, in the training sandbox (no ledger)
#   ./run.sh report                           the morning summary; rewrites runs/report.html
#   ./run.sh demo                             the showcase session replayed with real, short training
#   ./run.sh replay FILE [--runs real|recorded]   replay a recorded session, report divergences
#   ./run.sh loop [--hours H] [--experiments N] [--max-usd X] [--model M] [--workers N] [--ray ADDRESS]   the headless loop
#   ./run.sh adopt PATH --metric NAME --direction minimize|maximize   bring your own train.py
#   ./run.sh confirm                          score the best and the baseline on the test split
#   ./run.sh hardening                        run the attack and fault suites, print the summary table
#   ./run.sh test [pytest args]               the test suite
# The first call sets up .venv with what pyproject.toml lists (torch first: the CPU build
# unless AUTORESEARCH_TORCH names another spec, or a torch is already in .venv).
set -euo pipefail
cd "$(dirname "$0")"
# The agent's Bash tool, and so its ./run.sh, inherits Claude Code's API credentials: only `loop`, which
# starts Claude Code, keeps them (CLAUDE_CODE_SUBPROCESS_ENV_SCRUB would strip them from Bash itself, but in
# the pinned CLI it also sandboxes Bash away from Docker, user namespaces and .git/config, so no run could work).
[ "${1:-}" = loop ] || unset ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_CUSTOM_HEADERS CLAUDE_CODE_OAUTH_TOKEN

VENV=.venv
PYTHON=${AUTORESEARCH_PYTHON:-python3}
TORCH_SPEC=${AUTORESEARCH_TORCH:-torch==2.13.0}

ensure_env() {
    local want
    want=$(cat pyproject.toml | sha256sum | cut -c1-16)
    [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.installed" 2>/dev/null)" = "$want" ] && return 0
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "run.sh: needs Python 3.11 or newer as '$PYTHON' (set AUTORESEARCH_PYTHON)" >&2; exit 2
    fi
    echo "run.sh: setting up $VENV (first run; torch: $TORCH_SPEC)" >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/python" -m pip install -q "$TORCH_SPEC" >&2
    "$VENV/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > "$VENV/requirements.txt"
    "$VENV/bin/python" -m pip install -q -r "$VENV/requirements.txt" >&2
    echo "$want" > "$VENV/.installed"
}

ensure_env
PY="$VENV/bin/python"
case "${1:-}" in
    prepare) shift; exec "$PY" -m commands.prepare "$@" ;;
    check)   shift; exec "$PY" -m commands.check "$@" ;;
    status)  shift; exec "$PY" -m commands.status "$@" ;;
    python)  shift; exec "$PY" -m commands.python "$@" ;;
    report)  shift; exec "$PY" -m commands.report "$@" ;;
    test)    shift; exec "$PY" -m pytest "$@" ;;
    demo)    shift; exec "$PY" -m replay.demo "$@" ;;
    replay)  shift; exec "$PY" -m replay.replay "$@" ;;
    loop)    shift; exec "$PY" -m loop.loop "$@" ;;
    adopt)   shift; exec "$PY" -m commands.adopt "$@" ;;
    confirm) shift; exec "$PY" -m commands.confirm "$@" ;;
    hardening) shift; exec "$PY" -m tests.hardening "$@" ;;
    *)       exec "$PY" -m commands.experiment "$@" ;;
esac
