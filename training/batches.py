"""Turns a StepPlan into tensors: faces, mel crops, domain labels. Decoded files are cached in
memory; a file that fails to load is logged once, dropped, and replaced by another item of the
same speaker, so one damaged file never stops a run."""
from __future__ import annotations

import logging

import numpy as np
import torch

from core import audio, face

from .data.datasets import Dataset

log = logging.getLogger(__name__)


class BatchBuilder:
    def __init__(self, data: Dataset, img_size: int, crop_frames: int, mel_frontend: str):
        self.data, self.size, self.crop, self.frontend = data, img_size, crop_frames, mel_frontend
        self._faces: dict[str, torch.Tensor] = {}
        self._mels: dict[str, torch.Tensor] = {}
        self.bad: set[str] = set()

    def _load(self, kind: str, speaker: int, index: int, rng: np.random.Generator) -> torch.Tensor:
        files = self.data.speakers[speaker].faces if kind == "face" else self.data.speakers[speaker].voices
        for attempt in range(len(files) + 1):
            path = str(files[index])
            if path not in self.bad:
                cache = self._faces if kind == "face" else self._mels
                if path not in cache:
                    try:
                        cache[path] = self._decode_face(path) if kind == "face" else self._decode_mel(path)
                    except Exception as exc:
                        self.bad.add(path)
                        log.warning("skipping unreadable %s %s (%s); using another file of the speaker", kind, path, exc)
                        index = int(rng.integers(len(files)))
                        continue
                return cache[path]
            index = int(rng.integers(len(files)))
        raise RuntimeError(f"no readable {kind} files left for speaker {self.data.speakers[speaker].id}")

    def _decode_face(self, path: str) -> torch.Tensor:
        img = face.prepare_face(face.load_image(path), self.size, None)
        return (face.image_to_tensor(img) * 127.5 + 127.5).round().to(torch.uint8)  # compact cache

    def _decode_mel(self, path: str) -> torch.Tensor:
        return audio.log_mel(audio.load_audio(path), self.frontend)

    def faces(self, items: list[tuple[int, int]], rng: np.random.Generator, flip: bool = True) -> torch.Tensor:
        out = []
        for spk, idx in items:
            x = self._load("face", spk, idx, rng).float() / 127.5 - 1.0
            if flip and rng.uniform() < 0.5:
                x = x.flip(-1)
            out.append(x)
        return torch.stack(out)

    def mels(self, items: list[tuple[int, int]], rng: np.random.Generator) -> torch.Tensor:
        out = []
        for spk, idx in items:
            mel = self._load("voice", spk, idx, rng)
            mel, _ = audio.pad_frames(mel, minimum=self.crop)
            start = int(rng.integers(mel.shape[-1] - self.crop + 1))
            out.append(mel[:, start:start + self.crop])
        return torch.stack(out)[:, None]  # (B, 1, 80, crop)

    def other_item(self, items: list[tuple[int, int]], kind: str, rng: np.random.Generator) -> list[tuple[int, int]]:
        """A second reference of the same speakers (for the diversity term)."""
        attr = "faces" if kind == "face" else "voices"
        return [(spk, int(rng.integers(len(getattr(self.data.speakers[spk], attr))))) for spk, _ in items]
