"""Training configuration: the paper's reference hyper-parameters, per-preset overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

VOCODER_KINDS = ("vocos", "hifigan", "pwg")  # training/vocoder.py's recipes


@dataclass
class TrainConfig:
    preset: str = "small"
    steps: int = 20000
    batch_size: int = 8
    crop_frames: int = 192          # 2.47 s training crops (paper appendix A)
    seed: int = 0
    # optimisers: Adam for the image side and M, AdamW for the audio side (appendix A)
    lr: float = 1e-4
    lr_mapping: float = 1e-6
    lr_d: float = 0.0               # discriminators' rate; 0 = lr (TTUR runs set it higher)
    betas: tuple[float, float] = (0.0, 0.99)
    weight_decay: float = 1e-4
    adamw_eps: float = 1e-9
    ema_beta: float = 0.999
    # image generator terms (StarGANv2)
    lambda_adv: float = 1.0
    lambda_reg: float = 1.0
    lambda_sty: float = 1.0
    lambda_ds: float = 1.0
    ds_iter: int = 100000
    lambda_cyc: float = 1.0
    # audio generator terms (StarGANv2-VC)
    lambda_adv_audio: float = 2.0
    lambda_sty_audio: float = 1.0
    lambda_ds_audio: float = 1.0
    lambda_cyc_audio: float = 5.0
    lambda_norm: float = 1.0
    lambda_asr: float = 10.0
    lambda_f0: float = 5.0
    lambda_adv_cls: float = 0.5
    adv_cls_start: int = 0          # step from which the source classifier's adversarial term is on
    norm_bias: float = 0.5
    # audio discriminator terms
    lambda_reg_audio: float = 1.0
    lambda_adv_cls_d: float = 0.1
    lambda_con_reg: float = 10.0
    # cross-modal style consistency (InfoNCE)
    lambda_xm: float = 1.0
    temperature: float = 0.1
    lambda_xm_l1: float = 0.0       # |E_A(voice) - E_I(face)| of the same speaker (a deviation: see losses.py)
    lambda_style_stats: float = 0.0  # M's samples and audio-only voices' styles: per-gender mean/spread of face styles
    speaker_head_prob: float = 0.5
    kind_weights: dict | None = None  # how often each data kind provides a step's targets; None = by speaker count
    # CPU-budget levers (training/objective.py): lazy R1, DiffAugment, reconstruction warm-up
    r1_every: int = 1
    diffaug: bool = False
    rec_warmup: int = 0             # steps over which lambda_rec(_audio) anneal linearly to 0
    lambda_rec: float = 1.0
    lambda_rec_audio: float = 0.0
    pair_warmup: int = 0            # steps with rendered translation targets (training/data/pairs.py), annealed
    lambda_pair: float = 1.0
    warmup_fraction: float = 0.0   # > 0: rec/pair warm-ups last this share of the run, the GAN ramps in over half of it
    gan_rampup: int = 0             # steps over which the image adversarial and diversity terms ramp in from 0
    gan_start: int = 0              # steps before that ramp begins (G_I learns from the pair/rec terms first)
    lambda_f0_register: float = 0.0  # converted mean log-F0 vs the reference's, annealed over pair_warmup
    pair_floor: float = 0.0         # share of lambda_pair kept after its warm-up (0: the paper's objective)
    f0_register_floor: float = 0.0  # share of lambda_f0_register kept after the warm-up
    pair_trains_encoders: bool = False  # the pair term's gradient also reaches the reference's style encoder
    mic_augment: float = 0.0        # share of reference voice crops through training/data/augment.py
    init_fresh: tuple[str, ...] = ()  # networks that --init leaves freshly initialised (e.g. a new G_I design)
    train_only: tuple[str, ...] = ()  # if set, only these learn (e.g. G_A, D_A on a new JDC); the rest stay as --init left them
    # learning curve (training/curve.py): `xfavot eval` on a checkpoint every eval_every steps
    eval_every: int = 0
    eval_corpus: str = ""
    eval_split: str = "test"
    eval_vocoder: str = ""
    # operations
    checkpoint_every: int = 500
    keep_last: int = 3
    sample_every: int = 500
    val_every: int = 500
    log_every: int = 10
    amp: bool = True                # bf16 autocast on CUDA and on CPUs with native bf16
    channels_last: bool = True      # on CUDA
    compile: bool = False
    warm_cache: bool = True         # decode every file in parallel before the first step

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


# CPU-sized runs train for thousands, not 100k, of steps: the diversity weight decays over the run
# and the mapping network learns at the other modules' rate (1e-6 would leave it where it started).
TRAIN_PRESETS = {
    "paper": dict(batch_size=32, steps=20000),
    "small": dict(batch_size=8, lr_mapping=1e-5, ds_iter=0),
    "cpu": dict(batch_size=8, crop_frames=128, lr=5e-4, lr_mapping=5e-5, betas=(0.5, 0.99), ds_iter=0, r1_every=16,
                diffaug=True, warmup_fraction=0.6, lambda_f0_register=2.0, mic_augment=0.25,
                kind_weights={"paired": 2.0, "audio": 1.0, "image": 1.0},
                checkpoint_every=250, sample_every=250, val_every=250),
    "tiny": dict(batch_size=4, crop_frames=96, lr_mapping=1e-4, ds_iter=0, checkpoint_every=50, sample_every=50,
                 val_every=50, ema_beta=0.99),
}


def train_preset(name: str, **overrides) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {name!r}")
    cfg = TrainConfig(preset=name, **{**TRAIN_PRESETS[name], **overrides})
    if cfg.ds_iter == 0:
        cfg.ds_iter = cfg.steps
    if cfg.warmup_fraction > 0:  # schedules in steps, fixed now: a resumed run with more steps keeps them
        warmup = int(cfg.warmup_fraction * cfg.steps)
        for key, value in (("rec_warmup", warmup), ("pair_warmup", warmup), ("gan_rampup", warmup // 2)):
            if key not in overrides:
                setattr(cfg, key, value)
    return cfg
