"""
Byte-level GPT, trained for a fixed time budget. The ONE file the research agent edits.

The harness runs this inside a sandbox and gives it, through the environment:
  AUTORESEARCH_SEED      the seed            AUTORESEARCH_BUDGET_S  training seconds
  AUTORESEARCH_DATA      the training split  AUTORESEARCH_OUT       the only writable dir
  AUTORESEARCH_SEQ_LEN   the sequence length the exported model must accept
The harness's clock, not this file's, ends training: it starts once torch is imported (before
this file runs, so data and model building count), and at the budget the harness sends SIGURG.
Stop training then (or when your own clock says the budget is spent, whichever comes first) and
export the model with torch.export to $AUTORESEARCH_OUT/model.pt2: (batch, seq_len) byte ids ->
(batch, seq_len, 256) logits, causal. Only the export may follow: the job is killed grace seconds
after the signal, and a run that computes more after it than the step in flight and the export
is `overtime`, never kept. The harness scores that program on held-out text this file never sees.
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
BUDGET_S = float(os.environ.get("AUTORESEARCH_BUDGET_S", 300))
DATA = os.environ.get("AUTORESEARCH_DATA", "data/train.bin")
OUT = os.environ.get("AUTORESEARCH_OUT", "out")
SEQ_LEN = int(os.environ.get("AUTORESEARCH_SEQ_LEN", 256))

# --- what the researcher tunes ---
N_LAYER = 4
N_HEAD = 4
N_EMBD = 128
DROPOUT = 0.0
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
MIN_LR_FRAC = 0.1          # cosine decay to this fraction of LEARNING_RATE, timed by the budget
WARMUP_STEPS = 20
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0
LOG_EVERY_S = 2.0

VOCAB = 256  # bytes
STOP = []  # the harness's SIGURG at the budget lands here
signal.signal(signal.SIGURG, lambda *_: STOP.append(True))


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.proj = nn.Linear(N_EMBD, N_EMBD, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(N_EMBD, dim=2)
        q, k, v = (t.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=DROPOUT if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
        self.proj = nn.Linear(4 * N_EMBD, N_EMBD, bias=False)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(N_EMBD)
        self.attn = CausalSelfAttention()
        self.ln2 = nn.LayerNorm(N_EMBD)
        self.mlp = MLP()

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, N_EMBD)
        self.wpe = nn.Embedding(SEQ_LEN, N_EMBD)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln_f = nn.LayerNorm(N_EMBD)
        self.head = nn.Linear(N_EMBD, VOCAB, bias=False)
        self.head.weight = self.wte.weight  # weight tying
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * N_LAYER) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe.weight[:T]  # no arange: keeps the exported graph device-free
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


# --- setup ---
torch.manual_seed(SEED)
device = "cuda" if torch.cuda.is_available() else "cpu"
autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
with open(DATA, "rb") as f:
    data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
model = GPT().to(device)
n_params = sum(p.numel() for p in model.parameters())
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW(
    [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
    lr=LEARNING_RATE, betas=(0.9, 0.95), fused=device == "cuda",
)
print(f"device {device} | params {n_params / 1e6:.2f}M | data {len(data) / 1e6:.1f}MB | budget {BUDGET_S:.0f}s")


def get_batch():
    ix = torch.randint(len(data) - SEQ_LEN - 1, (BATCH_SIZE,))
    x = torch.stack([data[i : i + SEQ_LEN] for i in ix]).long()
    y = torch.stack([data[i + 1 : i + 1 + SEQ_LEN] for i in ix]).long()
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def lr_at(step, progress):
    if step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return LEARNING_RATE * (MIN_LR_FRAC + (1 - MIN_LR_FRAC) * cosine)


# --- train until the budget is spent ---
step, loss_value, last_log = 0, float("nan"), 0.0
t0 = time.time()
while (elapsed := time.time() - t0) < BUDGET_S and not STOP or step == 0:  # one step at least: a trained model
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, elapsed / BUDGET_S)
    x, y = get_batch()
    with autocast:
        logits = model(x)
    loss = F.cross_entropy(logits.float().view(-1, VOCAB), y.view(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    step += 1
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        print(f"step {step} | loss {loss_value}: diverged, stopping")
        break
    if elapsed - last_log >= LOG_EVERY_S or step == 1:
        last_log = elapsed
        print(f"step {step:6d} | loss {loss_value:.4f} | lr {optimizer.param_groups[0]['lr']:.2e} "
              f"| {BUDGET_S - elapsed:5.1f}s left", flush=True)
training_seconds = time.time() - t0
tokens_per_second = step * BATCH_SIZE * SEQ_LEN / max(training_seconds, 1e-9)
print(f"done: {step} steps in {training_seconds:.1f}s, {tokens_per_second:,.0f} bytes/s, final loss {loss_value:.4f}")

# --- hand the model to the harness ---
os.makedirs(OUT, exist_ok=True)
model = model.to("cpu").float().eval()
example = torch.zeros(2, SEQ_LEN, dtype=torch.long)
batch = torch.export.Dim("batch", min=1, max=4096)
program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
torch.export.save(program, os.path.join(OUT, "model.pt2"))
peak_vram_mb = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
with open(os.path.join(OUT, "train_stats.json"), "w") as f:
    json.dump({"steps": step, "tokens": step * BATCH_SIZE * SEQ_LEN, "training_seconds": training_seconds,
               "tokens_per_second": tokens_per_second,
               "final_loss": loss_value, "peak_vram_mb": peak_vram_mb, "device": device}, f)
