"""Turns a StepPlan into tensors: faces, mel crops, domain labels, latent codes.

Decoded files are cached in memory; a file that fails to load is logged once, dropped, and
replaced by another item of the same speaker, so one damaged file never stops a run.
`Prefetcher` builds the next step's batch on a background thread while the current step computes,
which keeps file decoding (the first epoch) and tensor assembly off the critical path.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from core import audio, face

from .data.augment import MicAugment, stretch_mel
from .data.datasets import Dataset
from .data.pairs import PairTargets
from .data.sampler import StepPlan

log = logging.getLogger(__name__)


class BatchBuilder:
    def __init__(self, data: Dataset, img_size: int, crop_frames: int, mel_frontend: str,
                 genders: tuple[str, ...] = ("female", "male"), latent_dim: int = 16,
                 domain_of: dict[str, int] | None = None, mic_augment: float = 0.0,
                 pair_weight: Callable[[int], float] | None = None):
        """mic_augment: probability that a reference voice crop goes through MicAugment (style
        references only: the sources stay clean, they are also the discriminator's real samples)."""
        self.data, self.size, self.crop, self.frontend = data, img_size, crop_frames, mel_frontend
        self.genders, self.latent_dim = genders, latent_dim
        self.domain_of = domain_of or {}
        self.mic_augment = mic_augment
        # rendered translation targets (training/data/pairs.py) for the steps whose pair term is on
        self.pair_weight = pair_weight
        self.pairs = PairTargets(img_size) if pair_weight is not None and pair_weight(0) > 0 else None
        self._faces: dict[str, torch.Tensor] = {}
        self._mels: dict[str, torch.Tensor] = {}
        self._heard: dict[str, torch.Tensor] = {}  # whole-clip mels as a microphone heard them (MicAugment)
        self._cache_lock = threading.Lock()
        self.bad: set[str] = set()

    def gender_index(self, speaker: int) -> int:
        return self.genders.index(self.data.speakers[speaker].gender)

    # -- one step's tensors ----------------------------------------------------------------------
    def build(self, plan: StepPlan, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """All inputs of one iteration (CPU tensors); see training/objective.py for their use."""
        used: list[tuple[str, bool]] = []
        b = {"x_img": self.faces(plan.source_faces, rng, record=used),
             "g_img_src": torch.tensor([self.gender_index(s) for s, _ in plan.source_faces])}
        if plan.source_voices:
            b["x_mel"] = self.mels(plan.source_voices, rng)
            b["g_mel_src"] = torch.tensor([self.gender_index(s) for s, _ in plan.source_voices])
            b["spk_mel_src"] = torch.tensor([self.domain_of.get(self.data.speakers[s].id, -1)
                                             for s, _ in plan.source_voices])
            # D_A judges a real source under its own domain of the step's type
            speaker_domain = torch.where(b["spk_mel_src"] >= 0, len(self.genders) + b["spk_mel_src"], b["g_mel_src"])
            b["y_mel_src"] = speaker_domain if plan.domain_type == "speaker" else b["g_mel_src"]
        b["g_trg"] = torch.tensor(plan.target_genders)
        b["y_trg"] = torch.tensor(plan.target_domains)
        if plan.ref_faces:
            b["ref_img"] = self.faces(plan.ref_faces, rng)
            b["ref_img2"] = self.faces(self.other_item(plan.ref_faces, "face", rng), rng)
        if plan.ref_voices:
            b["ref_mel"] = self.mels(plan.ref_voices, rng, self.mic_augment)
            b["ref_mel2"] = self.mels(self.other_item(plan.ref_voices, "voice", rng), rng, self.mic_augment)
        if self.pairs is not None and self.pair_weight(plan.step) > 0 and plan.image_reference != "latent":
            speakers = [self.data.speakers[t].id for t in plan.target_speakers]
            b["pair_img"], b["pair_mask"] = self.pairs.batch(used, speakers, plan.image_reference)
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        b["z"] = torch.randn(len(plan.target_domains), self.latent_dim, generator=gen)
        b["z2"] = torch.randn(len(plan.target_domains), self.latent_dim, generator=gen)
        return b

    def warm(self, workers: int = 2, progress: bool = False) -> None:
        """Decode every face and voice clip now, in `workers` processes, so the first epoch does not
        wait on file decoding (the prefetch thread competes with the training step for the GIL)."""
        jobs = [("face", str(p)) for s in self.data.speakers for p in s.faces if str(p) not in self._faces]
        jobs += [("voice", str(p)) for s in self.data.speakers for p in s.voices if str(p) not in self._mels]
        if self.mic_augment > 0:
            jobs += [("heard", str(p)) for s in self.data.speakers for p in s.voices if str(p) not in self._heard]
        if not jobs:
            return
        from tqdm import tqdm

        from . import processes

        chunks = [jobs[i:i + 64] for i in range(0, len(jobs), 64)]
        with processes.context().Pool(max(1, workers), initializer=_worker_init, initargs=(self.frontend, self.size)) as pool:
            bar = tqdm(total=len(jobs), desc="decode", unit="file", disable=not progress)
            for results in pool.imap_unordered(_decode_chunk, chunks):
                for kind, path, item in results:
                    if item is None:
                        self.bad.add(path)
                    else:
                        {"face": self._faces, "voice": self._mels, "heard": self._heard}[kind][path] = item
                bar.update(len(results))
            bar.close()

    # -- items ------------------------------------------------------------------------------------
    def _load(self, kind: str, speaker: int, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
        """(decoded item, the file it came from)."""
        files = self.data.speakers[speaker].faces if kind == "face" else self.data.speakers[speaker].voices
        cache = {"face": self._faces, "voice": self._mels, "heard": self._heard}[kind]
        for _ in range(len(files) + 1):
            path = str(files[index])
            if path not in self.bad:
                item = cache.get(path)
                if item is None:
                    try:
                        item = self.DECODERS[kind](self, path)
                    except Exception as exc:
                        with self._cache_lock:
                            self.bad.add(path)
                        log.warning("skipping unreadable %s %s (%s); using another file of the speaker", kind, path, exc)
                        index = int(rng.integers(len(files)))
                        continue
                    with self._cache_lock:
                        cache[path] = item
                return item, path
            index = int(rng.integers(len(files)))
        raise RuntimeError(f"no readable {kind} files left for speaker {self.data.speakers[speaker].id}")

    def _decode_face(self, path: str) -> torch.Tensor:
        img = face.prepare_face(face.load_image(path), self.size, None)
        return (face.image_to_tensor(img) * 127.5 + 127.5).round().to(torch.uint8)  # compact cache

    def _decode_mel(self, path: str) -> torch.Tensor:
        # float32 STFT: 2x cheaper than the precise one and within 3e-6 of it; the first epoch
        # decodes every clip once, on the prefetch thread
        return audio.log_mel(audio.load_audio(path), self.frontend, precise=False)

    def _decode_heard(self, path: str) -> torch.Tensor:
        """The clip through one random MicAugment draw (seeded by the file name: reproducible)."""
        seed = int.from_bytes(path.encode()[-8:].rjust(8, b"\0"), "little")
        wav = MicAugment()(audio.load_audio(path), np.random.default_rng([seed, 11]))
        return audio.log_mel(wav, self.frontend, precise=False)

    DECODERS = {"face": _decode_face, "voice": _decode_mel, "heard": _decode_heard}

    def faces(self, items: list[tuple[int, int]], rng: np.random.Generator, flip: bool = True,
              record: list | None = None) -> torch.Tensor:
        """record: gets (file, flipped) per item, for the rendered targets."""
        out = []
        for spk, idx in items:
            x, path = self._load("face", spk, idx, rng)
            x = x.float() / 127.5 - 1.0
            flipped = flip and rng.uniform() < 0.5
            out.append(x.flip(-1) if flipped else x)
            if record is not None:
                record.append((path, flipped))
        return torch.stack(out)

    def mels(self, items: list[tuple[int, int]], rng: np.random.Generator, augment: float = 0.0) -> torch.Tensor:
        out = []
        for spk, idx in items:
            if augment and rng.uniform() < augment:
                out.append(self._augmented_mel(spk, idx, rng))
                continue
            mel, _ = self._load("voice", spk, idx, rng)
            mel, _ = audio.pad_frames(mel, minimum=self.crop)
            start = int(rng.integers(mel.shape[-1] - self.crop + 1))
            out.append(mel[:, start:start + self.crop])
        return torch.stack(out)[:, None]  # (B, 1, 80, crop)

    def _augmented_mel(self, speaker: int, index: int, rng: np.random.Generator) -> torch.Tensor:
        """A crop as a microphone might have heard it: the clip's MicAugment version (made once, in
        `warm`), then (p 0.3) a tempo change on the mel (pitch and formants kept)."""
        mel, _ = self._load("heard", speaker, index, rng)
        if rng.uniform() < 0.3:
            mel = stretch_mel(mel, rng.uniform(0.85, 1.15))
        mel, _ = audio.pad_frames(mel, minimum=self.crop)
        start = int(rng.integers(mel.shape[-1] - self.crop + 1))
        return mel[:, start:start + self.crop]

    def other_item(self, items: list[tuple[int, int]], kind: str, rng: np.random.Generator) -> list[tuple[int, int]]:
        """A second reference of the same speakers (for the diversity term)."""
        attr = "faces" if kind == "face" else "voices"
        return [(spk, int(rng.integers(len(getattr(self.data.speakers[spk], attr))))) for spk, _ in items]


_worker: dict = {}


def _worker_init(frontend: str, size: int) -> None:
    torch.set_num_threads(1)
    _worker["builder"] = BatchBuilder(Dataset("warm", []), size, 0, frontend)


def _decode_chunk(chunk) -> list:
    builder = _worker["builder"]
    out = []
    for kind, path in chunk:
        try:
            out.append((kind, path, builder.DECODERS[kind](builder, path)))
        except Exception as exc:  # logged once here; the item is skipped in training
            log.warning("skipping unreadable %s %s (%s)", kind, path, exc)
            out.append((kind, path, None))
    return out


class Prefetcher:
    """Builds batch(step) one step ahead on a worker thread. `get(step)` returns the batch for that
    step (built now if it was not the one prefetched, e.g. after a resume) and starts the next."""

    def __init__(self, make_batch):
        self.make_batch = make_batch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches")
        self.pending: tuple[int, Future] | None = None

    def get(self, step: int):
        if self.pending is not None and self.pending[0] == step:
            batch = self.pending[1].result()
        else:
            batch = self.make_batch(step)
        self.pending = (step + 1, self.pool.submit(self.make_batch, step + 1))
        return batch

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending = None
