"""Real recorded speech that Debian main ships, as audio-only speakers (paper Table 1: unpaired audio).

    xfavot data real --out DIR        # after: sudo apt-get install <the packages in SOURCES>

Every source below is a package of human recordings (voice prompts, game dialogue, spoken
letters and words) with its licence and credits checked in /usr/share/doc/<package>/copyright.
A speaker's gender comes from the credits or the files' own naming where they say it
("credits"), else from the median F0 of their clips ("F0": below 165 Hz male, else female; a
heuristic, marked as such in the manifest). Short items (single letters, syllables, words) are
joined, with 0.15 s pauses, into 3-6 s utterances so that a clip carries a voice's style.

Some speakers are held out as the real-voice test set (REAL_TEST_SPEAKERS, both genders, never
trained on); `xfavot eval --real-speech DIR` reports on them.

Layout of DIR (like the synthetic corpus): audio/<speaker>/NNN.flac (24 kHz mono, loudness
normalised), manifest.json (format xfavot-real-speech: speakers with source, package, licence,
language, credits, gender and how it was obtained, F0, split; utterances with their files).
"""
from __future__ import annotations

import glob
import json
import re
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from core.audio import MALE_BELOW_HZ, SAMPLE_RATE, gender_from_f0, is_silent, median_f0, normalize_loudness, resample
from core.checkpoint import atomic_write
from core.errors import UserError, require_format

FORMAT = "xfavot-real-speech"
MAX_CLIPS = 300          # per speaker: the prompt sets have hundreds, the word lists tens
JOIN_SECONDS = (3.0, 6.0)


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    licence: str
    language: str
    credits: str
    pattern: str                          # glob of the files
    speaker: str = ""                     # one speaker for the whole source, or
    speaker_regex: str = ""               # group 1 of this regex on the file name is the speaker
    genders: dict = field(default_factory=dict)   # speaker -> gender known from credits or naming
    join: bool = False                    # short items: join into utterances
    skip_regex: str = ""                  # file names to leave out


ASTERISK = "/usr/share/asterisk/sounds"
FILLETS = "/usr/share/games/fillets-ng/sound"
# Fish Fillets NG: every line's file name says who speaks (level-SPEAKER-line.ogg): "m" is the small
# fish (female), "v" the big fish (male); the other codes are level characters (gender by F0)
FILLETS_SPEAKER = r"^[a-z0-9]+-([a-z]+|[0-9])-"

SOURCES = (
    Source("asterisk-allison-en", "asterisk-core-sounds-en-wav", "CC-BY-SA-3.0", "en-US", "Allison Smith",
           f"{ASTERISK}/en_US_f_Allison/**/*.wav", speaker="allison", genders={"allison": "female"}),
    Source("asterisk-allison-es", "asterisk-core-sounds-es-wav", "CC-BY-SA-3.0", "es-MX", "Allison Smith",
           f"{ASTERISK}/es_MX_f_Allison/**/*.wav", speaker="allison", genders={"allison": "female"}),
    Source("asterisk-june", "asterisk-core-sounds-fr-wav", "CC-BY-SA-3.0", "fr-CA", "June Wallack",
           f"{ASTERISK}/fr_CA_f_June/**/*.wav", speaker="june", genders={"june": "female"}),
    Source("asterisk-carlo", "asterisk-core-sounds-it-wav", "CC-BY-3.0", "it-IT", "Carlo Flora",
           f"{ASTERISK}/it_IT_m_Carlo/**/*.wav", speaker="carlo", genders={"carlo": "male"}),
    Source("asterisk-ru", "asterisk-core-sounds-ru-wav", "CC-BY-3.0", "ru-RU", "ivrvoice.ru (Maxim Topal)",
           f"{ASTERISK}/ru_RU_f_IvrvoiceRU/**/*.wav", speaker="ivrvoice-ru", genders={"ivrvoice-ru": "female"}),
    Source("asterisk-armelle", "asterisk-prompt-fr-armelle", "GPL-2+", "fr-FR", "Armelle Desjardins",
           f"{ASTERISK}/fr/**/*.gsm", speaker="armelle", genders={"armelle": "female"}),
    Source("asterisk-es-co", "asterisk-prompt-es-co", "GPL-2", "es-CO", "July E. Jimenez (Avatar Ltda.)",
           f"{ASTERISK}/es/**/*.gsm", speaker="july", genders={"july": "female"}),
    Source("fillets-cs", "fillets-ng-data-cs", "GPL-2", "cs", "Fish Fillets NG (ALTAR interactive), Czech cast",
           f"{FILLETS}/*/cs/*.ogg", speaker_regex=FILLETS_SPEAKER, genders={"m": "female", "v": "male"}),
    Source("fillets-nl", "fillets-ng-data-nl", "GPL-2", "nl", "Fish Fillets NG, Dutch cast",
           f"{FILLETS}/*/nl/*.ogg", speaker_regex=FILLETS_SPEAKER, genders={"m": "female", "v": "male"}),
    Source("klettres", "klettres-data", "GPL-2+", "many", "KLettres (KDE), one speaker per language",
           "/usr/share/klettres/*/**/*.ogg", speaker_regex=r"^/usr/share/klettres/([^/]+)/", join=True),
    Source("ktuberling", "ktuberling-data", "GPL-2+", "many", "KTuberling (KDE), one speaker per language",
           "/usr/share/ktuberling/sounds/*/*.ogg", speaker_regex=r"^/usr/share/ktuberling/sounds/([a-z_]+)/",
           join=True),
    Source("gcin", "gcin-voice", "CC-BY-3.0 (5.ogg) / GPL-3", "zh-TW", "Chu Lo (ChionMeilin); Edward Der-Hua Liu",
           "/usr/share/gcin-voice/ogg/*/*.ogg", speaker_regex=r"/([0-9])\.ogg$", join=True),
)
# never trained on: the real-voice check's speakers (four female, four male; six languages)
REAL_TEST_SPEAKERS = ("asterisk-carlo", "asterisk-ru", "fillets-nl-m", "fillets-nl-v", "klettres-da", "klettres-nb",
                      "ktuberling-ca", "ktuberling-da")


