"""The ledger (runs/ledger.jsonl, results.tsv), progress.png and `./run.sh status`."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import struct
import warnings
from pathlib import Path

import pytest

from commands import status
from eval.record import ledger, plot

REPO = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_row(n: int, status: str = "keep", mean: float | None = 1.0, **extra) -> dict:
    return {
        "id": f"r{n:04d}", "status": status, "outcome": "ok" if mean is not None else status,
        "metric": "val_bpb", "direction": "minimize", "mean": mean, "seeds": [1337], "values": [mean],
        "spread": 0.01, "delta": None if n == 1 or mean is None else mean - 1.0, "threshold": 0.02,
        "hypothesis": f"idea number {n}", "phase": "hyperparameters", "commit": f"{n:07x}" + "a" * 33,
        "diff_ref": None if status == "keep" else f"refs/autoresearch/discarded/r{n:04d}",
        "training_seconds": 300.1, "total_seconds": 325.9, "peak_memory_mb": 45060.2, **extra,
    }


def mixed_rows() -> list[dict]:
    compute = [{"id": "r0002", "cpu_seconds": 40.0, "host_other_load": 0.2, "gpu_busy_seconds": 30.0},
               {"id": "r0002-s2", "cpu_seconds": 42.0, "host_other_load": 1.6, "gpu_busy_seconds": 31.0},
               {"id": "r0002-b1", "cpu_seconds": 99.0, "host_other_load": 0.1, "gpu_busy_seconds": 9.0}]
    compute = [{**c, "lease": "cpu1"} for c in compute]
    return [make_row(1, mean=1.0), make_row(2, "discard", 0.90, runs=4, compute=compute), make_row(3, mean=0.95),
            make_row(4, "crash", None, reason="train.py exited with status 1"), make_row(5, "discard", 0.97),
            make_row(6, "timeout", None), make_row(7, mean=0.93, description="wider MLP\tand\nmore heads")]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copy(REPO / "program.md", tmp_path / "program.md")
    return tmp_path


def read_quietly(repo: Path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean ledger reads without a TornLedger warning
        return ledger.read(repo)


def test_append_and_read_back(repo):
    rows = mixed_rows()
    assert all(ledger.append(repo, r) for r in rows)
    back = read_quietly(repo)
    assert [r["id"] for r in back] == [r["id"] for r in rows]
    assert list(back[0])[: len(ledger.FIELDS)] == [name for name, *_ in ledger.FIELDS]  # every field, in order
    assert back[3]["reason"] == "train.py exited with status 1" and back[3]["mean"] is None
    assert back[2]["values"] == [0.95] and back[0]["time"].endswith("+00:00")
    assert (repo / "runs" / "ledger.jsonl").read_bytes().count(b"\n") == len(rows)


def test_results_tsv_has_karpathys_columns(repo):
    for r in mixed_rows():
        ledger.append(repo, r)
    lines = (repo / "results.tsv").read_text().split("\n")
    assert lines[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert lines[1] == "0000001\t1.000000\t44.0\tkeep\tidea number 1"
    assert lines[2] == "0000002\t0.900000\t44.0\tdiscard\tidea number 2"
    assert lines[4] == "0000004\t0.000000\t44.0\tcrash\tidea number 4"
    assert lines[6] == "0000006\t0.000000\t44.0\ttimeout\tidea number 6"
    assert lines[7] == "0000007\t0.930000\t44.0\tkeep\twider MLP and more heads"
    assert lines[8:] == [""] and all(line.count("\t") == 4 for line in lines[:8])


def test_rows_are_validated_and_nan_is_stored_as_null(repo):
    for bad in ({k: v for k, v in make_row(1).items() if k != "commit"}, make_row(1, "maybe"), make_row(1, mean=None),
                make_row(1, direction="down"), {**make_row(1), "id": "1"}, make_row(1, mean="0.9")):
        with pytest.raises(ValueError):
            ledger.append(repo, bad)
    assert read_quietly(repo) == []
    ledger.append(repo, make_row(1, "crash", float("nan"), values=[float("nan")]))
    assert read_quietly(repo)[0]["mean"] is None and read_quietly(repo)[0]["values"] == [None]


@pytest.mark.parametrize("torn", [b'{"id": "r0003", "status": "ke', b"\x00" * 40, b'{"id": "r0003"\n{"i'])
def test_a_torn_last_line_is_skipped_repaired_and_appends_continue(repo, torn):
    ledger.append(repo, make_row(1))
    ledger.append(repo, make_row(2, "discard", 1.1))
    path = repo / "runs" / "ledger.jsonl"
    clean, tsv = path.read_bytes(), (repo / "results.tsv").read_bytes()
    with path.open("ab") as f:  # a writer killed mid-line
        f.write(torn)
    with pytest.warns(ledger.TornLedger, match="torn last line"):
        assert [r["id"] for r in ledger.read(repo)] == ["r0001", "r0002"]
    assert ledger.repair(repo) == len(torn)
    assert path.read_bytes() == clean and path.read_bytes().endswith(b"\n")
    assert ledger.repair(repo) == 0 and path.read_bytes() == clean  # idempotent
    assert ledger.append(repo, make_row(3, mean=0.9))
    assert [r["id"] for r in read_quietly(repo)] == ["r0001", "r0002", "r0003"]
    assert (repo / "results.tsv").read_bytes().startswith(tsv)


def test_append_cuts_a_torn_tail_itself(repo):
    ledger.append(repo, make_row(1))
    with (repo / "runs" / "ledger.jsonl").open("ab") as f:
        f.write(b'{"id": "r0002", "sta')
    with (repo / "results.tsv").open("ab") as f:
        f.write(b"00000")
    assert ledger.append(repo, make_row(2, "discard", 1.2))
    assert [r["id"] for r in read_quietly(repo)] == ["r0001", "r0002"]
    assert (repo / "results.tsv").read_bytes() == ledger.render_tsv(read_quietly(repo))


def test_a_garbled_results_tsv_is_rewritten_by_repair(repo):
    ledger.append(repo, make_row(1))
    (repo / "results.tsv").write_text("commit\tval_bpb\tmemory_gb\tstatus\tdescription\nxx\tgarbage")
    assert ledger.repair(repo) > 0
    assert (repo / "results.tsv").read_bytes() == ledger.render_tsv(read_quietly(repo))
    assert ledger.repair(repo) == 0


def test_appending_an_id_again_is_a_no_op(repo):
    assert ledger.append(repo, make_row(1))
    assert not ledger.append(repo, make_row(1, "discard", 2.0))
    rows = read_quietly(repo)
    assert len(rows) == 1 and rows[0]["status"] == "keep"
    assert len((repo / "results.tsv").read_text().splitlines()) == 2


def test_repair_rebuilds_the_tsv_and_a_kill_between_the_two_appends_heals(repo):
    rows = mixed_rows()
    for r in rows:
        ledger.append(repo, r)
    tsv = repo / "results.tsv"
    want = tsv.read_bytes()
    assert ledger.repair(repo) == 0 and tsv.read_bytes() == want
    tsv.unlink()
    ledger.repair(repo)
    assert tsv.read_bytes() == want
    tsv.write_bytes(want.replace(b"keep", b"KEEP"))
    ledger.repair(repo)
    assert tsv.read_bytes() == want
    tsv.write_bytes(want[: want.rindex(b"\n", 0, -1) + 1])  # killed after the ledger line, before the tsv line
    assert not ledger.append(repo, rows[-1])  # the verdict step re-run: no new row, the tsv caught up
    assert tsv.read_bytes() == want


def append_many(repo: Path, worker: int, count: int) -> None:
    for i in range(count):
        ledger.append(repo, make_row(1 + worker * count + i, "discard", 1.0 + i / 1000, hypothesis="x" * 3000))


def test_concurrent_appends_from_several_processes(repo):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=append_many, args=(repo, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    lines = (repo / "runs" / "ledger.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 201
    assert len({json.loads(line)["id"] for line in lines[:-1]}) == 200
    assert len((repo / "results.tsv").read_text().splitlines()) == 201
    assert (repo / "results.tsv").read_bytes() == ledger.render_tsv(read_quietly(repo))


def test_best_is_the_latest_kept_row_and_last_takes_the_tail():
    rows = [ledger.normalize(r) for r in mixed_rows()]
    assert ledger.best(rows, "minimize")["id"] == "r0007"  # not r0002's lower, discarded 0.90
    assert ledger.best(rows, "maximize") is None and ledger.best([], "minimize") is None
    assert [r["id"] for r in ledger.last(rows, 2)] == ["r0006", "r0007"]
    assert ledger.last(rows, 0) == [] and len(ledger.last(rows, 100)) == 7


@pytest.mark.parametrize("case", ["empty", "one", "mixed", "all-crash"])
def test_progress_png_is_a_real_image(repo, case):
    rows = {"empty": [], "one": [make_row(1)], "mixed": mixed_rows(),
            "all-crash": [make_row(n, "crash" if n % 2 else "timeout", None) for n in range(1, 6)]}[case]
    path = plot.draw(repo, [ledger.normalize(r) for r in rows], "val_bpb", "minimize")
    data = path.read_bytes()
    assert path == repo / "progress.png" and data[:8] == PNG_SIGNATURE
    assert struct.unpack(">II", data[16:24]) == (1200, 650) and len(data) > 15_000
    assert [p.name for p in repo.iterdir() if p.name.endswith(".tmp")] == []


def run_status(repo: Path, monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    monkeypatch.chdir(repo)
    code = status.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_prints_the_last_rows_and_the_best(repo, monkeypatch, capsys):
    for r in mixed_rows():
        ledger.append(repo, r)
    code, out, _ = run_status(repo, monkeypatch, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "status", "val_bpb", "delta", "spread", "mem_gb", "runs", "cpu_s", "load",
                                "gpu_s", "slot", "description"]
    assert lines[2].split() == ["r0002", "discard", "0.900000", "-0.100000", "0.010000", "44.0", "4", "41.0", "1.6",
                                "30.5", "cpu1", "idea", "number", "2"]  # the candidate's CPU and GPU, not the reruns'
    assert lines[1].split()[6:11] == ["1", "-", "-", "-", "-"]
    assert lines[4].split()[:3] == ["r0004", "crash", "-"]
    assert "best val_bpb (minimize): 0.930000 (r0007, commit 0000007)" in out
    assert "7 experiments: 3 kept, 2 discarded, 1 crashed, 1 timed out" in out
    assert "progress plot: not drawn yet" in out
    plot.draw(repo, ledger.read(repo), "val_bpb", "minimize")
    code, out, _ = run_status(repo, monkeypatch, capsys, "-n", "2")
    assert f"progress plot: {repo / 'progress.png'}" in out
    assert "r0005" not in out and "r0006" in out and "wider MLP and more heads" in out


def test_status_notes_a_torn_ledger(repo, monkeypatch, capsys):
    ledger.append(repo, make_row(1))
    with (repo / "runs" / "ledger.jsonl").open("ab") as f:
        f.write(b'{"id": "r00')
    code, out, err = run_status(repo, monkeypatch, capsys)
    assert code == 0 and "r0001" in out and "torn last line" in err


def test_status_before_the_first_verdict_lists_metrics_json(repo, monkeypatch, capsys):
    code, out, _ = run_status(repo, monkeypatch, capsys)
    assert code == 0 and "no experiments yet" in out
    (repo / "runs" / "r0001").mkdir(parents=True)
    metrics = {"id": "r0001", "outcome": "ok", "value": 1.234567, "hypothesis": "baseline"}
    (repo / "runs" / "r0001" / "metrics.json").write_text(json.dumps(metrics))
    code, out, _ = run_status(repo, monkeypatch, capsys)
    assert code == 0 and "r0001" in out and "best val_bpb (minimize): 1.234567 (r0001)" in out


def test_status_with_a_broken_program_md_exits_2(repo, monkeypatch, capsys):
    program = repo / "program.md"
    program.write_text(program.read_text().replace("direction: minimize", "direction: downwards"))
    code, out, err = run_status(repo, monkeypatch, capsys)
    assert code == 2 and out == "" and "task.direction" in err


def test_a_change_of_task_archives_the_ledger_so_the_header_and_the_best_follow_it(repo):
    from eval.record import tasks

    for r in mixed_rows():
        ledger.append(repo, r)
    bpb = tasks.identity("val_bpb", "minimize", "eval.scoring.bpb:score", "a" * 64)
    assert tasks.switch(repo, bpb, ledger.read(repo)) is None  # a ledger from before task.json: the same task
    assert tasks.switch(repo, bpb, ledger.read(repo)) is None and len(ledger.read(repo)) == 7
    acc = tasks.identity("val_acc", "maximize", "eval.scoring.tabular:score", "b" * 64)
    said = tasks.switch(repo, acc, ledger.read(repo))
    assert "metric val_bpb -> val_acc" in said and "data aaaaaaaaaaaa -> bbbbbbbbbbbb" in said
    archived = next((repo / "runs" / "archive").iterdir())
    assert archived.name.endswith("-val_bpb") and (archived / "results.tsv").read_text().startswith("commit\tval_bpb")
    assert ledger.read(repo) == [] and not (repo / "results.tsv").exists()
    ledger.append(repo, make_row(8, metric="val_acc", direction="maximize", mean=0.9))
    assert (repo / "results.tsv").read_text().startswith("commit\tval_acc")  # the header follows the task
    assert ledger.best(ledger.read(repo), "maximize")["id"] == "r0008"  # the new task's baseline is its best


def test_other_frozen_data_is_another_task(repo):
    from eval.record import tasks

    ledger.append(repo, make_row(1))
    assert tasks.switch(repo, tasks.identity("val_bpb", "minimize", "e:s", "a" * 64), ledger.read(repo)) is None
    assert "data" in tasks.switch(repo, tasks.identity("val_bpb", "minimize", "e:s", "c" * 64), ledger.read(repo))


def test_threads_writing_one_file_at_once_each_write_it_whole(tmp_path):
    """Two trials at once in one process (parallel slots, a Ray driver) both record data/heldout-check.json:
    each write lands whole, none fails for the other's temporary file."""
    import threading

    from eval.record.runs import atomic_write

    target, errors = tmp_path / "heldout-check.json", []

    def write(k: int) -> None:
        try:
            for _ in range(200):
                atomic_write(target, f"writer {k}\n" * 1000)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = set(target.read_text().splitlines())
    assert len(lines) == 1 and lines <= {f"writer {k}" for k in range(4)}
    assert [p.name for p in tmp_path.iterdir()] == ["heldout-check.json"]  # no temporary file left
