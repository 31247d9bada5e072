"""The tool policy: what Claude Code may do inside the research loop.

Everything is an allowlist kept in tables: TOOLS here (one rule per tool), COMMANDS
(commands.py: the shell commands and their options), GIT_READS (git.py), the path rules
(paths.py). When an experiment may start is the research engine's rule (eval/rules.py),
consulted here. A denial always says why and what to do instead,
because the reason is all the agent sees. decide() does no I/O beyond resolving paths,
expanding globs and reading the file an edit would change (for the size caps), so tests can
point it at any repository and any program.md.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval.record.text import refusal
from hooks.guard import advice, shell, wrappers
from hooks.guard.commands import COMMANDS, IMPLICIT_CWD, SANDBOX_VIEW, Form
from hooks.guard.paths import Context, Refused, listable, literal, readable, resolve, resolved
from hooks.guard.shell import Word

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the hook ~5 ms per call
if TYPE_CHECKING:
    from eval.config import ConfigError, Program

EDITABLE = ("train.py", "scratchpad.md")  # always; program.md's task.editable may add files of the project
MAX_COMMAND = 4000
MAX_HYPOTHESIS = 300
# An edited file after the edit: train.py is ~7 KB and a long loop's scratchpad.md some tens of KB. More is
# data or weights pasted into code, or a log, which the sandbox and the harness provide instead.
MAX_EDITED_BYTES = 256_000
MAX_LINE = 4_000  # characters in one line an edit makes: no code or note line is longer
SUBAGENTS = ("Task", "Agent")  # their calls are decided by this guard too (tests/test_guard_e2e.py)


@dataclass(frozen=True)
class Decision:
    decision: str  # "allow" or "deny"
    reason: str
    updated_input: dict | None = None  # replaces the whole tool input when set
    experiment: bool = False  # an allowed ./run.sh experiment run: the PreToolUse hook notes when it began


def allow(reason: str, updated_input: dict | None = None) -> Decision:
    return Decision("allow", reason, updated_input)


def deny(reason: str) -> Decision:
    return Decision("deny", reason)


def decide(
    tool_name: str,
    tool_input: dict,
    repo: Path,
    program: Program | ConfigError,
    cwd: str | Path | None = None,
) -> Decision:
    """Decide one tool call. `program` is program.md parsed, or the ConfigError it raised."""
    rule = TOOLS.get(tool_name)
    if rule is None:
        if tool_name.startswith("mcp__"):
            return deny(f"MCP tools ({tool_name}) are not part of the research loop")
        return deny(f"the tool {tool_name!r} is not part of the research loop; use Bash, Read, Edit or Write")
    if not isinstance(tool_input, dict):
        return deny("the tool input is not a JSON object")
    root = Path(os.path.realpath(repo))
    ctx = Context(root, Path(os.path.realpath(root / (cwd or "."))), program)
    try:
        return rule(tool_input, ctx)
    except Refused as e:
        return deny(str(e))


# ---------------------------------------------------------------- ./run.sh


RUN_FORMS = ("./run.sh", "./run.sh -m *", "./run.sh status", "./run.sh check", "./run.sh python *")  # run_form()'s
CHECK_TIMEOUT_MS = 600_000  # ./run.sh check: seconds of training, but a first call may scan for held-out text
RUN_HELP = ('./run.sh takes exactly one of these forms: `./run.sh`, `./run.sh -m "one-line hypothesis"` '
            f"(at most {MAX_HYPOTHESIS} characters, no newline), `./run.sh status`, `./run.sh check` (a dry run), "
            "`./run.sh python -c CODE`, "
            "`./run.sh python -m MODULE`, `./run.sh python train.py` (your Python, in the training sandbox)")


def run_form(words: list[Word], ctx: Context | None = None) -> str:
    """'experiment', 'status', 'check' or 'python' for the forms the agent may call; refuse the rest."""
    args = [literal(w) for w in words]
    if args in (["status"], ["check"]):
        return args[0]
    if args[:1] == ["python"]:
        return python_form(args[1:], ctx)
    if len(args) == 2 and args[0] == "-m" and (why := refusal(args[1], "the hypothesis")):
        raise Refused(why)  # it would go into commit messages and the ledger
    if not args or (len(args) == 2 and args[0] == "-m" and valid_hypothesis(args[1])):
        return "experiment"
    raise Refused(RUN_HELP)


def python_form(args: list[str], ctx: Context | None) -> str:
    """`./run.sh python -c CODE|-m MODULE|FILE [ARGS]`: FILE one the agent edits (the sandbox sees only those)."""
    if args[:1] in (["-c"], ["-m"]) and len(args) > 1:
        return "python"
    if args and ctx is not None and args[0].endswith(".py") and resolve(ctx, args[0])[0] in editable_paths(ctx):
        return "python"
    raise Refused(
        f"./run.sh python runs your Python in the training sandbox {SANDBOX_VIEW}: `./run.sh python -c "
        "'import json; ...'`, `./run.sh python -m MODULE ARGS` or `./run.sh python train.py ARGS`"
    )


def valid_hypothesis(text: str) -> bool:
    return len(text.strip()) > 0 and len(text) <= MAX_HYPOTHESIS


def invalid_program(error: Exception) -> str:
    return f"program.md is invalid: {error}; ask the human to fix it"


def canonical(words: tuple[Word, ...]) -> str:
    """The call as the allow rules spell it: `./run.sh -m 'why'`."""
    return " ".join(shell.quote(w.text) if i else w.text for i, w in enumerate(words))


# ---------------------------------------------------------------- tools


def bash(tool_input: dict, ctx: Context) -> Decision:
    command = tool_input.get("command")
    if not isinstance(command, str) or not command.strip():
        return deny("Bash needs a command")
    if len(command) > MAX_COMMAND:
        return deny(f"the command is {len(command)} characters long; the limit is {MAX_COMMAND}")
    why = refusal(command, "the command", allowed="\t\n")
    if why:
        return deny(why)
    if not ctx.cwd.is_relative_to(ctx.repo):
        return deny(f"the shell is in {ctx.cwd}, outside the repository {ctx.repo}; commands run in the repository")
    try:
        line = shell.parse(command)
    except shell.ShellError as e:
        return deny(advice.unread(command) or str(e))
    dropped: tuple[str, ...] = ()
    problems, forms = check_line(ctx, line)
    if problems and ctx.cwd == ctx.repo and (peeled := wrappers.peel(line, ctx)):
        line, dropped = shell.Line((peeled.run,), alone=True), peeled.dropped
        problems, forms = check_line(ctx, line)
    if problems:
        return deny(joined(problems))
    if "experiment" in forms:
        if isinstance(ctx.program, Exception):
            return deny(invalid_program(ctx.program))
        from eval import rules  # here: only experiment runs pay for the ledger

        refused = rules.run_refusal(ctx.repo, ctx.program)
        if refused:
            return deny(refused)
        timeout = rules.run_timeout_ms(ctx.program)
        updated = {k: v for k, v in tool_input.items() if k != "run_in_background"} | {"timeout": timeout}
        reason = f"experiment run (timeout {timeout // 1000} s, foreground)"
        if dropped:
            updated["command"] = canonical(line.commands[0].words)
            reason += f"; rewritten to `{updated['command']}`, dropping " + ", ".join(f"`{d}`" for d in dropped)
        return Decision("allow", reason, updated, experiment=True)
    if tool_input.get("run_in_background"):
        return deny("background commands are not allowed; run it in the foreground")
    if "check" in forms:
        return allow("dry run (no score)", {**tool_input, "timeout": CHECK_TIMEOUT_MS})
    what = "your Python, in the training sandbox" if "python" in forms else "read-only command inside the repository"
    if dropped:
        call = canonical(line.commands[0].words)
        return allow(f"{what}; rewritten to `{call}`, dropping " + ", ".join(f"`{d}`" for d in dropped),
                     {**tool_input, "command": call})
    return allow(what)


def check_line(ctx: Context, line: shell.Line) -> tuple[list[str], list[str]]:
    """Every problem of the line (each command checked, none stops the others) and the ./run.sh forms in it."""
    problems, forms = [], []
    for i, cmd in enumerate(line.commands):
        try:
            forms += check_command(ctx, cmd, line.commands[i - 1] if cmd.joined == "|" else None)
        except Refused as e:
            problems.append(str(e))
    if "experiment" in forms and not line.alone:
        problems.append(around_a_run(line, ctx))
    return list(dict.fromkeys(problems)), forms


def check_command(ctx: Context, cmd: shell.Command, before: shell.Command | None) -> list[str]:
    """Refuse the command with all it says is wrong: what the command is first, then its words.
    `before` is the command whose output it reads through a pipe (xargs runs what that prints)."""
    name, args = cmd.words[0].text, list(cmd.words[1:])
    found = [] if name == "./run.sh" or name in COMMANDS else [advice.refused(ctx, cmd)]
    found += list(cmd.problems)
    for source in cmd.inputs:
        try:
            readable(ctx, literal(source))
        except Refused as e:
            found.append(str(e))
    if found and name == "./run.sh":
        found.append(run_advice(args, ctx))
    if found:
        raise Refused("; ".join(dict.fromkeys(f for f in found if f)))
    if name == "./run.sh":
        form = run_form(args, ctx)
        if ctx.cwd != ctx.repo:
            raise Refused("run ./run.sh from the repository root")
        return [form]
    rule = COMMANDS[name]
    if name == "xargs":
        rule(ctx, args, before)
    elif isinstance(rule, Form):
        rule.check(ctx, name, args, "." if name in IMPLICIT_CWD else None)
    else:
        rule(ctx, args)
    return []


def around_a_run(line: shell.Line, ctx: Context) -> str:
    """Why a ./run.sh call with other things around it is refused, and what is accepted around one."""
    names = {c.words[0].text for c in line.commands}
    tee = (" ./run.sh already keeps the whole output in runs/<id>/train.log and the verdict in "
           "runs/<id>/verdict.json: drop the `| tee`;" if "tee" in names else "")
    runs = [c for c in line.commands if c.words[0].text == "./run.sh"]
    advised = run_advice(list(runs[0].words[1:]), ctx) if len(runs) == 1 else ""
    return (
        'run ./run.sh on its own: `./run.sh` or `./run.sh -m "hypothesis"`, so the harness sees exactly one run;'
        f"{tee} around it only `cd <repository root> &&`, activating .venv, `timeout N`, `2>&1` and "
        "`| tail -N` / `| head -N` are accepted (and dropped), nothing else" + (f"; {advised}" if advised else "")
    )


def run_advice(args: list[Word], ctx: Context) -> str:
    """`instead: `./run.sh ...`` with these arguments when they are a valid form: the output is in runs/<id>/."""
    try:
        if run_form(args, ctx) != "experiment":
            return ""
    except Refused:
        return ""
    return ("its whole output is kept in runs/<id>/train.log and the verdict in runs/<id>/verdict.json; instead: "
            f"`{canonical((Word('./run.sh'), *args))}`")


def joined(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems: " + " ".join(f"({i}) {p};" for i, p in enumerate(problems, 1)).rstrip(";")


def read(tool_input: dict, ctx: Context) -> Decision:
    readable(ctx, tool_input.get("file_path"))
    return allow("read inside the repository")


def grep_tool(tool_input: dict, ctx: Context) -> Decision:
    """Claude Code's Grep searches a file or a whole tree (the shell's directory by default), as `grep -r` does."""
    path = tool_input.get("path") or "."
    try:
        readable(ctx, path, recursive=True)
    except Refused as e:
        raise Refused(f"Grep: {e}; give `path` a file or folder without them (e.g. train.py, eval)") from None
    return allow("search inside the repository")


def glob_tool(tool_input: dict, ctx: Context) -> Decision:
    """Claude Code's Glob lists names, as `ls` and `find` do: the folder and the pattern stay in the repository."""
    folder = tool_input.get("path") or "."
    listable(ctx, folder)
    pattern = tool_input.get("pattern")
    if not isinstance(pattern, str) or not pattern or pattern.startswith(("/", "~")) or ".." in Path(pattern).parts:
        raise Refused("Glob needs a pattern relative to the repository (no leading / or ~, no ..): `**/*.py`")
    fixed = itertools.takewhile(lambda part: not set(part) & set("*?[{"), Path(pattern).parts[:-1])
    listable(ctx, os.path.join(folder, *fixed))  # a symlinked folder in the pattern must stay inside too
    return allow("file names inside the repository")


