"""Step sampling per the paper's section 3.3 / Table 1.

Each step draws N distinct *target* speakers of one data kind; their faces and voices are the
references, and Table 1 decides what may be used with them:

  target kind   | style from E_I | style from E_A | latent (M) | D_A / M heads      | InfoNCE
  paired (GRID) |      yes       |      yes       |    yes     | gender or speaker  |   yes
  audio-only    |      no        |      yes       |    yes     | gender or speaker  |   no
  image-only    |      yes       |      no        |    yes     | gender only        |   no
  D_I always uses gender heads. Speaker heads exist only for training speakers with real voices.

Sources (what gets translated) are drawn from all training speakers that have that modality.
A plan is a pure function of (seed, step, rank): resuming at step s replays the same batches,
and DDP ranks draw disjoint random streams.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import UserError

from .datasets import Dataset

REFERENCES = ("image", "audio", "latent")
TABLE1 = {
    "paired": {"references": ("image", "audio", "latent"), "speaker_heads": True, "infonce": True},
    "audio": {"references": ("audio", "latent"), "speaker_heads": True, "infonce": False},
    "image": {"references": ("image", "latent"), "speaker_heads": False, "infonce": False},
}
GENERATOR_LOSSES = ("adv", "sty", "ds", "cyc")          # both modalities
AUDIO_LOSSES = ("asr", "f0", "norm", "adv_cls")          # audio generator only


def table1_rules(kind: str) -> dict:
    if kind not in TABLE1:
        raise ValueError(f"unknown data kind {kind!r}")
    return TABLE1[kind]


@dataclass
class StepPlan:
    step: int
    kind: str                               # data kind of the target speakers
    domain_type: str                        # "gender" or "speaker": which heads D_A and M use
    image_reference: str                    # style source for G_I: image / audio / latent
    audio_reference: str                    # style source for G_A
    target_speakers: list[int]              # indices into Dataset.speakers, distinct
    target_genders: list[int]               # 0 female, 1 male
    target_domains: list[int]               # mapping / D_A head per sample (gender index or 2 + speaker domain)
    ref_faces: list[tuple[int, int]]        # (speaker, face index) per target; empty if the kind has no faces
    ref_voices: list[tuple[int, int]]       # (speaker, voice index) per target
    source_faces: list[tuple[int, int]]
    source_voices: list[tuple[int, int]]
    losses: frozenset[str] = field(default_factory=frozenset)

    @property
    def use_infonce(self) -> bool:
        return "infonce" in self.losses


class Table1Sampler:
    def __init__(self, data: Dataset, batch_size: int, speaker_domains: list[str], seed: int = 0,
                 speaker_head_prob: float = 0.5, kind_weights: dict[str, float] | None = None,
                 rank: int = 0, world_size: int = 1, need_voices: bool = True):
        self.data, self.batch, self.seed = data, batch_size, seed
        self.rank, self.world = rank, world_size
        self.speaker_head_prob = speaker_head_prob
        self.domain_of = {name: i for i, name in enumerate(speaker_domains)}
        speakers = data.speakers
        self.by_kind = {k: [i for i, s in enumerate(speakers) if s.kind == k and self._usable(s, k)] for k in TABLE1}
        self.face_sources = [i for i, s in enumerate(speakers) if s.faces]
        self.voice_sources = [i for i, s in enumerate(speakers) if s.voices]
        if not self.face_sources or (need_voices and not self.voice_sources):
            raise UserError(f"{data.name}: training needs both faces and voices (found "
                            f"{len(self.face_sources)} speakers with faces, {len(self.voice_sources)} with voices)")
        weights = kind_weights or {k: float(len(v)) for k, v in self.by_kind.items()}
        self.kinds = [k for k in TABLE1 if self.by_kind[k] and weights.get(k, 0) > 0]
        if not self.kinds:
            raise UserError(f"{data.name}: no speaker can serve as a style reference")
        w = np.array([weights[k] for k in self.kinds], dtype=float)
        self.kind_p = w / w.sum()

    @staticmethod
    def _usable(s, kind: str) -> bool:
        return s.gender is not None and (bool(s.faces) if kind != "audio" else True) and (
            bool(s.voices) if kind != "image" else True)

    def plan(self, step: int) -> StepPlan:
        rng = np.random.default_rng([self.seed, step, self.rank, self.world])
        kind = self.kinds[rng.choice(len(self.kinds), p=self.kind_p)]
        rules = table1_rules(kind)
        pool = self.by_kind[kind]
        n = min(self.batch, len(pool))
        # N distinct speakers: the InfoNCE negatives; reuse speakers only if the pool is small
        targets = list(rng.choice(pool, size=self.batch, replace=False)) if n == self.batch else \
            list(rng.choice(pool, size=self.batch, replace=True))
        speakers = self.data.speakers
        genders = [0 if speakers[t].gender == "female" else 1 for t in targets]
        has_domains = all(speakers[t].id in self.domain_of for t in targets)
        use_speaker = rules["speaker_heads"] and has_domains and rng.uniform() < self.speaker_head_prob
        domains = [2 + self.domain_of[speakers[t].id] for t in targets] if use_speaker else genders
        refs = rules["references"]
        image_ref = refs[rng.integers(len(refs))]
        audio_ref = refs[rng.integers(len(refs))]

        def pick(speaker_ids, attr):
            return [(int(s), int(rng.integers(len(getattr(speakers[s], attr))))) for s in speaker_ids]

        losses = set(GENERATOR_LOSSES) | set(AUDIO_LOSSES)
        distinct = len(set(targets)) == len(targets) and len(targets) >= 2
        if rules["infonce"] and distinct and all(speakers[t].identity for t in targets):
            losses.add("infonce")
        return StepPlan(
            step=step, kind=kind, domain_type="speaker" if use_speaker else "gender",
            image_reference=image_ref, audio_reference=audio_ref,
            target_speakers=[int(t) for t in targets], target_genders=genders, target_domains=domains,
            ref_faces=pick(targets, "faces") if kind != "audio" else [],
            ref_voices=pick(targets, "voices") if kind != "image" else [],
            source_faces=pick(rng.choice(self.face_sources, size=self.batch), "faces"),
            source_voices=pick(rng.choice(self.voice_sources, size=self.batch), "voices") if self.voice_sources else [],
            losses=frozenset(losses),
        )
