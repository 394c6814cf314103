"""A bank of rendered faces of fresh identities, laid out so that every translation pair exists.

The corpus has ~80 training identities with faces: trained on its rendered pairs
(training/data/pairs.py), E_I learns those identities rather than how to read a face, and G_I's
pair error on unseen speakers stalls at 0.155 L1 after 1,500 steps (scripts/probe_pair_translation.py).
The renderer can draw any number of identities, so the bank draws new ones: `groups` groups,
each a grid of `identities` x `poses` renders (pose = the whole per-image nuisance: position,
angle, expression, background, light). Within a group, source (A, pose p), reference (B, pose q)
and target (B, pose p) are all in the grid. Group 0 is held out for validation.

Renders are cached in one safetensors file (uint8), keyed by the settings that made them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core import checkpoint

from .faces import render_face, render_in_workers, sample_nuisance
from .identity import GENDERS, sample_identity

BANK_FORMAT = "xfavot-face-bank"


def _render_group(args: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """-> faces (identities, poses, size, size, 3) uint8, genders (identities,) as GENDERS indices."""
    seed, identities, poses, size = args
    rng = np.random.default_rng(seed)
    people = [sample_identity(rng, f"bank{seed}-{i}") for i in range(identities)]
    nuisances = [sample_nuisance(rng) for _ in range(poses)]
    faces = np.stack([[np.asarray(render_face(p, n, size)) for n in nuisances] for p in people])
    return faces, np.array([GENDERS.index(p.gender) for p in people], dtype=np.int64)


def render_identities(size: int, groups: int, identities: int, poses: int, seed: int, workers: int = 2,
                      progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh identities (none of a corpus's speakers) rendered in `poses` poses each:
    faces (groups, identities, poses, size, size, 3) uint8 and genders (groups, identities) as GENDERS indices."""
    jobs = [(seed * 100_003 + 1_000 + g, identities, poses, size) for g in range(groups)]
    parts = render_in_workers(_render_group, jobs, workers, "render faces", "group", progress)
    return torch.from_numpy(np.stack([p[0] for p in parts])), torch.from_numpy(np.stack([p[1] for p in parts]))


class FaceBank:
    def __init__(self, faces: torch.Tensor, genders: torch.Tensor):
        self.faces = faces      # (groups, identities, poses, H, W, 3) uint8
        self.genders = genders  # (groups, identities) int64

    @classmethod
    def load_or_render(cls, path: str | Path, size: int, groups: int = 40, identities: int = 24, poses: int = 24,
                       seed: int = 0, workers: int = 2, progress: bool = True) -> "FaceBank":
        """The cached bank at `path` if it was made with these settings, else render it (and cache it):
        40 x 24 x 24 renders at 64 px take ~2 minutes on two cores."""
        settings = {"format": BANK_FORMAT, "size": size, "groups": groups, "identities": identities,
                    "poses": poses, "seed": seed}
        path = Path(path)
        if path.is_file():
            tensors, header = checkpoint.load_tensors(path)
            if header == settings:
                return cls(tensors["faces"], tensors["genders"])
        bank = cls(*render_identities(size, groups, identities, poses, seed, workers, progress))
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.save_tensors(path, {"faces": bank.faces, "genders": bank.genders}, settings)
        return bank

    def batch(self, n: int, generator: torch.Generator, split: str = "train"):
        """-> source (n, 3, H, W), reference (n, 3, H, W) in [-1, 1], reference gender (n,), target:
        the reference's identity in the source's pose. Train pairs come from groups 1.., val from group 0;
        train pairs are mirrored at random (source and target together)."""
        groups, identities, poses = self.faces.shape[:3]
        if split == "train":
            group = torch.randint(1, groups, (n,), generator=generator)
        else:
            group = torch.zeros(n, dtype=torch.long)
        a, b = (torch.randint(identities, (n,), generator=generator) for _ in range(2))
        p, q = (torch.randint(poses, (n,), generator=generator) for _ in range(2))
        source, reference, target = (faces_to_tensor(self.faces[group, who, pose]) for who, pose in ((a, p), (b, q), (b, p)))
        if split == "train":
            flip = torch.rand(n, generator=generator) < 0.5
            source[flip], target[flip] = source[flip].flip(-1), target[flip].flip(-1)
        return source, reference, self.genders[group, b], target


def faces_to_tensor(faces: torch.Tensor) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float in [-1, 1]."""
    return faces.permute(0, 3, 1, 2).float() / 127.5 - 1
