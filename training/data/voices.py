"""Speech synthesis for the synthetic corpus. Each engine is a voice family that renders any identity:

- espeak-ng (formant synthesis), in-process through its C library (ctypes) with a private copy of
  its data folder, where each speaker gets a variant file (pitch, formant scale, tremor,
  roughness): no process per utterance, ~100x faster than calling the `espeak-ng` program;
- flite (diphone / cluster-unit voices kal16, awb, rms, slt);
- Festival (`text2wave`: diphone voices kal and ked, the HTS statistical voice slt);
- SVOX Pico (the `ttspico` package: en-US and en-GB, both female; male identities get their
  formants and pitch lowered);
- MBROLA through espeak-ng when installed (Debian contrib/non-free, optional).
Recorded voices (flite, Festival, Pico) go through sox speed/pitch/tempo so that the identity's F0,
vocal-tract scale (formants) and rate still apply. All output: float32 mono at 24 kHz.
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
# median F0 of each voice on a calibration sentence (measured with librosa.yin)
FLITE_VOICES = {"female": {"slt": 173.0}, "male": {"rms": 100.0, "awb": 132.0, "kal16": 105.0}}
FESTIVAL_VOICES = {"female": {"cmu_us_slt_arctic_hts": 173.8}, "male": {"kal_diphone": 104.1, "ked_diphone": 103.1}}
PICO_VOICES = {"en-US": 165.5, "en-GB": 174.9}  # both female
CROSS_GENDER_FORMANTS = 0.84  # a female voice rendering a male identity: formants ~16 % lower (vocal-tract length)


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


def _stable_choice(identity: Identity, names: list[str]) -> str:
    return sorted(names)[(identity.hair_style + identity.skin) % len(names)]  # the same voice for all clips


def flite_voice(identity: Identity) -> tuple[str, float]:
    voices = FLITE_VOICES[identity.gender]
    name = _stable_choice(identity, list(voices))
    return name, voices[name]


def _need(*programs: str, package: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} not found; install the Debian package(s) {package}")


def _sox_to_identity(raw: Path, natural_f0: float, p: VoiceParams, formant_scale: float = 1.0) -> np.ndarray:
    """sox: speed (formants by the tract scale), pitch (to the F0 target), tempo (rate), 24 kHz."""
    out = raw.with_name("out.wav")
    speed = p.tract * formant_scale
    pitch_cents = 1200 * math.log2(p.f0 / natural_f0) - 1200 * math.log2(speed)
    tempo = p.rate / speed
    subprocess.run(["sox", "-D", str(raw), "-b", "16", str(out),
                    "speed", f"{speed:.4f}", "pitch", f"{pitch_cents:.1f}", "tempo", "-s", f"{tempo:.4f}",
                    "rate", "-h", str(SAMPLE_RATE)], check=True, capture_output=True)
    wav, rate = sf.read(out, dtype="float32")
    return wav if rate == SAMPLE_RATE else resample(wav, rate, SAMPLE_RATE)


def synth_flite(text: str, identity: Identity, p: VoiceParams) -> np.ndarray:
    _need("flite", "sox", package="flite sox")
    voice, natural_f0 = flite_voice(identity)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True)
        return _sox_to_identity(raw, natural_f0, p)


def synth_festival(text: str, identity: Identity, p: VoiceParams) -> np.ndarray:
    _need("text2wave", "sox", package="festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox")
    voices = FESTIVAL_VOICES[identity.gender]
    voice = _stable_choice(identity, list(voices))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        done = subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-o", str(raw)], input=text.encode(),
                              capture_output=True)
        if done.returncode != 0 or not raw.is_file():
            raise UserError(f"Festival could not speak with voice {voice} ({done.stderr.decode()[-200:].strip()}); "
                            "install festvox-kallpc16k, festvox-kdlpc16k and festvox-us-slt-hts")
        return _sox_to_identity(raw, voices[voice], p)


def pico_available() -> bool:
    try:
        import ttspico  # noqa: F401
    except ImportError:
        return False
    return True


def synth_pico(text: str, identity: Identity, p: VoiceParams) -> np.ndarray:
    _need("sox", package="sox")
    try:
        import ttspico
    except ImportError:
        raise UserError("SVOX Pico voices need the Python package ttspico (pip install ttspico)")
    language = _stable_choice(identity, list(PICO_VOICES))
    pcm = ttspico.TtsEngine(language).speak(text) or b""
    if not pcm:
        raise UserError(f"Pico produced no audio for {text!r}")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        sf.write(raw, np.frombuffer(pcm, dtype=np.int16), 16000, subtype="PCM_16")
        scale = 1.0 if identity.gender == "female" else CROSS_GENDER_FORMANTS
        return _sox_to_identity(raw, PICO_VOICES[language], p, scale)


def synthesize(espeak: Espeak, text: str, identity: Identity, p: VoiceParams) -> np.ndarray:
    if identity.engine in RECORDED_ENGINES:
        return RECORDED_ENGINES[identity.engine](text, identity, p)
    if identity.engine == "mbrola":
        voice = "mb-us1" if identity.gender == "female" else "mb-us2"
        return espeak.synth(text, voice, p.rate)
    variant = f"xfv_{identity.speaker}"
    if _written_variants.get(variant) != p:  # (re)write once per process: a new seed may reuse the name
        espeak.write_variant(variant, identity.gender, p)
        _written_variants[variant] = p
    return espeak.synth(text, f"{identity.accent}+{variant}", p.rate)


_written_variants: dict[str, VoiceParams] = {}
RECORDED_ENGINES = {"flite": synth_flite, "festival": synth_festival, "pico": synth_pico}


def check_engines(engines: tuple[str, ...]) -> None:
    """Fail before synthesis starts when an asked-for engine is not installed."""
    needs = {"espeak": (lambda: bool(ctypes.util.find_library("espeak-ng")), "the Debian package espeak-ng"),
             "flite": (lambda: shutil.which("flite") is not None, "the Debian package flite"),
             "festival": (lambda: shutil.which("text2wave") is not None and any(
                 Path("/usr/share/festival/voices").glob("*/*")), "the Debian packages festival festvox-kallpc16k "
                                                                 "festvox-kdlpc16k festvox-us-slt-hts"),
             "pico": (pico_available, "the Python package ttspico"),
             "mbrola": (mbrola_available, "mbrola and mbrola-us1/us2 (Debian contrib/non-free)")}
    missing = [f"{e} ({needs[e][1]})" for e in engines if not needs[e][0]()]
    if missing:
        raise UserError("speech engines not installed: " + "; ".join(missing))
    if "flite" in engines or "festival" in engines or "pico" in engines:
        _need("sox", package="sox")
