"""The research history in git: kept versions are commits, discarded ones are refs.

Keep: the editable files (program.md's task.editable: train.py unless it lists more) and
scratchpad.md (and nothing else the user may have staged) are committed on the current
(research) branch with a structured message. Discard, crash or timeout: the candidate that
ran (every editable file of its snapshot) is stored as a commit on top of the best version,
under refs/autoresearch/discarded/<id>, and the editable files are restored to the best. Nothing the agent
tried is lost, and `git diff <best> refs/autoresearch/discarded/<id>` shows exactly what it
was. Every step is idempotent, so a verdict interrupted by kill -9 is simply applied again.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import git

from eval.record.text import refusal

NOTES = "scratchpad.md"  # committed with every keep, beside the editable files
EDITABLE = ("train.py",)  # task.editable's default
DISCARDED = "refs/autoresearch/discarded"
TRAILER = "Autoresearch-Experiment"
FOLLOWED = "Autoresearch-Follows"  # a worker moved onto another worker's keep (eval/experiment.py follow_best)
HARNESS = git.Actor("autoresearch harness", "autoresearch@harness.invalid")  # the harness commits, not a person
IDENTITY = {"GIT_AUTHOR_NAME": HARNESS.name, "GIT_AUTHOR_EMAIL": HARNESS.email,
            "GIT_COMMITTER_NAME": HARNESS.name, "GIT_COMMITTER_EMAIL": HARNESS.email}


class NotAResearchRepo(RuntimeError):
    """The directory has no git history to keep results in; the message says how to start one."""


def open_repo(repo: Path) -> git.Repo:
    return git.Repo(repo)


def check(repo: Path, editable: tuple[str, ...] = EDITABLE) -> None:
    """Refuse to run where kept versions could not be committed, or a discard could not restore the best."""
    try:
        r = open_repo(repo)
        r.head.commit  # noqa: B018 - raises ValueError when there is no commit yet
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        raise NotAResearchRepo(
            f"{repo} is not a git repository with a first commit; the harness commits every kept version. "
            "Run: git init && git add -A && git commit -m 'start'"
        ) from None
    for rel in editable:
        try:
            r.head.commit.tree[rel]
        except KeyError:
            raise NotAResearchRepo(f"{rel} is not committed: commit it first (git add {rel} && git commit)") from None


def checked(message: str) -> str:
    """A commit message the harness writes: plain text, nothing hidden from whoever reads the history."""
    why = refusal(message, "the commit message", allowed="\n")
    if why:
        raise ValueError(why)
    return message


def committed_for(r: git.Repo, run_id: str) -> str | None:
    """The sha of the commit that kept run_id, if HEAD's recent history has one."""
    trailer = re.compile(rf"^{TRAILER}: {re.escape(run_id)}$", re.MULTILINE)
    for commit in r.iter_commits("HEAD", max_count=50):
        if commit.author.email == HARNESS.email and trailer.search(commit.message):
            return commit.hexsha
    return None


def keep(repo: Path, run_id: str, candidate: Path, subject: str, body: str,
         editable: tuple[str, ...] = EDITABLE) -> str:
    """Commit the candidate's editable files (candidate: its train.py; the others beside it) and the scratchpad
    as the new best; return the sha."""
    r = open_repo(repo)
    done = committed_for(r, run_id)
    if done:
        return done
    for rel in editable:
        (repo / rel).write_bytes((candidate.parent / rel).read_bytes())
    paths = [p for p in (*editable, NOTES) if (repo / p).exists()]
    parent = r.head.commit.hexsha
    with tempfile.TemporaryDirectory() as tmp:  # a private index: whatever the user staged stays out
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        r.git.read_tree("HEAD", env=env)
        r.git.add("--", *paths, env=env)
        tree = r.git.write_tree(env=env)
    message = checked(f"{subject}\n\n{body}\n\n{TRAILER}: {run_id}\n")
    sha = r.git.commit_tree(tree, "-p", parent, "-m", message, env=IDENTITY)
    r.git.update_ref("-m", f"autoresearch: keep {run_id}", "HEAD", sha, parent)
    r.git.reset("-q", "--", *paths)  # the real index agrees with the new commit for the paths it took
    return sha


