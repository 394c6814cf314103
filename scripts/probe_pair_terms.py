"""Probe: does a generator term of the objective keep G_I from learning the rendered-pair
translation? G_I (no skips, no RGB-layer norm) + E_I trained on the pair L1 (weight 2) alone and
with the objective's cycle and/or style-reconstruction terms added (weight 1 each), one thread.

    python scripts/probe_pair_terms.py --corpus CORPUS --steps 800 pair pair+cyc pair+sty pair+sty+cyc

Measured 2026-11-24 on the 2-core build machine (sharing it with a training run), 800 steps,
validation pair L1 on 96 pairs: pair 0.163, pair+cyc 0.148, pair+sty 0.157, pair+sty+cyc 0.174.
With E_I started from the shipped default's (--encoder resources/default/xfavot-default.safetensors,
two threads): pair 0.153, pair+sty+cyc 0.153. 1,200 steps, two threads: pair+sty+cyc 0.148,
pair+sty+cyc+latent (every third step a mapping-network style with no pair target) 0.184.
Neither term nor the trained style space holds the translation back; the mapping-network steps
slow it. The full objective's pair error stays at 0.26-0.41 (resources/MODEL_CARD.md).
The cycle term here takes the source's style with the reference's gender head (the probe has no source labels).
"""
import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from probe_pair_translation import PairBatches

from core import checkpoint
from core.config import preset
from core.model import build_networks


def probe(batches: PairBatches, variant: str, steps: int, encoder: Path | None = None) -> str:
    torch.manual_seed(0)
    rng = random.Random(0)
    cfg = preset("cpu", img_skip=False, img_rgb_norm=False)
    nets = build_networks(cfg)
    G, E = nets["generator_image"], nets["style_encoder_image"]
    if encoder is not None:  # E_I from a trained model (its style space), G_I fresh
        E.load_state_dict(checkpoint.load_model(encoder)[0]["style_encoder_image"].state_dict())
    M = nets["mapping"]
    opt = torch.optim.Adam([{"params": [*G.parameters(), *E.parameters()]},
                            {"params": M.parameters(), "lr": 5e-5}], 5e-4, betas=(0.5, 0.99))
    start, train_l1 = time.perf_counter(), []
    for step in range(steps):
        x, r, g, t = batches("train", rng)
        latent = "latent" in variant and step % 3 == 2  # the objective's third reference kind
        with torch.autocast("cpu", torch.bfloat16):
            s = M(torch.randn(len(x), cfg.latent_dim), g) if latent else E(r, g)
            y = G(x, s)
            pair = (y.float() - t).abs().mean()
            loss = 0 * pair if latent else 2 * pair  # latent styles have no rendered target
            if "cyc" in variant:
                loss = loss + (G(y, E(x, g)).float() - x).abs().mean()
            if "sty" in variant:  # against the detached reference style, as in the objective
                loss = loss + (E(y, g).float() - s.detach().float()).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not latent:
            train_l1.append(pair.item())
    val_rng, val_l1 = random.Random(1), []
    with torch.no_grad():
        for _ in range(12):
            x, r, g, t = batches("val", val_rng)
            val_l1.append((G(x, E(r, g)) - t).abs().mean().item())
    return (f"{variant}: train pair L1 {np.mean(train_l1[-30:]):.4f} val {np.mean(val_l1):.4f} "
            f"s/step {(time.perf_counter() - start) / steps:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encoder", type=Path, help="start E_I from this model's (G_I stays fresh)")
    parser.add_argument("variants", nargs="+", help="pair, pair+cyc, pair+sty, pair+sty+cyc; +latent: every third "
                        "step takes its style from the mapping network, with no pair target")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = PairBatches(args.corpus)
    for variant in args.variants:
        print(probe(batches, variant, args.steps, args.encoder), flush=True)


if __name__ == "__main__":
    main()
