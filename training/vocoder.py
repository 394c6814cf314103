"""Neural vocoder training on our mel front end, with well-kept libraries' parts: a Vocos generator
(`vocos` package: ConvNeXt backbone + inverse-STFT head, the default), or parallel-wavegan's
HiFiGAN / Parallel WaveGAN; parallel-wavegan's HiFiGAN multi-scale + multi-period discriminator,
multi-resolution STFT, adversarial (least squares) and feature-matching losses; plus an L1 loss on
our own normalised log-mel (the quantity `evaluate_vocoder` reports).

    xfavot train-vocoder --data CORPUS --steps N --out VOCODER.safetensors [--kind vocos|hifigan|pwg]
    xfavot attach-vocoder --checkpoint MODEL --vocoder VOCODER.safetensors --out MODEL_WITH_VOCODER

Upsampling factors multiply to the mel hop (5 * 5 * 4 * 3 = 300 samples per frame at 24 kHz; Vocos
predicts one 1200-point STFT frame per mel frame). Checkpoints (every --checkpoint-every steps,
atomic) hold generator, discriminator and optimiser state; `--resume` continues from
OUT.train.safetensors with the same learning-rate schedule.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core import audio, checkpoint
from core.compat import parallel_wavegan
from core.errors import UserError, require_format
from core.vocoder import VOCODER_FORMAT, Vocoder, build_generator, save_vocoder

from .config import VOCODER_KINDS
from .data.datasets import Dataset
from .state import load_optimizer_state, optimizer_state

VOCODERS = {
    # Vocos at 2.8 M parameters: beats Griffin-Lim after ~40 CPU-minutes of spectral losses alone
    # (../shared/design/cpu-budget-notes.md), RTF ~0.01 on one core
    "vocos": {"generator_type": "VocosGenerator", "generator_params": dict(
        in_channels=80, dim=256, intermediate_dim=768, num_layers=6, n_fft=1200, hop_length=300),
        "lr": 5e-4, "betas": (0.8, 0.9), "segment_frames": 48},
    # a CPU-sized HiFiGAN (V1 layout, 128 channels)
    "hifigan": {"generator_type": "HiFiGANGenerator", "generator_params": dict(
        in_channels=80, out_channels=1, channels=128, kernel_size=7, upsample_scales=[5, 5, 4, 3],
        upsample_kernel_sizes=[10, 10, 8, 6], resblock_kernel_sizes=[3, 7, 11],
        resblock_dilations=[[1, 3, 5], [1, 3, 5], [1, 3, 5]]), "lr": 2e-4, "betas": (0.5, 0.9), "segment_frames": 32},
    # Parallel WaveGAN with the reference 30-layer WaveNet, upsampling to hop 300
    "pwg": {"generator_type": "ParallelWaveGANGenerator", "generator_params": dict(
        layers=30, stacks=3, residual_channels=64, gate_channels=128, skip_channels=64, aux_channels=80,
        aux_context_window=2, upsample_params={"upsample_scales": [5, 5, 4, 3]}),
        "lr": 2e-4, "betas": (0.5, 0.9), "segment_frames": 32},
}
assert tuple(VOCODERS) == VOCODER_KINDS
LAMBDA_MEL = 15.0   # log-mel L1 (normalised units, ~1/4 of natural-log units) against MR-STFT's ~1
# HiFiGAN's multi-scale + multi-period discriminator at a quarter of its reference width (which
# goes up to 1024 channels and dominates a CPU training step)
CPU_DISCRIMINATOR = dict(
    scale_discriminator_params=dict(in_channels=1, out_channels=1, kernel_sizes=[15, 41, 5, 3], channels=32,
                                    max_downsample_channels=256, max_groups=16, bias=True,
                                    downsample_scales=[2, 2, 4, 4, 1], nonlinear_activation="LeakyReLU",
                                    nonlinear_activation_params={"negative_slope": 0.1}),
    period_discriminator_params=dict(in_channels=1, out_channels=1, kernel_sizes=[5, 3], channels=16,
                                     downsample_scales=[3, 3, 3, 3, 1], max_downsample_channels=256, bias=True,
                                     nonlinear_activation="LeakyReLU", nonlinear_activation_params={"negative_slope": 0.1},
                                     use_weight_norm=True, use_spectral_norm=False))


class Segments:
    """Random aligned (mel, waveform) segments of the voice clips, decoded once."""

    def __init__(self, data: Dataset, frontend: str, progress: bool, frames: int = 32, remake=None):
        """remake(wav, gender) -> (80, T): a second mel of each clip, paired with the same waveform."""
        self.clips = []
        self.frames = frames
        items = [(p, s.gender) for s in data.speakers for p in s.voices]
        for p, gender in tqdm(items, desc="vocoder data", disable=not progress):
            try:
                wav = audio.load_audio(p)
            except UserError:
                continue
            self.clips.append((audio.log_mel(wav, frontend), torch.from_numpy(wav)))
            if remake is not None:
                self.clips.append((remake(wav, gender), self.clips[-1][1]))
        if not self.clips:
            raise UserError("no readable voice clips to train a vocoder on")

    def batch(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        mels, wavs = [], []
        frames_wanted = self.frames
        for i in rng.integers(len(self.clips), size=n):
            mel, wav = self.clips[i]
            frames = min(mel.shape[-1], wav.numel() // audio.HOP)
            start = int(rng.integers(max(frames - frames_wanted, 0) + 1))
            m = mel[:, start:start + frames_wanted]
            w = wav[start * audio.HOP:(start + frames_wanted) * audio.HOP]
            pad = frames_wanted - m.shape[-1]
            mels.append(torch.nn.functional.pad(m, (0, pad), mode="replicate") if pad else m)
            wavs.append(torch.nn.functional.pad(w, (0, frames_wanted * audio.HOP - w.numel())))
        return torch.stack(mels), torch.stack(wavs)[:, None]


class LogMelL1(torch.nn.Module):
    """L1 between normalised log-mels of two waveforms: the front end's transform in float32."""

    def __init__(self, frontend: str):
        super().__init__()
        self.mel = audio.make_mel_transform(frontend, torch.float32)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        return (torch.log(1e-5 + self.mel(wav)) - audio.MEL_MEAN) / audio.MEL_STD

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return (self.log_mel(fake) - self.log_mel(real)).abs().mean()


