"""Word-level language models: the frozen vocabulary's rule and the evaluator generic in vocabulary size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eval.scoring import ppl, tokens
from eval.scoring.lm import ModelRejected

TRAIN = " = Title = \n the cat sat \n\n the dog sat on the cat \n"


def test_the_vocabulary_follows_word_language_models_corpus():
    vocab = tokens.build_vocab(TRAIN)
    assert vocab == ["=", "Title", "<eos>", "the", "cat", "sat", "dog", "on", "<unk>"]
    # an unseen word is <unk>; every line, the empty one too, ends with <eos>
    assert tokens.encode(" the bird sat \n\n", vocab) == [3, 8, 5, 2, 2]


class Bigram(torch.nn.Module):
    """A causal word model: the logits at t depend on the token at t alone."""

    def __init__(self, vocab: int, shift: int = 0) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)
        self.shift = shift  # > 0: reads the token `shift` positions ahead, a peek at the target

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(torch.roll(idx, -self.shift, dims=1) if self.shift else idx)


def exported(tmp_path: Path, model: torch.nn.Module, seq_len: int) -> Path:
    path = tmp_path / "model.pt2"
    program = torch.export.export(model, (torch.zeros(2, seq_len, dtype=torch.long),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


@pytest.fixture
def frozen(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    (tmp_path / "artifacts").mkdir()
    vocab = tokens.build_vocab(TRAIN * 50)
    (tmp_path / "artifacts" / tokens.VOCAB).write_text("\n".join(vocab))
    (tmp_path / "val.bin").write_text(" the cat sat on the dog \n the bird sat \n" * 200)
    return tmp_path / "val.bin", tmp_path / "artifacts", vocab


def test_a_causal_word_model_is_scored_in_perplexity_with_the_frozen_vocabulary(tmp_path, frozen):
    val, artifacts, vocab = frozen
    torch.manual_seed(0)
    result = ppl.score(exported(tmp_path, Bigram(len(vocab)), 16), val, {"seq_len": 16, "artifacts": str(artifacts)})
    assert result["vocabulary"] == len(vocab) == 9 and result["scored_tokens"] > 1000
    assert result["value"] == pytest.approx(torch.tensor(result["nats_per_token"]).exp().item())
    assert 1 < result["value"] < 1000


@pytest.mark.parametrize("model, says", [
    (lambda v: Bigram(v, shift=1), "not causal"),  # reads its target
    (lambda v: Bigram(v + 1), r"token ids to \(\d+, 16, 9\) logits"),  # another vocabulary
])
def test_a_word_model_that_peeks_or_speaks_another_vocabulary_is_rejected(tmp_path, frozen, model, says):
    val, artifacts, vocab = frozen
    with pytest.raises(ModelRejected, match=says):
        ppl.score(exported(tmp_path, model(len(vocab)), 16), val, {"seq_len": 16, "artifacts": str(artifacts)})


def test_without_a_frozen_vocabulary_the_evaluator_names_the_prepare_step(tmp_path, frozen):
    val, _, vocab = frozen
    with pytest.raises(ModelRejected, match="--vocab words"):
        ppl.score(exported(tmp_path, Bigram(len(vocab)), 16), val, {"seq_len": 16})


class SeqFirst(Bigram):
    """The word_language_model layout: computed (seq, batch, vocab), handed over transposed (not contiguous)."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx.t()).transpose(0, 1)


def test_logits_that_are_a_transposed_view_are_scored(tmp_path, frozen):
    val, artifacts, vocab = frozen
    options = {"seq_len": 16, "artifacts": str(artifacts)}
    plain, seq_first = Bigram(len(vocab)), SeqFirst(len(vocab))
    seq_first.load_state_dict(plain.state_dict())
    scores = [ppl.score(exported(tmp_path, model, 16), val, options)["value"] for model in (plain, seq_first)]
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)
