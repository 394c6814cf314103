"""Rendered translation targets for synthetic faces: what G_I(source, style of speaker B) should
look like, drawn by the same renderer that made the corpus.

The corpus records every face's identity and per-image nuisance (pose, expression, background,
light), so for a source face of speaker A and a reference speaker B the ideal output can be
rendered: A's nuisance with
- a face reference (reference-guided translation): B's whole identity;
- a voice reference (audio-guided translation): B's voice-linked attributes (gender, age, build,
  energy) and A's free ones (skin tone, hair colour and cut, clothes): a voice says nothing
  about those, so the output keeps the source's.
The trainer uses these targets in a warm-up term that anneals to zero (training/objective.py):
a deviation from the paper's unsupervised objective that buys sample efficiency on a CPU budget.
Faces that do not come from a synthetic corpus (real datasets, avatar sets) have no target.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.errors import UserError
from core.face import image_to_tensor

from .faces import Nuisance, render_face
from .identity import VOICE_LINKED, Identity
from .synth import load_manifest


class PairTargets:
    def __init__(self, size: int):
        self.size = size
        self._faces: dict[str, tuple[dict, dict]] = {}     # face path -> (speaker record, nuisance)
        self._speakers: dict[str, dict] = {}               # speaker id -> record
        self._roots: set[Path] = set()

    def _index(self, face_path: Path) -> None:
        root = face_path.parent.parent.parent  # CORPUS/faces/<speaker>/NNN.png
        if root in self._roots:
            return
        self._roots.add(root)
        try:
            manifest = load_manifest(root)
        except UserError:  # not a synthetic corpus: its faces have no targets
            return
        speakers = {s["speaker"]: s for s in manifest["speakers"]}
        self._speakers.update(speakers)
        for f in manifest["faces"]:
            self._faces[str(root / f["path"])] = (speakers[f["speaker"]], f["nuisance"])

    def available(self, face_path: str | Path, speaker_id: str) -> bool:
        """Synthetic source face, and a target speaker who has faces (audio-only speakers stay faceless)."""
        self._index(Path(face_path))
        return (str(face_path) in self._faces and speaker_id in self._speakers
                and self._speakers[speaker_id].get("kind") != "audio")

    @staticmethod
    def _identity(record: dict) -> Identity:
        return Identity(**{k: v for k, v in record.items() if k in Identity.__dataclass_fields__})

    def target(self, face_path: str | Path, flip: bool, speaker_id: str, reference: str) -> torch.Tensor | None:
        """(3, size, size) in [-1, 1], or None when the face or speaker is not synthetic."""
        if not self.available(face_path, speaker_id):
            return None
        source, nuisance = self._faces[str(face_path)]
        target = dict(self._speakers[speaker_id])
        if reference == "audio":  # the voice sets the linked attributes only
            target = {**source, **{k: target[k] for k in VOICE_LINKED}}
            if target["gender"] == "female":
                target["facial_hair"] = 0
            elif source["gender"] == "female":  # a male target from a female source: the reference's beard
                target["facial_hair"] = self._speakers[speaker_id]["facial_hair"]
        img = render_face(self._identity(target), Nuisance(**{**nuisance, "background": tuple(nuisance["background"])}),
                          self.size)
        x = image_to_tensor(img)
        return x.flip(-1) if flip else x

    def batch(self, faces: list[tuple[str, bool]], speakers: list[str], reference: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets for (face path, flipped) x target speaker; rows without one are zeros, masked out."""
        out, mask = [], []
        for (path, flip), sid in zip(faces, speakers):
            t = self.target(path, flip, sid, reference)
            mask.append(t is not None)
            out.append(t if t is not None else torch.zeros(3, self.size, self.size))
        return torch.stack(out), torch.tensor(mask)