def discard(repo: Path, run_id: str, candidate: Path, subject: str, editable: tuple[str, ...] = EDITABLE,
            restore: bool = True) -> str:
    """Store the candidate (its train.py, and the other editable files beside it) under
    refs/autoresearch/discarded/<id>; restore the editable files to HEAD's (restore: a kept version exists;
    before the first keep, HEAD is only where the human started, and their working files stay as they are)."""
    r = open_repo(repo)
    ref = f"{DISCARDED}/{run_id}"
    if not r.git.for_each_ref(ref):
        with tempfile.TemporaryDirectory() as tmp:  # a private index: the real one is not touched
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            r.git.read_tree("HEAD", env=env)
            for rel in editable:
                blob = r.git.hash_object("-w", str(candidate.parent / rel))
                r.git.update_index("--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
            tree = r.git.write_tree(env=env)
        message = checked(f"{subject}\n\n{TRAILER}: {run_id}")
        commit = r.git.commit_tree(tree, "-p", "HEAD", "-m", message, env=IDENTITY)
        r.git.update_ref(ref, commit)
    if restore:
        restore_best(repo, editable)
    return ref


def restore_best(repo: Path, editable: tuple[str, ...] = EDITABLE) -> None:
    """The editable files back to the last kept version (HEAD's)."""
    r = open_repo(repo)
    for rel in editable:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(r.head.commit.tree[rel].data_stream.read())
    r.index.add(list(editable))


def write_version(repo: Path, commit: str, editable: tuple[str, ...], folder: Path) -> Path:
    """The editable files as a commit holds them (HEAD: the best, for its reruns beside a candidate; a kept
    version, for confirm's retrains), written under folder; returns folder/train.py, a trial's source."""
    r = open_repo(repo)  # held while it reads: a collected Repo closes the stream under the read (seen in threads)
    tree = r.commit(commit).tree
    for rel in editable:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(tree[rel].data_stream.read())
    return folder / "train.py"


def follow(repo: Path, best_id: str, commit: str, branch: str, editable: tuple[str, ...] = EDITABLE) -> str | None:
    """Move this branch onto the global best, another worker's keep: a commit of its editable files on top of
    HEAD, and they restored to it. Its sha; None when HEAD already holds those files (nothing to do)."""
    r = open_repo(repo)
    try:
        blobs = {rel: r.git.rev_parse(f"{commit}:{rel}") for rel in editable}
    except git.GitCommandError:  # a best this repository does not hold (a restored ledger: replay, a new clone)
        return None
    if all(r.git.rev_parse(f"HEAD:{rel}") == blob for rel, blob in blobs.items()):
        return None
    with tempfile.TemporaryDirectory() as tmp:  # a private index: the real one is not touched
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        r.git.read_tree("HEAD", env=env)
        for rel, blob in blobs.items():
            r.git.update_index("--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
        tree = r.git.write_tree(env=env)
    message = checked(f"follow {best_id}: the global best, kept on {branch}\n\n{FOLLOWED}: {best_id} {commit}\n")
    parent = r.head.commit.hexsha
    sha = r.git.commit_tree(tree, "-p", parent, "-m", message, env=IDENTITY)
    r.git.update_ref("-m", f"autoresearch: follow {best_id}", "HEAD", sha, parent)
    restore_best(repo, editable)
    return sha


def branch(repo: Path) -> str | None:
    """The branch this checkout (or worktree) is on; None when detached."""
    name = open_repo(repo).git.rev_parse("--abbrev-ref", "HEAD")
    return None if name == "HEAD" else name


def head(repo: Path) -> str:
    return open_repo(repo).head.commit.hexsha


def discarded(repo: Path) -> dict[str, str]:
    """Experiment id -> sha of its candidate under refs/autoresearch/discarded/, in one git call."""
    out = open_repo(repo).git.for_each_ref(DISCARDED, format="%(refname) %(objectname)")
    return {ref.rsplit("/", 1)[-1]: sha for ref, sha in (line.split() for line in out.splitlines())}


def changes(repo: Path, shas: list[str], limit: int, exclude: tuple[str, ...] = ()) -> dict[str, tuple[str, int]]:
    """sha -> (its diff against its parent, cut at `limit` characters; characters cut), in one git process.

    `git diff-tree --stdin` reads the commits from a file (a pipe could fill both ways) and prints
    each one's id on a line of its own before its patch; a commit git cannot find is left out.
    """
    wanted, found, current = set(shas), {}, None
    with tempfile.TemporaryFile() as ids:
        ids.write("".join(f"{sha}\n" for sha in shas).encode())
        ids.seek(0)
        argv = ["git", "diff-tree", "--stdin", "--always", "-p", "--no-color", "--no-ext-diff", "--",
                ".", *(f":(exclude){path}" for path in exclude)]
        with subprocess.Popen(argv, cwd=repo, stdin=ids, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as git:
            for raw in git.stdout:
                line = raw.decode("utf-8", errors="replace")
                if line.rstrip("\n") in wanted:
                    current = line.rstrip("\n")
                    found[current] = [[], 0, 0]  # kept lines, characters kept, characters cut
                elif current is not None:
                    kept = found[current]
                    if not kept[2] and kept[1] + len(line) <= limit:  # the diff is cut once, at a line end
                        kept[0].append(line)
                        kept[1] += len(line)
                    else:
                        kept[2] += len(line)
    return {sha: ("".join(lines), cut) for sha, (lines, _, cut) in found.items()}
