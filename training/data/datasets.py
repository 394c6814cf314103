"""Dataset loaders: the synthetic corpus and the folder layouts of the paper's datasets.

Every loader returns a `Dataset` of `Speaker`s (gender, kind, split, face and voice files) and
the list of files it skipped because they could not be read, so that a damaged file is counted
and reported up front instead of crashing a training run in the middle.

Layouts (see README "Training data"):
  CelebA-HQ (image-only)   ROOT/{train,val}/{female,male}/*.jpg          (StarGANv2's data/celeba_hq)
  VCTK (audio-only)        ROOT/speaker-info.txt, ROOT/wav48_silence_trimmed/pNNN/*.flac (or wav48/*.wav),
                           optional ROOT/txt/pNNN/*.txt transcripts
  audio-visual (GRID, LRS3, Lip2Wav), prepared once by `xfavot data prepare-av`:
                           ROOT/<speaker>/<clip>.{mp4,mpg,avi,mkv,mov}, or ROOT/<speaker>/<clip>/ holding
                           frames (*.png/*.jpg) + one audio file; genders in ROOT/genders.csv (speaker,gender)
  custom avatar set        AVATARS/[female|male/]*.png and optionally VOICES/[female|male/]*.wav
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from PIL import Image

from core.audio import AUDIO_EXTS
from core.errors import UserError
from core.face import IMAGE_EXTS

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mpg", ".mpeg", ".avi", ".mkv", ".mov"}
GENDER_WORDS = {"female": "female", "f": "female", "woman": "female", "male": "male", "m": "male", "man": "male"}


@dataclass
class Speaker:
    id: str
    gender: str | None                 # "female" / "male"; None when the layout does not say
    kind: str                          # "paired", "audio", "image"
    split: str = "train"
    faces: list[Path] = field(default_factory=list)
    voices: list[Path] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)   # aligned with voices ("" when unknown)
    identity: bool = True              # False: a pool of different people (CelebA-HQ gender folders)
    attributes: dict = field(default_factory=dict)


@dataclass
class Dataset:
    name: str
    speakers: list[Speaker]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def split(self, name: str) -> "Dataset":
        return Dataset(self.name, [s for s in self.speakers if s.split == name], self.skipped)

    def summary(self) -> str:
        kinds = {k: sum(s.kind == k for s in self.speakers) for k in ("paired", "audio", "image")}
        faces = sum(len(s.faces) for s in self.speakers)
        voices = sum(len(s.voices) for s in self.speakers)
        text = (f"{self.name}: {len(self.speakers)} speakers ({kinds['paired']} paired, {kinds['audio']} audio-only, "
                f"{kinds['image']} image-only), {faces} faces, {voices} voice clips")
        if self.skipped:
            text += f"; skipped {len(self.skipped)} unreadable files"
        return text

    def log_skipped(self) -> None:
        if self.skipped:
            log.warning("%s: skipped %d unreadable files:\n%s", self.name, len(self.skipped),
                        "\n".join(f"  {p}: {why}" for p, why in self.skipped))

    def validate(self, need_both_genders: bool = True, need_faces: bool = False, need_voices: bool = False) -> None:
        """Clear errors before training starts, instead of a failure hours in."""
        usable = [s for s in self.speakers if s.faces or s.voices]
        if not usable:
            raise UserError(f"{self.name}: no usable faces or voices were found"
                            + (f" ({len(self.skipped)} files could not be read)" if self.skipped else ""))
        if need_faces and not any(s.faces for s in usable):
            raise UserError(f"{self.name}: no face images were found")
        if need_voices and not any(s.voices for s in usable):
            raise UserError(f"{self.name}: no voice clips were found")
        if need_both_genders:
            unknown = [s.id for s in usable if s.gender is None]
            if unknown:
                raise UserError(f"{self.name}: the gender of {len(unknown)} speakers is unknown ({', '.join(unknown[:5])}"
                                f"{' ...' if len(unknown) > 5 else ''}); put files in female/ and male/ folders")
            genders = {s.gender for s in usable}
            if genders != {"female", "male"}:
                raise UserError(f"{self.name}: only {', '.join(sorted(genders))} data was found; training needs "
                                "both female and male examples")


# ---------------------------------------------------------------------------------------------
# file checks: cheap header reads, so that damaged files are found before training


def readable_image(path: Path) -> str | None:
    try:
        with Image.open(path) as img:
            img.verify()
        return None
    except Exception as exc:  # PIL raises many types for damaged files
        return f"unreadable image ({type(exc).__name__})"


def readable_audio(path: Path) -> str | None:
    try:
        info = sf.info(str(path))
    except Exception as exc:
        return f"unreadable audio ({type(exc).__name__})"
    if info.frames == 0:
        return "empty audio"
    return None


def _files(folder: Path, exts: set[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def _keep(paths: list[Path], check, skipped: list) -> list[Path]:
    kept = []
    for p in paths:
        reason = check(p)
        if reason:
            skipped.append((str(p), reason))
        else:
            kept.append(p)
    return kept


def _need_dir(root: Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{what} folder not found: {root}")
    return root


# ---------------------------------------------------------------------------------------------
# loaders


def load_synthetic(corpus: str | Path) -> Dataset:
    from .synth import load_manifest

    root = _need_dir(corpus, "corpus")
    manifest = load_manifest(root)
    by_id: dict[str, Speaker] = {}
    for s in manifest["speakers"]:
        attrs = {k: s[k] for k in ("age", "build", "energy", "accent", "engine") if k in s}
        by_id[s["speaker"]] = Speaker(s["speaker"], s["gender"], s["kind"], s["split"], attributes=attrs)
    skipped: list = []
    for u in manifest["utterances"]:
        path = root / u["path"]
        if path.is_file():
            by_id[u["speaker"]].voices.append(path)
            by_id[u["speaker"]].texts.append(u["text"])
        else:
            skipped.append((str(path), "missing (corpus incomplete? run `xfavot data synth` again to resume)"))
    for f in manifest["faces"]:
        path = root / f["path"]
        if path.is_file():
            by_id[f["speaker"]].faces.append(path)
        else:
            skipped.append((str(path), "missing"))
    return Dataset(f"synthetic corpus {root.name}", list(by_id.values()), skipped)


def load_celeba_hq(root: str | Path) -> Dataset:
    """StarGANv2 layout: ROOT/{train,val}/{female,male}/*.jpg. Gender pools, no identities."""
    root = _need_dir(root, "CelebA-HQ")
    speakers, skipped = [], []
    for split in ("train", "val"):
        for gender in ("female", "male"):
            faces = _keep(_files(root / split / gender, IMAGE_EXTS), readable_image, skipped)
            if faces:
                speakers.append(Speaker(f"celeba_{split}_{gender}", gender, "image", split, faces=faces, identity=False))
    return Dataset(f"CelebA-HQ {root}", speakers, skipped)


def _vctk_genders(root: Path) -> dict[str, str]:
    info = root / "speaker-info.txt"
    if not info.is_file():
        raise UserError(f"VCTK: {info} not found; it gives each speaker's gender")
    genders = {}
    for line in info.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] != "ID":
            sid = parts[0] if parts[0].startswith(("p", "s")) else f"p{parts[0]}"
            g = GENDER_WORDS.get(parts[2].lower())
            if g:
                genders[sid] = g
    return genders


def load_vctk(root: str | Path) -> Dataset:
    root = _need_dir(root, "VCTK")
    genders = _vctk_genders(root)
    audio_root = next((root / d for d in ("wav48_silence_trimmed", "wav48", "wav24") if (root / d).is_dir()), None)
    if audio_root is None:
        raise UserError(f"VCTK: no wav48_silence_trimmed/ or wav48/ folder in {root}")
    speakers, skipped = [], []
    for folder in sorted(p for p in audio_root.iterdir() if p.is_dir()):
        clips = _files(folder, AUDIO_EXTS)
        # VCTK 0.92 has two microphones per sentence: keep mic1 when both are present
        if any(c.stem.endswith("_mic1") for c in clips):
            clips = [c for c in clips if not c.stem.endswith("_mic2")]
        clips = _keep(clips, readable_audio, skipped)
        texts = []
        for c in clips:
            txt = root / "txt" / folder.name / (c.stem.replace("_mic1", "").replace("_mic2", "") + ".txt")
            texts.append(txt.read_text(errors="replace").strip() if txt.is_file() else "")
        if clips:
            speakers.append(Speaker(folder.name, genders.get(folder.name), "audio", voices=clips, texts=texts))
    return Dataset(f"VCTK {root}", speakers, skipped)


def load_avatar_set(avatars: str | Path, voices: str | Path | None = None) -> Dataset:
    """A folder of stylized avatar images (optionally in female/ and male/ subfolders) and an
    optional folder of voice clips (same optional subfolders). Each gender is one pool."""
    avatars = _need_dir(avatars, "avatar")
    skipped: list = []

    def by_gender(root: Path, exts, check) -> dict[str | None, list[Path]]:
        groups = {}
        for sub in ("female", "male"):
            if (root / sub).is_dir():
                groups[sub] = _keep(_files(root / sub, exts), check, skipped)
        flat = _keep(_files(root, exts), check, skipped)
        if flat:
            groups[None] = flat
        return groups

    speakers = []
    face_groups = by_gender(avatars, IMAGE_EXTS, readable_image)
    voice_groups = by_gender(_need_dir(voices, "voice"), AUDIO_EXTS, readable_audio) if voices else {}
    for gender in ("female", "male", None):
        faces, clips = face_groups.get(gender, []), voice_groups.get(gender, [])
        if faces or clips:
            kind = "paired" if faces and clips else ("image" if faces else "audio")
            speakers.append(Speaker(f"avatar_{gender or 'any'}", gender, kind, faces=faces, voices=clips,
                                    texts=[""] * len(clips), identity=False))
    return Dataset(f"avatar set {avatars.name}", speakers, skipped)


def read_genders_csv(path: Path) -> dict[str, str]:
    genders = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and GENDER_WORDS.get(row[1].strip().lower()):
                genders[row[0].strip()] = GENDER_WORDS[row[1].strip().lower()]
    return genders


def load_prepared_av(cache: str | Path) -> Dataset:
    """The cache written by `prepare_audiovisual` (training/data/audiovisual.py)."""
    cache = _need_dir(cache, "prepared audio-visual")
    index = cache / "prepared.json"
    if not index.is_file():
        raise UserError(f"{cache} is not a prepared audio-visual dataset; run `xfavot data prepare-av` first")
    data = json.loads(index.read_text())
    speakers, skipped = [], list(map(tuple, data.get("skipped", [])))
    for s in data["speakers"]:
        faces = _keep([cache / p for p in s["faces"]], readable_image, skipped)
        voices = _keep([cache / p for p in s["voices"]], readable_audio, skipped)
        speakers.append(Speaker(s["id"], s["gender"], "paired" if faces and voices else ("image" if faces else "audio"),
                                s.get("split", "train"), faces, voices, [""] * len(voices)))
    return Dataset(f"audio-visual {data.get('source', cache)}", speakers, skipped)


def load_real_speech(root: str | Path) -> Dataset:
    """`xfavot data real`'s folder: real recorded voices as audio-only speakers (train and test splits)."""
    from .real_speech import load_manifest

    root = _need_dir(root, "real speech")
    manifest = load_manifest(root)
    by_id = {s["speaker"]: Speaker(s["speaker"], s["gender"], "audio", s["split"],
                                   attributes={"source": ",".join(s["sources"]), "gender_from": s["gender_from"]})
             for s in manifest["speakers"]}
    skipped: list = []
    for u in manifest["utterances"]:
        path = root / u["path"]
        if path.is_file() and u["speaker"] in by_id:
            by_id[u["speaker"]].voices.append(path)
            by_id[u["speaker"]].texts.append("")
        else:
            skipped.append((str(path), "missing (run `xfavot data real` again to resume)"))
    return Dataset(f"real speech {root.name}", [s for s in by_id.values() if s.voices], skipped)


# the `--data LAYOUT:PATH` / `xfavot data info LAYOUT` names (avatar sets take two folders: see load_avatar_set)
LOADERS = {"synthetic": load_synthetic, "celeba-hq": load_celeba_hq, "vctk": load_vctk,
           "prepared-av": load_prepared_av, "real-speech": load_real_speech}


def combine(*datasets: Dataset) -> Dataset:
    """Several datasets trained together (e.g. CelebA-HQ + VCTK), speaker ids kept distinct."""
    speakers, skipped, seen = [], [], set()
    for ds in datasets:
        for s in ds.speakers:
            if s.id in seen:
                raise UserError(f"speaker id {s.id!r} appears in two datasets; rename one")
            seen.add(s.id)
            speakers.append(s)
        skipped += ds.skipped
    return Dataset(" + ".join(d.name for d in datasets), speakers, skipped)
