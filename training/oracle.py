"""The attribute oracle: reads a face's voice-linked attributes (gender, age, build, energy).

The evaluation uses it to score generated faces ("does the face from this voice show the voice's
speaker?"). It is a small CNN trained on avatar renders of random identities; held-out renders
come from identities drawn from a different seed stream, never seen in training. Blur and noise
augmentation keep it usable on the softer faces a generator makes.
`ground_truth(manifest)` gives each corpus speaker's true attributes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from core.checkpoint import load_tensors, save_tensors
from core.errors import require_format

from .data.faces import render_face, render_in_workers, sample_nuisance
from .data.identity import VOICE_LINKED, sample_identity, voice_linked_attributes

FORMAT = "xfavot-attribute-oracle"
DEFAULT_ORACLE = Path(__file__).resolve().parent.parent / "resources" / "oracle" / "attribute-oracle.safetensors"


class AttributeOracle(nn.Module):
    """128x128 face -> one logit vector per voice-linked attribute."""

    def __init__(self, width: int = 16):
        super().__init__()
        # stride-2 stem, then (downsample + conv) per level: 128 -> 64 -> 32 -> 16 -> 8, ~90 MFLOP a face
        layers = [nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU()]
        c_in = width
        for c_out in (2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({k: nn.Linear(c_in, len(v)) for k, v in VOICE_LINKED.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, 128, 128) in [-1, 1]."""
        h = self.features(x)
        return {k: head(h) for k, head in self.heads.items()}


def _render(args) -> tuple[np.ndarray, list[int]]:
    seed_stream, index, per_identity = args
    identity = sample_identity(np.random.default_rng([seed_stream, index]), f"o{index}")
    truth = voice_linked_attributes(identity)
    labels = [VOICE_LINKED[k].index(truth[k]) for k in VOICE_LINKED]
    imgs = [np.asarray(render_face(identity, sample_nuisance(np.random.default_rng([seed_stream, index, k]))))
            for k in range(per_identity)]
    return np.stack(imgs), labels


def render_set(n_identities: int, per_identity: int, seed_stream: int, workers: int = 2,
               progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """-> images (N, 3, 128, 128) uint8, labels (N, n_attributes) long."""
    jobs = [(seed_stream, i, per_identity) for i in range(n_identities)]
    results = render_in_workers(_render, jobs, workers, f"render {seed_stream}", "identity", progress)
    images = torch.from_numpy(np.concatenate([r[0] for r in results])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([r[1] for r in results for _ in range(per_identity)])
    return images, labels


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float() / 127.5 - 1.0


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random blur (a 3x3 box mixed in) and noise: generated faces are softer than renders."""
    b = x.size(0)
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    amount = torch.rand(b, 1, 1, 1, generator=generator)
    x = x * (1 - amount) + blur * amount
    return x + 0.05 * torch.rand(b, 1, 1, 1, generator=generator) * torch.randn(x.shape, generator=generator)


@torch.no_grad()
def accuracy(model: AttributeOracle, images: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> dict[str, float]:
    model.eval()
    correct = torch.zeros(len(VOICE_LINKED))
    for i in range(0, len(images), batch):
        out = model(to_input(images[i:i + batch]))
        for j, key in enumerate(VOICE_LINKED):
            correct[j] += (out[key].argmax(1) == labels[i:i + batch, j]).sum()
    return {key: float(correct[j] / len(images)) for j, key in enumerate(VOICE_LINKED)}


def train_oracle(out: str | Path = DEFAULT_ORACLE, train_identities: int = 1500, per_identity: int = 4,
                 test_identities: int = 300, epochs: int = 8, batch: int = 64, seed: int = 0,
                 workers: int = 2, progress: bool = True) -> dict:
    torch.manual_seed(seed)
    train_x, train_y = render_set(train_identities, per_identity, seed_stream=1000 + seed, workers=workers,
                                  progress=progress)
    test_x, test_y = render_set(test_identities, 2, seed_stream=2000 + seed, workers=workers, progress=progress)
    model = AttributeOracle()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(train_x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(total=steps, desc="oracle", disable=not progress)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i:i + batch]
            x = augment(to_input(train_x[idx]), gen)
            if torch.rand(1, generator=gen) < 0.5:
                x = x.flip(-1)  # mirror: no attribute is left/right
            logits = model(x)
            loss = sum(F.cross_entropy(logits[k], train_y[idx, j]) for j, k in enumerate(VOICE_LINKED))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    acc = accuracy(model, test_x, test_y)
    save_tensors(out, model.state_dict(), {"format": FORMAT, "attributes": {k: list(v) for k, v in VOICE_LINKED.items()},
                                            "heldout_accuracy": acc, "train_renders": len(train_x),
                                            "test_renders": len(test_x), "seed": seed})
    return acc


def load_oracle(path: str | Path = DEFAULT_ORACLE) -> AttributeOracle:
    tensors, header = load_tensors(path)
    require_format(header, FORMAT, f"{path} is not an attribute-oracle file")
    model = AttributeOracle()
    model.load_state_dict(tensors)
    return model.eval()


@torch.no_grad()
def predict(model: AttributeOracle, images: list) -> list[dict[str, str]]:
    """PIL images (any size; resized to 128) -> predicted attributes per image."""
    from PIL import Image

    arr = np.stack([np.asarray(img.convert("RGB").resize((128, 128), Image.LANCZOS)) for img in images])
    out = model(to_input(torch.from_numpy(arr).permute(0, 3, 1, 2)))
    return [{k: VOICE_LINKED[k][int(out[k][i].argmax())] for k in VOICE_LINKED} for i in range(len(images))]


def ground_truth(manifest: dict) -> dict[str, dict[str, str]]:
    """Each corpus speaker's true voice-linked attributes (what a matching face should show)."""
    return {s["speaker"]: voice_linked_attributes(s) for s in manifest["speakers"]}


def corpus_accuracy(model: AttributeOracle, corpus: str | Path, chunk: int = 256) -> dict:
    """The oracle's accuracy per attribute on a synthetic corpus's faces (and how many faces)."""
    from PIL import Image

    from .data.synth import load_manifest

    manifest = load_manifest(corpus)
    truth = ground_truth(manifest)
    faces = manifest["faces"]
    correct = {k: 0 for k in VOICE_LINKED}
    for i in range(0, len(faces), chunk):
        part = faces[i:i + chunk]
        for f, p in zip(part, predict(model, [Image.open(Path(corpus) / f["path"]) for f in part])):
            for k in correct:
                correct[k] += p[k] == truth[f["speaker"]][k]
    return {"faces": len(faces), **{k: v / max(len(faces), 1) for k, v in correct.items()}}
