"""Content (ASR) network: CTC phoneme recogniser whose encoder features drive the
speech-consistency loss (StarGANv2-VC `Utils/ASR/models.py`, without the attention decoder).

Parameter names follow the reference so that its official checkpoint loads (the `asr_s2s.*`
decoder weights are ignored). Input: normalised log-mel (B, 1, 80, T) or (B, 80, T).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchaudio.functional as AF


class ConvNorm(nn.Module):
    def __init__(self, dim_in, dim_out, kernel_size=1, stride=1, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv1d(dim_in, dim_out, kernel_size, stride, padding, dilation)
        nn.init.xavier_uniform_(self.conv.weight)

    def forward(self, x):
        return self.conv(x)


class LinearNorm(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.linear_layer = nn.Linear(dim_in, dim_out)
        nn.init.xavier_uniform_(self.linear_layer.weight)

    def forward(self, x):
        return self.linear_layer(x)


class ConvBlock(nn.Module):
    """Three residual dilated conv units (dilation 1, 3, 9) with GroupNorm."""

    def __init__(self, dim: int, n_conv: int = 3, dropout: float = 0.2, groups: int = 8):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(
            ConvNorm(dim, dim, 3, padding=3 ** i, dilation=3 ** i), nn.ReLU(),
            nn.GroupNorm(groups, dim), nn.Dropout(dropout),
            ConvNorm(dim, dim, 3, padding=1), nn.ReLU(), nn.Dropout(dropout)) for i in range(n_conv))

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


class ContentNet(nn.Module):
    def __init__(self, n_mels: int = 80, hidden: int = 256, n_layers: int = 6, n_tokens: int = 80, n_mfcc: int = 40):
        super().__init__()
        self.register_buffer("dct_mat", AF.create_dct(n_mfcc, n_mels, norm="ortho"), persistent=False)
        self.init_cnn = ConvNorm(n_mfcc, hidden, kernel_size=7, padding=3, stride=2)
        self.cnns = nn.Sequential(*[nn.Sequential(ConvBlock(hidden), nn.GroupNorm(1, hidden)) for _ in range(n_layers)])
        self.projection = ConvNorm(hidden, hidden // 2)
        self.ctc_linear = nn.Sequential(LinearNorm(hidden // 2, hidden), nn.ReLU(), LinearNorm(hidden, n_tokens))

    def get_feature(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, [1,] 80, T) -> content features (B, hidden/2, ceil(T/2))."""
        if mel.dim() == 4:
            mel = mel[:, 0]
        mfcc = torch.matmul(mel.transpose(1, 2), self.dct_mat).transpose(1, 2)  # (B, 40, T)
        return self.projection(self.cnns(self.init_cnn(mfcc)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """CTC logits (B, ceil(T/2), n_tokens)."""
        return self.ctc_linear(self.get_feature(mel).transpose(1, 2))
