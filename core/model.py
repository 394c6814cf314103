"""The XFaVoT networks (paper section 3.1, appendix G, Tables 6-9).

Image side follows StarGANv2 (clovaai/stargan-v2), audio side StarGANv2-VC (yl4579/StarGANv2-VC).
Tensors: images (B, 3, H, W) in [-1, 1]; mels (B, 1, 80, T) normalised log-mels, frequency on
the height axis and time on the width axis, so "timepreserve" resampling touches height only.

Domain indices: 0 = female, 1 = male, 2.. = speaker identities (see ModelConfig.domain_names).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .content import ContentNet
from .jdc import JDCNet

# ---------------------------------------------------------------------------------------------
# resampling: "half" halves both axes, "timepreserve" halves frequency (height) only


def downsample(x: torch.Tensor, how: str | None) -> torch.Tensor:
    """2x2 (or 2x1) average pooling, odd sizes floored like F.avg_pool2d. Written as strided sums:
    on the CPU that is 1.5x (2x2) to 6x (2x1) faster than avg_pool2d, forward and backward."""
    if how is None:
        return x
    h = x.shape[-2] // 2 * 2
    if how == "half":
        w = x.shape[-1] // 2 * 2
        return (x[..., 0:h:2, 0:w:2] + x[..., 1:h:2, 0:w:2] + x[..., 0:h:2, 1:w:2] + x[..., 1:h:2, 1:w:2]) * 0.25
    return (x[..., 0:h:2, :] + x[..., 1:h:2, :]) * 0.5


def upsample(x: torch.Tensor, how: str | None) -> torch.Tensor:
    if how is None:
        return x
    return F.interpolate(x, scale_factor=2 if how == "half" else (2, 1), mode="nearest")


# ---------------------------------------------------------------------------------------------
# residual blocks


class ResBlk(nn.Module):
    """Pre-activation residual block: [IN] -> LReLU -> conv3x3 -> (pool) -> [IN] -> LReLU -> conv3x3."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, down: str | None = None):
        super().__init__()
        self.normalize, self.down = normalize, down
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x):
        if self.learned_sc:
            x = self.conv1x1(x)
        return downsample(x, self.down)

    def _residual(self, x):
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(F.leaky_relu(x, 0.2))
        x = downsample(x, self.down)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(F.leaky_relu(x, 0.2))

    def forward(self, x):
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)  # unit variance


class AdaIN(nn.Module):
    """(1 + gamma) * IN(x) + beta, gamma and beta from the style vector.

    The paper sets the AdaIN scale biases to one; writing the scale as (1 + gamma) with a zero
    bias is the same initial scale of one (as in the StarGANv2 code)."""

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x, s):
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Pre-activation residual block with AdaIN, optional upsampling (decoder side)."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, up: str | None = None):
        super().__init__()
        self.up = up
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False)

    def _shortcut(self, x):
        x = upsample(x, self.up)
        return self.conv1x1(x) if self.learned_sc else x

    def _residual(self, x, s):
        x = F.leaky_relu(self.norm1(x, s), 0.2)
        x = self.conv1(upsample(x, self.up))
        x = F.leaky_relu(self.norm2(x, s), 0.2)
        return self.conv2(x)

    def forward(self, x, s):
        # no high-pass wing skip (w_hpf = 0), so always the sqrt(2) normalisation
        return (self._shortcut(x) + self._residual(x, s)) / math.sqrt(2)


def channel_ladder(dim_in: int, max_dim: int, n: int) -> list[int]:
    """Channels before and after each of n doubling blocks: [dim_in, 2*dim_in, ...] capped at max_dim."""
    dims = [dim_in]
    for _ in range(n):
        dims.append(min(dims[-1] * 2, max_dim))
    return dims


