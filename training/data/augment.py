"""Augmentation toward real microphones: what a creator's recording does to a clean voice.

`MicAugment()(wav, rng)` applies, each with its own probability and random strength:
- speed perturbation (resampling: pitch, formants and tempo change together, +-6 %);
- tempo perturbation (pitch and formants kept): applied by the caller on the mel's time axis,
  see `stretch_mel`, because a waveform time-stretch of that quality costs far more;
- room reverb: a synthetic impulse response (exponentially decaying noise, RT60 0.15-0.8 s,
  a direct path and early reflections), FFT convolution;
- band-limiting: a telephone band (300-3400 Hz) or a laptop/headset microphone (high-pass
  80-200 Hz, low-pass 3.5-10 kHz, a tilt);
- background noise: white, pink, brown or mains hum (50/60 Hz and harmonics), SNR 5-35 dB;
- level and clipping: gain -30..+6 dB, hard clipping when the gain drives peaks past full scale.
All filtering is torchaudio's (biquads, fftconvolve, resample). Input and output: float32 mono
numpy at 24 kHz, same length as the input (speed changes are cropped or wrapped back).
"""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from core.audio import SAMPLE_RATE


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        base = rng.choice([50.0, 60.0])
        return sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spectrum /= f ** (0.5 if kind == "pink" else 1.0)  # pink 1/f power, brown 1/f^2
    return np.fft.irfft(spectrum, n)


def room_impulse(rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.15, 0.8)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.003 * SAMPLE_RATE)] = 0  # the direct path comes first, reflections after ~3 ms
    rir = tail * rng.uniform(0.2, 0.6)
    rir[0] = 1.0
    for _ in range(rng.integers(2, 6)):  # a few early reflections
        rir[int(rng.uniform(0.002, 0.03) * SAMPLE_RATE)] += rng.uniform(0.2, 0.6) * rng.choice([-1, 1])
    return (rir / np.sqrt(np.sum(rir ** 2))).astype(np.float32)


class MicAugment:
    def __init__(self, p_speed: float = 0.3, p_reverb: float = 0.4, p_band: float = 0.4, p_noise: float = 0.5,
                 p_level: float = 0.5):
        self.p = dict(speed=p_speed, reverb=p_reverb, band=p_band, noise=p_noise, level=p_level)

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = wav.size
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        if rng.uniform() < self.p["speed"]:
            step = int(rng.choice([-6, -4, -2, 2, 4, 6]))  # percent; small integer ratios keep resample cheap
            x = AF.resample(x, 100 + step, 100)  # played faster/slower
            x = x[:n] if x.numel() >= n else x.repeat(-(-n // x.numel()))[:n]
        if rng.uniform() < self.p["reverb"]:
            wet = AF.fftconvolve(x, torch.from_numpy(room_impulse(rng)))[:n]
            x = wet * (x.abs().max() / wet.abs().max().clamp_min(1e-6))
        if rng.uniform() < self.p["band"]:
            if rng.uniform() < 0.35:  # telephone
                x = AF.highpass_biquad(x, SAMPLE_RATE, 300.0)
                x = AF.lowpass_biquad(AF.lowpass_biquad(x, SAMPLE_RATE, 3400.0), SAMPLE_RATE, 3400.0)
            else:  # a small microphone: rumble cut, treble roll-off, a presence tilt
                x = AF.highpass_biquad(x, SAMPLE_RATE, float(rng.uniform(80, 200)))
                x = AF.lowpass_biquad(x, SAMPLE_RATE, float(rng.uniform(3500, 10000)))
                x = AF.equalizer_biquad(x, SAMPLE_RATE, float(rng.uniform(1500, 5000)), float(rng.uniform(-6, 6)), 0.7)
        if rng.uniform() < self.p["noise"]:
            noise = torch.from_numpy(_noise(str(rng.choice(["white", "pink", "brown", "hum"])), n, rng).astype(np.float32))
            x = AF.add_noise(x[None], noise[None], torch.tensor([rng.uniform(5, 35)], dtype=torch.float32))[0]
        if rng.uniform() < self.p["level"]:
            x = (x * 10 ** (rng.uniform(-30, 6) / 20)).clamp(-1, 1)  # loud takes clip
        return x.numpy().astype(np.float32)


def stretch_mel(mel: torch.Tensor, rate: float) -> torch.Tensor:
    """Tempo change of a (80, T) mel (pitch and formants kept): linear interpolation along time."""
    t = mel.shape[-1]
    new_t = max(2, int(round(t / rate)))
    return torch.nn.functional.interpolate(mel[None], size=new_t, mode="linear", align_corners=True)[0]
