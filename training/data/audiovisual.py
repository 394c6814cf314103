"""`xfavot data prepare-av`: talking-face videos (GRID, LRS3, Lip2Wav) -> cached faces + 24 kHz audio.

Input: ROOT/<speaker>/<clip> where a clip is a video file (decoded with PyAV, which bundles
FFmpeg) or a folder of frames (*.png/*.jpg) with one audio file. GRID ships its audio apart from
the videos: pass --audio-root and ROOT_AUDIO/<speaker>/<clip>.wav is used when a video has no
audio stream. Genders come from ROOT/genders.csv (speaker,gender) or --genders.

Output (resumable, one pass per clip): CACHE/<speaker>/faces/<clip>_<k>.png (aligned 128x128
crops of K frames spread over the clip), CACHE/<speaker>/audio/<clip>.flac, CACHE/prepared.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm import tqdm

from core import audio
from core.checkpoint import atomic_write
from core.errors import UserError
from core.face import FaceAligner, load_image, prepare_face

from .datasets import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS, read_genders_csv


def _clip_sources(speaker_dir: Path) -> list[Path]:
    clips = []
    for p in sorted(speaker_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
            clips.append(p)
        elif p.is_dir() and any(f.suffix.lower() in IMAGE_EXTS for f in p.iterdir()):
            clips.append(p)
    return clips


def _pick(n: int, k: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, num=min(k, n) + 2)[1:-1]}) if n > 2 else list(range(n))


def read_video(path: Path, frames: int) -> tuple[list[Image.Image], np.ndarray | None]:
    """K frames spread over the clip and its audio (24 kHz mono) if it has an audio stream."""
    import av

    with av.open(str(path)) as container:
        all_frames = [f.to_image() for f in container.decode(video=0)]
    picked = [all_frames[i] for i in _pick(len(all_frames), frames)]
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return picked, None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=audio.SAMPLE_RATE)
        pieces = [f.to_ndarray().reshape(-1) for packet in container.decode(audio=0) for f in resampler.resample(packet)]
    return picked, (np.concatenate(pieces).astype(np.float32) if pieces else None)


def read_frame_folder(path: Path, frames: int) -> tuple[list[Image.Image], np.ndarray | None]:
    images = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    picked = [load_image(images[i]) for i in _pick(len(images), frames)]
    sounds = sorted(f for f in path.iterdir() if f.suffix.lower() in AUDIO_EXTS)
    return picked, (audio.load_audio(sounds[0]) if sounds else None)


def prepare_audiovisual(root: str | Path, cache: str | Path, frames_per_clip: int = 3, genders: str | Path | None = None,
                        audio_root: str | Path | None = None, device: str = "cpu", size: int = 128,
                        progress: bool = True) -> dict:
    root, cache = Path(root), Path(cache)
    if not root.is_dir():
        raise UserError(f"audio-visual folder not found: {root}")
    genders_path = Path(genders) if genders else root / "genders.csv"
    gender_of = read_genders_csv(genders_path) if genders_path.is_file() else {}
    speaker_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not speaker_dirs:
        raise UserError(f"{root} has no speaker folders")
    aligner = FaceAligner(device)
    jobs = [(spk, clip) for spk in speaker_dirs for clip in _clip_sources(spk)]
    if not jobs:
        raise UserError(f"{root}: no videos or frame folders were found in its speaker folders")
    speakers: dict[str, dict] = {}
    skipped: list[tuple[str, str]] = []
    for spk_dir, clip in tqdm(jobs, desc="prepare-av", unit="clip", disable=not progress):
        spk = spk_dir.name
        entry = speakers.setdefault(spk, {"id": spk, "gender": gender_of.get(spk), "faces": [], "voices": []})
        face_paths = [Path(spk) / "faces" / f"{clip.stem}_{k}.png" for k in range(frames_per_clip)]
        audio_path = Path(spk) / "audio" / f"{clip.stem}.flac"
        done = [p for p in face_paths if (cache / p).is_file()]
        if done and (cache / audio_path).is_file():  # resumed: this clip was finished before
            entry["faces"] += [str(p) for p in done]
            entry["voices"].append(str(audio_path))
            continue
        try:
            images, wav = read_video(clip, frames_per_clip) if clip.is_file() else read_frame_folder(clip, frames_per_clip)
            if wav is None and audio_root:
                candidates = [Path(audio_root) / spk / (clip.stem + ext) for ext in (".wav", ".flac")]
                found = next((c for c in candidates if c.is_file()), None)
                wav = audio.load_audio(found) if found else None
            if wav is None:
                raise UserError("no audio stream and no matching audio file")
            wav = audio.prepare_waveform(wav, audio.SAMPLE_RATE, name=clip.name)
            if not images:
                raise UserError("no frames")
        except Exception as exc:  # a damaged clip is skipped and reported, never fatal
            skipped.append((str(clip), f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"))
            continue
        for img, rel in zip(images, face_paths):
            face = prepare_face(img, size, aligner)
            atomic_write(cache / rel, lambda tmp: face.save(tmp, format="PNG"))
            entry["faces"].append(str(rel))
        atomic_write(cache / audio_path, lambda tmp: sf.write(tmp, wav, audio.SAMPLE_RATE, format="FLAC"))
        entry["voices"].append(str(audio_path))
    index = {"source": str(root), "frames_per_clip": frames_per_clip, "speakers": list(speakers.values()),
             "skipped": skipped}
    atomic_write(cache / "prepared.json", lambda tmp: Path(tmp).write_text(json.dumps(index, indent=1)))
    return index