def pick_domain(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """out: (B, num_domains, ...) -> (B, ...) at each sample's domain y."""
    return out[torch.arange(out.size(0), device=out.device), y]


# ---------------------------------------------------------------------------------------------
# generators


class ImageGenerator(nn.Module):
    """G_I (Table 6): 1x1 stem, 4 IN down blocks, 2 IN + 2 AdaIN blocks at H/16, 4 AdaIN up blocks.
    (cfg.img_down_blocks = 3 gives StarGANv2's own 128-px generator, for reference benchmarks.)

    cfg.img_skip adds each resolution's encoder features to the decoder's at the same resolution
    (a U-Net; StarGANv2's w_hpf skip is a masked, high-passed version of the same idea): the pose,
    background and fine lines reach the output without squeezing through the bottleneck, which a
    CPU-sized run cannot afford to learn (a deviation from Table 6; the `paper` preset has none).

    cfg.img_rgb_norm = False drops the InstanceNorm in front of the RGB layer: it removes each
    image's per-channel mean and contrast, so the output's overall colour and brightness (which
    the skips carry) must be re-learnt from spatial patterns. G_I alone rebuilding faces for 150
    steps: L1 0.175 with it, 0.098 without (scripts/probe_image_decoder.py). No preset uses it yet:
    started from a model trained with the norm, the full objective saturated the colours (the
    features in front of it have a standard deviation of about 20); a run from scratch with it is untried."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.skip = cfg.img_skip
        dims = channel_ladder(cfg.img_dim_in, cfg.img_max_dim, cfg.img_down_blocks)  # paper: 128, 256, 512, 512, 512
        self.from_rgb = nn.Conv2d(3, dims[0], 1, 1, 0)
        self.encode = nn.ModuleList(ResBlk(a, b, normalize=True, down="half") for a, b in zip(dims, dims[1:]))
        self.encode.extend(ResBlk(dims[-1], dims[-1], normalize=True) for _ in range(2))
        self.decode = nn.ModuleList(AdainResBlk(dims[-1], dims[-1], cfg.style_dim) for _ in range(2))
        rev = dims[::-1]
        self.decode.extend(AdainResBlk(a, b, cfg.style_dim, up="half") for a, b in zip(rev, rev[1:]))
        norm = nn.InstanceNorm2d(dims[0], affine=True) if cfg.img_rgb_norm else nn.Identity()
        self.to_rgb = nn.Sequential(norm, nn.LeakyReLU(0.2), nn.Conv2d(dims[0], 3, 1, 1, 0))  # indices kept

    def forward(self, x, s):
        return self.decode_with_style(self.encode_source(x), s)

    def encode_source(self, x) -> tuple[torch.Tensor, dict]:
        """The style-free half: (bottleneck features, each resolution's first feature map for the
        skips). Kept apart so that one source can be drawn again with other styles for half the cost."""
        x = self.from_rgb(x)  # (B, 128, 128, 128) in the paper preset
        skips = {}
        for block in self.encode:
            skips.setdefault(x.shape[-1], x)
            x = block(x)  # -> (B, 512, 8, 8)
        return x, (skips if self.skip else {})

    def decode_with_style(self, source: tuple[torch.Tensor, dict], s):
        x, skips = source
        for block in self.decode:
            x = block(x, s)  # -> (B, 128, 128, 128)
            if self.skip and block.up:
                x = x + skips[x.shape[-1]]
        return self.to_rgb(x)


AUDIO_RESAMPLING = ("half", "timepreserve", "half", "timepreserve")


class AudioGenerator(nn.Module):
    """G_A (Table 7): mel (B,1,80,T) -> mel. T must be a multiple of 4 (two "half" steps).

    JDC F0 features (B, f0_channels, 10, T) are reduced by a ResBlk, pooled to the bottleneck
    size and concatenated in the middle of the four intermediate blocks (StarGANv2-VC)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dims = channel_ladder(cfg.audio_dim_in, cfg.audio_max_dim, 4)  # paper: 64, 128, 256, 512, 512
        f0_dim = cfg.f0_channels // 2
        mid = dims[-1] + f0_dim  # paper: 512 + 128 = 640
        self.stem = nn.Conv2d(1, dims[0], 1, 1, 0)
        self.encode = nn.ModuleList(
            ResBlk(a, b, normalize=True, down=how) for a, b, how in zip(dims, dims[1:], AUDIO_RESAMPLING))
        self.encode.extend(ResBlk(dims[-1], dims[-1], normalize=True) for _ in range(2))
        self.f0_conv = ResBlk(cfg.f0_channels, f0_dim, normalize=True, down="half")
        self.decode = nn.ModuleList(AdainResBlk(mid, mid, cfg.style_dim) for _ in range(2))
        if cfg.audio_f0_block:  # the reference code folds the F0 channels back in a block of its own
            self.decode.append(AdainResBlk(mid, dims[-1], cfg.style_dim))
            mid = dims[-1]
        # up path mirrors the down path; its first block also folds the F0 channels back in (Table 7)
        rev = [mid] + dims[::-1][1:]
        ups = AUDIO_RESAMPLING[::-1]
        self.decode.extend(AdainResBlk(a, b, cfg.style_dim, up=how) for a, b, how in zip(rev, rev[1:], ups))
        self.to_out = nn.Sequential(
            nn.InstanceNorm2d(dims[0], affine=True), nn.LeakyReLU(0.2), nn.Conv2d(dims[0], 1, 1, 1, 0))

    def forward(self, x, s, f0_features):
        x = self.stem(x)  # (B, 64, 80, T)
        for block in self.encode:
            x = block(x)  # -> (B, 512, 5, T/4)
        f0 = F.adaptive_avg_pool2d(self.f0_conv(f0_features), x.shape[-2:])
        x = torch.cat([x, f0], dim=1)  # (B, 640, 5, T/4)
        for block in self.decode:
            x = block(x, s)  # -> (B, 64, 80, T)
        return self.to_out(x)


# ---------------------------------------------------------------------------------------------
# style encoders, discriminators and the audio source classifier share a trunk per modality


class ImageTrunk(nn.Sequential):
    """Tables 8: 1x1 stem, log2(size)-2 down ResBlks to 4x4, LReLU, conv 4x4 -> 1x1, LReLU."""

    def __init__(self, cfg: ModelConfig):
        n = int(math.log2(cfg.img_size)) - 2
        dims = channel_ladder(cfg.img_dim_in, cfg.img_max_dim, n)
        layers = [nn.Conv2d(3, dims[0], 1, 1, 0)]
        layers += [ResBlk(a, b, normalize=cfg.trunk_norm, down="half") for a, b in zip(dims, dims[1:])]
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(dims[-1], dims[-1], 4, 1, 0), nn.LeakyReLU(0.2), nn.Flatten()]
        super().__init__(*layers)
        self.out_dim = dims[-1]


