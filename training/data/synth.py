"""`xfavot data synth`: a paired face-voice corpus that any machine can generate offline.

Layout of DIR:
    manifest.json            speakers (identity, kind, split), utterances (path, text, seconds), faces
    speakers.csv             the speaker table for people
    audio/<speaker>/NNN.flac 24 kHz mono speech
    faces/<speaker>/NNN.png  128x128 avatar renders
Deterministic from --seed: every speaker, sentence, face nuisance and file comes from
seeds derived from (seed, speaker index, item index), independent of the worker count.
Resumable: finished files are skipped, files are written atomically.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from core.audio import SAMPLE_RATE, normalize_loudness
from core.checkpoint import atomic_write
from core.errors import UserError, require_format

from .. import processes
from .faces import render_face, sample_nuisance
from .identity import DEFAULT_ENGINES, KINDS, Identity, sample_identity, voice_params
from .sentences import sentence_pool

FORMAT = "xfavot-synth-corpus"
VERSION = 1


@dataclass
class SynthOptions:
    speakers: int
    utts: int
    faces: int
    seed: int = 0
    image_size: int = 128
    engines: tuple[str, ...] = DEFAULT_ENGINES
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    kind_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)  # paired, audio-only, image-only (train)


def plan_speakers(opts: SynthOptions) -> list[dict]:
    """Identities, kinds and splits. Held-out (val/test) speakers are all paired, so face-voice
    correspondence can be evaluated on them; training speakers mix all three kinds."""
    rng = np.random.default_rng([opts.seed, 0])
    n_test = max(1, round(opts.speakers * opts.test_fraction)) if opts.speakers >= 6 else 0
    n_val = max(1, round(opts.speakers * opts.val_fraction)) if opts.speakers >= 6 else 0
    order = rng.permutation(opts.speakers)
    split = {int(i): "test" for i in order[:n_test]}
    split.update({int(i): "val" for i in order[n_test:n_test + n_val]})
    train = [int(i) for i in order[n_test + n_val:]]
    # exact kind counts for training speakers; every kind with a share gets at least one speaker
    counts = np.floor(np.array(opts.kind_mix) * len(train)).astype(int)
    for k in range(3):
        if len(train) >= 3 and counts[k] == 0 and opts.kind_mix[k] > 0:
            counts[k] = 1
    counts[0] = len(train) - counts[1:].sum()
    kinds = {}
    for i, kind in zip(train, np.repeat(KINDS, counts)):
        kinds[i] = str(kind)
    speakers = []
    for i in range(opts.speakers):
        identity = sample_identity(np.random.default_rng([opts.seed, 1, i]), f"s{i:03d}", opts.engines)
        speakers.append({**identity.to_dict(), "kind": kinds.get(i, "paired"), "split": split.get(i, "train"),
                         "voice": voice_params(identity).__dict__})
    return speakers


def _speaker_job(args) -> dict:
    """Render one speaker's voice clips and faces (in a worker). Returns durations per clip."""
    out, speaker, index, texts, n_faces, opts = args
    import torch

    torch.set_num_threads(1)  # two workers on two cores; no oversubscription
    from .voices import Espeak, synthesize

    identity = Identity(**{k: v for k, v in speaker.items() if k in Identity.__dataclass_fields__})
    params = voice_params(identity)
    seconds = []
    if speaker["kind"] in ("paired", "audio"):
        paths = [Path(out) / "audio" / identity.speaker / f"{k:03d}.flac" for k in range(len(texts))]
        if all(p.is_file() for p in paths):
            return {"speaker": identity.speaker, "seconds": [sf.info(str(p)).duration for p in paths],
                    "faces": _render_faces(out, identity, index, n_faces, speaker["kind"], opts)}
        # espeak-ng output depends on what the process synthesised before (internal state carries
        # over between calls), so a speaker is always voiced from a fresh process, in clip order;
        # on resume its finished clips are re-voiced in memory and only missing files are written
        espeak = Espeak.get(Path(out) / ".espeak")
        for text, path in zip(texts, paths):
            wav = normalize_loudness(synthesize(espeak, text, identity, params))
            if not path.is_file():
                atomic_write(path, lambda tmp: sf.write(tmp, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16"))
            seconds.append(wav.size / SAMPLE_RATE)
    return {"speaker": identity.speaker, "seconds": seconds,
            "faces": _render_faces(out, identity, index, n_faces, speaker["kind"], opts)}


def _render_faces(out, identity: Identity, index: int, n_faces: int, kind: str, opts: SynthOptions) -> int:
    if kind not in ("paired", "image"):
        return 0
    for k in range(n_faces):
        path = Path(out) / "faces" / identity.speaker / f"{k:03d}.png"
        if path.is_file():
            continue
        nuisance = sample_nuisance(np.random.default_rng([opts.seed, 2, index, k]))
        img = render_face(identity, nuisance, opts.image_size)
        atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return n_faces


def synthesize_corpus(out: str | Path, opts: SynthOptions, workers: int | None = None, progress: bool = True) -> dict:
    out = Path(out)
    if opts.speakers < 1 or opts.utts < 1 or opts.faces < 1:
        raise UserError("--speakers, --utts and --faces must be at least 1")
    from .voices import check_engines

    check_engines(opts.engines)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    speakers = plan_speakers(opts)
    pool = sentence_pool(max(600, 2 * opts.utts), opts.seed)
    jobs = []
    for i, spk in enumerate(speakers):
        rng = np.random.default_rng([opts.seed, 3, i])
        texts = [pool[j] for j in rng.choice(len(pool), size=opts.utts, replace=opts.utts > len(pool))]
        jobs.append((str(out), spk, i, texts, opts.faces, opts))
    workers = workers or min(os.cpu_count() or 1, 8)
    if "espeak" in opts.engines or "mbrola" in opts.engines:
        from .voices import prepare_data_folder

        prepare_data_folder(out / ".espeak")  # before the workers, which would race to build it
    results = {}
    bar = tqdm(total=len(jobs), unit="speaker", desc="synth", disable=not progress)
    # one fresh process per speaker (see _speaker_job)
    with processes.context().Pool(workers, maxtasksperchild=1) as pool_:
        for r in pool_.imap_unordered(_speaker_job, jobs):
            results[r["speaker"]] = r
            bar.update()
    bar.close()
    utterances, faces = [], []
    for (_, spk, i, texts, n_faces, _) in jobs:
        sid = spk["speaker"]
        for k, (text, sec) in enumerate(zip(texts, results[sid]["seconds"])):
            utterances.append({"speaker": sid, "path": f"audio/{sid}/{k:03d}.flac", "text": text, "seconds": round(sec, 3)})
        if spk["kind"] in ("paired", "image"):
            for k in range(n_faces):
                nuisance = sample_nuisance(np.random.default_rng([opts.seed, 2, i, k]))
                faces.append({"speaker": sid, "path": f"faces/{sid}/{k:03d}.png", "nuisance": nuisance.to_dict()})
    manifest = {"format": FORMAT, "version": VERSION, "seed": opts.seed, "sample_rate": SAMPLE_RATE,
                "image_size": opts.image_size, "engines": list(opts.engines), "sentences": len(pool),
                "speakers": speakers, "utterances": utterances, "faces": faces}
    atomic_write(out / "manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))
    _write_speaker_csv(out / "speakers.csv", speakers)
    manifest["elapsed_s"] = time.perf_counter() - start
    return manifest


def _write_speaker_csv(path: Path, speakers: list[dict]) -> None:
    fields = ["speaker", "kind", "split", "gender", "age", "build", "energy", "accent", "engine", "skin", "hair",
              "clothes", "f0", "tract", "rate"]

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            for s in speakers:
                w.writerow({**{k: s[k] for k in fields if k in s}, "f0": s["voice"]["f0"],
                            "tract": s["voice"]["tract"], "rate": s["voice"]["rate"]})

    atomic_write(path, write)


def load_manifest(corpus: str | Path) -> dict:
    path = Path(corpus) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{corpus} is not a synthetic corpus (no manifest.json); create one with `xfavot data synth`")
    manifest = json.loads(path.read_text())
    return require_format(manifest, FORMAT, f"{path} is not an XFaVoT synthetic corpus manifest")


def corpus_size_bytes(corpus: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(corpus).rglob("*") if p.is_file() and ".espeak" not in p.parts)


def preview(corpus: str | Path, out: str | Path, max_speakers: int = 24, per_speaker: int = 8) -> Path:
    """A contact sheet: one row per speaker with its identity and its first faces."""
    from PIL import Image

    from .faces import contact_sheet

    corpus = Path(corpus)
    manifest = load_manifest(corpus)
    faces_by_speaker: dict[str, list[str]] = {}
    for f in manifest["faces"]:
        faces_by_speaker.setdefault(f["speaker"], []).append(f["path"])
    rows = []
    for spk in manifest["speakers"]:
        paths = faces_by_speaker.get(spk["speaker"], [])[:per_speaker]
        if not paths:
            continue
        label = f"{spk['speaker']} {spk['kind']} {spk['split']}\n{spk['gender']} {spk['age']}\n{spk['build']} {spk['energy']}"
        rows.append((label, [Image.open(corpus / p).convert("RGB") for p in paths]))
        if len(rows) == max_speakers:
            break
    if not rows:
        raise UserError(f"{corpus} has no faces to preview")
    out = Path(out)
    sheet = contact_sheet(rows)
    atomic_write(out, lambda tmp: sheet.save(tmp, format="PNG"))
    return out
