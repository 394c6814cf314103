"""JDC: joint detection and classification F0 network (Kum & Nam 2019) as StarGANv2-VC uses it.

Parameter names follow the StarGANv2-VC `Utils/JDC/model.py` so that its official checkpoint
loads (core.checkpoint.load_official_aux). Width unit c: the paper-sized network has c = 64.
Input: normalised log-mel (B, 1, 80, T). Works for any T, batch 1 included.
"""
from __future__ import annotations

import torch
import torch.nn as nn

SLOPE = 0.01


class JDCResBlock(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.downsample = dim_in != dim_out
        # pooling touches the mel axis only: time resolution is kept for frame-level F0
        self.pre_conv = nn.Sequential(nn.BatchNorm2d(dim_in), nn.LeakyReLU(SLOPE), nn.MaxPool2d((1, 2)))
        self.conv = nn.Sequential(
            nn.Conv2d(dim_in, dim_out, 3, padding=1, bias=False), nn.BatchNorm2d(dim_out), nn.LeakyReLU(SLOPE),
            nn.Conv2d(dim_out, dim_out, 3, padding=1, bias=False))
        if self.downsample:
            self.conv1by1 = nn.Conv2d(dim_in, dim_out, 1, bias=False)

    def forward(self, x):
        x = self.pre_conv(x)
        return self.conv(x) + (self.conv1by1(x) if self.downsample else x)


class JDCNet(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        c = width
        self.conv_block = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(SLOPE),
            nn.Conv2d(c, c, 3, padding=1, bias=False))
        self.res_block1 = JDCResBlock(c, 2 * c)       # mel axis 80 -> 40
        self.res_block2 = JDCResBlock(2 * c, 3 * c)   # 40 -> 20
        self.res_block3 = JDCResBlock(3 * c, 4 * c)   # 20 -> 10
        self.pool_block = nn.Sequential(
            nn.BatchNorm2d(4 * c), nn.LeakyReLU(SLOPE), nn.MaxPool2d((1, 4)), nn.Dropout(0.2))  # 10 -> 2
        # voicing detector reads multi-scale features pooled to width 2
        self.maxpool1 = nn.MaxPool2d((1, 40))
        self.maxpool2 = nn.MaxPool2d((1, 20))
        self.maxpool3 = nn.MaxPool2d((1, 10))
        self.detector_conv = nn.Sequential(
            nn.Conv2d(10 * c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c), nn.LeakyReLU(SLOPE), nn.Dropout(0.2))
        self.bilstm_classifier = nn.LSTM(8 * c, 4 * c, batch_first=True, bidirectional=True)
        self.bilstm_detector = nn.LSTM(8 * c, 4 * c, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(8 * c, 1)  # F0 regression in Hz
        self.detector = nn.Linear(8 * c, 2)    # unvoiced / voiced

    def _trunk(self, mel):
        x = mel.float().transpose(-1, -2)  # (B, 1, T, 80): time on height, mel on width
        conv = self.conv_block(x)
        r1 = self.res_block1(conv)
        r2 = self.res_block2(r1)
        r3 = self.res_block3(r2)
        return conv, r1, r2, self.pool_block[1](self.pool_block[0](r3))

    def get_feature(self, mel: torch.Tensor) -> torch.Tensor:
        """F0 features for the audio generator: (B, 4c, 10, T)."""
        return self._trunk(mel)[-1].transpose(-1, -2)

    def forward(self, mel: torch.Tensor):
        """Returns F0 in Hz (B, T), voicing logits (B, T, 2) and the F0 features (B, 4c, 10, T)."""
        conv, r1, r2, feat = self._trunk(mel)
        b, _, t, _ = feat.shape
        pooled = self.pool_block[3](self.pool_block[2](feat))  # (B, 4c, T, 2)
        f0_in = pooled.permute(0, 2, 1, 3).reshape(b, t, -1)
        f0 = self.classifier(self.bilstm_classifier(f0_in)[0]).abs()[..., 0]
        multi = torch.cat([self.maxpool1(conv), self.maxpool2(r1), self.maxpool3(r2), pooled], dim=1)
        det_in = self.detector_conv(multi).permute(0, 2, 1, 3).reshape(b, t, -1)
        voicing = self.detector(self.bilstm_detector(det_in)[0])
        return f0, voicing, feat.transpose(-1, -2)