class AudioTrunk(nn.Sequential):
    """Table 9: 1x1 stem, 4 "half" ResBlks to (5, T/16), LReLU, conv 5x5, global avg-pool, LReLU.

    Needs T >= 80 frames (1 s at hop 300); callers pad shorter mels (core.audio.pad_for_trunk)."""

    MIN_FRAMES = 80

    def __init__(self, cfg: ModelConfig):
        dims = channel_ladder(cfg.audio_dim_in, cfg.audio_max_dim, 4)  # paper: 64, 128, 256, 512, 512
        layers = [nn.Conv2d(1, dims[0], 1, 1, 0)]
        layers += [ResBlk(a, b, normalize=cfg.trunk_norm, down="half") for a, b in zip(dims, dims[1:])]
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(dims[-1], dims[-1], 5, 1, 0), nn.AdaptiveAvgPool2d(1),
                   nn.LeakyReLU(0.2), nn.Flatten()]
        super().__init__(*layers)
        self.out_dim = dims[-1]


class StyleEncoder(nn.Module):
    """E_I / E_A: trunk + one Linear(trunk -> style) per gender domain."""

    def __init__(self, trunk: nn.Module, num_heads: int, style_dim: int):
        super().__init__()
        self.shared = trunk
        self.unshared = nn.ModuleList(nn.Linear(trunk.out_dim, style_dim) for _ in range(num_heads))

    def forward(self, x, y):
        h = self.shared(x)
        out = torch.stack([head(h) for head in self.unshared], dim=1)  # (B, heads, style_dim)
        return pick_domain(out, y)


