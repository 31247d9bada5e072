"""README's "Bring your own task", walked through: a multi-file legacy language model under the harness.

The project below is written as pytorch/examples' word_language_model is: an argparse main.py, a
data.py whose Corpus builds a word Dictionary from wikitext-style train.txt/valid.txt/test.txt, a
model.py with an LSTM. The documented steps bring it under the harness: copy it in (main.py
becomes train.py), edit the lines the harness needs, point program.md at it, freeze the
dataset's own split with a word vocabulary, `./run.sh check`, then the baseline, a keep (a
learning rate in train.py) and a discard (a bad idea in model.py) in Docker. The lines written
by hand are counted here; README states the count.
"""

from __future__ import annotations

import difflib
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from commands import check
from commands import prepare as prepare_command
from eval import experiment
from eval.record import ledger
from eval.scoring import tokens
from tests.conftest import REPO, build_repo

DATA_PY = '''import os
from io import open
import torch


class Dictionary(object):
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus(object):
    def __init__(self, path):
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(path, 'train.txt'))
        self.valid = self.tokenize(os.path.join(path, 'valid.txt'))
        self.test = self.tokenize(os.path.join(path, 'test.txt'))

    def tokenize(self, path):
        """Tokenizes a text file."""
        assert os.path.exists(path)
        with open(path, 'r', encoding="utf8") as f:
            for line in f:
                for word in line.split() + ['<eos>']:
                    self.dictionary.add_word(word)
        with open(path, 'r', encoding="utf8") as f:
            idss = []
            for line in f:
                ids = [self.dictionary.word2idx[word] for word in line.split() + ['<eos>']]
                idss.append(torch.tensor(ids).type(torch.int64))
        return torch.cat(idss)
'''

MODEL_PY = '''import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.5):
        super(RNNModel, self).__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))
'''

MAIN_PY = '''import argparse
import math
import time

import torch
import torch.nn as nn

import data
import model

parser = argparse.ArgumentParser(description='PyTorch Wikitext-2 RNN/LSTM Language Model')
parser.add_argument('--data', type=str, default='./wikitext', help='location of the data corpus')
parser.add_argument('--emsize', type=int, default=32, help='size of word embeddings')
parser.add_argument('--nhid', type=int, default=32, help='number of hidden units per layer')
parser.add_argument('--nlayers', type=int, default=1, help='number of layers')
parser.add_argument('--lr', type=float, default=0.05, help='initial learning rate')
parser.add_argument('--clip', type=float, default=0.25, help='gradient clipping')
parser.add_argument('--epochs', type=int, default=40, help='upper epoch limit')
parser.add_argument('--batch_size', type=int, default=10, help='batch size')
parser.add_argument('--bptt', type=int, default=20, help='sequence length')
parser.add_argument('--dropout', type=float, default=0.2, help='dropout applied to layers')
parser.add_argument('--seed', type=int, default=1111, help='random seed')
parser.add_argument('--save', type=str, default='model.pt', help='path to save the final model')
args = parser.parse_args()

torch.manual_seed(args.seed)
corpus = data.Corpus(args.data)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()


train_data = batchify(corpus.train, args.batch_size)
val_data = batchify(corpus.valid, 10)
ntokens = len(corpus.dictionary)
model = model.RNNModel(ntokens, args.emsize, args.nhid, args.nlayers, args.dropout)
criterion = nn.NLLLoss()


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def get_batch(source, i):
    seq_len = min(args.bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].view(-1)


def evaluate(data_source):
    model.eval()
    total_loss, hidden = 0., model.init_hidden(10)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, args.bptt):
            data, targets = get_batch(data_source, i)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train():
    model.train()
    hidden = model.init_hidden(args.batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-args.lr)


best_val_loss = None
for epoch in range(1, args.epochs + 1):
    epoch_start_time = time.time()
    train()
    val_loss = evaluate(val_data)
    print('| end of epoch {:3d} | time: {:5.2f}s | valid ppl {:8.2f}'.format(
        epoch, time.time() - epoch_start_time, math.exp(val_loss)))
    if not best_val_loss or val_loss < best_val_loss:
        with open(args.save, 'wb') as f:
            torch.save(model, f)
        best_val_loss = val_loss
'''

