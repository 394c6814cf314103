"""Probe: how fast G_I (cpu preset) learns to rebuild faces, per decoder variant.

    python scripts/probe_image_decoder.py --corpus CORPUS nearest bilinear nearest:noin bilinear:noin

Each variant trains G_I alone for --steps steps (batch 8, Adam 1e-3, bf16 autocast) to rebuild
corpus faces from a zero style, G(x, 0) ~ x, and prints the L1 over the last 20 steps and the
seconds per step. Variants: the decoder's upsampling ("nearest" as shipped, "bilinear") and
":noin" = without the InstanceNorm in front of the RGB layer. A lead for the next default model
(resources/MODEL_CARD.md), not part of training. Measured 2026-11-24 on the 2-core build machine,
150 steps: nearest 0.175, bilinear 0.179, nearest:noin 0.098, bilinear:noin 0.099.
"""
import argparse
import glob
import time

import numpy as np
import torch
from PIL import Image

import core.model
from core.config import PRESETS, ModelConfig
from core.model import ImageGenerator


def upsampling(mode: str):
    """core.model.upsample with another interpolation (the probe builds G_I only)."""
    def up(x, how):
        if how is None:
            return x
        return torch.nn.functional.interpolate(x, scale_factor=2 if how == "half" else (2, 1), mode=mode)
    return up


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="a synthetic corpus folder (its faces/)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("variants", nargs="+")
    args = p.parse_args()
    files = sorted(glob.glob(f"{args.corpus}/faces/**/*.png", recursive=True))[:512]
    faces = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((64, 64)), np.float32)
                                          / 127.5 - 1).permute(2, 0, 1) for f in files])
    print(f"{'variant':>16} {'L1 (last 20)':>12} {'s/step':>7}")
    for variant in args.variants:
        mode, _, extra = variant.partition(":")
        torch.manual_seed(0)
        cfg = ModelConfig(**PRESETS["cpu"])
        core.model.upsample = upsampling(mode)
        G = ImageGenerator(cfg)
        if extra == "noin":
            G.to_rgb[0] = torch.nn.Identity()
        opt = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.99))
        style = torch.zeros(8, cfg.style_dim)
        losses, t0 = [], time.perf_counter()
        for _ in range(args.steps):
            x = faces[torch.randint(0, len(faces), (8,))]
            with torch.autocast("cpu", torch.bfloat16):
                y = G(x, style)
            loss = (y.float() - x).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(f"{variant:>16} {np.mean(losses[-20:]):>12.4f} {(time.perf_counter() - t0) / args.steps:>7.3f}")


if __name__ == "__main__":
    main()
