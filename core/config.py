"""Model configuration: one dataclass, a few named presets.

`paper` reproduces the channel counts of the XFaVoT paper (appendix G, Tables 6-9).
`small` is the CPU-friendly preset of the embedded default model.
`tiny` exists for tests and smoke runs only.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

GENDERS = ("female", "male")
MEL_FRONTENDS = ("xfavot24k", "stargan_vc_compat")
# the choices every parser and panel offers (this module imports no torch, so --help stays fast)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
VOCODER_CHOICES = ("auto", "neural", "griffin-lim")


@dataclass
class ModelConfig:
    preset: str = "small"
    # shared style space
    style_dim: int = 64
    latent_dim: int = 16
    # image side (StarGANv2): channels after the 1x1 stem, capped at img_max_dim
    img_size: int = 128
    img_dim_in: int = 32
    img_max_dim: int = 128
    img_down_blocks: int = 4          # Table 6: four (to H/16); StarGANv2's code at 128 px uses three
    img_skip: bool = False            # U-Net skips encoder -> decoder (the cpu preset; see ImageGenerator)
    img_rgb_norm: bool = True         # Table 6's IN before G_I's RGB layer (see ImageGenerator)
    # audio side (StarGANv2-VC) on 80-band log-mels
    n_mels: int = 80
    audio_dim_in: int = 16
    audio_max_dim: int = 128
    audio_f0_block: bool = False      # StarGANv2-VC's code: one more AdaIN block (mid -> max) before upsampling
    # mapping network: shared MLP + one head per domain (2 genders + N speakers)
    map_hidden: int = 256
    map_shared_layers: int = 4
    map_head_dim: int = 128
    map_head_layers: int = 2
    # style encoder / discriminator trunks use IN as Tables 8-9 list it
    trunk_norm: bool = True
    # JDC F0 network: channel unit c gives blocks c, 2c, 3c, 4c; F0 features have 4c channels
    jdc_width: int = 16
    # CTC content network (ASR)
    content_dim: int = 128
    content_layers: int = 3
    content_tokens: int = 80
    # domains
    genders: tuple[str, ...] = GENDERS
    speakers: tuple[str, ...] = tuple(f"spk{i:03d}" for i in range(32))
    mel_frontend: str = "xfavot24k"

    @property
    def f0_channels(self) -> int:
        return 4 * self.jdc_width

    @property
    def num_domains(self) -> int:
        """Mapping network / audio discriminator heads: genders first, then speakers."""
        return len(self.genders) + len(self.speakers)

    def domain_names(self) -> list[str]:
        return list(self.genders) + list(self.speakers)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["genders"] = list(self.genders)
        d["speakers"] = list(self.speakers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d = dict(d)
        for key in ("genders", "speakers"):
            if key in d:
                d[key] = tuple(d[key])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.mel_frontend not in MEL_FRONTENDS:
            raise ValueError(f"mel_frontend must be one of {MEL_FRONTENDS}, got {self.mel_frontend!r}")
        if tuple(self.genders) != GENDERS:
            raise ValueError(f"genders must be {GENDERS}")
        if self.img_size < 32 or self.img_size & (self.img_size - 1):
            raise ValueError("img_size must be a power of two >= 32")
        if self.n_mels != 80:
            raise ValueError("the audio networks are built for 80 mel bands")
        if not 1 <= self.img_down_blocks <= math.log2(self.img_size) - 2:
            raise ValueError("img_down_blocks must leave the bottleneck at least 4x4")


PRESETS: dict[str, dict] = {
    # Tables 6-9: G_I 128->...->512, G_A 64->...->512, M 4x512 shared + 4x512 per head, 2 + 128 domains.
    "paper": dict(
        img_dim_in=128, img_max_dim=512,
        audio_dim_in=64, audio_max_dim=512,
        map_hidden=512, map_head_dim=512, map_head_layers=4,
        jdc_width=64, content_dim=256, content_layers=6,
        speakers=tuple(f"spk{i:03d}" for i in range(128)),
    ),
    "small": dict(),
    # the embedded default model, sized for a 2-core CPU (benchmarks/bench_train.py): 64-px faces,
    # thin full-resolution layers, a narrower audio generator and F0 network
    "cpu": dict(
        img_size=64, img_dim_in=16, img_max_dim=128, img_down_blocks=3, img_skip=True,
        audio_dim_in=8, audio_max_dim=128, jdc_width=8,
    ),
    "tiny": dict(
        img_size=64, img_dim_in=8, img_max_dim=32,
        audio_dim_in=8, audio_max_dim=32,
        map_hidden=32, map_head_dim=32, map_head_layers=2,
        jdc_width=4, content_dim=32, content_layers=1,
        speakers=tuple(f"spk{i:03d}" for i in range(4)),
    ),
}


PRESET_NAMES = tuple(PRESETS)


# The official code's generators where they differ from the paper's tables, at the same channel
# counts: for side-by-side benchmarks (core/bench.py), not for training.
REFERENCE_ARCHITECTURES = {
    "StarGANv2 G_I (128 px, 3 down blocks)": dict(img_down_blocks=3),
    "StarGANv2-VC G_A (extra F0 AdaIN block)": dict(audio_f0_block=True),
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = ModelConfig(preset=name, **{**PRESETS[name], **overrides})
    cfg.validate()
    return cfg
