"""The XFaVoT trainer: `Trainer(...).run()` or step-by-step `Trainer.step()` (the GUI drives it).

One iteration = one StepPlan (training/data/sampler.py): a discriminator update (D_I, D_A, C_A)
then a generator update (G_I, G_A, E_I, E_A, M), with the Table 1 switches the plan carries.
Reference styles are detached in the generator losses (StarGANv2: a reference pass updates the
generator only); the encoders learn through style reconstruction, cycle and InfoNCE terms.

Everything random in a step comes from a generator seeded by (seed, step, rank), so a run
resumed from a checkpoint replays exactly what an uninterrupted run does.

RUN_DIR holds step-NNNNNN.safetensors (last K), best.safetensors, run.json (state pointer),
log.jsonl (losses), tb/ (TensorBoard), samples/ (face grids and WAVs). Every .safetensors there
is a complete model checkpoint (EMA weights) that `xfavot ... --checkpoint` accepts.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from core import audio, checkpoint
from core.config import ModelConfig, preset
from core.errors import UserError
from core.face import tensor_to_image
from core.model import EMA_MODULES, build_networks

from . import losses as L
from .batches import BatchBuilder
from .config import TrainConfig
from .data.datasets import Dataset
from .data.sampler import StepPlan, Table1Sampler

log = logging.getLogger(__name__)

IMAGE_SIDE = ("generator_image", "style_encoder_image", "discriminator_image", "mapping")
AUDIO_SIDE = ("generator_audio", "style_encoder_audio", "discriminator_audio", "classifier_audio")
DISCRIMINATORS = ("discriminator_image", "discriminator_audio", "classifier_audio")
GENERATOR_SIDE = ("generator_image", "generator_audio", "style_encoder_image", "style_encoder_audio", "mapping")
FROZEN = ("jdc", "content")


class _Objective(torch.nn.Module):
    """One phase's loss as one module forward, so DistributedDataParallel sees a single forward
    and backward per phase (GAN steps call networks several times, R1 needs double backward).
    Only the networks this phase updates are registered: only their gradients are all-reduced."""

    def __init__(self, trainer: "Trainer", names: tuple[str, ...], compute):
        super().__init__()
        for name in names:
            self.add_module(name, trainer.nets[name])
        self._compute = compute

    def forward(self, plan: StepPlan, batch: dict):
        return self._compute(plan, batch)


def ema_decay(step: int, beta: float) -> float:
    """EMA decay with warm-up: (1 + t) / (10 + t) early on, the configured beta (0.999) later.
    A fixed 0.999 from step 0 keeps the EMA ~e^-0.2 = 82 % at its random start after 200 steps,
    which makes short runs and live previews show nothing."""
    return min(beta, (1 + step) / (10 + step))


def speaker_domains(data: Dataset) -> list[str]:
    """Speaker-identity domains: training speakers with real voices and a real identity."""
    return [s.id for s in data.speakers if s.split == "train" and s.voices and s.identity]


class Trainer:
    def __init__(self, data: Dataset, out_dir: str | Path, cfg: TrainConfig, model_cfg: ModelConfig | None = None,
                 device: str = "cpu", init_from: str | Path | None = None, rank: int = 0, world_size: int = 1,
                 on_progress: Callable[[dict], None] | None = None, on_samples: Callable[[dict], None] | None = None,
                 finetune: bool = False):
        """finetune=True: adapt the image side only (G_I, E_I, D_I) from `init_from`; the mapping
        network and the audio side stay frozen, so the shared style space is kept (paper Fig. 7)."""
        self.cfg, self.out = cfg, Path(out_dir)
        self.finetune = finetune
        self.trained_d = ("discriminator_image",) if finetune else DISCRIMINATORS
        self.trained_g = ("generator_image", "style_encoder_image") if finetune else GENERATOR_SIDE
        self.rank, self.world = rank, world_size
        self.device = torch.device(device)
        self.on_progress, self.on_samples = on_progress, on_samples
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.train_data = data.split("train")
        self.val_data = Dataset(data.name, [s for s in data.speakers if s.split == "val" and s.faces and s.voices])
        self.train_data.validate(need_both_genders=True, need_faces=True, need_voices=not finetune)
        domains = speaker_domains(self.train_data) if model_cfg is None or not finetune else list(model_cfg.speakers)
        if model_cfg is None:
            model_cfg = preset(cfg.preset, speakers=tuple(domains))
        if not finetune and tuple(model_cfg.speakers) != tuple(domains):
            raise UserError(f"the model has {len(model_cfg.speakers)} speaker domains but the data has "
                            f"{len(domains)} training speakers with voices")
        self.model_cfg = model_cfg
        torch.manual_seed(cfg.seed)  # every DDP rank starts from the same weights
        self.nets = build_networks(model_cfg)
        if init_from:
            self._init_from(init_from)
        self.nets.to(self.device)
        if self.device.type == "cuda" and cfg.channels_last:
            for name in ("generator_image", "style_encoder_image", "discriminator_image"):
                self.nets[name].to(memory_format=torch.channels_last)
        if cfg.compile:  # in place: parameter names (and so checkpoints) stay the same
            for name in GENERATOR_SIDE + DISCRIMINATORS:
                self.nets[name].compile()
        for name in self.nets:
            if name in FROZEN or name not in self.trained_d + self.trained_g:
                self.nets[name].eval().requires_grad_(False)
        self.ema = copy.deepcopy(torch.nn.ModuleDict({k: self.nets[k] for k in EMA_MODULES})).eval()
        self.ema.requires_grad_(False)
        self.optims = self._optimizers()
        self.d_objective = self._wrap(_Objective(self, self.trained_d, self._discriminator_loss))
        self.g_objective = self._wrap(_Objective(self, self.trained_g, self._generator_loss))
        self.sampler = Table1Sampler(self.train_data, cfg.batch_size, [] if finetune else domains, seed=cfg.seed,
                                     speaker_head_prob=cfg.speaker_head_prob, rank=rank, world_size=world_size,
                                     need_voices=not finetune)
        self.batches = BatchBuilder(self.train_data, model_cfg.img_size, cfg.crop_frames, model_cfg.mel_frontend)
        self.step_no = 0
        self.best: float | None = None
        self.history: list[str] = []
        self.started = time.perf_counter()
        self._tb = None
        self._autocast = self.device.type == "cuda" and cfg.amp

    # -- setup --------------------------------------------------------------------------------
    def _init_from(self, path: str | Path, modules: tuple[str, ...] | None = None) -> None:
        """Start from another checkpoint's weights (all modules, or `modules`). Tensors whose shape
        differs (e.g. mapping heads for another speaker set) keep their fresh initialisation."""
        nets, cfg, _, _ = checkpoint.load_model(path)
        loaded = 0
        for name, net in nets.items():
            if modules is not None and name not in modules:
                continue
            mine = self.nets[name].state_dict()
            theirs = {k: v for k, v in net.state_dict().items() if k in mine and mine[k].shape == v.shape}
            self.nets[name].load_state_dict(theirs, strict=False)
            loaded += len(theirs)
        if loaded == 0:
            raise UserError(f"{Path(path).name} ({cfg.preset!r} preset) shares no weights with a "
                            f"{self.model_cfg.preset!r} model")

    def _wrap(self, objective: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return objective
        from torch.nn.parallel import DistributedDataParallel

        # heads not used in a step (mapping domains, C_A's other head) get no gradient
        return DistributedDataParallel(objective, find_unused_parameters=True, broadcast_buffers=False,
                                       device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        optims = {}
        trained = set(self.trained_d + self.trained_g)
        for name in IMAGE_SIDE:
            if name not in trained:
                continue
            lr = c.lr_mapping if name == "mapping" else c.lr
            optims[name] = torch.optim.Adam(self.nets[name].parameters(), lr=lr, betas=c.betas, weight_decay=c.weight_decay)
        for name in AUDIO_SIDE:
            if name not in trained:
                continue
            optims[name] = torch.optim.AdamW(self.nets[name].parameters(), lr=c.lr, betas=c.betas,
                                             weight_decay=c.weight_decay, eps=c.adamw_eps)
        return optims

    # -- one iteration ------------------------------------------------------------------------
    def _batch(self, plan: StepPlan, rng: np.random.Generator) -> dict:
        spk = self.train_data.speakers
        dom = self.sampler.domain_of
        b = {"x_img": self.batches.faces(plan.source_faces, rng)}
        b["g_img_src"] = torch.tensor([int(spk[s].gender == "male") for s, _ in plan.source_faces])
        if plan.source_voices:
            b["x_mel"] = self.batches.mels(plan.source_voices, rng)
            b["g_mel_src"] = torch.tensor([int(spk[s].gender == "male") for s, _ in plan.source_voices])
            b["spk_mel_src"] = torch.tensor([dom.get(spk[s].id, -1) for s, _ in plan.source_voices])
        b["g_trg"] = torch.tensor(plan.target_genders)
        b["y_trg"] = torch.tensor(plan.target_domains)
        if plan.ref_faces:
            b["ref_img"] = self.batches.faces(plan.ref_faces, rng)
            b["ref_img2"] = self.batches.faces(self.batches.other_item(plan.ref_faces, "face", rng), rng)
        if plan.ref_voices:
            b["ref_mel"] = self.batches.mels(plan.ref_voices, rng)
            b["ref_mel2"] = self.batches.mels(self.batches.other_item(plan.ref_voices, "voice", rng), rng)
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        b["z"] = torch.randn(len(plan.target_domains), self.model_cfg.latent_dim, generator=gen)
        b["z2"] = torch.randn(len(plan.target_domains), self.model_cfg.latent_dim, generator=gen)
        b = {k: v.to(self.device) for k, v in b.items()}
        if self.device.type == "cuda" and self.cfg.channels_last:
            for k in ("x_img", "ref_img", "ref_img2"):
                if k in b:
                    b[k] = b[k].contiguous(memory_format=torch.channels_last)
        # D_A judges a real source under its own domain of the step's type
        if "x_mel" in b:
            speaker_domain = torch.where(b["spk_mel_src"] >= 0, 2 + b["spk_mel_src"], b["g_mel_src"])
            b["y_mel_src"] = speaker_domain if plan.domain_type == "speaker" else b["g_mel_src"]
        return b

    def _styles(self, source: str, b: dict, second: bool = False) -> torch.Tensor:
        n = self.nets
        suffix = "2" if second else ""
        if source == "latent":
            return n["mapping"](b["z" + suffix], b["y_trg"])
        if source == "image":
            return n["style_encoder_image"](b["ref_img" + suffix], b["g_trg"]).detach()
        return n["style_encoder_audio"](b["ref_mel" + suffix], b["g_trg"]).detach()

    def _cls_labels(self, plan: StepPlan, b: dict, target: bool) -> tuple[str, torch.Tensor, torch.Tensor]:
        """Which C_A head, the rows where source and target differ, and the labels (source or target)."""
        if plan.domain_type == "speaker":
            src, trg = b["spk_mel_src"], b["y_trg"] - 2
            rows = (src >= 0) & (src != trg)
            return "speaker", rows, (trg if target else src)[rows]
        src, trg = b["g_mel_src"], b["g_trg"]
        rows = src != trg
        return "gender", rows, (trg if target else src)[rows]

    def _classify(self, mel: torch.Tensor, head: str) -> torch.Tensor:
        gender_logits, speaker_logits = self.nets["classifier_audio"](mel)
        return gender_logits if head == "gender" else speaker_logits

    def step(self) -> dict[str, float]:
        """One training iteration; returns the logged loss values."""
        c, n = self.cfg, self.nets
        plan = self.sampler.plan(self.step_no)
        rng = np.random.default_rng([c.seed, self.step_no, self.rank, 7])
        for name in GENERATOR_SIDE + DISCRIMINATORS:
            n[name].train()
        b = self._batch(plan, rng)
        d_losses = self._update(self.d_objective, self.trained_d, plan, b)
        g_losses = self._update(self.g_objective, self.trained_g, plan, b)
        self._update_ema()
        self.step_no += 1
        out = {**d_losses, **g_losses, "kind": plan.kind, "domain_type": plan.domain_type,
               "ref_image_g": plan.image_reference, "ref_audio_g": plan.audio_reference}
        return out

    def _update(self, objective, names: tuple[str, ...], plan: StepPlan, b: dict) -> dict[str, float]:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._autocast):
            loss, logs = objective(plan, b)
        for name in names:
            self.optims[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in names:
            self.optims[name].step()
        return {k: float(v) for k, v in logs.items()}

    def _discriminator_loss(self, plan: StepPlan, b: dict):
        loss, logs = self._discriminator_loss_image(plan, b)
        if not self.finetune:
            loss_a, logs_a = self._discriminator_loss_audio(plan, b)
            loss, logs = loss + loss_a, {**logs, **logs_a}
        return loss, logs

    def _discriminator_loss_image(self, plan: StepPlan, b: dict):
        c, n = self.cfg, self.nets
        with torch.no_grad():
            fake_img = n["generator_image"](b["x_img"], self._styles(plan.image_reference, b))
        x_img = b["x_img"].detach().requires_grad_(True)
        real = n["discriminator_image"](x_img, b["g_img_src"])
        with torch.autocast("cuda", enabled=False):
            r1_img = L.r1_penalty(real.float(), x_img)
        d_img = L.adversarial(real, True) + L.adversarial(n["discriminator_image"](fake_img, b["g_trg"]), False)
        return d_img + c.lambda_reg * r1_img, {"D/img_adv": d_img.detach(), "D/img_r1": r1_img.detach()}

    def _discriminator_loss_audio(self, plan: StepPlan, b: dict):
        c, n = self.cfg, self.nets
        with torch.no_grad():
            f0_src = n["jdc"].get_feature(b["x_mel"])
            fake_mel = n["generator_audio"](b["x_mel"], self._styles(plan.audio_reference, b), f0_src)
        x_mel = b["x_mel"].detach().requires_grad_(True)
        real_a = n["discriminator_audio"](x_mel, b["y_mel_src"])
        with torch.autocast("cuda", enabled=False):
            r1_aud = L.r1_penalty(real_a.float(), x_mel)
        d_aud = L.adversarial(real_a, True) + L.adversarial(n["discriminator_audio"](fake_mel, b["y_trg"]), False)
        con_reg = L.consistency_regularization(real_a, n["discriminator_audio"](self._augment_mel(b["x_mel"]),
                                                                                b["y_mel_src"]))
        head, rows, labels = self._cls_labels(plan, b, target=False)
        cls = L.source_classification(self._classify(fake_mel[rows], head), labels) if rows.any() else fake_mel.sum() * 0
        cls_on = self.step_no >= c.adv_cls_start
        loss = (d_aud + c.lambda_reg_audio * r1_aud + c.lambda_con_reg * con_reg
                + (c.lambda_adv_cls_d * cls if cls_on else 0))
        return loss, {"D/aud_adv": d_aud.detach(), "D/aud_r1": r1_aud.detach(), "D/con_reg": con_reg.detach(),
                      "D/src_cls": cls.detach()}

    def _augment_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Label-preserving augmentation for the consistency term: gain and a small time shift."""
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step_no)
        gain = (torch.rand(mel.size(0), 1, 1, 1, generator=gen) - 0.5).to(mel.device) * 0.25
        shift = int(torch.randint(-8, 9, (1,), generator=gen))
        return torch.roll(mel, shifts=shift, dims=-1) + gain

    def _generator_loss(self, plan: StepPlan, b: dict):
        loss, out = self._generator_loss_image(plan, b)
        if not self.finetune:
            loss_a, out_a = self._generator_loss_audio(plan, b)
            loss, out = loss + loss_a, {**out, **out_a}
            # cross-modal style consistency on paired targets (Table 1)
            if plan.use_infonce:
                n = self.nets
                xm = L.infonce(n["style_encoder_image"](b["ref_img"], b["g_trg"]),
                               n["style_encoder_audio"](b["ref_mel"], b["g_trg"]), self.cfg.temperature)
                loss = loss + self.cfg.lambda_xm * xm
                out["G/infonce"] = xm.detach()
        out["G/total"] = loss.detach()
        return loss, out

    def _generator_loss_image(self, plan: StepPlan, b: dict):
        c, n = self.cfg, self.nets
        lam_ds = L.diversity_weight(self.step_no, c.lambda_ds, c.ds_iter)
        s1, s2 = self._styles(plan.image_reference, b), self._styles(plan.image_reference, b, second=True)
        fake = n["generator_image"](b["x_img"], s1)
        adv_i = L.adversarial(n["discriminator_image"](fake, b["g_trg"]), True)
        sty_i = L.style_reconstruction(n["style_encoder_image"](fake, b["g_trg"]), s1)
        ds_i = L.diversity(fake, n["generator_image"](b["x_img"], s2).detach())
        s_org = n["style_encoder_image"](b["x_img"], b["g_img_src"])
        cyc_i = L.cycle_consistency(n["generator_image"](fake, s_org), b["x_img"])
        loss = adv_i + c.lambda_sty * sty_i - lam_ds * ds_i + c.lambda_cyc * cyc_i
        return loss, {"G/img_adv": adv_i.detach(), "G/img_sty": sty_i.detach(), "G/img_ds": ds_i.detach(),
                      "G/img_cyc": cyc_i.detach(), "lambda_ds": torch.tensor(lam_ds)}

    def _generator_loss_audio(self, plan: StepPlan, b: dict):
        c, n = self.cfg, self.nets
        lam_ds_a = L.diversity_weight(self.step_no, c.lambda_ds_audio, c.ds_iter)
        s1, s2 = self._styles(plan.audio_reference, b), self._styles(plan.audio_reference, b, second=True)
        x_mel = b["x_mel"]
        with torch.no_grad():
            f0_real, _, f0_feat = n["jdc"](x_mel)
            content_real = n["content"].get_feature(x_mel)
        fake_mel = n["generator_audio"](x_mel, s1, f0_feat)
        adv_a = L.adversarial(n["discriminator_audio"](fake_mel, b["y_trg"]), True)
        sty_a = L.style_reconstruction(n["style_encoder_audio"](fake_mel, b["g_trg"]), s1)
        ds_a = L.diversity(fake_mel, n["generator_audio"](x_mel, s2, f0_feat).detach())
        f0_fake, _, f0_feat_fake = n["jdc"](fake_mel)
        s_org = n["style_encoder_audio"](x_mel, b["g_mel_src"])
        cyc_a = L.cycle_consistency(n["generator_audio"](fake_mel, s_org, f0_feat_fake), x_mel)
        f0_l = L.f0_consistency(f0_fake, f0_real)
        asr_l = L.speech_consistency(n["content"].get_feature(fake_mel), content_real)
        norm_l = L.norm_consistency(fake_mel, x_mel, c.norm_bias)
        head, rows, labels = self._cls_labels(plan, b, target=True)
        cls = L.source_classification(self._classify(fake_mel[rows], head), labels) if rows.any() else fake_mel.sum() * 0
        cls_on = self.step_no >= c.adv_cls_start
        loss = (c.lambda_adv_audio * adv_a + c.lambda_sty_audio * sty_a - lam_ds_a * ds_a
                + c.lambda_cyc_audio * cyc_a + c.lambda_f0 * f0_l + c.lambda_asr * asr_l
                + c.lambda_norm * norm_l + (c.lambda_adv_cls * cls if cls_on else 0))
        out = {"G/aud_adv": adv_a, "G/aud_sty": sty_a, "G/aud_ds": ds_a, "G/aud_cyc": cyc_a, "G/f0": f0_l,
               "G/asr": asr_l, "G/norm": norm_l, "G/src_cls": cls}
        return loss, {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = ema_decay(self.step_no, self.cfg.ema_beta)
        for name in EMA_MODULES:
            if name not in self.trained_g:
                continue
            for p_ema, p in zip(self.ema[name].parameters(), self.nets[name].parameters()):
                p_ema.lerp_(p, 1 - beta)
            for b_ema, b in zip(self.ema[name].buffers(), self.nets[name].buffers()):
                b_ema.copy_(b)

    # -- validation and samples ---------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Cross-modal retrieval on held-out paired speakers with the EMA encoders: for each
        speaker's voice, is its own face the nearest in style space (top-1)?"""
        spk = self.val_data.speakers
        if len(spk) < 2:
            return {}
        genders = torch.tensor([int(s.gender == "male") for s in spk], device=self.device)
        faces = torch.stack([self._val_face(s.faces[0]) for s in spk]).to(self.device)
        mels = torch.stack([self._val_mel(s.voices[0]) for s in spk]).to(self.device)
        fs = torch.nn.functional.normalize(self.ema["style_encoder_image"](faces, genders), dim=-1)
        vs = torch.nn.functional.normalize(self.ema["style_encoder_audio"](mels, genders), dim=-1)
        sim = vs @ fs.t()
        top1 = (sim.argmax(1) == torch.arange(len(spk), device=self.device)).float().mean().item()
        return {"val/retrieval_top1": top1, "val/speakers": float(len(spk))}

    def _val_face(self, path) -> torch.Tensor:
        from core import face

        return face.image_to_tensor(face.prepare_face(face.load_image(path), self.model_cfg.img_size, None))

    def _val_mel(self, path) -> torch.Tensor:
        mel = audio.log_mel(audio.load_audio(path), self.model_cfg.mel_frontend)
        mel, _ = audio.pad_frames(mel, minimum=self.cfg.crop_frames)
        return mel[:, : self.cfg.crop_frames][None]

    @torch.no_grad()
    def write_samples(self) -> dict:
        """A face grid (rows: source faces; columns: voice references of different speakers)
        and converted voices, from the EMA networks."""
        from PIL import Image

        out_dir = self.out / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        pool = self.val_data.speakers or [s for s in self.train_data.speakers if s.faces and s.voices]
        refs = pool[:4]
        src = self.train_data.speakers
        faces_src = [i for i, s in enumerate(src) if s.faces][:4]
        x = torch.stack([self._val_face(src[i].faces[j % len(src[i].faces)]) for j, i in enumerate(faces_src)])
        x = x.to(self.device)
        size = self.model_cfg.img_size
        columns = len(refs) if refs else 4
        grid = Image.new("RGB", ((columns + 1) * size, (len(faces_src) + 1) * size), (255, 255, 255))
        for r in range(len(faces_src)):
            grid.paste(tensor_to_image(x[r]), (0, (r + 1) * size))
        for c_ in range(columns):
            if refs:  # columns are reference voices (their face above them)
                ref = refs[c_]
                grid.paste(tensor_to_image(self._val_face(ref.faces[0])), ((c_ + 1) * size, 0))
                g = torch.full((len(faces_src),), int(ref.gender == "male"), device=self.device)
                mel = self._val_mel(ref.voices[0])[None].to(self.device).expand(len(faces_src), -1, -1, -1)
                s = self.ema["style_encoder_audio"](mel, g)
            else:  # no voices (e.g. an avatar set alone): columns are latent styles, alternating genders
                z = torch.randn(1, self.model_cfg.latent_dim, generator=torch.Generator().manual_seed(c_))
                s = self.ema["mapping"](z.to(self.device), torch.tensor([c_ % 2], device=self.device))
                s = s.expand(len(faces_src), -1)
            for r, img in enumerate(self.ema["generator_image"](x, s)):
                grid.paste(tensor_to_image(img), ((c_ + 1) * size, (r + 1) * size))
        name = "faces-from-voices" if refs else "faces-from-latents"
        grid_path = out_dir / f"{name}-{self.step_no:06d}.png"
        checkpoint.atomic_write(grid_path, lambda tmp: grid.save(tmp, format="PNG"))
        result = {"step": self.step_no, "faces": str(grid_path)}
        if self.finetune or not refs:
            if self.on_samples:
                self.on_samples(result)
            return result
        # one source voice converted to match the first reference face
        from core.vocoder import Vocoder

        voice_src = next(s for s in src if s.voices)
        mel = audio.log_mel(audio.load_audio(voice_src.voices[0]), self.model_cfg.mel_frontend)
        mel, t = audio.pad_frames(mel, multiple=4)
        g = torch.tensor([int(refs[0].gender == "male")], device=self.device)
        s = self.ema["style_encoder_image"](self._val_face(refs[0].faces[0])[None].to(self.device), g)
        m = mel[None, None].to(self.device)
        converted = self.ema["generator_audio"](m, s, self.nets["jdc"].get_feature(m))[0, 0, :, :t]
        wav = Vocoder.griffin_lim(self.model_cfg.mel_frontend)(converted.cpu()).numpy()
        wav_path = out_dir / f"voice-from-face-{self.step_no:06d}.wav"
        checkpoint.atomic_write(wav_path, lambda tmp: sf.write(tmp, np.clip(wav, -1, 1), audio.SAMPLE_RATE,
                                                               format="WAV", subtype="PCM_16"))
        result["voice"] = str(wav_path)
        if self.on_samples:
            self.on_samples(result)
        return result

    # -- checkpoints --------------------------------------------------------------------------
    def _state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, optim_meta = {}, {}
        for name in EMA_MODULES:  # inference weights are the EMA copies
            for k, v in self.ema[name].state_dict().items():
                tensors[f"{name}.{k}"] = v
            for k, v in self.nets[name].state_dict().items():
                tensors[f"train.{name}.{k}"] = v
        for name in DISCRIMINATORS + FROZEN:
            for k, v in self.nets[name].state_dict().items():
                tensors[f"{name}.{k}"] = v
        for name, opt in self.optims.items():
            sd = opt.state_dict()
            optim_meta[name] = {"param_groups": sd["param_groups"], "scalars": {}}
            for idx, st in sd["state"].items():
                for key, value in st.items():
                    if torch.is_tensor(value):
                        tensors[f"optim.{name}.{idx}.{key}"] = value
                    else:
                        optim_meta[name]["scalars"][f"{idx}.{key}"] = value
        return tensors, optim_meta

    def save_checkpoint(self, metrics: dict | None = None) -> Path:
        if self.rank != 0:
            return self.out / "none"
        tensors, optim_meta = self._state_tensors()
        path = self.out / f"step-{self.step_no:06d}.safetensors"
        meta = {"steps": self.step_no, "train_config": self.cfg.to_dict(), "optimizers": optim_meta,
                "data": self.train_data.summary(), "metrics": metrics or {}, "trained": True,
                "description": f"XFaVoT {self.model_cfg.preset} model trained {self.step_no} steps on {self.train_data.name}"}
        header = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "config": self.model_cfg.to_dict(),
                  "meta": meta, "modules": sorted(EMA_MODULES + DISCRIMINATORS + FROZEN)}
        checkpoint.save_tensors(path, tensors, header)
        self.history = [h for h in self.history if h != path.name] + [path.name]
        for old in self.history[:-self.cfg.keep_last]:
            (self.out / old).unlink(missing_ok=True)
        self.history = self.history[-self.cfg.keep_last:]
        score = (metrics or {}).get("val/retrieval_top1")
        if score is not None and (self.best is None or score >= self.best):
            self.best = score
            checkpoint.atomic_write(self.out / "best.safetensors", lambda tmp: shutil.copyfile(path, tmp))
        state = {"step": self.step_no, "latest": path.name, "history": self.history, "best": self.best,
                 "finetune": self.finetune,
                 "train_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict()}
        checkpoint.atomic_write(self.out / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(state, indent=1)))
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        tensors, header = checkpoint.load_tensors(path)
        meta = header["meta"]
        for name in EMA_MODULES:
            self.ema[name].load_state_dict(checkpoint.split_prefix(tensors, name))
            self.nets[name].load_state_dict(checkpoint.split_prefix(tensors, f"train.{name}"))
        for name in DISCRIMINATORS + FROZEN:
            self.nets[name].load_state_dict(checkpoint.split_prefix(tensors, name))
        for name, opt in self.optims.items():
            om = meta["optimizers"][name]
            state: dict = {}
            for key, value in tensors.items():
                if key.startswith(f"optim.{name}."):
                    idx, field = key[len(f"optim.{name}."):].split(".", 1)
                    state.setdefault(int(idx), {})[field] = value
            for key, value in om["scalars"].items():
                idx, field = key.split(".", 1)
                state.setdefault(int(idx), {})[field] = value
            opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
        self.step_no = int(meta["steps"])
        self.nets.to(self.device)
        self.ema.to(self.device)

    @classmethod
    def resume(cls, data: Dataset, out_dir: str | Path, steps: int | None = None, **kwargs) -> "Trainer":
        out_dir = Path(out_dir)
        state_path = out_dir / "run.json"
        if not state_path.is_file():
            raise UserError(f"{out_dir} has no run to resume (run.json missing)")
        state = json.loads(state_path.read_text())
        cfg = TrainConfig.from_dict(state["train_config"])
        if steps is not None:
            cfg.steps = steps  # only the total changes; ds_iter etc. keep the original schedule
        kwargs.setdefault("finetune", state.get("finetune", False))
        trainer = cls(data, out_dir, cfg, ModelConfig.from_dict(state["model_config"]), **kwargs)
        trainer.load_checkpoint(out_dir / state["latest"])
        trainer.history, trainer.best = state.get("history", []), state.get("best")
        trainer._truncate_log()
        return trainer

    def _truncate_log(self) -> None:
        """Drop log lines from steps after the checkpoint (written before a crash): they are redone."""
        path = self.out / "log.jsonl"
        if path.is_file():
            keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= self.step_no]
            checkpoint.atomic_write(path, lambda tmp: Path(tmp).write_text("".join(l + "\n" for l in keep)))

    # -- the loop -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        """Hold the loop between steps (the app's Pause); stop still works while paused."""
        (self._paused.set if paused else self._paused.clear)()

    def _log(self, values: dict) -> None:
        if self.rank != 0:
            return
        record = {"step": self.step_no, "time": round(time.perf_counter() - self.started, 2), **values}
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        try:
            if self._tb is None:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tb"))
            for k, v in values.items():
                if isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(k, v, self.step_no)
        except ImportError:
            pass

    def run(self, progress: bool = True) -> dict:
        """Train up to cfg.steps; stops cleanly (with a checkpoint) on request_stop or SIGINT/SIGTERM."""
        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda *_: self.request_stop())
        c = self.cfg
        bar = tqdm(total=c.steps, initial=self.step_no, desc="train", disable=not progress or self.rank != 0)
        last: dict = {}
        start_step, t0 = self.step_no, time.perf_counter()
        try:
            while self.step_no < c.steps and not self._stop.is_set():
                if self._paused.is_set():
                    self._stop.wait(0.1)
                    t0, start_step = time.perf_counter(), self.step_no  # a pause does not count in the ETA
                    continue
                values = self.step()
                numbers = {k: v for k, v in values.items() if isinstance(v, float)}
                bad = [k for k, v in numbers.items() if not math.isfinite(v)]
                if bad:
                    raise RuntimeError(f"non-finite losses at step {self.step_no}: {bad}")
                last = values
                if self.step_no % c.log_every == 0 or self.step_no == c.steps:
                    self._log(values)
                metrics = {}
                if self.rank == 0 and (self.step_no % c.val_every == 0 or self.step_no == c.steps):
                    metrics = self.validate()
                    if metrics:
                        self._log(metrics)
                # a first preview right away, then every sample_every steps
                if self.rank == 0 and (self.step_no in (1, c.steps) or self.step_no % c.sample_every == 0):
                    self.write_samples()
                if self.step_no % c.checkpoint_every == 0 or self.step_no == c.steps:
                    self.save_checkpoint(metrics)
                bar.update()
                done = self.step_no - start_step
                rate = done / max(time.perf_counter() - t0, 1e-9)
                if self.on_progress:
                    self.on_progress({"step": self.step_no, "total": c.steps, "losses": numbers,
                                      "eta_s": (c.steps - self.step_no) / max(rate, 1e-9)})
            if self._stop.is_set() and self.step_no % c.checkpoint_every != 0:
                self.save_checkpoint()
        finally:
            bar.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
            if self._tb is not None:
                self._tb.flush()
        return {"step": self.step_no, "stopped": self._stop.is_set(), "last": last}