def editable_paths(ctx: Context) -> list[Path]:
    return [ctx.repo / name for name in editable_files(ctx)]


def editable(tool_input: dict, ctx: Context) -> tuple[Path, Path]:
    """The file an Edit/Write/MultiEdit changes, (path, relative path); refused unless it is editable."""
    value = tool_input.get("file_path")
    path, rel = resolve(ctx, value)
    names = editable_files(ctx)
    if path not in editable_paths(ctx):
        raise Refused(
            f"`{value}`{resolved(ctx, value, path)} is not editable: the agent changes only "
            f"{', '.join(names[:-1])} and {names[-1]} (program.md task.editable); everything else is the harness"
        )
    return path, rel


def editable_files(ctx: Context) -> tuple[str, ...]:
    """train.py, what program.md's task.editable adds, and scratchpad.md (the first and last alone while
    program.md is broken)."""
    extra = () if isinstance(ctx.program, Exception) else ctx.program.task.editable
    return tuple(dict.fromkeys(("train.py", *extra, "scratchpad.md")))


def current_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError as e:
        raise Refused(f"{path.name} cannot be read ({e.strerror}), so the size of the edit cannot be checked") from None


def replaced(text: str, change: object) -> str:
    """`text` after one Edit-shaped change {old_string, new_string, replace_all?}, as Claude Code applies it."""
    if not isinstance(change, dict):
        raise Refused("each edit must be an object with old_string and new_string")
    old, new = change.get("old_string"), change.get("new_string")
    if not isinstance(old, str) or not isinstance(new, str):
        raise Refused("old_string and new_string must be strings")
    return text.replace(old, new) if change.get("replace_all") else text.replace(old, new, 1)


