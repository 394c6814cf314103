"""How much fine detail an image holds, for telling soft faces and coloured specks from drawn
ones: the mean |Laplacian| of the image (edges, pupils, highlights) and of its colour (R - G,
B - G). Ratios against real renders read < 1 as blur and a colour ratio > 1 as specks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> its per-channel 3x3 Laplacian, (B, C, H - 2, W - 2)."""
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], device=x.device, dtype=x.dtype)
    return F.conv2d(x, kernel.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])


def colour(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 2, H, W): R - G and B - G, zero for any grey."""
    return torch.stack([x[:, 0] - x[:, 1], x[:, 2] - x[:, 1]], 1)


def energy(x: torch.Tensor) -> float:
    return laplacian(x).abs().mean().item()


def detail_ratios(made: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """made, real: (B, 3, H, W) images on one scale -> {"sharpness", "colour_detail"}: made's fine
    detail over real's, of the image and of its colour."""
    return {"sharpness": energy(made) / max(energy(real), 1e-12),
            "colour_detail": energy(colour(made)) / max(energy(colour(real)), 1e-12)}
