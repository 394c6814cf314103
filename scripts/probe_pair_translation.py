"""Probe: how fast G_I + E_I (cpu preset) learn reference-guided translation from the rendered
pair targets alone (supervised L1, no GAN), per G_I variant.

    python scripts/probe_pair_translation.py --corpus CORPUS --steps 1500 shipped noskip-norgbnorm

Each variant trains G_I and E_I together for --steps steps (batch 8, Adam 5e-4, bf16 autocast):
G(source face, E(a face of speaker B)) ~ render(B's identity, the source's pose). Pairs come from
training speakers; the table reports the L1 over the last 30 steps, the L1 on 96 pairs of
validation speakers, seconds per step, and how often the attribute oracle reads the reference's
gender on the validation outputs whose source has the other gender (a weak measure on blurred
outputs: untrained outputs already read as the reference's gender ~70 % of the time). A contact
sheet per variant (source | reference | target | output) goes to --out.

Measured 2026-11-24 on the 2-core build machine, 1,500 steps: shipped (U-Net skips, IN before
the RGB layer) val L1 0.175, 0.20 s/step; noskip-norgbnorm 0.155, 0.19 s/step. Returning the
source unchanged scores 0.225; the full objective's pair error stays at 0.32-0.40
(resources/MODEL_CARD.md).
"""
import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.config import preset
from core.face import image_to_tensor
from core.model import build_networks
from training.data.pairs import PairTargets
from training.oracle import load_oracle, predict

VARIANTS = {
    "shipped": {},
    "noskip": dict(img_skip=False),
    "skip-norgbnorm": dict(img_rgb_norm=False),
    "noskip-norgbnorm": dict(img_skip=False, img_rgb_norm=False),
    "wide32": dict(img_dim_in=32, img_max_dim=256),
}
GENDERS = ("female", "male")


class PairBatches:
    """Random (source, reference, target) triples from one split of a synthetic corpus."""

    def __init__(self, corpus: Path, size: int = 64):
        manifest = json.loads((corpus / "manifest.json").read_text())
        self.corpus, self.size = corpus, size
        self.speakers = {s["speaker"]: s for s in manifest["speakers"]}
        self.faces = [f for f in manifest["faces"] if self.speakers[f["speaker"]]["kind"] != "audio"]
        self.targets = PairTargets(size)
        self.cache: dict[str, torch.Tensor] = {}

    def face(self, path: str) -> torch.Tensor:
        if path not in self.cache:
            img = Image.open(self.corpus / path).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            self.cache[path] = image_to_tensor(img)
        return self.cache[path]

    def __call__(self, split: str, rng: random.Random, n: int = 8):
        pool = [f for f in self.faces if self.speakers[f["speaker"]]["split"] == split]
        src, ref = ([pool[rng.randrange(len(pool))] for _ in range(n)] for _ in range(2))
        x = torch.stack([self.face(f["path"]) for f in src])
        r = torch.stack([self.face(f["path"]) for f in ref])
        g = torch.tensor([GENDERS.index(self.speakers[f["speaker"]]["gender"]) for f in ref])
        t, _ = self.targets.batch([(str(self.corpus / f["path"]), False) for f in src], [f["speaker"] for f in ref],
                                  "image")
        return x, r, g, t


def to_image(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(((x.clamp(-1, 1).permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8))


def probe(name: str, batches: PairBatches, steps: int, out: Path, oracle) -> str:
    torch.manual_seed(0)
    rng = random.Random(0)
    nets = build_networks(preset("cpu", **VARIANTS[name]))
    G, E = nets["generator_image"], nets["style_encoder_image"]
    opt = torch.optim.Adam([*G.parameters(), *E.parameters()], 5e-4, betas=(0.5, 0.99))
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        x, r, g, t = batches("train", rng)
        with torch.autocast("cpu", torch.bfloat16):
            y = G(x, E(r, g))
        loss = (y.float() - t).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = (time.perf_counter() - start) / steps
    val_rng, val_l1, flipped = random.Random(1), [], []
    with torch.no_grad():
        for _ in range(12):
            x, r, g, t = batches("val", val_rng)
            y = G(x, E(r, g))
            val_l1.append((y - t).abs().mean().item())
            source = predict(oracle, [to_image(v) for v in x])
            made = predict(oracle, [to_image(v) for v in y])
            flipped += [m["gender"] == GENDERS[k] for m, s, k in zip(made, source, g) if s["gender"] != GENDERS[k]]
    rows = [torch.cat(list(v[:6]), 2) for v in (x, r, t, y.clamp(-1, 1))]
    to_image(torch.cat(rows, 1)).resize((6 * 128, 4 * 128), Image.NEAREST).save(out / f"pair-{name}.png")
    return (f"{name:>17} {np.mean(losses[-30:]):>9.4f} {np.mean(val_l1):>7.4f} {seconds:>7.3f} "
            f"{np.mean(flipped):>8.0%} of {len(flipped)}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="a synthetic corpus folder (xfavot data synth)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--out", default=".", help="folder for the contact sheets")
    p.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    args = p.parse_args()
    batches, oracle = PairBatches(Path(args.corpus)), load_oracle()
    print(f"{'variant':>17} {'train L1':>9} {'val L1':>7} {'s/step':>7} {'gender flipped':>14}")
    for name in args.variants:
        print(probe(name, batches, args.steps, Path(args.out), oracle), flush=True)


if __name__ == "__main__":
    main()