def _speaker_of(source: Source, path: str) -> str | None:
    if source.speaker:
        return source.speaker
    m = re.search(source.speaker_regex, path if source.speaker_regex.startswith(("^/", "/")) else Path(path).name)
    if not m:
        return None
    speaker = m.group(1)
    if source.name == "gcin":  # syllables read twice: tone 5 by Chu Lo, the others by a second reader
        speaker = "chu-lo" if speaker == "5" else "reader"
    return speaker


def _speaker_id(source: Source, speaker: str) -> str:
    if source.speaker:  # one voice per source; Allison speaks in two packages: one speaker, not two
        return "asterisk-allison" if source.name.startswith("asterisk-allison") else source.name
    return f"{source.name}-{speaker}"


def discover() -> dict[str, dict]:
    """{speaker id: {sources, files}} for every source installed on this machine."""
    found: dict[str, dict] = {}
    for source in SOURCES:
        for path in sorted(glob.glob(source.pattern, recursive=True)):
            speaker = _speaker_of(source, path)
            if speaker is None:
                continue
            entry = found.setdefault(_speaker_id(source, speaker), {"sources": [], "files": [], "speaker": speaker})
            if source not in entry["sources"]:
                entry["sources"].append(source)
            entry["files"].append(path)
    return found


def read_any(path: str) -> tuple[np.ndarray, int]:
    """soundfile for everything it reads; raw GSM 06.10 (.gsm, Asterisk's prompts) through sox."""
    if path.endswith(".gsm"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "x.wav"
            subprocess.run(["sox", path, "-b", "16", str(out)], check=True, capture_output=True)
            wav, rate = sf.read(out, dtype="float32", always_2d=True)
    else:
        wav, rate = sf.read(path, dtype="float32", always_2d=True)
    return wav.mean(axis=1), rate


def trim_silence(wav: np.ndarray, rate: int, floor_db: float = -40.0, pad_s: float = 0.05) -> np.ndarray:
    """Drop leading/trailing frames quieter than floor_db below the clip's loudest 10 ms."""
    hop = max(1, rate // 100)
    if wav.size < hop:
        return wav[:0]
    frames = np.sqrt(np.convolve(wav ** 2, np.ones(hop) / hop, mode="same")[::hop] + 1e-12)
    loud = np.nonzero(20 * np.log10(frames / frames.max()) > floor_db)[0]
    if loud.size == 0:
        return wav[:0]
    pad = int(pad_s * rate)
    return wav[max(0, loud[0] * hop - pad): min(wav.size, (loud[-1] + 1) * hop + pad)]


def _utterances(waves: list[np.ndarray], join: bool) -> list[np.ndarray]:
    if not join:
        return [w for w in waves if w.size >= 0.5 * SAMPLE_RATE]
    out, current = [], []
    pause = np.zeros(int(0.15 * SAMPLE_RATE), np.float32)
    for w in waves:
        current += [w, pause]
        if sum(x.size for x in current) >= JOIN_SECONDS[0] * SAMPLE_RATE:
            out.append(np.concatenate(current[:-1])[: int(JOIN_SECONDS[1] * SAMPLE_RATE)])
            current = []
    if current and sum(x.size for x in current) >= 1.0 * SAMPLE_RATE:
        out.append(np.concatenate(current[:-1]))
    return out


def prepare_real_speech(out: str | Path, test_speakers: tuple[str, ...] = REAL_TEST_SPEAKERS,
                        progress: bool = True) -> dict:
    """Convert every installed source into DIR (resumable per speaker); returns the manifest."""
    out = Path(out)
    found = discover()
    if not found:
        raise UserError("no real speech found; install the Debian packages listed by `xfavot data real --list`")
    start = time.perf_counter()
    speakers, utterances = [], []
    for sid, entry in tqdm(sorted(found.items()), desc="real speech", unit="speaker", disable=not progress):
        folder = out / "audio" / sid
        done = folder / "speaker.json"
        if done.is_file():
            info = json.loads(done.read_text())
        else:
            files = entry["files"]
            if not entry["sources"][0].join and len(files) > MAX_CLIPS:
                # seeded by the speaker alone: the same clips whatever else is installed or was
                # finished before a resume (one generator for all speakers drew differently then)
                rng = np.random.default_rng(zlib.crc32(sid.encode()))
                files = sorted(rng.choice(files, size=MAX_CLIPS, replace=False))
            waves = []
            for path in files:
                try:
                    wav, rate = read_any(path)
                except (sf.LibsndfileError, RuntimeError, subprocess.CalledProcessError, OSError):
                    continue
                wav = trim_silence(wav, rate)
                # Asterisk's voices ship silence/1..10.wav: files that are silent throughout stay out
                if wav.size >= 0.2 * rate and not is_silent(wav):
                    waves.append(resample(wav, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else wav)
            clips = [normalize_loudness(w) for w in _utterances(waves, entry["sources"][0].join)][:MAX_CLIPS]
            if len(clips) < 3:
                continue
            f0 = median_f0(clips)
            source = entry["sources"][0]
            known = source.genders.get(entry["speaker"])
            gender = known or gender_from_f0(f0) or "female"  # no voiced frame: as before, "female"
            names = []
            for k, wav in enumerate(clips):
                path = folder / f"{k:03d}.flac"
                atomic_write(path, lambda tmp: sf.write(tmp, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16"))
                names.append({"path": f"audio/{sid}/{path.name}", "seconds": round(wav.size / SAMPLE_RATE, 3)})
            info = {"speaker": sid, "sources": [s.name for s in entry["sources"]],
                    "packages": sorted({s.package for s in entry["sources"]}),
                    "licence": " + ".join(sorted({s.licence for s in entry["sources"]})),
                    "language": ", ".join(s.language for s in entry["sources"]),
                    "credits": entry["sources"][0].credits, "gender": gender,
                    "gender_from": "credits" if known else f"F0 median {f0:.0f} Hz (male below {MALE_BELOW_HZ:.0f})",
                    "f0_median": round(f0, 1), "utterances": names}
            atomic_write(done, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=1)))
        info["split"] = "test" if sid in test_speakers else "train"
        speakers.append({k: v for k, v in info.items() if k != "utterances"})
        utterances += [{"speaker": sid, "text": "", **u} for u in info["utterances"]]
    manifest = {"format": FORMAT, "sample_rate": SAMPLE_RATE, "speakers": speakers, "utterances": utterances,
                "elapsed_s": round(time.perf_counter() - start, 1)}
    atomic_write(out / "manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))
    return manifest


def load_manifest(root: str | Path) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{root} is not a real-speech folder (no manifest.json); make one with `xfavot data real`")
    manifest = json.loads(path.read_text())
    return require_format(manifest, FORMAT, f"{path} is not an XFaVoT real-speech manifest")


def summary_table(manifest: dict) -> list[dict]:
    """Per source package: speakers (by gender), hours, licence: for the model card."""
    rows: dict[str, dict] = {}
    seconds = {}
    for u in manifest["utterances"]:
        seconds[u["speaker"]] = seconds.get(u["speaker"], 0.0) + u["seconds"]
    for s in manifest["speakers"]:
        for package in s["packages"]:
            row = rows.setdefault(package, {"package": package, "licence": s["licence"], "speakers": 0,
                                            "female": 0, "male": 0, "test": 0, "hours": 0.0})
            row["speakers"] += 1
            row[s["gender"]] += 1
            row["test"] += s["split"] == "test"
            row["hours"] += seconds.get(s["speaker"], 0.0) / 3600 / len(s["packages"])
    return sorted(rows.values(), key=lambda r: r["package"])