def learning_rate(step: int, steps: int, base: float) -> float:
    """Cosine decay from `base` to 5 % of it over the run (a function of the step: resume-safe)."""
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / max(steps, 1), 1.0))))


def train_vocoder(data: Dataset, steps: int, out: str | Path, kind: str = "vocos", device: str = "cpu",
                  batch_size: int = 8, frontend: str = "xfavot24k", adversarial_start: int | None = None,
                  checkpoint_every: int = 500, resume: bool = False, seed: int = 0, progress: bool = True,
                  evaluate: bool = True, init: str | Path | None = None, gta_model: str | Path | None = None,
                  lr: float | None = None, magnitude_weight: float = 0.0, phase_iterations: int | None = None) -> dict:
    """adversarial_start: step from which the GAN losses join (None: never; spectral losses only).
    init: a vocoder file, or a model file with one embedded, to start from (its generator's layout
    replaces --kind's). gta_model: every clip is also taught with the mel that model's G_A makes of
    it restyled with its own voice (`Engine.restyled_mel`): ground-truth-aligned fine-tuning
    (Tacotron 2's remedy for a vocoder that meets a generator's mels, not real ones).
    lr: peak learning rate (default: the kind's).
    magnitude_weight: Vocos only, an L1 between the log of its head's magnitudes and the target
    waveform's STFT magnitudes, so that they can be trusted without the head's phases.
    phase_iterations: written into the file's config: Griffin-Lim steps from the head's phase at
    inference (`VocosGenerator.synthesize`); only sound after training with magnitude_weight.
    None: the init file's (a fine-tune of a consistent vocoder stays consistent), else 0."""
    if kind not in VOCODERS:
        raise UserError(f"--kind must be one of {sorted(VOCODERS)}")
    pwg = parallel_wavegan()
    torch.manual_seed(seed)
    dev = torch.device(device)
    recipe = VOCODERS[kind]
    spec = {"generator_type": recipe["generator_type"], "generator_params": recipe["generator_params"],
            "frontend": frontend, "name": f"{kind} trained on {data.name}"}
    start, steps_before, inherited_iterations = None, 0, 0
    if init:
        config, start = vocoder_state(init)
        # the name says what it learnt from once per kind of fine-tune; "steps" counts every run's
        base, tuned = config.get("name", Path(init).name), f", fine-tuned on {data.name}" + (" (GTA)" if gta_model else "")
        steps_before = int(config.get("steps", 0))
        inherited_iterations = int(config.get("phase_iterations", 0))
        spec.update(generator_type=config["generator_type"], generator_params=config["generator_params"],
                    name=base if base.endswith(tuned) else base + tuned)
        if config.get("frontend", frontend) != frontend:
            raise UserError(f"{Path(init).name} was trained on another mel front end")
    gen = build_generator(spec["generator_type"], spec["generator_params"]).to(dev)
    if (magnitude_weight or phase_iterations) and spec["generator_type"] != "VocosGenerator":
        raise UserError("--magnitude-weight and --phase-iterations need a Vocos generator (its inverse-STFT head)")
    spec["phase_iterations"] = inherited_iterations if phase_iterations is None else phase_iterations
    if start is not None:
        gen.load_state_dict({k: v.float() for k, v in start.items()})
    peak = lr or recipe["lr"]
    disc = pwg.models.HiFiGANMultiScaleMultiPeriodDiscriminator(**CPU_DISCRIMINATOR).to(dev)
    stft_loss = pwg.losses.MultiResolutionSTFTLoss(fft_sizes=[2048, 1024, 512], hop_sizes=[300, 120, 50],
                                                   win_lengths=[1200, 600, 240]).to(dev)
    mel_loss = LogMelL1(frontend).to(dev)
    adv_g, adv_d = pwg.losses.GeneratorAdversarialLoss(), pwg.losses.DiscriminatorAdversarialLoss()
    feat_match = pwg.losses.FeatureMatchLoss()
    optims = {"generator": torch.optim.AdamW(gen.parameters(), lr=peak, betas=recipe["betas"]),
              "discriminator": torch.optim.AdamW(disc.parameters(), lr=peak, betas=recipe["betas"])}
    state_path = Path(str(out) + ".train.safetensors")
    step = 0
    if resume and state_path.is_file():
        tensors, header = checkpoint.load_tensors(state_path)
        gen.load_state_dict(checkpoint.split_prefix(tensors, "generator"))
        disc.load_state_dict(checkpoint.split_prefix(tensors, "discriminator"))
        for name, opt in optims.items():
            if name in header.get("optimizers", {}):
                load_optimizer_state(name, opt, tensors, header["optimizers"][name])
        step = header["step"]
    segments = Segments(data.split("train"), frontend, progress, recipe["segment_frames"],
                        _gta_remaker(gta_model, dev) if gta_model else None)
    bar = tqdm(total=steps, initial=step, desc=f"vocoder ({kind})", disable=not progress)
    t0 = time.perf_counter()
    while step < steps:
        rng = np.random.default_rng([seed, step])  # per step: a resumed run draws what an unbroken one would
        for opt in optims.values():
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, steps, peak)
        mel, wav = (t.to(dev) for t in segments.batch(batch_size, rng))
        if magnitude_weight:  # Vocos: its head's magnitudes taught to be the waveform's own
            fake, magnitude = gen.synthesize(mel)
            fake = fake[:, None]
            true = gen.stft(wav[:, 0]).abs()
            magnitude_l1 = (torch.log(magnitude + 1e-5) - torch.log(true + 1e-5)).abs().mean()
        else:
            fake, magnitude_l1 = _generate(gen, mel, pwg), 0.0
        sc, mag = stft_loss(fake[:, 0], wav[:, 0])
        mel_l1 = mel_loss(fake[:, 0], wav[:, 0])
        loss_g = sc + mag + LAMBDA_MEL * mel_l1 + magnitude_weight * magnitude_l1
        use_adv = adversarial_start is not None and step >= adversarial_start
        if use_adv:
            # the real waveforms go through D once: detached for feature matching here, with their
            # graph for D's own step below (D's weights do not change in between)
            p_fake, p_real = disc(fake), disc(wav)
            loss_g = loss_g + 4.0 * adv_g(p_fake) + 2.0 * feat_match(p_fake, [[f.detach() for f in r] for r in p_real])
        optims["generator"].zero_grad(set_to_none=True)
        loss_g.backward()
        optims["generator"].step()
        if use_adv:
            real_loss, fake_loss = adv_d(disc(fake.detach()), p_real)
            optims["discriminator"].zero_grad(set_to_none=True)
            (real_loss + fake_loss).backward()
            optims["discriminator"].step()
        step += 1
        bar.update()
        bar.set_postfix(stft=f"{(sc + mag).item():.3f}", mel=f"{mel_l1.item():.3f}",
                        **({"magnitude": f"{magnitude_l1.item():.3f}"} if magnitude_weight else {}))
        if step % checkpoint_every == 0 or step == steps:
            tensors = {f"generator.{k}": v for k, v in gen.state_dict().items()}
            tensors.update({f"discriminator.{k}": v for k, v in disc.state_dict().items()})
            optim_meta = {}
            for name, opt in optims.items():
                t, m = optimizer_state(name, opt)
                tensors.update(t)
                optim_meta[name] = m
            checkpoint.save_tensors(state_path, tensors, {"format": "xfavot-vocoder-training", "step": step,
                                                          "spec": spec, "optimizers": optim_meta})
            save_vocoder(out, gen, {**spec, "steps": steps_before + step})
    bar.close()
    result = {"steps": step, "seconds": time.perf_counter() - t0}
    return {**result, **evaluate_vocoder(out, data)} if evaluate else result


