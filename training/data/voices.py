"""Speech synthesis for the synthetic corpus: espeak-ng in-process, flite + sox, MBROLA optional.

espeak-ng runs through its C library (ctypes) with a private copy of its data folder, where each
speaker gets a variant file (pitch, formant scale, tremor, roughness): no process per utterance,
~100x faster than calling the `espeak-ng` program. flite voices get sox speed/pitch/tempo so the
identity's F0, vocal-tract scale (formants) and rate still apply.
All output: float32 mono at 24 kHz.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio import SAMPLE_RATE, resample
from core.errors import UserError

from .identity import Identity, VoiceParams

SYSTEM_ESPEAK_DATA = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data")
ESPEAK_RATE_WPM = 165
# median F0 of each flite voice on a calibration sentence (measured with librosa.yin)
FLITE_VOICES = {"female": {"slt": 173.0}, "male": {"rms": 100.0, "awb": 132.0, "kal16": 105.0}}


def _find_espeak_data() -> Path:
    candidates = [Path(p) for p in (os.environ.get("ESPEAK_DATA_PATH", ""),) if p]
    candidates += [SYSTEM_ESPEAK_DATA, Path("/usr/share/espeak-ng-data"), Path("/usr/lib/espeak-ng-data")]
    for c in candidates:
        if (c / "phontab").is_file():
            return c
    raise UserError("espeak-ng data not found; install the Debian package espeak-ng")


def prepare_data_folder(workdir: Path) -> Path:
    """A private espeak-ng data folder: the system's data linked in, plus our own variant folder.
    Call it once before starting workers; returns the variant folder."""
    data = Path(workdir) / "espeak-ng-data"
    variants = data / "voices" / "!v"
    if variants.is_dir():
        return variants
    system = _find_espeak_data()
    variants.mkdir(parents=True, exist_ok=True)
    links = [(e, data / e.name) for e in system.iterdir() if e.name != "voices"]
    links += [(e, data / "voices" / e.name) for e in (system / "voices").iterdir() if e.name != "!v"]
    for target, link in links:  # share everything but the variant folder
        try:
            os.symlink(target, link)
        except FileExistsError:
            pass
    return variants


class Espeak:
    """One initialised espeak-ng per process (the library is a singleton)."""

    _instance: "Espeak | None" = None

    def __init__(self, workdir: Path):
        libname = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(libname)
        except OSError:
            raise UserError("libespeak-ng is not installed; install the Debian package espeak-ng")
        self.root = Path(workdir)
        self.variants = prepare_data_folder(self.root)
        self._chunks: list[np.ndarray] = []

        @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        def collect(wav, n, events):
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = collect  # keep a reference: the library holds a raw pointer
        AUDIO_OUTPUT_SYNCHRONOUS = 2
        self.rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.root).encode(), 0)
        if self.rate <= 0:
            raise UserError("espeak-ng failed to initialise")
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls, workdir: Path) -> "Espeak":
        if cls._instance is None:
            cls._instance = cls(workdir)
        return cls._instance

    def write_variant(self, name: str, gender: str, p: VoiceParams) -> None:
        lines = [f"name {name}", f"gender {gender}",
                 f"pitch {max(40, round(p.f0 - p.f0_range / 2))} {round(p.f0 + p.f0_range / 2)}",
                 f"flutter {p.tremor}", f"roughness {p.roughness}"]
        lines += [f"formant {k} {round(100 * p.tract)} 100 100" for k in range(9)]
        (self.variants / name).write_text("\n".join(lines) + "\n")

    def synth(self, text: str, voice: str, rate_factor: float) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise UserError(f"espeak-ng has no voice {voice!r}")
        ESPEAK_RATE = 1
        self.lib.espeak_SetParameter(ESPEAK_RATE, int(ESPEAK_RATE_WPM * rate_factor), 0)
        self._chunks = []
        data = text.encode("utf-8")
        CHARS_UTF8, POS_CHARACTER = 1, 1
        self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if not self._chunks:
            raise UserError(f"espeak-ng produced no audio for {text!r}")
        wav = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        return resample(wav, self.rate, SAMPLE_RATE)


def mbrola_available() -> bool:
    return shutil.which("mbrola") is not None and Path("/usr/share/mbrola/us1").exists()


def flite_voice(identity: Identity) -> tuple[str, float]:
    voices = FLITE_VOICES[identity.gender]
    names = sorted(voices)
    name = names[(identity.hair_style + identity.skin) % len(names)]  # a stable choice per speaker
    return name, voices[name]


def synth_flite(text: str, identity: Identity, p: VoiceParams) -> np.ndarray:
    """flite voice, then sox: speed (formants by the tract scale), pitch (to the F0 target), tempo (rate)."""
    if shutil.which("flite") is None or shutil.which("sox") is None:
        raise UserError("flite and sox are needed for flite voices; install the Debian packages flite and sox")
    voice, natural_f0 = flite_voice(identity)
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True)
        speed = p.tract
        pitch_cents = 1200 * math.log2(p.f0 / natural_f0) - 1200 * math.log2(speed)
        tempo = p.rate / speed
        subprocess.run(["sox", "-D", str(raw), "-b", "16", str(out),
                        "speed", f"{speed:.4f}", "pitch", f"{pitch_cents:.1f}", "tempo", "-s", f"{tempo:.4f}",
                        "rate", "-h", str(SAMPLE_RATE)], check=True, capture_output=True)
        wav, rate = sf.read(out, dtype="float32")
    return wav if rate == SAMPLE_RATE else resample(wav, rate, SAMPLE_RATE)


def synthesize(espeak: Espeak, text: str, identity: Identity, p: VoiceParams) -> np.ndarray:
    if identity.engine == "flite":
        return synth_flite(text, identity, p)
    if identity.engine == "mbrola":
        voice = "mb-us1" if identity.gender == "female" else "mb-us2"
        return espeak.synth(text, voice, p.rate)
    variant = f"xfv_{identity.speaker}"
    if _written_variants.get(variant) != p:  # (re)write once per process: a new seed may reuse the name
        espeak.write_variant(variant, identity.gender, p)
        _written_variants[variant] = p
    return espeak.synth(text, f"{identity.accent}+{variant}", p.rate)


_written_variants: dict[str, VoiceParams] = {}