def sized(rel: Path, before: str, after: str) -> Decision:
    """Allow the change unless it grows the file past MAX_EDITED_BYTES or makes a line longer than MAX_LINE."""
    size = len(after.encode("utf-8", errors="replace"))
    if size > MAX_EDITED_BYTES and size > len(before.encode("utf-8", errors="replace")):
        raise Refused(
            f"{rel} would be {size:,} bytes after this change; the cap is {MAX_EDITED_BYTES:,} bytes. train.py is "
            "code: no pasted data or weights (the sandbox hands it the training split); scratchpad.md is notes: "
            "summarize older entries instead of appending logs"
        )
    long = [line for line in set(after.splitlines()) - set(before.splitlines()) if len(line) > MAX_LINE]
    if long:
        raise Refused(
            f"this change makes a line of {max(map(len, long)):,} characters in {rel}; the cap is {MAX_LINE:,} "
            "characters per line: split it over several lines"
        )
    return allow(f"{rel} is editable")


def edit(tool_input: dict, ctx: Context) -> Decision:
    path, rel = editable(tool_input, ctx)
    before = current_text(path)
    return sized(rel, before, replaced(before, tool_input))


def multi_edit(tool_input: dict, ctx: Context) -> Decision:
    path, rel = editable(tool_input, ctx)
    edits = tool_input.get("edits")
    if not isinstance(edits, list):
        raise Refused("MultiEdit needs a list of edits")
    before = after = current_text(path)
    for change in edits:
        after = replaced(after, change)
    return sized(rel, before, after)