def vocoder_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, generator tensors) of a vocoder file or of the vocoder embedded in a model file."""
    tensors, header = checkpoint.load_tensors(path)
    if header.get("format") == VOCODER_FORMAT:
        return header["vocoder"], tensors
    config, state = header.get("meta", {}).get("vocoder"), checkpoint.split_prefix(tensors, "vocoder")
    if not (config and state):
        raise UserError(f"{Path(path).name} is neither a vocoder file nor a model with a vocoder in it")
    return config, state


def _gta_remaker(model: str | Path, device: torch.device):
    from core.engine import Engine

    engine = Engine(align_faces=False)
    engine.load(model, str(device), vocoder="griffin-lim")
    return lambda wav, gender: engine.restyled_mel(wav, gender)


def _generate(gen, mel, pwg):
    if isinstance(gen, pwg.models.ParallelWaveGANGenerator):
        noise = torch.randn(mel.size(0), 1, mel.size(-1) * audio.HOP, device=mel.device)
        pad = gen.aux_context_window
        return gen(noise, torch.nn.functional.pad(mel, (pad, pad), mode="replicate"))
    return gen(mel)


@torch.no_grad()
def evaluate_vocoder(path: str | Path, data: Dataset, clips: int = 8, split: str = "val") -> dict:
    """Resynthesis of held-out clips (speakers of `split`, round-robin so that every speaker counts;
    "val" to choose, "test" to report) by the neural vocoder and by Griffin-Lim: log-mel L1 to the
    original, Resemblyzer d-vector similarity to the original and pocketsphinx WER (each when
    installed), the neural vocoder's CPU real-time factor, and which vocoder sounds closer to the
    original (`preferred`: higher d-vector similarity; log-mel L1 always favours Griffin-Lim, which
    iterates to match the magnitudes, so it does not decide)."""
    from core.vocoder import load_vocoder

    from .evaluate import Recognizer, SpeakerEmbedder, corpus_sentences, word_errors

    speakers = [s for s in data.speakers if s.split == split and s.voices] or [s for s in data.speakers if s.voices]
    by_speaker = [list(zip(s.voices, s.texts or [""] * len(s.voices))) for s in speakers]
    held = [items[k] for k in range(max(map(len, by_speaker), default=0)) for items in by_speaker if k < len(items)]
    held = held[:clips]
    neural = load_vocoder(path)
    vocoders = {"neural": neural, "griffin-lim": Vocoder.griffin_lim(neural.frontend)}
    embed, asr = SpeakerEmbedder(), Recognizer(corpus_sentences(data))
    scores = {k: {"mel_l1": [], "dvector_similarity": [], "errors": 0, "words": 0} for k in ("original", *vocoders)}
    seconds = audio_s = 0.0
    for p, text in held:
        wav = audio.load_audio(p)
        mel = audio.log_mel(wav, neural.frontend)
        reference = embed(wav) if embed.encoder is not None else None
        for name, score in scores.items():
            t0 = time.perf_counter()
            out = wav if name == "original" else vocoders[name](mel)[: wav.size].numpy()
            if name == "neural":
                seconds += time.perf_counter() - t0
                audio_s += wav.size / audio.SAMPLE_RATE
            score["mel_l1"].append(float((audio.log_mel(out, neural.frontend) - mel).abs().mean()))
            if reference is not None:
                score["dvector_similarity"].append(float(embed(out) @ reference))
            if asr.decoder is not None and text:
                errors, words = word_errors(text, asr(out))
                score["errors"] += errors
                score["words"] += words
    result = {name: {"mel_l1": float(np.mean(s["mel_l1"])),
                     "dvector_similarity": float(np.mean(s["dvector_similarity"])) if s["dvector_similarity"] else None,
                     "wer": s["errors"] / s["words"] if s["words"] else None} for name, s in scores.items()}
    sims = {k: result[k]["dvector_similarity"] for k in vocoders}
    preferred = "neural" if None in sims.values() else max(sims, key=sims.get)
    return {"mel_l1": result["neural"]["mel_l1"], "rtf_cpu": seconds / max(audio_s, 1e-9), "clips": len(held),
            "split": split, "speakers": len({str(p).rsplit("/", 2)[-2] for p, _ in held}),
            "by_vocoder": result, "preferred": preferred}


def pick_vocoder(synthetic: dict, real_conversions: dict | None = None, margin: float = 0.1) -> str:
    """What `--vocoder auto` should use: `evaluate_vocoder`'s preference on held-out synthetic
    resynthesis, unless the neural vocoder rings at the frame rate on converted real voices
    (training.evaluate.vocoders_on_real_conversions) more often than Griffin-Lim by `margin`."""
    preferred = synthetic["preferred"]
    if real_conversions and preferred == "neural":
        buzz = {k: v["frame_rate_buzz"] for k, v in real_conversions.items()}
        if buzz["neural"] > buzz["griffin-lim"] + margin:
            return "griffin-lim"
    return preferred


def attach_vocoder(model_path: str | Path, vocoder_path: str | Path, out: str | Path) -> None:
    """Embed a vocoder file in a model checkpoint (tensors under `vocoder.`, its config in meta)."""
    tensors, header = checkpoint.load_tensors(model_path)
    v_tensors, v_header = checkpoint.load_tensors(vocoder_path)
    require_format(v_header, VOCODER_FORMAT, f"{Path(vocoder_path).name} is not a vocoder file")
    config = v_header["vocoder"]
    if config.get("frontend", "xfavot24k") != header["config"].get("mel_frontend"):
        raise UserError("the vocoder was trained on another mel front end than the model")
    Vocoder.from_state(config, v_tensors)  # validate before writing
    tensors = {k: v for k, v in tensors.items() if not k.startswith("vocoder.")}
    tensors.update({f"vocoder.{k}": v for k, v in v_tensors.items()})
    header["meta"]["vocoder"] = config
    checkpoint.save_tensors(out, tensors, header)
