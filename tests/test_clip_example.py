"""The CLIP example (examples/clip): deterministic data, an evaluator that cannot be fooled by
pairing tricks, and the example through the real sandbox and verdict engine, maximizing."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from eval import config, experiment
from eval.data import DataError
from eval.record import ledger
from eval.scoring.lm import ModelRejected
from eval.scoring.retrieval import score
from eval.trial import score_outcome
from examples.clip import prepare as clip
from sandbox.job import Result
from tests.conftest import REPO, build_repo

EXAMPLE = REPO / "examples" / "clip"
SHIPPED = (EXAMPLE / "train.py").read_text()
UNTRAINED = SHIPPED.replace("\nLEARNING_RATE = 3e-3", "\nLEARNING_RATE = 0.0")  # stays at its random init
BUDGET = 5
FOLDS = 5  # the end-to-end runs score with k-fold evaluation; galleries of ~31 captions


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "data"
    clip.prepare(path)
    return path


def test_generator_is_deterministic(data):
    blobs, counts = clip.build()
    for name, blob in blobs.items():
        assert (data / f"{name}.bin").read_bytes() == blob
    mtime = (data / "train.bin").stat().st_mtime_ns
    assert clip.prepare(data)["splits"]["val"]["examples"] == counts["val"]  # idempotent: nothing rewritten
    assert (data / "train.bin").stat().st_mtime_ns == mtime


def test_splits_are_disjoint_by_caption_and_consistent(data):
    splits = {name: load(data / f"{name}.bin") for name in clip.SPLITS}
    captions = {name: set(s["captions"]) for name, s in splits.items()}
    assert not captions["train"] & captions["val"] and not captions["train"] & captions["test"]
    assert not captions["val"] & captions["test"]
    assert sum(map(len, captions.values())) == len(clip.all_scenes()) == 1600
    for name in ("val", "test"):  # one image per caption: each image has one right caption
        assert len(splits[name]["captions"]) == len(captions[name]) > 100
    assert len(splits["train"]["captions"]) == clip.TRAIN_RENDERS * len(captions["train"])
    for s in splits.values():
        n = len(s["captions"])
        assert s["images"].shape == (n, 3, 16, 16) and s["heatmaps"].shape == (n, 16, 16)
        assert s["images"].dtype == s["heatmaps"].dtype == s["tokens"].dtype == torch.uint8
        words = [" ".join(s["vocab"][t] for t in row if t) for row in s["tokens"].tolist()]
        assert words == s["captions"]
        shapes = s["images"].amax(1) > 100  # shape colors have a channel >= 166, the background stays <= 64
        near = torch.nn.functional.max_pool2d(shapes[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
        assert (s["heatmaps"][shapes] > 0).all() and (s["heatmaps"][~near] == 0).all()  # the expert marks the shapes
    changed = data.parent / "changed"
    shutil.copytree(data, changed)
    (changed / "val.bin").write_bytes(b"tampered")
    with pytest.raises(DataError, match="no longer matches"):
        clip.prepare(changed)


def example_program(seeds: int) -> str:
    raw, body = config.split_front_matter((EXAMPLE / "program.md").read_text(), "program.md")
    front = yaml.safe_load(raw)
    front["verdict"]["seeds"] = seeds
    front["task"]["options"]["folds"] = FOLDS
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body


@pytest.fixture(scope="module")
def experiments(tmp_path_factory, corpus, data) -> tuple[Path, list[dict]]:
    """A harness repo switched to the example as its README says, then two real experiments: the
    shipped train.py (the baseline, two seeds), then the untrained model as a candidate (worse)."""
    assert UNTRAINED != SHIPPED
    root = build_repo(tmp_path_factory.mktemp("clip-repo") / "repo", corpus, example_program(seeds=2))
    shutil.rmtree(root / "data")
    shutil.copytree(data, root / "data")
    (root / "train.py").write_text(SHIPPED)
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qam",
                    "the CLIP example"], cwd=root, check=True)
    verdicts = []
    for text, hypothesis in ((SHIPPED, "baseline"), (UNTRAINED, "learning rate 0")):
        (root / "train.py").write_text(text)
        verdicts.append(experiment.run_experiment(root, hypothesis, BUDGET, False, say=lambda s: None))
    return root, verdicts


def test_example_runs_through_sandbox_and_verdict_maximizing(experiments):
    root, (baseline, untrained) = experiments
    assert [(d["status"], d["outcome"]) for d in (baseline, untrained)] == [("keep", "ok"), ("discard", "ok")]
    assert all(d["direction"] == "maximize" and d["metric"] == "recall_at_1" for d in (baseline, untrained))
    assert len(baseline["values"]) == 2 and len(untrained["values"]) == 1  # not promising: no extra seeds
    assert all(0 <= v <= 1 for d in (baseline, untrained) for v in d["values"])
    chance = FOLDS / len(load(root / "data" / "val.bin")["captions"])
    assert baseline["mean"] > max(2 * chance, untrained["mean"])  # lower is worse here: discarded
    assert untrained["delta"] < 0  # the delta is signed by the direction: positive = better
    assert (root / "train.py").read_text() == SHIPPED  # the best, restored after the discard
    assert ledger.best(ledger.read(root), "maximize")["id"] == baseline["id"]
    result = json.loads((root / "runs" / baseline["id"] / "score.json").read_text())
    assert result["folds"] == FOLDS and len(result["fold_values"]) == FOLDS


def test_both_metrics_are_sane_and_the_trained_model_beats_chance(experiments):
    root = experiments[0]
    val = root / "data" / "val.bin"
    n = len(load(val)["captions"])
    trained, untrained = root / "runs" / "r0001" / "out" / "model.pt2", root / "runs" / "r0002" / "out" / "model.pt2"
    recall = score(trained, val, {})
    rank = score(trained, val, {"metric": "mean_rank"})
    assert recall["metric"] == "recall_at_1" and 0 <= recall["value"] <= 1 and recall["folds"] == 1
    assert rank["metric"] == "mean_rank" and 1 <= rank["value"] <= n
    chance_rank = (n + 1) / 2  # a random model's mean rank is within a few units of it (sd ~ n / sqrt(12 n))
    assert recall["value"] >= 2 / n and rank["value"] < 0.5 * chance_rank  # chance recall: 1 / n
    assert chance_rank * 0.8 < score(untrained, val, {"metric": "mean_rank"})["value"] < chance_rank * 1.2
    assert recall["value"] == pytest.approx(rank["recall_at_1"], abs=2 / n)


def test_a_metric_scored_against_its_direction_is_refused(experiments):
    root = experiments[0]
    val, model = root / "data" / "val.bin", root / "runs" / "r0001" / "out" / "model.pt2"
    rank = {**score(model, val, {"metric": "mean_rank"}), "ok": True, "finite": True}
    assert rank["direction"] == "minimize"
    assert score_outcome(Result(0), rank, "minimize") == ("ok", "")
    outcome, reason = score_outcome(Result(0), rank, "maximize")  # options.metric changed, direction forgotten
    assert outcome == "crash" and "improves when minimized" in reason and "fix program.md" in reason


def test_k_fold_scores_the_mean_over_disjoint_galleries(experiments):
    root = experiments[0]
    val, model = root / "data" / "val.bin", root / "runs" / "r0001" / "out" / "model.pt2"
    n = len(load(val)["captions"])
    for metric in ("recall_at_1", "mean_rank"):
        r = score(model, val, {"metric": metric, "folds": FOLDS})
        assert r["folds"] == FOLDS and len(r["fold_values"]) == FOLDS
        assert r["value"] == pytest.approx(statistics.fmean(r["fold_values"]))
        assert r["fold_spread"] == pytest.approx(statistics.stdev(r["fold_values"]), abs=1e-6)
    assert 1 <= r["value"] <= -(-n // FOLDS)  # a rank within a gallery of at most ceil(n / k) captions
    for bad, message in (({"metric": "top5"}, "options.metric"), ({"folds": 0}, "options.folds"),
                         ({"folds": n}, "options.folds"), ({"folds": True}, "options.folds")):
        with pytest.raises(ValueError, match=message):
            score(model, val, bad)


class PeeksAtThePair(nn.Module):
    """Embeds each image as the caption beside it: perfect retrieval if the scorer fed pairs in order."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(len(clip.VOCAB), 8)

    def forward(self, images, tokens):
        e = self.embed(tokens).flatten(1)
        return e, e


