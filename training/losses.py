"""The XFaVoT objective (paper section 3.2), one small function per term.

Conventions: images (B, 3, H, W); mels (B, 1, 80, T) normalised log-mels; styles (B, 64);
discriminator outputs are logits (B,). Each function returns a scalar tensor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.audio import MEL_MEAN, MEL_STD

# ---------------------------------------------------------------------------------------------
# adversarial


def adversarial(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Non-saturating GAN loss (BCE on logits), as StarGANv2."""
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    return F.binary_cross_entropy_with_logits(logits, target)


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 = 0.5 * E[ ||d D(x) / d x||^2 ] on real inputs (x must require grad)."""
    grad, = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return 0.5 * grad.pow(2).reshape(grad.size(0), -1).sum(1).mean()


# ---------------------------------------------------------------------------------------------
# StarGANv2 terms, shared by both modalities


def style_reconstruction(style_pred: torch.Tensor, style_target: torch.Tensor) -> torch.Tensor:
    return (style_pred - style_target).abs().mean()


def diversity(fake_1: torch.Tensor, fake_2: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two outputs from two styles. The generator *maximises* it:
    the objective subtracts lambda_ds * diversity."""
    return (fake_1 - fake_2).abs().mean()


def diversity_weight(step: int, lambda_ds: float, ds_iter: int) -> float:
    """lambda_ds decays linearly to 0 over ds_iter steps: a function of the step, so that it
    survives resume unchanged (never a mutated config value)."""
    if ds_iter <= 0:
        return lambda_ds
    return lambda_ds * max(0.0, 1.0 - step / ds_iter)


def cycle_consistency(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    return (reconstruction - original).abs().mean()


# ---------------------------------------------------------------------------------------------
# audio auxiliary terms (StarGANv2-VC)


def speech_consistency(content_fake: torch.Tensor, content_real: torch.Tensor) -> torch.Tensor:
    """Content-network (ASR) features of converted vs source speech: the words must survive."""
    return F.smooth_l1_loss(content_fake, content_real)


def normalized_f0(f0: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """F0 curve (B, T) divided by its per-utterance mean: the contour without the register."""
    return f0 / (f0.mean(dim=-1, keepdim=True) + eps)


def f0_consistency(f0_fake: torch.Tensor, f0_real: torch.Tensor) -> torch.Tensor:
    """L1 between normalised F0 contours: intonation kept, absolute pitch free to change."""
    return F.l1_loss(normalized_f0(f0_fake), normalized_f0(f0_real))


def f0_register(f0_fake: torch.Tensor, voiced_fake: torch.Tensor, f0_ref: torch.Tensor,
                voiced_ref: torch.Tensor) -> torch.Tensor:
    """|mean log F0 of the converted speech - mean log F0 of the reference| over voiced frames (B, T):
    the register (how high the voice sits) without the contour. Rows without voiced frames count 0."""
    def mean_log(f0, voiced):
        w = voiced.float()
        return (torch.log(f0.float().clamp_min(20.0)) * w).sum(-1) / w.sum(-1).clamp_min(1.0), w.sum(-1) > 0

    fake, ok_fake = mean_log(f0_fake, voiced_fake)
    ref, ok_ref = mean_log(f0_ref, voiced_ref)
    ok = (ok_fake & ok_ref).float()
    return ((fake - ref).abs() * ok).sum() / ok.sum().clamp_min(1.0)


def log_frame_norm(mel: torch.Tensor) -> torch.Tensor:
    """Per-frame log L2 norm of the linear mel magnitude: (B, 1, 80, T) -> (B, T)."""
    linear = torch.exp(mel[:, 0] * MEL_STD + MEL_MEAN)
    return torch.log(linear.norm(dim=1) + 1e-5)


def norm_consistency(mel_fake: torch.Tensor, mel_real: torch.Tensor, bias: float = 0.5) -> torch.Tensor:
    """Frame energy kept within `bias` (log units) of the source's: loudness contour kept."""
    return F.relu((log_frame_norm(mel_fake) - log_frame_norm(mel_real)).abs() - bias).pow(2).mean()


def source_classification(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the source classifier C_A. D side: labels = true source of converted
    speech; G side (adversarial): labels = the target, so that the source cannot be recovered."""
    if logits.numel() == 0:
        return logits.sum()
    return F.cross_entropy(logits, labels)


def consistency_regularization(logits: torch.Tensor, logits_augmented: torch.Tensor) -> torch.Tensor:
    """D's output should not move under label-preserving augmentation (bCR, StarGANv2-VC)."""
    return F.mse_loss(logits_augmented, logits)


# ---------------------------------------------------------------------------------------------
# cross-modal


def infonce(face_styles: torch.Tensor, voice_styles: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE over N speakers: row i of each is the same speaker, all others are
    negatives. Cosine similarities divided by the temperature."""
    f = F.normalize(face_styles, dim=-1)
    v = F.normalize(voice_styles, dim=-1)
    logits = f @ v.t() / temperature  # (N, N)
    target = torch.arange(f.size(0), device=f.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def style_magnitude_match(voice_styles: torch.Tensor, face_styles: torch.Tensor) -> torch.Tensor:
    """L1 from each voice style to the (detached) face style of the same speaker. InfoNCE compares
    directions only, and left alone the voice styles drift to ~2.7x the face styles' norm
    (measured on the default model), off the inputs G_I was trained on: voice-guided faces come out
    as noise. A deviation from the paper; E_I, the face side, is the anchor."""
    return (voice_styles - face_styles.detach()).abs().mean()


def style_statistics_match(styles: torch.Tensor, genders: torch.Tensor, face_styles: torch.Tensor,
                           face_genders: torch.Tensor) -> torch.Tensor:
    """Per gender, L1 between the mean and the per-dimension spread of `styles` and those of the
    (detached) face styles: a set-level pull into the region of style space G_I was trained on,
    for styles that have no paired face. Used for the mapping network's samples (which otherwise
    stay where an earlier style space left them, and collapse without the diversity term) and for
    the audio-only (real) voices, whose E_A styles nothing else ties to faces. Genders with fewer
    than two rows on either side are skipped. A deviation from the paper."""
    face_styles = face_styles.detach()
    terms = []
    for g in torch.unique(genders).tolist():
        a, f = styles[genders == g], face_styles[face_genders == g]
        if len(a) < 2 or len(f) < 2:
            continue
        terms.append((a.mean(0) - f.mean(0)).abs().mean() + (a.std(0) - f.std(0)).abs().mean())
    return torch.stack(terms).mean() if terms else styles.sum() * 0