class MultiHeadDiscriminator(nn.Module):
    """D_I (gender heads), D_A (gender + speaker heads): trunk + one real/fake logit per domain."""

    def __init__(self, trunk: nn.Module, num_domains: int):
        super().__init__()
        self.shared = trunk
        self.heads = nn.Linear(trunk.out_dim, num_domains)

    def logits(self, x):
        return self.heads(self.shared(x))  # (B, num_domains)

    def forward(self, x, y):
        return pick_domain(self.logits(x), y)


class SourceClassifier(nn.Module):
    """C_A: same architecture as D_A; its heads are read as a 2-way gender classifier and an
    N-way speaker classifier of the *source* of a (real or converted) mel."""

    def __init__(self, trunk: nn.Module, num_genders: int, num_speakers: int):
        super().__init__()
        self.shared = trunk
        self.num_genders = num_genders
        self.heads = nn.Linear(trunk.out_dim, num_genders + num_speakers)

    def forward(self, x):
        out = self.heads(self.shared(x))
        return out[:, : self.num_genders], out[:, self.num_genders:]  # gender logits, speaker logits


class MappingNetwork(nn.Module):
    """M: z (latent_dim) -> shared MLP -> one head per domain -> style (style_dim).

    Only the heads that the batch asks for are evaluated: with 130 heads, running them all
    (as the StarGANv2 code does) costs ~65x the work."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers = [nn.Linear(cfg.latent_dim, cfg.map_hidden), nn.ReLU()]
        for _ in range(cfg.map_shared_layers - 1):
            layers += [nn.Linear(cfg.map_hidden, cfg.map_hidden), nn.ReLU()]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList(self._head(cfg) for _ in range(cfg.num_domains))

    @staticmethod
    def _head(cfg: ModelConfig) -> nn.Sequential:
        dims = [cfg.map_hidden] + [cfg.map_head_dim] * (cfg.map_head_layers - 1)
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], cfg.style_dim))
        return nn.Sequential(*layers)

    def forward(self, z, y):
        h = self.shared(z)
        s = h.new_empty(z.size(0), self.unshared[0][-1].out_features)
        for d in torch.unique(y).tolist():
            rows = (y == d).nonzero(as_tuple=True)[0]
            s[rows] = self.unshared[d](h[rows])
        return s


# ---------------------------------------------------------------------------------------------


def he_init(module: nn.Module) -> None:
    """He (Kaiming) init for every conv and linear layer, zero biases (paper appendix A)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


MODULE_NAMES = (
    "generator_image", "generator_audio", "style_encoder_image", "style_encoder_audio", "mapping",
    "discriminator_image", "discriminator_audio", "classifier_audio", "jdc", "content",
)
# modules with EMA copies, used for inference (paper appendix A)
EMA_MODULES = ("generator_image", "generator_audio", "style_encoder_image", "style_encoder_audio", "mapping")


def build_networks(cfg: ModelConfig) -> nn.ModuleDict:
    """All ten networks of one XFaVoT model, keyed as in MODULE_NAMES."""
    n_gender, n_speaker = len(cfg.genders), len(cfg.speakers)
    nets = nn.ModuleDict(dict(
        generator_image=ImageGenerator(cfg),
        generator_audio=AudioGenerator(cfg),
        style_encoder_image=StyleEncoder(ImageTrunk(cfg), n_gender, cfg.style_dim),
        style_encoder_audio=StyleEncoder(AudioTrunk(cfg), n_gender, cfg.style_dim),
        mapping=MappingNetwork(cfg),
        discriminator_image=MultiHeadDiscriminator(ImageTrunk(cfg), n_gender),
        discriminator_audio=MultiHeadDiscriminator(AudioTrunk(cfg), n_gender + n_speaker),
        classifier_audio=SourceClassifier(AudioTrunk(cfg), n_gender, n_speaker),
    ))
    for net in nets.values():
        he_init(net)
    # the auxiliary networks keep their reference initialisation
    nets["jdc"] = JDCNet(cfg.jdc_width)
    nets["content"] = ContentNet(cfg.n_mels, cfg.content_dim, cfg.content_layers, cfg.content_tokens)
    return nets


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