# The hand edits that make main.py the harness's train.py: (old, new). Everything else is unchanged.
TRAIN_EDITS = [
    ("import math\n", "import math\nimport os, signal\n"),
    ("default=1111", "default=int(os.environ['AUTORESEARCH_SEED'])"),
    ("corpus = data.Corpus(args.data)\n",  # the training split, with the vocabulary frozen from it
     "corpus = data.Corpus.__new__(data.Corpus)\ncorpus.dictionary = data.Dictionary()\n"
     "for word in open(os.environ['AUTORESEARCH_ARTIFACTS'] + '/vocab.txt').read().split('\\n'):\n"
     "    corpus.dictionary.add_word(word)\ncorpus.train = corpus.tokenize(os.environ['AUTORESEARCH_DATA'])\n"
     "stop = []\nsignal.signal(signal.SIGURG, lambda *_: stop.append(True))  # the harness's budget\n"),
    ("val_data = batchify(corpus.valid, 10)\n", ""),  # no validation split in the sandbox: the harness scores
    ("        data, targets = get_batch(train_data, i)\n",
     "        if stop: break\n        data, targets = get_batch(train_data, i)\n"),
    ("    val_loss = evaluate(val_data)\n"
     "    print('| end of epoch {:3d} | time: {:5.2f}s | valid ppl {:8.2f}'.format(\n"
     "        epoch, time.time() - epoch_start_time, math.exp(val_loss)))\n"
     "    if not best_val_loss or val_loss < best_val_loss:\n        with open(args.save, 'wb') as f:\n"
     "            torch.save(model, f)\n        best_val_loss = val_loss\n",
     "    if stop: break\n\n\nclass Export(nn.Module):  # (batch, seq) ids -> (batch, seq, ntokens) logits\n"
     "    def __init__(self, m):\n        super().__init__()\n        self.m = m\n\n"
     "    def forward(self, idx):\n        out, _ = self.m(idx.t(), self.m.init_hidden(idx.shape[0]))\n"
     "        return out.view(idx.shape[1], idx.shape[0], -1).transpose(0, 1)\n\n\n"
     "x = torch.zeros(2, int(os.environ['AUTORESEARCH_SEQ_LEN']), dtype=torch.long)\n"
     "program = torch.export.export(Export(model).eval(), (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))\n"
     "torch.export.save(program, os.environ['AUTORESEARCH_OUT'] + '/model.pt2')\n"),
]
# program.md's front matter as shipped -> for this task (the lines a user changes).
PROGRAM_EDITS = [
    ("  metric: val_bpb ", "  metric: val_ppl "),
    ("  evaluator: eval.scoring.bpb:score ", "  evaluator: eval.scoring.ppl:score "),
    ("  grace_seconds: 15 ", "  grace_seconds: 60 "),  # ./run.sh check measures the LSTM's export (15 s here)
    ("    seq_len: 256 ", "    seq_len: 35 "),
    ("    eval_bytes: 65536        # validation bytes scored, in windows spread over the split (raise it on a GPU)\n",
     ""),  # eval.scoring.ppl scores options.eval_tokens, 16384 by default
    ("  seed: 1337\n", "  seed: 1337\n  code: [data.py]\n  editable: [train.py, model.py]\n"),
]
# Test settings, not counted: a short budget and one seed per version (the suite's time budget).
TEST_SETTINGS = [
    ("  budget_seconds: 300 ", "  budget_seconds: 4 "),
    ("  memory_gb: 8\n", "  memory_gb: 2\n"),
    ("  rule: noise ", "  rule: greedy "),
    ("  seeds: 3 ", "  seeds: 1 "),
]