def write(tool_input: dict, ctx: Context) -> Decision:
    path, rel = editable(tool_input, ctx)
    content = tool_input.get("content")
    if not isinstance(content, str):
        raise Refused("Write needs the file's content as a string")
    return sized(rel, current_text(path), content)


def subagent(tool_input: dict, ctx: Context) -> Decision:
    """Subagents work in this repository under this guard; an isolation would take them elsewhere."""
    isolation = tool_input.get("isolation")
    if isolation is not None:
        raise Refused(
            f"subagents may not run with isolation {isolation!r}: 'worktree' makes Claude Code create a git "
            "worktree and branch (git belongs to the harness) and 'remote' runs outside this guard; leave "
            "`isolation` out: the subagent then works in this repository under the same rules"
        )
    return allow("subagents run under this same guard")


def web_phase(ctx: Context) -> tuple[str, ...]:
    """The current phase's web domains; refuse when program.md is broken or the phase has no web."""
    if isinstance(ctx.program, Exception):
        raise Refused(invalid_program(ctx.program))
    phase = ctx.program.current_phase
    if not phase.web:
        raise Refused(
            f"the current phase '{phase.name}' does not allow web access (program.md decides which phases do)"
        )
    if not phase.domains:
        raise Refused(f"the phase '{phase.name}' allows web access but lists no domains in program.md")
    return phase.domains


