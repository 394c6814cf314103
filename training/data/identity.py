"""Synthetic speaker identities: the shared cause of a speaker's face and voice.

Each identity has voice-linked attributes (gender, age, build, energy), rendered into BOTH the
voice (pitch, vocal-tract/formant scale, rate, pitch range, tremor) and the face (hair and
facial-hair cues, grey hair and lines, face width, eye and brow shape), plus free attributes that
only one modality shows (accent for the voice; skin tone, hair and clothes colour for the face).
`voice_linked_attributes` is the attribute oracle's ground truth.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

GENDERS = ("female", "male")
AGES = ("young", "adult", "senior")
BUILDS = ("slim", "average", "large")
ENERGIES = ("calm", "lively")
# the attributes a face should reveal about its voice, with their classes (the oracle's heads)
VOICE_LINKED = {"gender": GENDERS, "age": AGES, "build": BUILDS, "energy": ENERGIES}

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
SKIN_TONES = ((255, 224, 196), (241, 194, 155), (224, 172, 125), (198, 134, 90), (141, 85, 54), (96, 60, 40))
HAIR_COLOURS = ((30, 24, 22), (84, 52, 33), (150, 100, 55), (222, 188, 120), (165, 60, 30), (60, 40, 35))
CLOTHES_COLOURS = ((52, 93, 168), (180, 52, 60), (60, 140, 90), (230, 180, 60), (120, 80, 160), (40, 40, 50),
                   (220, 220, 220), (230, 120, 50))
KINDS = ("paired", "audio", "image")  # audio-visual (GRID-like), audio-only (VCTK-like), image-only (CelebA-like)
# speech engines (training/data/voices.py), each a voice family that can render any identity
ENGINES = ("espeak", "flite", "festival", "pico", "mbrola")
DEFAULT_ENGINES = ("espeak", "flite", "festival", "pico")  # those with Debian/PyPI packages in scripts/install.sh


@dataclass
class Identity:
    speaker: str
    gender: str
    age: str
    build: str
    energy: str
    # continuous within-class jitter in [-1, 1]: every speaker is an individual
    pitch_jitter: float
    tract_jitter: float
    rate_jitter: float
    # free attributes (one modality only)
    accent: str
    skin: int
    hair: int
    clothes: int
    hair_style: int     # variant of the gendered hair shape
    facial_hair: int    # males: 0 none, 1 stubble, 2 moustache, 3 beard
    engine: str         # one of ENGINES

    def to_dict(self) -> dict:
        return asdict(self)


def first_engine_share(engines: tuple[str, ...]) -> float:
    """espeak (first) renders 75 % of speakers when mixed with one other engine (corpora made before
    Festival and Pico keep their exact draws), 40 % when mixed with several."""
    return 1.0 if len(engines) == 1 else 0.75 if len(engines) == 2 else 0.4


def sample_identity(rng: np.random.Generator, speaker: str, engines: tuple[str, ...] = DEFAULT_ENGINES) -> Identity:
    gender = GENDERS[rng.integers(2)]
    return Identity(
        speaker=speaker,
        gender=gender,
        age=AGES[rng.integers(3)],
        build=BUILDS[rng.integers(3)],
        energy=ENERGIES[rng.integers(2)],
        pitch_jitter=float(rng.uniform(-1, 1)),
        tract_jitter=float(rng.uniform(-1, 1)),
        rate_jitter=float(rng.uniform(-1, 1)),
        accent=ACCENTS[rng.integers(len(ACCENTS))],
        skin=int(rng.integers(len(SKIN_TONES))),
        hair=int(rng.integers(len(HAIR_COLOURS))),
        clothes=int(rng.integers(len(CLOTHES_COLOURS))),
        hair_style=int(rng.integers(3)),
        facial_hair=int(rng.integers(4)) if gender == "male" else 0,
        engine=engines[0] if rng.uniform() < first_engine_share(engines) else engines[1 + rng.integers(len(engines) - 1)],
    )


def voice_linked_attributes(identity: Identity | dict) -> dict[str, str]:
    """Ground truth for the attribute oracle: what a matching face should show."""
    d = identity if isinstance(identity, dict) else identity.to_dict()
    return {key: d[key] for key in VOICE_LINKED}


@dataclass
class VoiceParams:
    """Synthesis targets derived from an identity (engine-independent)."""
    f0: float           # median F0 target, Hz
    f0_range: float     # intonation range, Hz above the base
    tract: float        # formant frequency scale (1 = engine default); > 1 = shorter vocal tract
    rate: float         # speaking-rate factor (1 = engine default)
    tremor: int         # espeak flutter (age)
    roughness: int      # espeak roughness (age)


def voice_params(identity: Identity) -> VoiceParams:
    base = {"female": 205.0, "male": 112.0}[identity.gender]
    age_f0 = {"young": 1.10, "adult": 1.0, "senior": 0.9 if identity.gender == "female" else 1.05}[identity.age]
    build_f0 = {"slim": 1.06, "average": 1.0, "large": 0.92}[identity.build]
    f0 = base * age_f0 * build_f0 * (1 + 0.05 * identity.pitch_jitter)
    tract = {"slim": 1.10, "average": 1.0, "large": 0.90}[identity.build] * (1 + 0.025 * identity.tract_jitter)
    tract *= 1.06 if identity.gender == "female" else 1.0
    rate = {"calm": 0.88, "lively": 1.18}[identity.energy] * {"young": 1.05, "adult": 1.0, "senior": 0.88}[identity.age]
    rate *= 1 + 0.04 * identity.rate_jitter
    f0_range = f0 * {"calm": 0.25, "lively": 0.7}[identity.energy]
    # espeak units: flutter 2 and roughness 2 are its defaults; seniors waver and creak audibly
    tremor = {"young": 0, "adult": 2, "senior": 8}[identity.age]
    roughness = {"young": 1, "adult": 2, "senior": 5}[identity.age]
    return VoiceParams(round(f0, 1), round(f0_range, 1), round(tract, 3), round(rate, 3), tremor, roughness)
