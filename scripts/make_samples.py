"""Regenerate resources/samples/: bundled avatars and voices for the app's sample pickers.

    python scripts/make_samples.py

Eight speakers of a small synthetic corpus (seed 7, so none of them is in the default model's
training corpus, which uses seed 0): one avatar and one short sentence each, voices as FLAC.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "samples"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        subprocess.run([sys.executable, "-m", "xfavot_studio.cli", "data", "synth", "--speakers", "8", "--utts", "2",
                        "--faces", "2", "--seed", "7", "--kind-mix", "1,0,0", "--out", str(corpus)], check=True)
        manifest = json.loads((corpus / "manifest.json").read_text())
        for sub in ("faces", "voices"):
            shutil.rmtree(OUT / sub, ignore_errors=True)
            (OUT / sub).mkdir(parents=True)
        speakers = {s["speaker"]: s for s in manifest["speakers"]}
        for n, spk in enumerate(sorted(speakers)):
            s = speakers[spk]
            name = f"{n + 1:02d}-{s['gender']}-{s['age']}"
            face = next(f for f in manifest["faces"] if f["speaker"] == spk)
            shutil.copy(corpus / face["path"], OUT / "faces" / f"{name}.png")
            utt = next(u for u in manifest["utterances"] if u["speaker"] == spk)
            wav, rate = sf.read(corpus / utt["path"], dtype="float32")
            sf.write(OUT / "voices" / f"{name}.flac", wav, rate, subtype="PCM_16")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
