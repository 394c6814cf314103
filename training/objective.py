"""The XFaVoT objective (paper section 3.2) as two plain functions, like StarGANv2's
compute_d_loss / compute_g_loss:

    loss, logs = d_loss(nets, cfg, plan, batch, step)     # D_I, D_A (+ R1, consistency), C_A
    loss, logs = g_loss(nets, cfg, plan, batch, step)     # G_I, G_A, E_I, E_A, M (+ InfoNCE)

nets: core.model.build_networks' ModuleDict; cfg: TrainConfig; plan: a Table 1 StepPlan
(training/data/sampler.py); batch: training/batches.py's tensors; step: the global step, of which
every schedule is a function (so a resumed run computes what an unbroken one does).
parts: which of the objective's parts a run computes (`Parts.of` the networks it trains): a run
that trains only the audio side (`train_only`) skips the image side's passes, and a fine-tune on
faces (no voices in its batches) the audio side's and the shared terms.

Reference styles are detached in the generator losses (StarGANv2: a reference pass updates the
generator only); the encoders learn through style reconstruction, cycle and InfoNCE terms.

CPU-budget levers (TrainConfig; off at their defaults, on in the `cpu` preset), documented
deviations from the paper:
- lazy R1 (StyleGAN2): the R1 penalty every `r1_every` steps, weighted by `r1_every`;
- DiffAugment on every discriminator input (`diffaug`), training/diffaugment.py;
- a reconstruction warm-up: lambda_rec * |G(x, E(x)) - x|, annealed linearly to zero over
  `rec_warmup` steps, so the generator keeps the source's pose and colours from the start
  instead of first painting the style over a blank;
- a rendered-pair warm-up on synthetic faces: lambda_pair * |G(x, s_B) - render(B's attributes,
  x's pose)|, annealed over `pair_warmup` steps to zero (or to `pair_floor` of it;
  training/data/pairs.py), while the image adversarial and diversity terms ramp in over
  `gan_rampup` steps (after `gan_start` steps without them); with `pair_trains_encoders` the
  term is taken on a second G pass with the reference style left live, so the style encoders
  (E_A too, on voice references) learn to carry what the rendered target needs: the attributes a
  voice implies. The other terms keep the detached style;
- an F0-register warm-up: the converted voice's mean log-F0 should match the reference voice's
  (lambda_f0_register, annealed over `pair_warmup` to `f0_register_floor` of it); it needs no labels,
  so real speech takes part;
- style statistics (lambda_style_stats): the mapping network's samples and the audio-only
  voices' styles keep the per-gender mean and spread of the face styles (see _style_statistics).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.config import GENDERS

from . import losses as L
from .config import TrainConfig
from .data.sampler import StepPlan
from .diffaugment import IMAGE_POLICY, MEL_POLICY, diff_augment

# ---------------------------------------------------------------------------------------------
# which parts a run computes

IMAGE_SIDE = frozenset({"generator_image", "style_encoder_image", "discriminator_image", "mapping"})
AUDIO_SIDE = frozenset({"generator_audio", "style_encoder_audio", "discriminator_audio", "classifier_audio", "mapping"})
SHARED = frozenset({"style_encoder_image", "style_encoder_audio", "mapping"})  # what InfoNCE and the style terms train


@dataclass(frozen=True)
class Parts:
    image: bool = True   # G_I, E_I, D_I terms
    audio: bool = True   # G_A, E_A, D_A, C_A terms
    shared: bool = True  # InfoNCE, voice-to-face style magnitude, style statistics

    @classmethod
    def of(cls, trained: tuple[str, ...], with_voices: bool = True) -> "Parts":
        """The parts whose losses reach a network in `trained`: the others' passes would only cost
        time (a G_A + D_A run on the build machine's 2 cores: 4.1 -> 2.9 s per step, medians of
        its logs). with_voices=False: the batches carry faces only (a fine-tune on a creator's faces)."""
        names = set(trained)
        return cls(image=bool(names & IMAGE_SIDE), audio=with_voices and bool(names & AUDIO_SIDE),
                   shared=with_voices and bool(names & SHARED))


# ---------------------------------------------------------------------------------------------
# schedules and helpers


def ramp_down(step: int, start_value: float, steps: int, floor: float = 0.0) -> float:
    """Linear decay from start_value to floor * start_value over `steps` steps (0 steps: the floor)."""
    if steps <= 0:
        return start_value * floor
    return start_value * max(floor, 1.0 - step / steps)


def pair_weight(cfg: TrainConfig, step: int) -> float:
    """Weight of the rendered-pair term at `step` (batches carry pair targets while it is > 0)."""
    return ramp_down(step, cfg.lambda_pair, cfg.pair_warmup, cfg.pair_floor)


def ramp_up(step: int, steps: int) -> float:
    """Linear rise from 0 to 1 over `steps` steps (0 steps: always 1; 0 before step 0)."""
    if step < 0:
        return 0.0
    return 1.0 if steps <= 0 else min(1.0, step / steps)


def image_gan_weight(cfg: TrainConfig, step: int) -> float:
    """Share of the image adversarial and diversity terms at `step`: off for `gan_start` steps,
    then a linear ramp over `gan_rampup` steps."""
    return ramp_up(step - cfg.gan_start, cfg.gan_rampup)


def r1_due(cfg: TrainConfig, step: int) -> bool:
    return cfg.r1_every <= 1 or step % cfg.r1_every == 0


def augmenter(cfg: TrainConfig, step: int, phase: int):
    """The DiffAugment transform of one update: the same random family for real and fake inputs."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 4 + phase)
    image = IMAGE_POLICY if cfg.diffaug else ()
    mel = MEL_POLICY if cfg.diffaug else ()
    return (lambda x: diff_augment(x, image, gen)), (lambda m: diff_augment(m, mel, gen))


def styles(nets, plan_source: str, b: dict, second: bool = False, detach: bool = True) -> torch.Tensor:
    """Target styles of a step from its reference kind: latent (M), image (E_I) or audio (E_A).
    Reference styles are detached (StarGANv2 does not step E on reference-guided updates; a style
    reconstruction term against a live target could collapse E); detach=False for the pair term."""
    suffix = "2" if second else ""
    if plan_source == "latent":
        return nets["mapping"](b["z" + suffix], b["y_trg"])
    if plan_source == "image":
        s = nets["style_encoder_image"](b["ref_img" + suffix], b["g_trg"])
    else:
        s = nets["style_encoder_audio"](b["ref_mel" + suffix], b["g_trg"])
    return s.detach() if detach else s


def classifier_labels(plan: StepPlan, b: dict, target: bool) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Which C_A head, the rows where source and target differ, and the labels (source or target)."""
    if plan.domain_type == "speaker":
        src, trg = b["spk_mel_src"], b["y_trg"] - 2
        rows = (src >= 0) & (src != trg)
        return "speaker", rows, (trg if target else src)[rows]
    src, trg = b["g_mel_src"], b["g_trg"]
    rows = src != trg
    return "gender", rows, (trg if target else src)[rows]


def source_classification(nets, plan: StepPlan, b: dict, fake_mel: torch.Tensor, target: bool) -> torch.Tensor:
    head, rows, labels = classifier_labels(plan, b, target)
    if not rows.any():
        return fake_mel.sum() * 0
    gender_logits, speaker_logits = nets["classifier_audio"](fake_mel[rows])
    return L.source_classification(gender_logits if head == "gender" else speaker_logits, labels)


def consistency_augment(mel: torch.Tensor, cfg: TrainConfig, step: int) -> torch.Tensor:
    """Label-preserving augmentation for D_A's consistency term: gain and a small time shift."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    gain = (torch.rand(mel.size(0), 1, 1, 1, generator=gen) - 0.5).to(mel.device) * 0.25
    shift = int(torch.randint(-8, 9, (1,), generator=gen))
    return torch.roll(mel, shifts=shift, dims=-1) + gain


def _r1(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    with torch.autocast(inputs.device.type, enabled=False):
        return L.r1_penalty(logits.float(), inputs)


# ---------------------------------------------------------------------------------------------
# discriminators


def d_loss(nets, cfg: TrainConfig, plan: StepPlan, b: dict, step: int, parts: Parts = Parts()):
    aug_img, aug_mel = augmenter(cfg, step, phase=0)
    loss, logs = 0, {}
    if parts.image:
        loss, logs = _d_image(nets, cfg, plan, b, step, aug_img)
    if parts.audio:
        loss_a, logs_a = _d_audio(nets, cfg, plan, b, step, aug_mel)
        loss, logs = loss + loss_a, {**logs, **logs_a}
    return loss, logs


def _d_image(nets, cfg, plan, b, step, augment):
    with torch.no_grad():
        fake = nets["generator_image"](b["x_img"], styles(nets, plan.image_reference, b))
    r1_now = r1_due(cfg, step)
    x = b["x_img"].detach().requires_grad_(r1_now)
    real = nets["discriminator_image"](augment(x), b["g_img_src"])
    adv = L.adversarial(real, True) + L.adversarial(nets["discriminator_image"](augment(fake), b["g_trg"]), False)
    logs = {"D/img_adv": adv.detach()}
    loss = adv
    if r1_now:
        r1 = _r1(real, x)
        loss = loss + cfg.lambda_reg * cfg.r1_every * r1
        logs["D/img_r1"] = r1.detach()
    return loss, logs


def _d_audio(nets, cfg, plan, b, step, augment):
    with torch.no_grad():
        f0_src = nets["jdc"].get_feature(b["x_mel"])
        fake = nets["generator_audio"](b["x_mel"], styles(nets, plan.audio_reference, b), f0_src)
    r1_now = r1_due(cfg, step)
    x = b["x_mel"].detach().requires_grad_(r1_now)
    disc = nets["discriminator_audio"]
    real = disc(augment(x), b["y_mel_src"])
    adv = L.adversarial(real, True) + L.adversarial(disc(augment(fake), b["y_trg"]), False)
    con_reg = L.consistency_regularization(real, disc(consistency_augment(b["x_mel"], cfg, step), b["y_mel_src"]))
    cls = source_classification(nets, plan, b, fake, target=False)
    loss = adv + cfg.lambda_con_reg * con_reg
    if step >= cfg.adv_cls_start:
        loss = loss + cfg.lambda_adv_cls_d * cls
    logs = {"D/aud_adv": adv.detach(), "D/con_reg": con_reg.detach(), "D/src_cls": cls.detach()}
    if r1_now:
        r1 = _r1(real, x)
        loss = loss + cfg.lambda_reg_audio * cfg.r1_every * r1
        logs["D/aud_r1"] = r1.detach()
    return loss, logs


# ---------------------------------------------------------------------------------------------
# generators, style encoders and the mapping network


def g_loss(nets, cfg: TrainConfig, plan: StepPlan, b: dict, step: int, parts: Parts = Parts()):
    aug_img, aug_mel = augmenter(cfg, step, phase=1)
    loss, logs = 0, {}
    if parts.image:
        loss, logs = _g_image(nets, cfg, plan, b, step, aug_img)
    if parts.audio:
        loss_a, logs_a = _g_audio(nets, cfg, plan, b, step, aug_mel)
        loss, logs = loss + loss_a, {**logs, **logs_a}
    if parts.shared:
        if plan.use_infonce:  # cross-modal style consistency on paired targets (Table 1)
            face_styles = nets["style_encoder_image"](b["ref_img"], b["g_trg"])
            voice_styles = nets["style_encoder_audio"](b["ref_mel"], b["g_trg"])
            xm = L.infonce(face_styles, voice_styles, cfg.temperature)
            loss = loss + cfg.lambda_xm * xm
            logs["G/infonce"] = xm.detach()
            if cfg.lambda_xm_l1 > 0:
                xm_l1 = L.style_magnitude_match(voice_styles, face_styles)
                loss = loss + cfg.lambda_xm_l1 * xm_l1
                logs["G/xm_l1"] = xm_l1.detach()
        if cfg.lambda_style_stats > 0:
            stats, stats_logs = _style_statistics(nets, plan, b)
            loss, logs = loss + cfg.lambda_style_stats * stats, {**logs, **stats_logs}
    logs["G/total"] = loss.detach()
    return loss, logs


def _g_image(nets, cfg, plan, b, step, augment):
    G, E, D = nets["generator_image"], nets["style_encoder_image"], nets["discriminator_image"]
    x = b["x_img"]
    gan = image_gan_weight(cfg, step)
    lam_ds = gan * L.diversity_weight(step, cfg.lambda_ds, cfg.ds_iter)
    s1 = styles(nets, plan.image_reference, b)
    fake = G(x, s1)
    adv = L.adversarial(D(augment(fake), b["g_trg"]), True)
    sty = L.style_reconstruction(E(fake, b["g_trg"]), s1)
    with torch.no_grad():  # the second output is a fixed target (StarGANv2 detaches it)
        fake2 = G(x, styles(nets, plan.image_reference, b, second=True))
    ds = L.diversity(fake, fake2)
    s_org = E(x, b["g_img_src"])
    cyc = L.cycle_consistency(G(fake, s_org), x)
    loss = gan * cfg.lambda_adv * adv + cfg.lambda_sty * sty - lam_ds * ds + cfg.lambda_cyc * cyc
    logs = {"G/img_adv": adv, "G/img_sty": sty, "G/img_ds": ds, "G/img_cyc": cyc, "lambda_ds": torch.tensor(lam_ds)}
    lam_rec = ramp_down(step, cfg.lambda_rec, cfg.rec_warmup)
    if lam_rec > 0:
        rec = L.cycle_consistency(G(x, s_org), x)
        loss = loss + lam_rec * rec
        logs["G/img_rec"] = rec
    lam_pair = pair_weight(cfg, step)
    if lam_pair > 0 and "pair_img" in b and b["pair_mask"].any():
        rows = b["pair_mask"]
        if cfg.pair_trains_encoders:  # a second G pass whose style is live: E_I / E_A learn what the target needs
            made = G(x[rows], styles(nets, plan.image_reference, b, detach=False)[rows])
        else:
            made = fake[rows]
        pair = (made - b["pair_img"][rows]).abs().mean()
        loss = loss + lam_pair * pair
        logs["G/img_pair"] = pair
    return loss, {k: v.detach() for k, v in logs.items()}


def _g_audio(nets, cfg, plan, b, step, augment):
    G, E, D = nets["generator_audio"], nets["style_encoder_audio"], nets["discriminator_audio"]
    x = b["x_mel"]
    lam_ds = L.diversity_weight(step, cfg.lambda_ds_audio, cfg.ds_iter)
    s1 = styles(nets, plan.audio_reference, b)
    with torch.no_grad():
        f0_real, voicing_real, f0_feat = nets["jdc"](x)
        content_real = nets["content"].get_feature(x)
    fake = G(x, s1, f0_feat)
    adv = L.adversarial(D(augment(fake), b["y_trg"]), True)
    sty = L.style_reconstruction(E(fake, b["g_trg"]), s1)
    with torch.no_grad():
        fake2 = G(x, styles(nets, plan.audio_reference, b, second=True), f0_feat)
    ds = L.diversity(fake, fake2)
    f0_fake, _, f0_feat_fake = nets["jdc"](fake)
    s_org = E(x, b["g_mel_src"])
    cyc = L.cycle_consistency(G(fake, s_org, f0_feat_fake), x)
    f0 = L.f0_consistency(f0_fake, f0_real)
    asr = L.speech_consistency(nets["content"].get_feature(fake), content_real)
    norm = L.norm_consistency(fake, x, cfg.norm_bias)
    cls = source_classification(nets, plan, b, fake, target=True)
    loss = (cfg.lambda_adv_audio * adv + cfg.lambda_sty_audio * sty - lam_ds * ds + cfg.lambda_cyc_audio * cyc
            + cfg.lambda_f0 * f0 + cfg.lambda_asr * asr + cfg.lambda_norm * norm)
    if step >= cfg.adv_cls_start:
        loss = loss + cfg.lambda_adv_cls * cls
    logs = {"G/aud_adv": adv, "G/aud_sty": sty, "G/aud_ds": ds, "G/aud_cyc": cyc, "G/f0": f0, "G/asr": asr,
            "G/norm": norm, "G/src_cls": cls}
    lam_rec = ramp_down(step, cfg.lambda_rec_audio, cfg.rec_warmup)
    if lam_rec > 0:
        rec = L.cycle_consistency(G(x, s_org, f0_feat), x)
        loss = loss + lam_rec * rec
        logs["G/aud_rec"] = rec
    lam_reg = ramp_down(step, cfg.lambda_f0_register, cfg.pair_warmup, cfg.f0_register_floor)
    if lam_reg > 0 and plan.audio_reference != "latent" and "ref_mel" in b:
        with torch.no_grad():
            f0_ref, voicing_ref, _ = nets["jdc"](b["ref_mel"])
        register = L.f0_register(f0_fake, voicing_real.argmax(-1) > 0, f0_ref, voicing_ref.argmax(-1) > 0)
        loss = loss + lam_reg * register
        logs["G/f0_register"] = register
    return loss, {k: v.detach() for k, v in logs.items()}


def _style_statistics(nets, plan, b):
    """Per-gender style statistics of the mapping network's samples (gender heads, on the step's
    16 latent codes) and, on audio-only steps, of the reference voices' E_A styles, matched to the
    face styles of the step's source faces (training/losses.py style_statistics_match)."""
    face_styles = nets["style_encoder_image"](b["x_img"], b["g_img_src"]).detach()
    z = torch.cat([b["z"], b["z2"]])
    genders = torch.arange(z.size(0), device=z.device) % len(GENDERS)
    latent = L.style_statistics_match(nets["mapping"](z, genders), genders, face_styles, b["g_img_src"])
    loss, logs = latent, {"G/latent_stats": latent.detach()}
    if plan.kind == "audio" and "ref_mel" in b:
        voices = nets["style_encoder_audio"](b["ref_mel"], b["g_trg"])
        voice = L.style_statistics_match(voices, b["g_trg"], face_styles, b["g_img_src"])
        loss, logs["G/voice_stats"] = loss + voice, voice.detach()
    return loss, logs


class Phase(torch.nn.Module):
    """One update's loss as one module forward, so DistributedDataParallel sees a single forward
    and backward per phase (GAN steps call networks several times, R1 needs double backward).
    Only the networks this phase updates are registered: only their gradients are all-reduced."""

    def __init__(self, nets: torch.nn.ModuleDict, names: tuple[str, ...], loss_fn):
        super().__init__()
        for name in names:
            self.add_module(name, nets[name])
        self.nets, self.loss_fn = dict(nets.items()), loss_fn

    def forward(self, plan, batch: dict, step: int):
        return self.loss_fn(self.nets, plan, batch, step)