def edited(text: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def written_lines(before: str, after: str) -> int:
    """Lines a user types: those added or changed (deleted lines cost no typing)."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return sum(1 for line in diff if line.startswith("+") and not line.startswith("+++") and line[1:].strip())


def wikitext(root: Path) -> Path:
    """A small wikitext-style corpus: ' = Title = ' headings and sentences of a little grammar."""
    rng = random.Random(0)
    nouns, verbs = ["cat", "dog", "bird", "king", "river", "city", "ship", "song"], ["sees", "likes", "follows"]
    adjectives = ["old", "red", "quiet", "famous"]

    def sentence() -> str:
        return (f"the {rng.choice(adjectives)} {rng.choice(nouns)} {rng.choice(verbs)} the "
                f"{rng.choice(nouns)} near the {rng.choice(adjectives)} {rng.choice(nouns)} .")

    root.mkdir(parents=True)
    for name, lines in (("train", 1500), ("valid", 300), ("test", 300)):
        body = "".join(f" = {name.title()} = \n" if i % 50 == 0 else f" {sentence()} {sentence()} \n"
                       for i in range(lines))
        (root / f"{name}.txt").write_text(body)
    return root


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    project = tmp_path / "word_language_model"
    project.mkdir()
    for name, text in (("data.py", DATA_PY), ("model.py", MODEL_PY), ("main.py", MAIN_PY)):
        (project / name).write_text(text)
    wikitext(project / "wikitext")
    return project


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def test_a_multi_file_word_language_model_is_brought_under_the_harness(tmp_path, corpus, legacy, capsys):
    t0 = time.monotonic()
    repo = build_repo(tmp_path / "repo", corpus, program=(REPO / "program.md").read_text())
    shutil.rmtree(repo / "data")  # a fresh clone: nothing frozen yet

    # 1. the project in: main.py becomes train.py, its modules beside it; the edits; program.md; commit
    shutil.copy(legacy / "data.py", repo / "data.py")
    shutil.copy(legacy / "model.py", repo / "model.py")
    train = edited(MAIN_PY, TRAIN_EDITS)
    (repo / "train.py").write_text(train)
    shipped = (repo / "program.md").read_text()
    program = edited(shipped, PROGRAM_EDITS)
    (repo / "program.md").write_text(edited(program, TEST_SETTINGS))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "word_language_model under the harness")
    by_hand = written_lines(MAIN_PY, train) + written_lines(shipped, program)
    assert by_hand <= 30, by_hand  # README: "Bring your own task" states the count

    # 2. the dataset's own split, with a word vocabulary built from its training split
    wiki = legacy / "wikitext"
    split = f"train={wiki / 'train.txt'},val={wiki / 'valid.txt'},test={wiki / 'test.txt'}"
    assert prepare_command.main(["--split", split, "--vocab", "words", "--data-dir", str(repo / "data")]) == 0
    vocab = tokens.read_vocab(repo / "data" / "artifacts")
    assert "PASSED" in capsys.readouterr().out and vocab[-1] == "<unk>" and "Train" in vocab
    assert "Valid" not in vocab  # a word of the validation split alone: the scorer reads it as <unk>

    # 3. the dry run: imports, a few steps, the export against the grace, the evaluator on training text
    said: list[str] = []
    t_check = time.monotonic()
    assert check.check(repo, say=said.append) == 0, "\n".join(said)
    check_seconds = time.monotonic() - t_check
    text = "\n".join(said)
    assert "imports: train.py and its modules import in the sandbox" in text and "evaluator: accepted" in text
    assert "val_ppl" not in text and "valid" not in text  # no validation figure, no held-out split touched
    sample = (repo / "runs" / "check" / "train-sample.bin").read_bytes()
    assert (repo / "data" / "train.bin").read_bytes().startswith(sample)
    assert not (repo / "runs" / "ledger.jsonl").exists()  # outside the ledger

    # 4. the baseline, a keep (train.py) and a discard (model.py), in Docker
    quiet = lambda s: None  # noqa: E731
    base = experiment.run_experiment(repo, "baseline", None, False, say=quiet)
    assert base["status"] == "keep" and base["outcome"] == "ok", base
    metrics = json.loads((repo / "runs" / "r0001" / "metrics.json").read_text())
    assert metrics["backend"] == "docker" and len(metrics["code_sha256"]) == 64
    assert base["mean"] > 6  # lr 0.05 for seconds: far from trained (8.3 here before, 7.9 on a faster day)

    (repo / "train.py").write_text(train.replace("default=0.05", "default=20"))
    kept = experiment.run_experiment(repo, "lr 20 as in the original", None, False, say=quiet)
    assert kept["status"] == "keep" and kept["mean"] < base["mean"] / 2, kept
    assert "default=20" in git(repo, "show", f"{kept['commit']}:train.py")

    good_model = (repo / "model.py").read_text()
    (repo / "model.py").write_text(good_model.replace("decoded = self.decoder(output)\n",
                                                      "decoded = self.decoder(output) * 0\n"))
    discarded = experiment.run_experiment(repo, "a zero decoder", None, False, say=quiet)
    assert discarded["status"] == "discard", discarded
    assert (repo / "model.py").read_text() == good_model  # restored to the best, with train.py
    assert "+        decoded = self.decoder(output) * 0" in git(repo, "diff", kept["commit"], discarded["diff_ref"])
    assert [r["status"] for r in ledger.read(repo)] == ["keep", "keep", "discard"]
    print(f"walkthrough: {by_hand} lines by hand; check {check_seconds:.0f} s; "
          f"all steps {time.monotonic() - t0:.0f} s")
