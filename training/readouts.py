"""Read-outs fitted on a trained model and stored with it; the networks stay as they were.

    xfavot attach-readouts --checkpoint MODEL --corpus CORPUS --out MODEL_WITH_READOUTS

- **face gender** (tensors `face_gender.weight` (genders, D) / `.bias`): logistic regression on
  E_I's trunk features of the corpus's training faces and of `rendered` fresh identities in 4 poses
  each (training.data.face_bank.render_identities; 960 by default). On the corpus's 77 training
  identities alone it read 93.7 % of the validation faces right and 5 of the app's 8 bundled
  avatars; with 960 rendered identities as well 99.0 % and 7 of 8 in the probe
  (/work/runs/probes/face_gender_bank.py), 8 of 8 with the shipped fit. The Engine's fallback, "the D_I head that
  finds the face most real", is a heuristic D_I is never trained for (each head only sees its own
  gender's real faces): it read the m7 model's validation faces right 76.9 % of the time, the
  read-out 95.2 %. The app uses the estimate whenever the gender is left on "auto", e.g. for the
  avatar a voice is converted toward.
- **voice register** (`f0_register.weight` (style_dim,) / `.bias`): ridge regression from a style
  (E_I of training speakers' faces, E_A of their voices) to the log of the speaker's median F0.
  The Engine transposes a source voice to the register a face or latent style implies before
  G_A converts it (a voice reference's own F0 is measured instead): G_A, trained a few thousand
  steps, keeps too much of the source's pitch (see core/engine.py `voice_from_style`).

- **face styles** (`face_styles.<gender>` (identities, style_dim)): each training identity's
  mean E_I style over up to `per_speaker` of its faces, by gender. Faces made from a voice take
  the voice's style snapped onto these (core/engine.py `snap_to_faces`).

Each fit's numbers on the corpus's validation speakers are kept in the file's meta["readouts"].
A model fine-tuned later has a new E_I and starts without read-outs (the fallbacks apply).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core import audio, checkpoint
from core.engine import Engine
from core.errors import UserError

from .data.datasets import load_synthetic


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, classes: int, l2: float = 1e-2,
                 steps: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression; the standardisation is folded into the returned
    (weight (classes, D), bias (classes,)), so logits = features @ weight.T + bias."""
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    weight = torch.zeros(classes, z.size(1), requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, labels) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (weight / std).detach(), (bias - (weight / std) @ mean).detach()


