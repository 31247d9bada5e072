"""Word tokens: the rule of a frozen vocabulary, shared by prepare (which builds it) and the scorer.

A word-level task needs one vocabulary for training and scoring, built from the training split
alone, or ids differ between the two and the scorer cannot read the model's logits. The rule is
the one of pytorch/examples' word_language_model Corpus: each line's whitespace-separated words,
then an end-of-line token; ids in order of first appearance in the training split, so a script
that builds its dictionary that way from train.bin gets the same ids. A held-out word the
training split lacks is UNK. The vocabulary is frozen as data/artifacts/vocab.txt, one token a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

EOS, UNK = "<eos>", "<unk>"
VOCAB = "vocab.txt"  # in the artifacts folder


def words(text: str) -> Iterator[str]:
    """Each line's words, then EOS (a NUL, which joins the files of a folder split, ends a line too)."""
    for line in text.replace("\0", "\n").splitlines():
        yield from line.split()
        yield EOS


def build_vocab(text: str) -> list[str]:
    """Tokens in order of first appearance, UNK last if the text never holds it."""
    vocab = list(dict.fromkeys(words(text)))
    return vocab if UNK in vocab else [*vocab, UNK]


def read_vocab(artifacts: Path) -> list[str]:
    return (artifacts / VOCAB).read_text(encoding="utf-8").split("\n")


def encode(text: str, vocab: list[str]) -> list[int]:
    ids = {w: i for i, w in enumerate(vocab)}
    unk = ids[UNK]
    return [ids.get(w, unk) for w in words(text)]
