"""Audio front end: loading, resampling, loudness, log-mel, chunking.

Everything runs at 24 kHz mono. The log-mel is StarGANv2-VC's: torchaudio MelSpectrogram with
n_fft 2048, win 1200, hop 300, 80 bands, log(1e-5 + mel), normalised as (x - (-4)) / 4.
Two variants (see ../shared/design/architecture.md):
- "stargan_vc_compat": built with torchaudio's default sample_rate (16 kHz) and f_max 8 kHz,
  exactly as the reference code does; on 24 kHz audio its bands span 0-12 kHz physically.
  Official StarGANv2-VC JDC/ASR/vocoder checkpoints are tied to it.
- "xfavot24k": the same transform told the true rate (24 kHz, bands 0-12 kHz). Our own models.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .errors import UserError

SAMPLE_RATE = 24000
HOP = 300
N_FFT = 2048
WIN = 1200
N_MELS = 80
MEL_MEAN, MEL_STD = -4.0, 4.0
MIN_SECONDS = 0.3
SILENCE_RMS = 1e-4  # -80 dBFS: below this a clip carries no voice to convert
TARGET_LUFS = -23.0
AUDIO_EXTS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
MALE_BELOW_HZ = 165.0  # median voiced F0: the usual split of adult registers (male ~85-155, female ~165-255 Hz)


def refuse_longer(seconds: float, max_seconds: float, name: str) -> None:
    if seconds > max_seconds:
        raise UserError(f"{name} is {seconds / 60:.0f} minutes long; sources up to {max_seconds / 60:.0f} minutes "
                        "are converted, so split it into parts first")


def load_audio(path: str | Path, max_seconds: float | None = None, refuse: bool = False) -> np.ndarray:
    """Any soundfile-readable file -> float32 mono at 24 kHz. Raises UserError on bad input.
    A file longer than max_seconds is cut there (a reference) or, with refuse, refused (a source)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file not found: {path}")
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            if refuse and max_seconds is not None:
                refuse_longer(f.frames / rate, max_seconds, path.name)
            frames = f.frames if max_seconds is None else min(f.frames, int(max_seconds * rate))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot read audio file {path.name}: not a supported audio file or it is damaged ({exc})")
    if data.size == 0:
        raise UserError(f"audio file {path.name} is empty")
    return prepare_waveform(data.mean(axis=1), rate, name=path.name)


def is_silent(wav: np.ndarray) -> bool:
    """True when the clip's RMS is below SILENCE_RMS: no voice in it to convert or learn from."""
    return float(np.sqrt(np.mean(np.asarray(wav, np.float64) ** 2))) < SILENCE_RMS


CLIPPED_LEVEL = 0.98   # samples this near full scale count as clipped
CLIPPED_SHARE = 0.001  # a recording with more of them than this clips audibly


def clipped_share(wav: np.ndarray) -> float:
    """The share of samples at full scale (|x| >= CLIPPED_LEVEL): a recording made too loud."""
    wav = np.asarray(wav)
    return float(np.mean(np.abs(wav) >= CLIPPED_LEVEL)) if wav.size else 0.0


