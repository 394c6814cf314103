"""Differentiable augmentation of discriminator inputs (DiffAugment, Zhao et al. 2020;
mit-han-lab/data-efficient-gans): the same random transform family is applied to real and fake
inputs, in both the discriminator and the generator update, so D cannot memorise a small training
set and G still receives gradients through the transform.

Faces: translation (1/8 of the side, zero = mid-grey padding) and cutout (a square of half the
side). No colour transform: hair colour, grey hair and blush are attributes here.
Mels (B, 1, 80, T): circular time shift (1/8 of T) and a time cutout (1/4 of T set to the mel
floor). The frequency axis is left alone: pitch and formants are what the speaker heads judge.

Every draw comes from the torch.Generator passed in, so a resumed run augments exactly as an
unbroken one.
"""
from __future__ import annotations

import torch

IMAGE_POLICY = ("translation", "cutout")
MEL_POLICY = ("time_shift", "time_cutout")
MEL_FLOOR = -1.88  # (ln(1e-5) + 4) / 4: silence in the normalised log-mel


def _uniform_int(low: torch.Tensor | int, high: torch.Tensor | int, n: int, gen: torch.Generator) -> torch.Tensor:
    return (low + torch.rand(n, generator=gen) * (torch.as_tensor(high) - low + 1)).floor().long()


def translate(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio x its size in both axes, padding with zeros (mid-grey)."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _uniform_int(-sy, sy, b, gen).to(x.device)
    dx = _uniform_int(-sx, sx, b, gen).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None] + 1).clamp(0, h + 1)  # (B, H) in padded coords
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None] + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ratio x the side per image, at a random place (it may cross the edge)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _uniform_int(0, h + (1 - ch % 2), b, gen).to(x.device)
    cx = _uniform_int(0, w + (1 - cw % 2), b, gen).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :] - cy[:, None] + ch // 2   # inside when in [0, ch)
    xs = torch.arange(w, device=x.device)[None, :] - cx[:, None] + cw // 2
    inside = ((ys >= 0) & (ys < ch))[:, :, None] & ((xs >= 0) & (xs < cw))[:, None, :]
    return x * (~inside)[:, None].to(x.dtype)


def time_shift(mel: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Roll each mel along time by up to ratio x T frames (crops are random anyway)."""
    b, t = mel.shape[0], mel.shape[-1]
    shift = _uniform_int(-int(t * ratio), int(t * ratio), b, gen).to(mel.device)
    index = (torch.arange(t, device=mel.device)[None, :] - shift[:, None]) % t  # (B, T)
    return mel.gather(-1, index[:, None, None, :].expand_as(mel))


def time_cutout(mel: torch.Tensor, gen: torch.Generator, ratio: float = 0.25) -> torch.Tensor:
    """Replace one span of ratio x T frames per mel by silence."""
    b, t = mel.shape[0], mel.shape[-1]
    width = max(1, int(t * ratio))
    start = _uniform_int(0, t - width, b, gen).to(mel.device)
    frames = torch.arange(t, device=mel.device)[None, :]
    inside = ((frames >= start[:, None]) & (frames < start[:, None] + width))[:, None, None, :]
    return torch.where(inside, torch.full_like(mel, MEL_FLOOR), mel)


AUGMENTS = {"translation": translate, "cutout": cutout, "time_shift": time_shift, "time_cutout": time_cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...] | list[str], gen: torch.Generator) -> torch.Tensor:
    """Apply each transform of the policy in order ("" / empty policy: x unchanged)."""
    for name in policy:
        x = AUGMENTS[name](x, gen)
    return x