def on_domains(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def url_host(url: object) -> str | None:
    """The host a URL reaches, or None when parsers could disagree about it (user@, backslash, spaces)."""
    if not isinstance(url, str) or not url.isascii() or re.search(r"[\s\\]", url):
        return None
    try:
        from urllib.parse import urlsplit  # here: only web calls pay for the import

        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or not host:
        return None
    return host


def web_fetch(tool_input: dict, ctx: Context) -> Decision:
    domains = web_phase(ctx)
    url = tool_input.get("url")
    host = url_host(url)
    if host is None:
        return deny(f"WebFetch needs a plain http(s) URL (no user@, backslashes or spaces), got {url!r}")
    if not on_domains(host, domains):
        return deny(f"{host} is not among this phase's domains: {', '.join(domains)}")
    return allow(f"{host} is allowed in this phase")


def web_search(tool_input: dict, ctx: Context) -> Decision:
    domains = web_phase(ctx)
    asked = tool_input.get("allowed_domains")
    if not asked:
        return allow("search limited to this phase's domains", {**tool_input, "allowed_domains": list(domains)})
    if not isinstance(asked, list) or not all(isinstance(d, str) and on_domains(d, domains) for d in asked):
        return deny(f"allowed_domains must be within this phase's domains: {', '.join(domains)}")
    return allow("search within this phase's domains")


def permit(reason: str) -> Callable[[dict, Context], Decision]:
    return lambda tool_input, ctx: allow(reason)


def refuse(reason: str) -> Callable[[dict, Context], Decision]:
    return lambda tool_input, ctx: deny(reason)


NO_SCHEDULING = "scheduling is not part of the research loop: keep looping yourself"
PERMITTED = {  # tools allowed whatever their input (settings.json pre-approves them too)
    "TodoWrite": "a to-do list changes no files",
    "TaskOutput": "reads the output of the agent's own background task",
    "BashOutput": "reads the output of the agent's own background task",
    "KillShell": "stops only the agent's own background task",
    "TaskStop": "stops only the agent's own background task",
}
TOOLS: dict[str, Callable[[dict, Context], Decision]] = {
    "Bash": bash,
    "Read": read,
    "Grep": grep_tool,
    "Glob": glob_tool,
    "Edit": edit,
    "Write": write,
    "MultiEdit": multi_edit,
    "NotebookEdit": refuse("notebooks are not part of the research loop; edit train.py"),
    "WebFetch": web_fetch,
    "WebSearch": web_search,
    **{name: subagent for name in SUBAGENTS},
    **{name: permit(reason) for name, reason in PERMITTED.items()},
    "CronCreate": refuse(NO_SCHEDULING),
    "CronDelete": refuse(NO_SCHEDULING),
    "CronList": refuse(NO_SCHEDULING),
    "Monitor": refuse("Monitor runs commands outside the Bash policy; ./run.sh already waits for the run"),
    "Skill": refuse("skills are not part of the research loop"),
    "AskUserQuestion": refuse(
        "no human is watching the loop: decide, record your reasoning in scratchpad.md, and go on"
    ),
}
