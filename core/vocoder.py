"""Mel -> waveform: a Vocos generator, parallel-wavegan generators (HiFiGAN, Parallel WaveGAN) or Griffin-Lim.

Three ways to get a vocoder:
- our own checkpoints (`*.safetensors` with generator type/params in their metadata, or
  embedded in an XFaVoT model checkpoint under the `vocoder.` prefix);
- the official parallel-wavegan / StarGANv2-VC format (`checkpoint-*.pkl` + `config.yml`),
  read with `torch.load(weights_only=True)` so no code in the file can run;
- Griffin-Lim (torchaudio) when no neural vocoder is available.
Input is always our normalised log-mel (B, 80, T); output (B, T * 300) samples at 24 kHz.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchaudio
import yaml

from . import audio
from .compat import parallel_wavegan
from .errors import UserError, require_format

log = logging.getLogger(__name__)

GENERATOR_TYPES = ("VocosGenerator", "HiFiGANGenerator", "ParallelWaveGANGenerator", "MelGANGenerator",
                   "StyleMelGANGenerator")
CHUNK_FRAMES = 1000  # 12.5 s per vocoder call keeps memory flat on long clips
CONTEXT_FRAMES = 16
GL_MOMENTUM = 0.99  # fast Griffin-Lim's (torchaudio's default), for Vocos's phase iterations


class VocosGenerator(torch.nn.Module):
    """Vocos (Siuzdak, 2023), from the `vocos` package: a ConvNeXt backbone at the mel frame rate and
    an inverse-STFT head that predicts each frame's magnitude and phase. Nothing runs at the sample
    rate, so it is ~5x cheaper than a small HiFiGAN on a CPU, and it works frame by frame (streams).
    (B, 80, T) -> (B, 1, T * hop)."""

    def __init__(self, in_channels: int = 80, dim: int = 256, intermediate_dim: int = 768, num_layers: int = 6,
                 n_fft: int = 1200, hop_length: int = 300):
        super().__init__()
        from vocos.heads import ISTFTHead
        from vocos.models import VocosBackbone

        self.backbone = VocosBackbone(in_channels, dim, intermediate_dim, num_layers)
        self.head = ISTFTHead(dim, n_fft, hop_length, padding="same")

    def forward(self, mel: torch.Tensor, phase_iterations: int = 0) -> torch.Tensor:
        return self.synthesize(mel, phase_iterations)[0][:, None]

    def synthesize(self, mel: torch.Tensor, phase_iterations: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(waveform (B, T * hop), the head's magnitudes (B, n_fft // 2 + 1, T)).

        phase_iterations > 0: the head's phase refined by fast Griffin-Lim (Perraudin et al. 2013,
        torchaudio's momentum) toward a waveform whose STFT has the head's magnitudes. On the mels
        G_A makes of real voices the head's phases disagree from frame to frame and the overlap-add
        rings at the frame rate (an 80 Hz buzz); the projections remove that. It needs a head whose
        magnitudes are the waveform's own (`train_vocoder(magnitude_weight=...)`): plain Vocos
        predicts ~3x too large ones and cancels the excess through its phases."""
        x = self.head.out(self.backbone(mel)).transpose(1, 2)
        log_magnitude, phase = x.chunk(2, dim=1)
        magnitude = torch.exp(log_magnitude).clip(max=1e2)  # the head's own safeguard
        spec = magnitude * torch.exp(1j * phase)
        previous = None
        for _ in range(phase_iterations):
            rebuilt = self.stft(self.head.istft(spec))
            angles = rebuilt if previous is None else rebuilt - GL_MOMENTUM / (1 + GL_MOMENTUM) * previous
            previous = rebuilt
            spec = magnitude * angles / angles.abs().clamp_min(1e-8)
        return self.head.istft(spec), magnitude

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, n_fft // 2 + 1, samples // hop): the frames the head's inverse STFT
        ("same" padding) overlap-adds."""
        istft = self.head.istft
        pad = (istft.win_length - istft.hop_length) // 2
        wav = torch.nn.functional.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]
        return torch.stft(wav, istft.n_fft, istft.hop_length, istft.win_length, istft.window, center=False,
                          return_complex=True)


def build_generator(generator_type: str, generator_params: dict) -> torch.nn.Module:
    if generator_type not in GENERATOR_TYPES:
        raise UserError(f"unsupported vocoder generator type {generator_type!r}; expected one of {GENERATOR_TYPES}")
    if generator_type == "VocosGenerator":
        return VocosGenerator(**generator_params)
    models = parallel_wavegan().models
    # the reference configs carry a historical typo (parallel-wavegan issue #295)
    params = {k.replace("upsample_kernal_sizes", "upsample_kernel_sizes"): v for k, v in generator_params.items()}
    return getattr(models, generator_type)(**params)


def hop_of(generator_type: str, params: dict) -> int:
    if generator_type == "VocosGenerator":
        return int(params.get("hop_length", 300))
    if generator_type == "ParallelWaveGANGenerator":
        scales = params.get("upsample_params", {}).get("upsample_scales", [4, 4, 4, 4])
    else:
        scales = params.get("upsample_scales", [8, 8, 2, 2])
    hop = 1
    for s in scales:
        hop *= int(s)
    return hop


def _loaded_generator(gtype: str, params: dict, state: dict, config_name: str) -> torch.nn.Module:
    """Build a generator for our mel hop and load its weights, with user-facing errors."""
    if hop_of(gtype, params) != audio.HOP:
        raise UserError(f"vocoder hop size {hop_of(gtype, params)} does not match the mel hop {audio.HOP}")
    gen = build_generator(gtype, params)
    try:
        gen.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"vocoder weights do not match {config_name}: {str(exc).splitlines()[0]}")
    return gen


class Vocoder:
    """Callable mel -> waveform. `kind` is "neural" or "griffin-lim"."""

    def __init__(self, generator: torch.nn.Module | None, frontend: str, description: str, phase_iterations: int = 0):
        """phase_iterations: Vocos only (VocosGenerator.synthesize), from the file's config; 0 for a
        head whose magnitudes were not taught to be the waveform's own (it leans on phase cancellation)."""
        self.generator = generator
        self.frontend = frontend
        self.description = description
        self.kind = "griffin-lim" if generator is None else "neural"
        self.device = torch.device("cpu")
        self.phase_iterations = phase_iterations
        if generator is not None:
            generator.eval()
            try:
                generator.remove_weight_norm()  # inference speed; weight norm is a training-time device
            except (ValueError, AttributeError):
                pass
        self._gl = None

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def griffin_lim(cls, frontend: str = "xfavot24k",
                    description: str = "Griffin-Lim (no neural vocoder in this model)") -> "Vocoder":
        return cls(None, frontend, description)

    @classmethod
    def from_state(cls, config: dict, state: dict[str, torch.Tensor]) -> "Vocoder":
        """Our own format: config = {generator_type, generator_params, frontend}."""
        gtype = config["generator_type"]
        gen = _loaded_generator(gtype, config["generator_params"], state, "their config")
        return cls(gen, config.get("frontend", "xfavot24k"), f"{gtype} ({config.get('name', 'own checkpoint')})",
                   int(config.get("phase_iterations", 0)))

    @classmethod
    def load_official(cls, checkpoint: str | Path, config: str | Path | None = None) -> "Vocoder":
        """parallel-wavegan / StarGANv2-VC format: checkpoint-*.pkl + config.yml beside it.

        These vocoders were trained on the StarGANv2-VC mel, so they imply the compat front end."""
        checkpoint = Path(checkpoint)
        config = Path(config) if config else checkpoint.with_name("config.yml")
        if not checkpoint.is_file():
            raise UserError(f"vocoder checkpoint not found: {checkpoint}")
        if not config.is_file():
            raise UserError(f"vocoder config not found: {config} (the official format keeps config.yml beside the checkpoint)")
        try:
            conf = yaml.safe_load(config.read_text())
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]["generator"]
        except Exception as exc:
            raise UserError(f"cannot read vocoder {checkpoint.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        gtype = conf.get("generator_type", "ParallelWaveGANGenerator")
        params = conf["generator_params"]
        if params.get("out_channels", 1) > 1:
            raise UserError("multi-band vocoders (PQMF) are not supported; use a full-band PWG or HiFiGAN")
        gen = _loaded_generator(gtype, params, state, "config.yml")
        return cls(gen, "stargan_vc_compat", f"{gtype} (official checkpoint {checkpoint.name})")

    @classmethod
    def load_pretrained(cls, tag: str, download_dir: str | Path | None = None) -> "Vocoder":
        """A parallel-wavegan pretrained tag (Google Drive download; needs the internet)."""
        from parallel_wavegan.utils import download_pretrained_model  # noqa: F401 (through compat below)

        parallel_wavegan()
        try:
            path = download_pretrained_model(tag, None if download_dir is None else str(download_dir))
        except Exception as exc:
            raise UserError(
                f"cannot download the pretrained vocoder {tag!r} ({type(exc).__name__}); this needs internet "
                "access to Google Drive. Download it on a connected machine and pass its checkpoint file instead")
        return cls.load_official(path)

    # -- inference ----------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> "Vocoder":
        self.device = torch.device(device)
        if self.generator is not None:
            self.generator.to(self.device)
        return self

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """(80, T) or (B, 80, T) normalised log-mel -> (samples,) or (B, T * 300)."""
        single = mel.dim() == 2
        mel = mel[None] if single else mel
        pieces = []
        for rs, re_, ks, ke in audio.chunk_spans(mel.shape[-1], CHUNK_FRAMES, CONTEXT_FRAMES):
            wav = self._run(mel[..., rs:re_].to(self.device))
            pieces.append(wav[:, (ks - rs) * audio.HOP:(ke - rs) * audio.HOP])
        out = torch.cat(pieces, dim=-1).cpu()
        return out[0] if single else out

    def _run(self, mel: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            return self._griffin_lim(mel)
        # parallel-wavegan generators take (B, 80, T) and give (B, 1, T * hop)
        if isinstance(self.generator, parallel_wavegan().models.ParallelWaveGANGenerator):
            noise = torch.randn(mel.size(0), 1, mel.size(-1) * audio.HOP, device=mel.device)
            pad = self.generator.aux_context_window
            wav = self.generator(noise, torch.nn.functional.pad(mel, (pad, pad), mode="replicate"))
        elif isinstance(self.generator, VocosGenerator):
            wav = self.generator(mel, self.phase_iterations)
        else:
            wav = self.generator(mel)
        return wav[:, 0]

    def _griffin_lim(self, mel: torch.Tensor) -> torch.Tensor:
        if self._gl is None:
            sr, f_max = audio.mel_scale_params(self.frontend)
            self._gl = (
                torchaudio.transforms.InverseMelScale(audio.N_FFT // 2 + 1, audio.N_MELS, sr, f_max=f_max).to(self.device),
                torch.hann_window(audio.WIN, device=self.device),
            )
        inverse_mel, window = self._gl
        power_mel = (torch.exp(mel * audio.MEL_STD + audio.MEL_MEAN) - 1e-5).clamp_min(0)
        spec = inverse_mel(power_mel).clamp_min(0)
        frames = mel.shape[-1]
        # T centred frames cover (T - 1) hops; pad the tail so every vocoder gives T * hop samples
        wav = torchaudio.functional.griffinlim(
            spec, window, audio.N_FFT, audio.HOP, audio.WIN, power=2.0, n_iter=32, momentum=0.99,
            length=(frames - 1) * audio.HOP, rand_init=False)
        return torch.nn.functional.pad(wav, (0, audio.HOP))


VOCODER_FORMAT = "xfavot-vocoder"


def save_vocoder(path: str | Path, generator: torch.nn.Module, config: dict) -> None:
    """Our vocoder file: safetensors weights + {"format", "vocoder": config} header (atomic)."""
    from .checkpoint import save_tensors

    save_tensors(path, generator.state_dict(), {"format": VOCODER_FORMAT, "vocoder": config})


def load_vocoder(path: str | Path) -> Vocoder:
    """Our safetensors vocoder file, or an official checkpoint-*.pkl with its config.yml."""
    from .checkpoint import load_tensors

    path = Path(path)
    if path.suffix != ".safetensors":
        return Vocoder.load_official(path)
    tensors, header = load_tensors(path)
    require_format(header, VOCODER_FORMAT, f"{path.name} is not a vocoder file")
    return Vocoder.from_state(header["vocoder"], tensors)