def prepare_waveform(wav: np.ndarray, rate: int, name: str = "audio") -> np.ndarray:
    """Mono float32 at any rate -> 24 kHz, checked for length and silence."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:  # (samples, channels)
        wav = wav.mean(axis=1)
    if wav.ndim != 1 or wav.size == 0:
        raise UserError(f"{name} holds no audio samples")
    if not np.all(np.isfinite(wav)):
        raise UserError(f"{name} contains invalid (NaN or infinite) samples")
    if rate <= 0:
        raise UserError(f"{name} has an invalid sample rate ({rate})")
    seconds = wav.size / rate
    if seconds < MIN_SECONDS:
        raise UserError(f"{name} is too short ({seconds:.2f} s); give at least {MIN_SECONDS} s of speech")
    if rate != SAMPLE_RATE:
        wav = resample(wav, rate, SAMPLE_RATE)
    if is_silent(wav):
        raise UserError(f"{name} is silent; record or choose a clip with speech in it")
    return wav


def resample(wav: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    g = math.gcd(int(rate_in), int(rate_out))
    out = torchaudio.functional.resample(torch.from_numpy(wav), rate_in // g, rate_out // g)
    return out.numpy().astype(np.float32)


def save_audio(path: str | Path, wav: np.ndarray, rate: int = SAMPLE_RATE, fmt: str | None = None) -> None:
    """WAV/FLAC/OGG by extension (or `fmt`, for temporary names), 16-bit PCM for WAV and FLAC."""
    path = Path(path)
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in ("wav", "flac", "ogg"):
        raise UserError(f"cannot write {path.name}: use a .wav, .flac or .ogg file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "VORBIS" if fmt == "ogg" else "PCM_16"
    sf.write(str(path), np.clip(wav, -1.0, 1.0), rate, subtype=subtype, format=fmt.upper())


def loudness(wav: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """ITU-R BS.1770 integrated loudness (LUFS, pyloudnorm; gated, so pauses do not count); -inf
    for silence. Clips under 0.4 s (one gating block) are read by their RMS level."""
    import pyloudnorm

    if wav.size >= int(0.4 * rate):
        return float(pyloudnorm.Meter(rate).integrated_loudness(wav.astype(np.float64)))
    return 20 * math.log10(max(float(np.sqrt(np.mean(wav ** 2))), 1e-9)) - 0.691


def normalize_loudness(wav: np.ndarray, target_lufs: float = TARGET_LUFS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """`loudness` to target_lufs, peaks kept below 0.99."""
    level = loudness(wav, rate)
    if not math.isfinite(level):
        return wav
    out = wav * (10 ** ((target_lufs - level) / 20))
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out = out * (0.99 / peak)
    return out.astype(np.float32)


def mel_scale_params(frontend: str) -> tuple[int, float]:
    """(sample_rate, f_max) that the mel filterbank of a front end is built with."""
    if frontend == "stargan_vc_compat":
        return 16000, 8000.0  # torchaudio's defaults, which the reference code leaves in place
    if frontend == "xfavot24k":
        return SAMPLE_RATE, SAMPLE_RATE / 2
    raise ValueError(f"unknown mel front end {frontend!r}")


def make_mel_transform(frontend: str, dtype: torch.dtype = torch.float64) -> torchaudio.transforms.MelSpectrogram:
    """The front end's mel spectrogram (power) as a module, built in `dtype`."""
    sr, f_max = mel_scale_params(frontend)
    # torchaudio builds the filterbank and window in the default dtype; in float32 the filterbank
    # alone is off by ~1e-5, so the precise transform is built in float64 throughout
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=sr, f_max=f_max, n_fft=N_FFT, win_length=WIN, hop_length=HOP, n_mels=N_MELS)
    finally:
        torch.set_default_dtype(previous)


@functools.lru_cache(maxsize=8)
def _mel_transform(frontend: str, dtype: torch.dtype) -> torchaudio.transforms.MelSpectrogram:
    return make_mel_transform(frontend, dtype)


def log_mel(wav: np.ndarray | torch.Tensor, frontend: str = "xfavot24k", precise: bool = True) -> torch.Tensor:
    """(samples,) or (B, samples) at 24 kHz -> normalised log-mel (80, T) or (B, 80, T).

    T = samples // 300 + 1 (centred frames). precise: the STFT runs in float64 (in float32 the
    quiet top bands carry ~1e-5 of rounding error through the log; 3x faster, fine for augmented
    training crops); the result is float32 either way."""
    dtype = torch.float64 if precise else torch.float32
    x = torch.as_tensor(wav).to(dtype)
    transform = _mel_transform(frontend, dtype).to(x.device)
    frames = x.shape[-1] // HOP + 1
    if frames <= MEL_CHUNK_FRAMES:
        power = transform(x)
    else:  # a long clip: its float64 STFT would take ~1.3 GB per 10 minutes, so take it in pieces
        pieces = []
        for rs, re_, ks, ke in chunk_spans(frames, MEL_CHUNK_FRAMES, MEL_CHUNK_CONTEXT):
            end = x.shape[-1] if re_ == frames else (re_ - 1) * HOP + 1  # frames rs..re_-1, centred
            pieces.append(transform(x[..., rs * HOP:end])[..., ks - rs:ke - rs])
        power = torch.cat(pieces, dim=-1)
    mel = torch.log(1e-5 + power)
    return ((mel - MEL_MEAN) / MEL_STD).float()


