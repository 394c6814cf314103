"""`xfavot finetune`: adapt a trained model to a custom avatar set (paper section 4.5, Fig. 7).

    xfavot finetune --avatars DIR [--voices DIR] --from CKPT --steps N --out RUN_DIR [--resume]

The image side (G_I, E_I, D_I) learns the new style from the avatar images; the mapping network
and the audio side are frozen, so styles from voices (E_A) and latents (M) keep their meaning and
"voice -> matching avatar" produces the new style afterwards. Avatar folders without female/ and
male/ subfolders are split by the base model's own gender estimate (D_I's heads).
"""
from __future__ import annotations

import logging

import torch

from core import checkpoint, face

from .config import TRAIN_PRESETS, train_preset
from .data.datasets import Dataset, Speaker, load_avatar_set
from .trainer import Trainer

log = logging.getLogger(__name__)


def split_by_estimated_gender(data: Dataset, base) -> Dataset:
    """Pools without a gender are divided by the base model's D_I gender estimate."""
    nets, cfg, _, _ = checkpoint.load_model(base, require=("discriminator_image",))
    disc = nets["discriminator_image"].eval()
    speakers = []
    for s in data.speakers:
        if s.gender is not None:
            speakers.append(s)
            continue
        groups: dict[str, list] = {"female": [], "male": []}
        with torch.no_grad():
            for path in s.faces:
                img = face.prepare_face(face.load_image(path), cfg.img_size, None)
                logits = disc.logits(face.image_to_tensor(img)[None])[0]
                groups[cfg.genders[int(logits.argmax())]].append(path)
        for gender, faces in groups.items():
            if faces:
                speakers.append(Speaker(f"{s.id}_{gender}", gender, "image", s.split, faces=faces, identity=False))
        log.warning("%s had no gender folders: the base model sorted its %d images into %d female and %d male",
                    s.id, len(s.faces), len(groups["female"]), len(groups["male"]))
    return Dataset(data.name, speakers, data.skipped)


def run_finetune(avatars, voices, base, steps: int, out, device: str = "cpu", resume: bool = False,
                 batch_size: int | None = None, seed: int = 0, sample_every: int | None = None,
                 on_progress=None, on_samples=None) -> Trainer:
    """Build (or resume) a fine-tuning Trainer; call .run() on it."""
    data = load_avatar_set(avatars, voices)
    data.log_skipped()
    if resume:
        return Trainer.resume(split_by_estimated_gender(data, base) if base else data, out, steps=steps,
                              device=device, on_progress=on_progress, on_samples=on_samples, finetune=True)
    header = checkpoint.require_model(checkpoint.read_header(base), base)
    from core.config import ModelConfig

    model_cfg = ModelConfig.from_dict(header["config"])
    data = split_by_estimated_gender(data, base)
    preset_name = model_cfg.preset if model_cfg.preset in TRAIN_PRESETS else "small"
    overrides = {k: v for k, v in dict(batch_size=batch_size, sample_every=sample_every).items() if v}
    cfg = train_preset(preset_name, steps=steps, seed=seed, **overrides)
    return Trainer(data, out, cfg, model_cfg, device=device, init_from=base, finetune=True,
                   on_progress=on_progress, on_samples=on_samples)