class RowNumber(nn.Module):
    """Embeds both inputs as their row's place in the batch: pairs match when they come in order."""

    def forward(self, images, tokens):
        place = torch.cumsum(torch.ones_like(images[:, 0, 0, :2]), 0)
        e = torch.cat([torch.cos(place[:, :1]), torch.sin(place[:, 1:])], 1)
        return e, e


class Constant(nn.Module):
    def forward(self, images, tokens):
        e = images[:, 0, 0, :4] * 0 + 1
        return e, e


class OneOutput(nn.Module):
    def forward(self, images, tokens):
        return images.flatten(1)


def export(module: nn.Module, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (torch.rand(2, 3, 16, 16), torch.ones(2, clip.MAX_TOKENS, dtype=torch.long))
    torch.export.save(torch.export.export(module, example, dynamic_shapes=({0: batch}, {0: batch})), path)
    return path


def test_pairing_tricks_are_rejected_and_ties_count_against(tmp_path, data):
    val, n = data / "val.bin", len(load(data / "val.bin")["captions"])
    for cheat in (PeeksAtThePair(), RowNumber()):
        with pytest.raises(ModelRejected, match="depend on its own"):
            score(export(cheat, tmp_path / "m.pt2"), val, {})
    with pytest.raises(ModelRejected, match="must map"):
        score(export(OneOutput(), tmp_path / "m.pt2"), val, {})
    constant = score(export(Constant(), tmp_path / "m.pt2"), val, {})
    assert constant["recall_at_1"] == 0 and constant["mean_rank"] == n  # every tie ranks its caption last
