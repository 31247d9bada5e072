"""
CLIP-style image-text model with an expert-heatmap signal, trained for a fixed time budget.
The ONE file the research agent edits (the example of examples/clip; see its README).

As in eCLIP, the image encoder pools its features with attention, and an auxiliary loss pulls
that attention towards an expert's heatmap of where the image matters (here: where the shapes
are). The main loss is CLIP's symmetric contrastive loss over the image-caption pairs of a batch.

The harness runs this inside a sandbox and gives it, through the environment:
  AUTORESEARCH_SEED      the seed            AUTORESEARCH_BUDGET_S  training seconds
  AUTORESEARCH_DATA      the training split  AUTORESEARCH_OUT       the only writable dir
The split is a torch.save'd dict (examples/clip/prepare.py): images uint8 (N, 3, 16, 16),
heatmaps uint8 (N, 16, 16), tokens uint8 (N, 11) (0 pads), captions, vocab.
The harness's clock ends training: at the budget (counted from before this file runs) it sends
SIGURG; stop then, or at your own clock if that comes first, and only export: the job is killed
grace seconds after the signal, and more compute after it than the step in flight and the export
makes the run `overtime`, never kept. The model goes out with torch.export to
$AUTORESEARCH_OUT/model.pt2: (images float (B, 3, 16, 16) in [0, 1], tokens int64 (B, 11)) ->
(image embeddings (B, D), text embeddings (B, D)). Each embedding must depend on its own input
only. The harness ranks the captions of held-out images by cosine similarity (eval/scoring/retrieval.py).
Run it by hand with `python train.py`: the defaults below then apply.
"""

import json
import math
import os
import signal
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# --- what the harness decides ---
SEED = int(os.environ.get("AUTORESEARCH_SEED", 1337))
BUDGET_S = float(os.environ.get("AUTORESEARCH_BUDGET_S", 60))
DATA = os.environ.get("AUTORESEARCH_DATA", "data/train.bin")
OUT = os.environ.get("AUTORESEARCH_OUT", "out")

# --- what the researcher tunes ---
EMBED_DIM = 64
WIDTH = 32                 # channels of the image encoder
HEADS = 4                  # attention-pooling queries of the image encoder
TOKEN_DIM = 32
TEXT_HIDDEN = 256
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.01
INIT_TEMPERATURE = 0.1
HEATMAP_WEIGHT = 0.5       # weight of the expert-heatmap loss; 0 turns the expert signal off
THREADS = 1                # the model is tiny: more threads cost more in synchronization than they gain
LOG_EVERY_S = 1.0
STOP = []  # the harness's SIGURG at the budget lands here
signal.signal(signal.SIGURG, lambda *_: STOP.append(True))


class ImageEncoder(nn.Module):
    """Overlapping 4x4 patches (stride 2) to an 8x8 feature map, then attention pooling with HEADS queries."""

    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(3, WIDTH, 4, stride=2, padding=1)
        self.mix = nn.Conv2d(WIDTH, WIDTH, 1)
        self.position = nn.Parameter(torch.randn(WIDTH, 8, 8) * 0.1)  # where a feature is, for "top left"
        self.attend = nn.Conv2d(WIDTH, HEADS, 1)
        self.proj = nn.Linear(HEADS * WIDTH, EMBED_DIM)

    def forward(self, images):
        """(embeddings (B, EMBED_DIM), attention (B, HEADS, 64) over the 8x8 positions)."""
        x = F.gelu(self.mix(F.gelu(self.patches((images - 0.5) * 4)))) + self.position  # centred input: learns faster
        attention = self.attend(x).flatten(2).softmax(-1)
        pooled = torch.einsum("bhp,bcp->bhc", attention, x.flatten(2))
        return self.proj(pooled.flatten(1)), attention


class TextEncoder(nn.Module):
    """Token embeddings, concatenated in caption order (the order binds colour, shape and place), and an MLP."""

    def __init__(self, vocab_size, n_tokens):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, TOKEN_DIM)
        self.mlp = nn.Sequential(nn.Linear(n_tokens * TOKEN_DIM, TEXT_HIDDEN), nn.GELU(),
                                 nn.Linear(TEXT_HIDDEN, EMBED_DIM))

    def forward(self, tokens):
        return self.mlp(self.embed(tokens).flatten(1))


class CLIP(nn.Module):
    def __init__(self, vocab_size, n_tokens):
        super().__init__()
        self.image = ImageEncoder()
        self.text = TextEncoder(vocab_size, n_tokens)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))

    def forward(self, images, tokens):
        """What the harness scores: unit-length embeddings of the images and of the captions."""
        return F.normalize(self.image(images)[0], dim=-1), F.normalize(self.text(tokens), dim=-1)


# --- setup ---
torch.manual_seed(SEED)
torch.set_num_threads(THREADS)
data = torch.load(DATA, weights_only=True)
images = data["images"].float() / 255
tokens = data["tokens"].long()
expert = F.avg_pool2d(data["heatmaps"].float()[:, None], 2).flatten(1)  # down to the 8x8 feature map
expert = expert / expert.sum(-1, keepdim=True).clamp_min(1e-6)
n_pairs, n_tokens = tokens.shape
model = CLIP(len(data["vocab"]), n_tokens)
n_params = sum(p.numel() for p in model.parameters())
optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
print(f"params {n_params / 1e3:.1f}K | {n_pairs} image-caption pairs | budget {BUDGET_S:.0f}s")


def losses(batch):
    """(contrastive loss, heatmap loss) of one batch of indices."""
    image_emb, attention = model.image(images[batch])
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(model.text(tokens[batch]), dim=-1)
    logits = model.log_scale.clamp(max=math.log(100)).exp() * image_emb @ text_emb.T
    target = torch.arange(len(batch))
    contrastive = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    heatmap = -(expert[batch] * attention.mean(1).clamp_min(1e-8).log()).sum(-1).mean()  # cross-entropy to the expert
    return contrastive, heatmap


# --- train until the budget is spent ---
step, loss_value, last_log = 0, float("nan"), 0.0
t0 = time.time()
while not STOP and (elapsed := time.time() - t0) < BUDGET_S:
    for group in optimizer.param_groups:
        group["lr"] = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * min(elapsed / BUDGET_S, 1.0)))
    contrastive, heatmap = losses(torch.randint(n_pairs, (BATCH_SIZE,)))
    loss = contrastive + HEATMAP_WEIGHT * heatmap
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    step += 1
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        print(f"step {step} | loss {loss_value}: diverged, stopping")
        break
    if elapsed - last_log >= LOG_EVERY_S or step == 1:
        last_log = elapsed
        print(f"step {step:5d} | contrastive {contrastive.item():.4f} | heatmap {heatmap.item():.4f} "
              f"| {BUDGET_S - elapsed:5.1f}s left", flush=True)
training_seconds = time.time() - t0
pairs_per_second = step * BATCH_SIZE / max(training_seconds, 1e-9)
print(f"done: {step} steps in {training_seconds:.1f}s, {pairs_per_second:,.0f} pairs/s, final loss {loss_value:.4f}")

# --- hand the model to the harness ---
os.makedirs(OUT, exist_ok=True)
model.eval()
batch = torch.export.Dim("batch", min=1, max=4096)
example = (images[:2], tokens[:2])
program = torch.export.export(model, example, dynamic_shapes=({0: batch}, {0: batch}))
torch.export.save(program, os.path.join(OUT, "model.pt2"))
with open(os.path.join(OUT, "train_stats.json"), "w") as f:
    json.dump({"steps": step, "training_seconds": training_seconds, "final_loss": loss_value}, f)
