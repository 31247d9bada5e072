"""Build and freeze the CLIP example's data: small rendered scenes, their captions and expert heatmaps.

Each scene holds one or two colored shapes in the quadrants of a 16x16 image; its caption
names them in reading order ("a red square top left and a blue circle bottom right") and its
heatmap marks where they are (the stand-in for the eye-gaze heatmaps eCLIP learns from).
Every possible caption goes to one split by a hash of its text, so the splits are disjoint by
caption: val and test hold compositions training never saw, one image each, so each image has
exactly one right caption to retrieve. Training gets TRAIN_RENDERS renderings per caption.
The layout jitter of a rendering is seeded by its caption and index, the pixel noise by its
split: the bytes are the same on every run, and the manifest freezes them as eval/data.py does.

    .venv/bin/python -m examples.clip.prepare [--data-dir data] [--force]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import itertools
import json
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from eval.data import DataError, freeze, hidden

SIZE = 16  # image side; each quadrant is SIZE // 2
COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 240), "yellow": (235, 215, 40)}
SHAPES = ("square", "circle", "triangle", "cross")
PLACES = ("top left", "top right", "bottom left", "bottom right")  # reading order: captions follow it
VOCAB = ("<pad>", "a", "and", *COLORS, *SHAPES, "top", "bottom", "left", "right")
MAX_TOKENS = 11  # "a red square top left and a blue circle bottom right"
SPLITS = {"train": 800, "val": 900, "test": 1000}  # cumulative per-mille of captions, by caption hash
TRAIN_RENDERS = 4
SHAPE_SIZES = (5, 6)
NOISE = 24  # +- per channel, on shapes and background
BACKGROUND = 40
SOURCE = "examples/clip shapes v1"

PAINT = {name: torch.tensor(rgb, dtype=torch.float)[:, None] for name, rgb in COLORS.items()}
Scene = tuple[tuple[str, str, str], ...]  # ((color, shape, place), ...) in reading order


def all_scenes() -> list[Scene]:
    """Every scene of one shape, or two shapes in different quadrants: 64 + 1536 of them."""
    objects = list(itertools.product(COLORS, SHAPES))
    scenes = [((c, s, p),) for p in PLACES for c, s in objects]
    for p1, p2 in itertools.combinations(PLACES, 2):
        scenes += [((c1, s1, p1), (c2, s2, p2)) for c1, s1 in objects for c2, s2 in objects]
    return scenes


def caption_of(scene: Scene) -> str:
    return " and ".join(f"a {color} {shape} {place}" for color, shape, place in scene)


def split_of(caption: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(caption.encode()).digest()[:4], "big") % 1000
    return next(name for name, upper in SPLITS.items() if bucket < upper)


def tokenize(caption: str) -> list[int]:
    ids = [VOCAB.index(word) for word in caption.split()]
    return ids + [0] * (MAX_TOKENS - len(ids))


@functools.cache
def shape_mask(shape: str, size: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    masks = {
        "square": torch.ones(size, size, dtype=torch.bool),
        "circle": (x - c) ** 2 + (y - c) ** 2 <= (size / 2) ** 2 - 0.5,
        "triangle": (x - c).abs() <= (y + 1) / 2,  # apex at the top
        "cross": ((x - c).abs() <= 0.5) | ((y - c).abs() <= 0.5),
    }
    return masks[shape]


def draw(scene: Scene, index: int, image: torch.Tensor, where: torch.Tensor) -> None:
    """Paint the scene into image (3, SIZE, SIZE) and mark its shapes in where; the jitter is seeded by
    the caption and the index, so a rendering does not depend on what else is drawn."""
    rng = random.Random(f"{caption_of(scene)}#{index}")
    half = SIZE // 2
    for color, shape, place in scene:
        size = rng.choice(SHAPE_SIZES)
        row, col = divmod(PLACES.index(place), 2)
        top, left = row * half + rng.randint(0, half - size), col * half + rng.randint(0, half - size)
        mask = shape_mask(shape, size)
        image[:, top : top + size, left : left + size][:, mask] = PAINT[color]
        where[top : top + size, left : left + size][mask] = 1.0


def build_split(name: str, scenes: list[Scene], renders: int) -> dict:
    """images uint8 (N, 3, SIZE, SIZE) with pixel noise, heatmaps uint8 (N, SIZE, SIZE) with soft edges,
    tokens uint8 (N, MAX_TOKENS), the captions and the vocabulary."""
    items = [(scene, k) for scene in scenes for k in range(renders)]
    images = torch.full((len(items), 3, SIZE, SIZE), float(BACKGROUND))
    where = torch.zeros(len(items), 1, SIZE, SIZE)
    for i, (scene, k) in enumerate(items):
        draw(scene, k, images[i], where[i, 0])
    noise = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
    images += torch.randint(-NOISE, NOISE + 1, images.shape, generator=noise)
    heatmaps = F.avg_pool2d(where, 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    captions = [caption_of(scene) for scene, _ in items]
    return {
        "images": images.clamp(0, 255).round().to(torch.uint8),
        "heatmaps": (heatmaps * 255).round().to(torch.uint8),
        "tokens": torch.tensor([tokenize(c) for c in captions], dtype=torch.uint8),
        "captions": captions,
        "vocab": list(VOCAB),
    }


def serialized(split: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(split, buffer)
    return buffer.getvalue()


def build() -> tuple[dict[str, bytes], dict[str, int]]:
    """The bytes of the three .bin files (torch.save'd dicts, read with weights_only) and their pair counts."""
    by_split: dict[str, list[Scene]] = {name: [] for name in SPLITS}
    for scene in sorted(all_scenes(), key=caption_of):
        by_split[split_of(caption_of(scene))].append(scene)
    renders = {name: TRAIN_RENDERS if name == "train" else 1 for name in SPLITS}
    blobs = {name: serialized(build_split(name, scenes, renders[name])) for name, scenes in by_split.items()}
    return blobs, {name: len(scenes) * renders[name] for name, scenes in by_split.items()}


def manifest_for(blobs: dict[str, bytes], counts: dict[str, int]) -> dict:
    entries = {name: {"file": f"{name}.bin", "examples": counts[name], "bytes": len(blob),
                      "sha256": hashlib.sha256(blob).hexdigest()} for name, blob in blobs.items()}
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    return {"source": SOURCE, "format": "torch.save dict: images, heatmaps, tokens, captions, vocab",
            "splits": entries, "hash": digest, "hidden": hidden()}  # generated here: no copy outside data/


def prepare(data_dir: Path, force: bool = False) -> dict:
    """Freeze the example's splits under data_dir; return the manifest. Idempotent; never replaces other data."""
    blobs, counts = build()
    return freeze(data_dir, blobs, manifest_for(blobs, counts), force)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.clip.prepare", description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--force", action="store_true", help="replace frozen data that differs")
    args = ap.parse_args(argv)
    try:
        m = prepare(args.data_dir, args.force)
    except DataError as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 1
    for name, s in m["splits"].items():
        print(f"{name:>5}: {s['examples']:5d} pairs {s['bytes'] / 1e6:6.2f} MB  sha256 {s['sha256'][:12]}")
    print(f"frozen in {args.data_dir}/ ({m['source']}), manifest hash {m['hash'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
