"""Probe: does a style change a face's gender, and from which reference kind?

    python scripts/probe_gender_flip.py --checkpoint MODEL --corpus CORPUS [--split val]

For every held-out speaker of the split, four source faces of the *other* gender are restyled with
(a) the speaker's voice (E_A), (b) another face of the speaker (E_I), (c) four latent styles of the
speaker's gender domain (M); the attribute oracle reads each output's gender. The share read as
the reference's gender tells whether the cross-modal alignment (voice much worse than face) or
G_I itself (all low) is what keeps faces at their source's gender. Source faces unchanged: 0 %.
Measured 2026-11-24 on the 2-core build machine, validation speakers, the default shipped at
e04e4cb: voice 29 %, face 15 %, latent 0 % of 52: G_I is the bottleneck (resources/MODEL_CARD.md).
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from core.engine import Engine
from training.data.datasets import load_synthetic
from training.data.synth import load_manifest
from training.oracle import ground_truth, load_oracle, predict


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--split", default="val", help="val to compare models; test only to report")
    args = p.parse_args()
    truth = ground_truth(load_manifest(Path(args.corpus)))
    held = [s for s in load_synthetic(args.corpus).speakers if s.split == args.split and s.faces and s.voices]
    engine = Engine(align_faces=False)
    engine.load(args.checkpoint, "cpu", "griffin-lim")
    oracle = load_oracle()
    flipped = {"voice": [], "face": [], "latent": [], "source unchanged": []}
    for i, ref in enumerate(held):
        others = [s for s in held if s.gender != ref.gender]
        sources = [others[(i + k) % len(others)].faces[0] for k in range(4)]
        made = {"voice": engine.face_from_voice(sources, ref.voices[0], ref.gender),
                "face": engine.face_from_face(sources, ref.faces[1 % len(ref.faces)], ref.gender),
                "latent": engine.face_from_style(sources, [engine.sample_style(ref.gender, k) for k in range(4)]),
                "source unchanged": [Image.open(s) for s in sources]}
        for kind, faces in made.items():
            flipped[kind] += [p["gender"] == truth[ref.id]["gender"] for p in predict(oracle, faces)]
    print(f"{'reference':>17} {'gender flipped':>14} {'outputs':>8}")
    for kind, hits in flipped.items():
        print(f"{kind:>17} {np.mean(hits):>14.0%} {len(hits):>8}")


if __name__ == "__main__":
    main()
