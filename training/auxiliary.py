"""The auxiliary networks the audio losses need, trained here instead of downloaded:

- JDC F0 network: targets from YIN (librosa) on the mel frame grid (hop 300, centred frames),
  voicing from frame energy and zero-crossing rate; loss = L1 on F0 of voiced frames (Hz)
  + cross-entropy on voicing (StarGANv2-VC trains on pyworld harvest with L1 + silence CE).
- Content network: CTC on espeak-ng IPA phonemes of the corpus texts.
Both also load the official StarGANv2-VC checkpoints (`load_official_jdc`, `load_official_asr`),
read with torch.load(weights_only=True); those expect the stargan_vc_compat mel front end.

`xfavot train-aux --data CORPUS --preset small --steps N --out AUX.safetensors` writes a model
checkpoint holding the two trained networks; `xfavot train --aux AUX.safetensors` uses them.
"""
from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core import audio, checkpoint
from core.config import ModelConfig
from core.content import ContentNet
from core.errors import UserError
from core.jdc import JDCNet

from .data.datasets import Dataset

log = logging.getLogger(__name__)
BLANK = 0


# ---------------------------------------------------------------------------------------------
# targets


@functools.lru_cache(maxsize=None)
def phonemes(text: str, voice: str = "en-us") -> str:
    """IPA phonemes from espeak-ng (e.g. 'plˈiːz bɹˈɪŋ ...')."""
    try:
        out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", voice, text], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"espeak-ng is needed to transcribe training texts into phonemes ({exc})")
    return " ".join(out.split())


class PhonemeVocabulary:
    """IPA symbols -> token ids (0 is the CTC blank). Stress marks attach to their vowel's id space
    as separate symbols, like the reference ASR's character-level tokens."""

    def __init__(self, symbols: list[str]):
        self.symbols = ["<blank>"] + sorted(set(symbols))
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_texts(cls, texts: list[str], limit: int) -> "PhonemeVocabulary":
        vocab = cls([ch for t in texts for ch in phonemes(t)])
        if len(vocab.symbols) > limit:
            raise UserError(f"the corpus texts use {len(vocab.symbols)} phoneme symbols; the content network "
                            f"has {limit} outputs")
        return vocab

    def encode(self, text: str) -> list[int]:
        return [self.index[ch] for ch in phonemes(text) if ch in self.index]


# ---------------------------------------------------------------------------------------------
# official checkpoints