def fit_ridge(features: torch.Tensor, targets: torch.Tensor, l2: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression on standardised features, folded back: prediction = features @ weight + bias."""
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = ((features - mean) / std).double()
    t = (targets - targets.mean()).double()
    w = torch.linalg.solve(z.T @ z + l2 * torch.eye(z.size(1), dtype=z.dtype), z.T @ t).float()
    weight = w / std
    return weight, targets.mean() - weight @ mean


def accuracy(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((features @ weight.T + bias).argmax(1) == labels).float().mean())


def face_features(engine: Engine, speakers, per_speaker: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E_I trunk features (N, D) of up to `per_speaker` faces per speaker, and gender indices (N,)."""
    items = [(s, p) for s in speakers for p in s.faces[:per_speaker]]
    labels = [engine.cfg.genders.index(s.gender) for s, _ in items]
    return engine.face_features([p for _, p in items]), torch.tensor(labels)


def rendered_face_features(engine: Engine, identities: int, progress: bool = True, poses: int = 4,
                           seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """E_I trunk features (N, D) and gender indices (N,) of fresh rendered identities (groups of 24)."""
    from .data.face_bank import faces_to_tensor, render_identities
    from .data.identity import GENDERS

    faces, genders = render_identities(engine.cfg.img_size, max(1, identities // 24), 24, poses, seed,
                                       progress=progress)
    images = faces_to_tensor(faces.reshape(-1, *faces.shape[-3:]))
    with torch.inference_mode():
        features = torch.cat([engine.nets["style_encoder_image"].shared(images[i:i + 256].to(engine.device)).cpu()
                              for i in range(0, len(images), 256)])
    labels = torch.tensor([engine.cfg.genders.index(GENDERS[g]) for g in genders.reshape(-1).tolist()])
    return features, labels.repeat_interleave(poses)


def register_samples(engine: Engine, speakers, per_speaker: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Styles (N, style_dim) of speakers' faces and voices, their speakers' log median F0 (N,),
    and each row's kind ("face" / "voice")."""
    styles, targets, kinds = [], [], []
    for s in speakers:
        f0 = audio.median_f0([audio.load_audio(p) for p in s.voices[:4]])
        if not np.isfinite(f0):
            continue
        for kind, paths, encode in (("face", s.faces, engine.style_of_face), ("voice", s.voices, engine.style_of_voice)):
            for path in paths[:per_speaker]:
                styles.append(encode(path, s.gender).vector)
                targets.append(np.log(f0))
                kinds.append(kind)
    return torch.tensor(np.stack(styles)), torch.tensor(targets, dtype=torch.float32), kinds


def face_styles(engine: Engine, speakers, per_speaker: int) -> dict[str, torch.Tensor]:
    """gender -> (identities, style_dim): each speaker's mean E_I style over its first faces."""
    out: dict[str, list[np.ndarray]] = {}
    for s in speakers:
        styles = [engine.style_of_face(p, s.gender).vector for p in s.faces[:per_speaker]]
        out.setdefault(s.gender, []).append(np.mean(styles, axis=0))
    return {g: torch.tensor(np.stack(v)) for g, v in out.items()}


def register_error(weight, bias, styles, targets) -> float:
    """Mean relative error of the predicted F0 (Hz)."""
    return float((torch.exp(styles @ weight + bias - targets) - 1).abs().mean())


def attach_readouts(model_path: str | Path, corpus: str | Path, out: str | Path, per_speaker: int = 8,
                    rendered: int = 960, progress: bool = True) -> dict:
    """Fit the read-outs on the corpus's training split (the face gender also on `rendered` fresh
    identities, a multiple of 24), report them on its validation split and write MODEL + read-outs
    to `out`. Returns what goes into meta["readouts"]."""
    engine = Engine(align_faces=False)
    engine.load(model_path, "cpu", vocoder="griffin-lim")
    data = load_synthetic(corpus)
    known = [s for s in data.speakers if s.gender in engine.cfg.genders]
    train = [s for s in known if s.split == "train"]
    val = [s for s in known if s.split == "val" and s.faces and s.voices]
    with_faces = [s for s in train if s.faces]
    if len({s.gender for s in with_faces}) < len(engine.cfg.genders):
        raise UserError(f"{corpus}: the training faces must include every gender ({', '.join(engine.cfg.genders)})")
    x, y = face_features(engine, with_faces, per_speaker)
    if rendered:
        xr, yr = rendered_face_features(engine, rendered, progress)
        x, y = torch.cat([x, xr]), torch.cat([y, yr])
    gender_w, gender_b = fit_logistic(x, y, len(engine.cfg.genders))
    info = {"face_gender": {"train_faces": len(y), "rendered_identities": rendered,
                            "train_accuracy": accuracy(gender_w, gender_b, x, y)}}
    bank = face_styles(engine, with_faces, per_speaker // 2)
    info["face_styles"] = {g: len(v) for g, v in bank.items()}
    styles, targets, _ = register_samples(engine, [s for s in train if s.voices], per_speaker // 2)
    register_w, register_b = fit_ridge(styles, targets)
    info["f0_register"] = {"train_styles": len(targets),
                           "train_rel_error": register_error(register_w, register_b, styles, targets)}
    if val:
        xv, yv = face_features(engine, val, per_speaker)
        info["face_gender"].update(val_faces=len(yv), val_accuracy=accuracy(gender_w, gender_b, xv, yv))
        sv, tv, kinds = register_samples(engine, val, per_speaker // 2)
        for kind in ("face", "voice"):
            rows = torch.tensor([k == kind for k in kinds])
            info["f0_register"][f"val_rel_error_from_{kind}s"] = register_error(register_w, register_b, sv[rows], tv[rows])
    tensors, header = checkpoint.load_tensors(model_path)
    prefixes = checkpoint.READOUT_PREFIXES  # (face gender, register, face styles)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(prefixes)}
    tensors.update({prefixes[0] + "weight": gender_w.contiguous(), prefixes[0] + "bias": gender_b.contiguous(),
                    prefixes[1] + "weight": register_w.contiguous(), prefixes[1] + "bias": register_b.reshape(1)})
    tensors.update({prefixes[2] + g: v.contiguous() for g, v in bank.items()})
    header.setdefault("meta", {})["readouts"] = info
    checkpoint.save_tensors(out, tensors, header)
    return info