# frames per piece of a long clip's mel, and the frames read either side of it: 4 hops (1200
# samples) cover half an FFT window (1024), so the kept frames never see a piece's padded edge
# and the pieces join into exactly the whole clip's mel
MEL_CHUNK_FRAMES = 4000
MEL_CHUNK_CONTEXT = 4


def frames_to_samples(frames: int) -> int:
    return frames * HOP


def pad_frames(mel: torch.Tensor, multiple: int = 1, minimum: int = 0) -> tuple[torch.Tensor, int]:
    """Pad the time axis (last) of a mel to a multiple/minimum length; returns (padded, original T).

    Padding repeats the clip (wrap) rather than adding silence, so style statistics stay speech."""
    t = mel.shape[-1]
    target = max(t, minimum)
    target = -(-target // multiple) * multiple
    if target == t:
        return mel, t
    reps = -(-target // t)
    return mel.repeat(*([1] * (mel.dim() - 1)), reps)[..., :target], t


def chunk_spans(total: int, chunk: int, context: int) -> list[tuple[int, int, int, int]]:
    """Split [0, total) into pieces of `chunk` frames, each read with `context` frames either side.

    Returns (read_start, read_end, keep_start, keep_end) in frames; keep spans tile [0, total)."""
    spans = []
    for keep_start in range(0, total, chunk):
        keep_end = min(keep_start + chunk, total)
        spans.append((max(0, keep_start - context), min(total, keep_end + context), keep_start, keep_end))
    return spans


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # HTK, torchaudio's MelSpectrogram default


def _mel_to_hz(m):
    return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=64)
def _formant_warp(factor: float, frontend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each mel bin's neighbours (lo, hi) and weight of hi at frequency / factor."""
    _, f_max = mel_scale_params(frontend)
    centres = np.linspace(0.0, _hz_to_mel(f_max), N_MELS + 2)[1:-1]  # the filterbank's centre mels
    pos = np.interp(_hz_to_mel(_mel_to_hz(centres) / factor), centres, np.arange(N_MELS))  # fractional source bin
    lo = np.floor(pos).astype(np.int64)
    return torch.from_numpy(lo), torch.from_numpy(np.minimum(lo + 1, N_MELS - 1)), torch.tensor(pos - lo, dtype=torch.float32)


ENVELOPE_CEPSTRA = 13  # mel-cepstral coefficients that make a spectral envelope (MFCC's usual 13)


@functools.lru_cache(maxsize=4)
def _envelope_lifter(device: str) -> torch.Tensor:
    """(80, 80) projection of a log-mel frame onto its first ENVELOPE_CEPSTRA (orthonormal) DCT coefficients."""
    dct = torchaudio.functional.create_dct(ENVELOPE_CEPSTRA, N_MELS, norm="ortho")  # (80, K)
    return (dct @ dct.T).to(device)


def warp_formants(mel: torch.Tensor, factor: float, frontend: str = "xfavot24k") -> torch.Tensor:
    """A log-mel (80, T) with its spectral envelope stretched along frequency by `factor` (> 1:
    formants up), as vocal-tract-length normalisation warps it (each bin reads the envelope at
    frequency / factor). The fine structure (the resolved harmonics of the low bins) stays put:
    stretched with the envelope it moves the pitch G_A hears away from the F0 features (see
    Engine.voice_from_style for what that cost)."""
    if factor == 1.0:
        return mel
    lo, hi, w = (t.to(mel.device) for t in _formant_warp(float(factor), frontend))
    w = w.to(mel.dtype)[:, None]
    envelope = _envelope_lifter(str(mel.device)).to(mel.dtype) @ mel
    return mel - envelope + envelope[lo] * (1 - w) + envelope[hi] * w


SPEECH_FLOOR_DB = 30.0   # frames this far below a clip's loudest are pauses, not speech
MEL_UNIT_DB = MEL_STD * 10 / math.log(10)  # one unit of the normalised log-mel (power), in dB


def speech_envelope(mel: torch.Tensor) -> torch.Tensor:
    """(80,) long-term spectral envelope of a log-mel (80, T): its speech frames (within
    SPEECH_FLOOR_DB of the loudest) averaged, then lifted to ENVELOPE_CEPSTRA mel-cepstra, so
    that it holds the voice's timbre (vocal tract, voice quality, microphone) and not the words."""
    level = mel.mean(0)
    speech = mel[:, level >= level.max() - SPEECH_FLOOR_DB / MEL_UNIT_DB]
    return _envelope_lifter(str(mel.device)).to(mel.dtype) @ speech.mean(1)


def envelope_gain(mel: torch.Tensor, envelope: torch.Tensor, strength: float = 1.0,
                  max_db: float = 12.0) -> torch.Tensor:
    """(80,) the equaliser, in normalised log-mel units a band, that moves the speech envelope of
    a log-mel (80, T) `strength` of the way to `envelope` (80,), each band by at most `max_db`."""
    limit = max_db / MEL_UNIT_DB
    return (strength * (envelope.to(mel) - speech_envelope(mel))).clamp(-limit, limit)


def match_envelope(mel: torch.Tensor, envelope: torch.Tensor, strength: float = 1.0,
                   max_db: float = 12.0) -> torch.Tensor:
    """The log-mel (80, T) through a fixed equaliser (`envelope_gain`) onto `envelope`: the
    long-term-average-spectrum match of audio production's "match EQ"."""
    if strength == 0.0:
        return mel
    return mel + envelope_gain(mel, envelope, strength, max_db)[:, None]


# -- pitch ---------------------------------------------------------------------------------------
def f0_track(wav: np.ndarray, hop: int = HOP) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz) and voicing per frame (T = len // hop + 1; the mel frames at the default hop) of a
    24 kHz waveform (YIN, with quiet or noisy frames unvoiced)."""
    import librosa

    f0 = librosa.yin(wav, fmin=50, fmax=600, sr=SAMPLE_RATE, frame_length=2048, hop_length=hop, center=True)
    rms = librosa.feature.rms(y=wav, frame_length=2048, hop_length=hop, center=True)[0]
    zcr = librosa.feature.zero_crossing_rate(wav, frame_length=2048, hop_length=hop, center=True)[0]
    loud = 20 * np.log10(rms + 1e-9) > 20 * np.log10(rms.max() + 1e-9) - 30
    voiced = loud & (zcr < 0.2) & (f0 > 55) & (f0 < 590)
    return np.where(voiced, f0, 0.0).astype(np.float32), voiced


def median_f0(clips: list[np.ndarray], hop: int = HOP) -> float:
    """Median voiced F0 (Hz) over up to 12 clips; NaN when none has a voiced frame. A coarser hop
    reads fewer frames (the Engine's register reads use 4 * HOP: 18x faster on 3 s clips)."""
    values = []
    for wav in clips[:12]:
        f0, voiced = f0_track(wav, hop)
        values.extend(f0[voiced].tolist())
    return float(np.median(values)) if values else float("nan")


def near_register_line(f0: float, semitones: float = 2.0) -> bool:
    """Whether a median F0 sits within `semitones` of MALE_BELOW_HZ (147-185 Hz at 2), where adult
    registers overlap and `gender_from_f0` is a guess (its misreads of real voices sit there or
    just outside: see the model card)."""
    return not math.isnan(f0) and abs(12 * math.log2(f0 / MALE_BELOW_HZ)) < semitones


def gender_from_f0(f0: float) -> str | None:
    """"male" below MALE_BELOW_HZ of median F0, else "female"; None for NaN (no voiced frame)."""
    return None if math.isnan(f0) else ("male" if f0 < MALE_BELOW_HZ else "female")


def pitch_shift(wav: np.ndarray, semitones: float) -> np.ndarray:
    """The clip transposed by whole `semitones` (librosa: phase vocoder + soxr resampling; torchaudio's
    pitch_shift took 1.1 s for 5 s of audio here, librosa 31 ms), same length."""
    import librosa

    steps = int(round(semitones))
    if steps == 0:
        return wav
    out = librosa.effects.pitch_shift(wav, sr=SAMPLE_RATE, n_steps=steps, res_type="soxr_hq")
    return np.pad(out[: wav.size], (0, max(0, wav.size - out.size))).astype(np.float32)