def load_official_jdc(path: str | Path) -> JDCNet:
    """StarGANv2-VC's Utils/JDC/bst.t7 ({'net': state_dict}) -> JDCNet(64)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read JDC checkpoint {Path(path).name}: {type(exc).__name__}")
    net = JDCNet(64)
    try:
        net.load_state_dict(state.get("net", state) if isinstance(state, dict) else state)
    except RuntimeError as exc:
        raise UserError(f"{Path(path).name} is not a StarGANv2-VC JDC checkpoint: {str(exc).splitlines()[0]}")
    return net.eval()


def load_official_asr(path: str | Path, config: str | Path | None = None) -> ContentNet:
    """StarGANv2-VC's Utils/ASR/epoch_00100.pth ({'model': state_dict}) + config.yml -> ContentNet.
    The attention decoder (asr_s2s.*) is not part of our content network and is ignored."""
    import yaml

    cfg = {}
    config = Path(config) if config else Path(path).with_name("config.yml")
    if config.is_file():
        cfg = (yaml.safe_load(config.read_text()) or {}).get("model_params", {})
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read ASR checkpoint {Path(path).name}: {type(exc).__name__}")
    state = state.get("model", state)
    net = ContentNet(cfg.get("input_dim", 80), cfg.get("hidden_dim", 256), cfg.get("n_layers", 6), cfg.get("n_token", 80))
    missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if not k.startswith("asr_s2s.")},
                                              strict=False)
    if missing:
        raise UserError(f"{Path(path).name} is not a StarGANv2-VC ASR checkpoint (missing {missing[:3]})")
    return net.eval()


# ---------------------------------------------------------------------------------------------
# training


class AuxData:
    """Whole utterances of the voiced speakers: mel, F0/voicing targets, phoneme ids (cached)."""

    def __init__(self, data: Dataset, frontend: str, vocab: PhonemeVocabulary | None, progress: bool):
        self.items = []
        clips = [(p, t) for s in data.speakers for p, t in zip(s.voices, s.texts or [""] * len(s.voices))]
        for path, text in tqdm(clips, desc="aux targets", disable=not progress):
            try:
                wav = audio.load_audio(path)
            except UserError as exc:
                log.warning("skipping %s: %s", path, exc)
                continue
            f0, voiced = audio.f0_track(wav)
            mel = audio.log_mel(wav, frontend)
            tokens = vocab.encode(text) if vocab and text else []
            self.items.append((mel, torch.from_numpy(f0), torch.from_numpy(voiced), torch.tensor(tokens)))
        if not self.items:
            raise UserError("no readable voice clips for the auxiliary networks")

    def batch(self, idx: list[int], crop: int | None, rng: np.random.Generator):
        mels, f0s, voiced, tokens, lengths = [], [], [], [], []
        longest = max(self.items[i][0].shape[-1] for i in idx) if crop is None else crop
        for i in idx:
            mel, f0, v, tok = self.items[i]
            t = mel.shape[-1]
            start = int(rng.integers(max(t - crop, 0) + 1)) if crop else 0
            end = min(t, start + longest)
            pad = longest - (end - start)
            mels.append(F.pad(mel[:, start:end], (0, pad), value=float(mel.min())))
            f0s.append(F.pad(f0[start:end], (0, pad)))
            voiced.append(F.pad(v[start:end], (0, pad)))
            tokens.append(tok)
            lengths.append(end - start)
        return torch.stack(mels)[:, None], torch.stack(f0s), torch.stack(voiced), tokens, torch.tensor(lengths)


def train_auxiliary(data: Dataset, model_cfg: ModelConfig, steps: int, out: str | Path, device: str = "cpu",
                    batch_size: int = 8, seed: int = 0, progress: bool = True, init: str | Path | None = None,
                    f0_loss: str = "hz") -> dict:
    """init: a model file whose JDC to start from (e.g. to read real voices as well).
    f0_loss: "hz" (L1 in units of 100 Hz, as StarGANv2-VC) or "octaves" (L1 of log2 F0: a low voice's
    contour counts as much as a high one's; what G_A's F0 features must follow)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = data.split("train")
    texts = [t for s in train.speakers for t in s.texts if t]
    vocab = PhonemeVocabulary.from_texts(texts, model_cfg.content_tokens) if texts else None
    items = AuxData(train, model_cfg.mel_frontend, vocab, progress)
    held = AuxData(Dataset("val", [s for s in data.speakers if s.split == "val" and s.voices]), model_cfg.mel_frontend,
                   vocab, False) if any(s.split == "val" and s.voices for s in data.speakers) else None
    dev = torch.device(device)
    jdc = JDCNet(model_cfg.jdc_width).to(dev)
    with torch.no_grad():  # start the Hz regression in the speech register: Adam moves a bias ~lr per step
        jdc.classifier.bias.fill_(150.0)
    content = ContentNet(model_cfg.n_mels, model_cfg.content_dim, model_cfg.content_layers, model_cfg.content_tokens).to(dev)
    if init:  # the content network always starts afresh: it is cheap, and only JDC needs new data
        start, _, _, _ = checkpoint.load_model(init, require=("jdc",))
        jdc.load_state_dict(start["jdc"].state_dict())
    params = list(jdc.parameters()) + list(content.parameters())
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-4, total_steps=max(steps, 1))
    ctc = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    bar = tqdm(range(steps), desc="aux", disable=not progress)
    for _ in bar:
        jdc.train()
        content.train()
        idx = list(rng.choice(len(items.items), size=min(batch_size, len(items.items)), replace=False))
        mel, f0, voiced, _, _ = items.batch(idx, 192, rng)
        mel, f0, voiced = mel.to(dev), f0.to(dev), voiced.to(dev)
        pred_f0, voicing, _ = jdc(mel)
        if not voiced.any():
            loss_f0 = pred_f0.sum() * 0
        elif f0_loss == "octaves":
            loss_f0 = torch.log2(pred_f0[voiced].clamp_min(20.0) / f0[voiced]).abs().mean()
        else:
            loss_f0 = (pred_f0 - f0).abs()[voiced].mean() / 100  # F0 error in units of 100 Hz
        loss_v = F.cross_entropy(voicing.reshape(-1, 2), voiced.reshape(-1).long())
        loss = loss_f0 + loss_v
        loss_ctc = torch.zeros((), device=dev)
        if vocab:
            wmel, _, _, tokens, lengths = items.batch(idx, None, rng)  # CTC needs whole utterances
            keep = [i for i, t in enumerate(tokens) if len(t)]
            if keep:
                logits = content(wmel[keep].to(dev)).log_softmax(-1).transpose(0, 1)  # (T/2, B, C)
                targets = torch.cat([tokens[i] for i in keep]).to(dev)
                in_len = (lengths[keep] + 1) // 2
                loss_ctc = ctc(logits, targets, in_len, torch.tensor([len(tokens[i]) for i in keep]))
                loss = loss + loss_ctc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        bar.set_postfix(f0=f"{loss_f0.item():.3f}", ctc=f"{loss_ctc.item():.2f}")
    metrics = evaluate_auxiliary(jdc, content, held or items, vocab, dev)
    nets = {"jdc": jdc.cpu().eval(), "content": content.cpu().eval()}
    meta = {"steps": steps, "aux_metrics": metrics, "phonemes": vocab.symbols if vocab else [],
            "description": f"auxiliary JDC + content networks ({model_cfg.preset} sizes), {steps} steps"}
    checkpoint.save_model(out, nets, model_cfg, meta)
    return metrics


@torch.no_grad()
def evaluate_auxiliary(jdc: JDCNet, content: ContentNet, items: AuxData, vocab, device) -> dict:
    """F0: median absolute error (Hz) and gross pitch error rate (> 20 %) on voiced frames;
    voicing accuracy; phoneme error rate of greedy CTC decoding."""
    jdc.eval()
    content.eval()
    errors, gross, v_correct, v_total, edits, n_tokens = [], 0, 0, 0, 0, 0
    for mel, f0, voiced, tokens in items.items[:64]:
        x = mel[None, None].to(device)
        pred, voicing, _ = jdc(x)
        pred, vpred = pred[0].cpu(), voicing[0].argmax(-1).cpu().bool()
        if voiced.any():
            err = (pred[voiced] - f0[voiced]).abs()
            errors.append(err)
            gross += int((err > 0.2 * f0[voiced]).sum())
        v_correct += int((vpred == voiced).sum())
        v_total += voiced.numel()
        if vocab and len(tokens):
            best = content(x)[0].argmax(-1).tolist()
            decoded = [t for i, t in enumerate(best) if t != BLANK and (i == 0 or t != best[i - 1])]
            edits += _edit_distance(decoded, tokens.tolist())
            n_tokens += len(tokens)
    all_err = torch.cat(errors) if errors else torch.zeros(1)
    return {"f0_median_abs_error_hz": float(all_err.median()), "f0_gross_error_rate": gross / max(len(all_err), 1),
            "voicing_accuracy": v_correct / max(v_total, 1),
            "phoneme_error_rate": edits / n_tokens if n_tokens else None}


def _edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]
