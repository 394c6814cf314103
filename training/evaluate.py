"""`xfavot eval`: quality of a model on the held-out (test) speakers of a synthetic corpus.

    xfavot eval --checkpoint CKPT --corpus DIR --out REPORT_DIR

Writes report.json, report.md, contact-sheet.png (source | reference speaker | output) and a few
WAVs. What is measured, each next to its ceiling or floor:
- voice -> face: the attribute oracle's reading of generated faces vs the reference speaker's true
  voice-linked attributes; ceiling = the oracle on that speaker's real renders; floors = the source
  face unchanged, and a random (wrong) reference voice.
- face -> voice: mean F0 and syllable rate of the converted voice vs the reference speaker's real
  utterances (relative error; the unconverted source as the floor), and d-vector similarity.
- one-shot voice -> voice: d-vector similarity to the reference and to the source speaker.
- content kept: WER (pocketsphinx's bundled English model) of converted vs unconverted speech.
- retrieval: voice style vectors matched to face style vectors among N held-out speakers.
- diversity: mean pairwise distance of faces made from one source with 10 references.
Speaker similarity uses Resemblyzer's d-vector (its weights ship in the wheel). Both it and
pocketsphinx are optional: without them those rows say why they are missing.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from core import audio, face
from core.engine import Engine
from core.errors import UserError
from core.vocoder import load_vocoder

from . import image_detail
from .data.datasets import load_synthetic
from .data.synth import load_manifest
from .oracle import ground_truth, load_oracle, predict

log = logging.getLogger(__name__)
ATTRIBUTES = ("gender", "age", "build", "energy")


# -- measurements on waveforms ----------------------------------------------------------------
def mean_f0(wav: np.ndarray) -> float:
    """A clip's register: its median voiced F0 (Hz), NaN if unvoiced."""
    return audio.median_f0([wav])


def syllable_rate(wav: np.ndarray) -> float:
    """Syllable nuclei per second: peaks of the smoothed voiced-band energy envelope."""
    import scipy.signal

    env = np.abs(scipy.signal.hilbert(scipy.signal.sosfiltfilt(
        scipy.signal.butter(4, [300, 2500], btype="band", fs=audio.SAMPLE_RATE, output="sos"), wav)))
    env = scipy.signal.resample_poly(env, 1, 240)  # 100 Hz
    env = np.convolve(env, np.hanning(9) / np.hanning(9).sum(), mode="same")
    peaks, _ = scipy.signal.find_peaks(env, height=0.25 * env.max(), distance=10, prominence=0.1 * env.max())
    return len(peaks) / (wav.size / audio.SAMPLE_RATE)


class SpeakerEmbedder:
    """Resemblyzer's d-vector (GE2E), or None with the reason."""

    def __init__(self):
        self.reason = ""
        try:
            from resemblyzer import VoiceEncoder

            self.encoder = VoiceEncoder("cpu", verbose=False)
        except Exception as exc:  # not installed, or its import fails
            self.encoder, self.reason = None, f"Resemblyzer unavailable ({type(exc).__name__}: {exc})"

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        emb = self.encoder.embed_utterance(audio.resample(wav, audio.SAMPLE_RATE, 16000).astype(np.float32))
        return emb / np.linalg.norm(emb)


class Recognizer:
    """pocketsphinx with its bundled US-English acoustic model, or None with the reason.

    With `sentences` (the corpus texts) it decodes with a closed trigram language model and a
    dictionary of just their words, built here (pocketsphinx.lm.ArpaBoLM): on synthetic speech the
    bundled open LM gets ~75 % WER even on the unconverted source, which hides what a conversion
    does to intelligibility; the closed one gets ~35 %. WER is only ever compared with the source's.
    A fresh decoder per utterance: one decoder carries state from clip to clip (the same clip
    decoded again after another gave a different transcript), which would make WER depend on order."""

    def __init__(self, sentences: list[str] | None = None):
        self.reason = ""
        self._tmp = None
        self.options: dict = {}
        try:
            from pocketsphinx import Decoder

            self.decoder = Decoder
            if sentences:
                self.options = self._closed_language_model(sentences)
            Decoder(samprate=16000, logfn="/dev/null", **self.options)  # fail here, once, if a model is missing
        except Exception as exc:
            self.decoder, self.reason = None, f"pocketsphinx unavailable ({type(exc).__name__}: {exc})"

    def _closed_language_model(self, sentences: list[str]) -> dict:
        import os
        import tempfile

        import pocketsphinx
        from pocketsphinx.lm import ArpaBoLM

        self._tmp = tempfile.TemporaryDirectory(prefix="xfavot-lm-")
        lines = sorted({" ".join(_words(s)) for s in sentences if _words(s)})
        lm = ArpaBoLM(text="\n".join(lines), add_start=True)
        lm.compute()
        arpa = os.path.join(self._tmp.name, "corpus.arpa")
        with open(arpa, "w") as f:
            lm.write(f)
        vocabulary = {w for line in lines for w in line.split()}
        full = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
        small = os.path.join(self._tmp.name, "corpus.dict")
        with open(full) as src, open(small, "w") as dst:
            dst.writelines(line for line in src if line.split(" ", 1)[0].split("(")[0] in vocabulary)
        return {"lm": arpa, "dict": small}

    def __call__(self, wav: np.ndarray) -> str:
        pcm = (np.clip(audio.resample(wav, audio.SAMPLE_RATE, 16000), -1, 1) * 32767).astype(np.int16)
        decoder = self.decoder(samprate=16000, logfn="/dev/null", **self.options)
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp else ""


def corpus_sentences(data) -> list[str]:
    return sorted({t for s in data.speakers for t in s.texts if t})


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text).split()


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance in words, reference length), case and punctuation ignored."""
    r, h = _words(ref), _words(hyp)
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        prev, d[0] = d.copy(), i
        for j, hw in enumerate(h, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (rw != hw))
    return int(d[len(h)]), len(r)


# -- the evaluation -----------------------------------------------------------------------------
def _accuracy(preds: list[dict], truths: list[dict]) -> dict[str, float]:
    out = {a: float(np.mean([p[a] == t[a] for p, t in zip(preds, truths)])) for a in ATTRIBUTES}
    out["mean"] = float(np.mean([out[a] for a in ATTRIBUTES]))
    return out


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def evaluate(checkpoint: str | Path, corpus: str | Path, out: str | Path, device: str = "cpu",
             retrieval_speakers: int = 8, sources_per_reference: int = 4, seed: int = 0, vocoder: str = "auto",
             split: str = "test", vocoder_file: str | Path | None = None, real_speech: str | Path | None = None) -> dict:
    """split: "test" to report, "val" to compare recipes (never tune on the test speakers).
    vocoder_file: a vocoder to use instead of the checkpoint's (a training run's checkpoints have none).
    real_speech: an `xfavot data real` folder: adds the real-voice check on its test speakers (on
    its training speakers for split "val")."""
    from PIL import Image

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_synthetic(corpus)
    truth = ground_truth(load_manifest(Path(corpus)))
    test = [s for s in data.speakers if s.split == split and s.faces and s.voices]
    if len(test) < 3:
        raise UserError(f"{corpus} has {len(test)} held-out ({split}) paired speakers; evaluation needs at least 3")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # Griffin-Lim starts from random phases: the same ones on every run
    engine = Engine(align_faces=False)
    info = engine.load(checkpoint, device, vocoder)
    if vocoder_file:
        engine.vocoder = load_vocoder(vocoder_file).to(engine.device)
        info.vocoder = engine.vocoder.description
    oracle = load_oracle()
    readouts = [name for name in ("face_gender", "f0_register") if getattr(engine, name) is not None]
    report: dict = {"checkpoint": str(checkpoint), "model": {"preset": info.preset, "steps": info.steps,
                                                             "vocoder": info.vocoder, "readouts": readouts},
                    "corpus": str(corpus), "split": split, "held_out_speakers": len(test), "seed": seed}

    # voice -> face ------------------------------------------------------------------------
    preds, truths, floor_src, floor_rand, ceiling = [], [], [], [], []
    sheet_rows, made_faces, real_faces = [], [], []
    for i, ref in enumerate(test):
        others = [s for s in test if s is not ref]
        sources = [others[(i + k) % len(others)].faces[0] for k in range(sources_per_reference)]
        made = engine.face_from_voice(sources, ref.voices[0], ref.gender)
        made_faces += made
        renders = [face.load_image(p) for p in ref.faces[:sources_per_reference]]  # the ceiling's, and the detail's
        real_faces += [face.prepare_face(img, made[0].size[0], None) for img in renders]
        preds += predict(oracle, made)
        truths += [truth[ref.id]] * len(made)
        floor_src += predict(oracle, [Image.open(p) for p in sources])
        wrong = others[int(rng.integers(len(others)))]
        floor_rand += predict(oracle, engine.face_from_voice(sources, wrong.voices[0], wrong.gender))
        ceiling += predict(oracle, renders)
        if len(sheet_rows) < 8:
            sheet_rows.append((Image.open(sources[0]), Image.open(ref.faces[0]), made[0]))
    ceiling_truth = [truth[s.id] for s in test for _ in range(min(sources_per_reference, len(s.faces)))]
    v2f = {"generated": _accuracy(preds, truths), "ceiling_real_renders": _accuracy(ceiling, ceiling_truth),
           "floor_source_unchanged": _accuracy(floor_src, truths), "floor_random_reference": _accuracy(floor_rand, truths)}
    v2f["ratio_to_ceiling"] = v2f["generated"]["mean"] / max(v2f["ceiling_real_renders"]["mean"], 1e-9)
    as_batch = lambda images: torch.stack([face.image_to_tensor(im) for im in images])  # noqa: E731
    v2f["fine_detail"] = image_detail.detail_ratios(as_batch(made_faces), as_batch(real_faces))
    report["voice_to_face"] = v2f
    report["face_to_face_self"] = _self_restyle(engine, test, sources_per_reference)
    _contact_sheet(sheet_rows, info, out / "contact-sheet.png")

    # face -> voice and voice -> voice -------------------------------------------------------------
    embed, asr = SpeakerEmbedder(), Recognizer(corpus_sentences(data))
    rows = []
    for i, ref in enumerate(test):
        src = test[(i + 1) % len(test)]
        src_wav = audio.load_audio(src.voices[0])
        from_face = engine.voice_from_face(src_wav, ref.faces[0], ref.gender)
        from_voice = engine.voice_from_voice(src_wav, ref.voices[-1], ref.gender)
        real = [audio.load_audio(p) for p in ref.voices[:3]]
        row = {"reference": ref.id, "source": src.id,
               "f0_ref": float(np.nanmean([mean_f0(w) for w in real])), "f0_src": mean_f0(src_wav),
               "f0_conv": mean_f0(from_face), "rate_ref": float(np.mean([syllable_rate(w) for w in real])),
               "rate_src": syllable_rate(src_wav), "rate_conv": syllable_rate(from_face)}
        if embed.encoder is not None:
            ref_emb = np.mean([embed(w) for w in real], axis=0)
            src_emb = np.mean([embed(audio.load_audio(p)) for p in src.voices[1:4] or src.voices], axis=0)
            cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
            row.update(sim_face2voice_ref=cos(embed(from_face), ref_emb), sim_src_ref=cos(embed(src_wav), ref_emb),
                       sim_vc_ref=cos(embed(from_voice), ref_emb), sim_vc_src=cos(embed(from_voice), src_emb))
        if asr.decoder is not None:
            row["wer_conv"] = word_errors(src.texts[0], asr(from_voice))
            row["wer_src"] = word_errors(src.texts[0], asr(src_wav))
        rows.append(row)
        if i < 3:
            audio.save_audio(out / f"{i}-source-{src.id}.wav", src_wav)
            audio.save_audio(out / f"{i}-voice-from-face-{ref.id}.wav", from_face)
            audio.save_audio(out / f"{i}-voice-from-voice-{ref.id}.wav", from_voice)
            Image.open(ref.faces[0]).save(out / f"{i}-reference-face-{ref.id}.png")
    mean = lambda key: float(np.nanmean([r[key] for r in rows]))  # noqa: E731
    f2v = {"f0_rel_error": float(np.nanmean([_rel(r["f0_conv"], r["f0_ref"]) for r in rows])),
           "f0_rel_error_source_floor": float(np.nanmean([_rel(r["f0_src"], r["f0_ref"]) for r in rows])),
           "rate_rel_error": float(np.mean([_rel(r["rate_conv"], r["rate_ref"]) for r in rows])),
           "rate_rel_error_source_floor": float(np.mean([_rel(r["rate_src"], r["rate_ref"]) for r in rows]))}
    vc: dict = {}
    if embed.encoder is not None:
        f2v.update(speaker_similarity=mean("sim_face2voice_ref"), speaker_similarity_source_floor=mean("sim_src_ref"))
        vc.update(similarity_to_reference=mean("sim_vc_ref"), similarity_to_source=mean("sim_vc_src"))
        vc["similarity_margin"] = vc["similarity_to_reference"] - vc["similarity_to_source"]
    else:
        f2v["speaker_similarity"] = vc["similarity"] = embed.reason
    if asr.decoder is not None:
        errs = lambda key: sum(r[key][0] for r in rows) / max(sum(r[key][1] for r in rows), 1)  # noqa: E731
        vc.update(wer_converted=errs("wer_conv"), wer_source=errs("wer_src"))
        vc["wer_ratio"] = vc["wer_converted"] / max(vc["wer_source"], 1e-9)
    else:
        vc["wer"] = asr.reason
    report["face_to_voice"], report["voice_to_voice"] = f2v, vc
    report["per_speaker"] = rows

    # retrieval and diversity ------------------------------------------------------------------
    sizes = sorted({min(retrieval_speakers, len(test)), len(test)})
    report["retrieval"] = {f"{n}_speakers": _retrieval(engine, test[:n]) for n in sizes}
    source = test[0].faces[0]
    refs = [s.voices[0] for s in test[1:11]]
    faces = [engine.face_from_voice(source, v) for v in refs]
    arr = np.stack([np.asarray(f, dtype=np.float32) / 255 for f in faces])
    dists = [np.abs(arr[a] - arr[b]).mean() for a in range(len(arr)) for b in range(a + 1, len(arr))]
    attrs = {tuple(p.values()) for p in predict(oracle, faces)}
    report["diversity"] = {"mean_pairwise_pixel_l1": float(np.mean(dists)), "references": len(refs),
                           "distinct_oracle_attribute_sets": len(attrs),
                           "note": "pixel L1 in [0,1]; LPIPS needs backbone weights that cannot be downloaded offline"}
    if real_speech:
        # a validation run reads the real training speakers: the held-out ones stay for the report
        report["real_voices"] = real_voice_check(engine, oracle, real_speech, test, seed=seed,
                                                 split="test" if split == "test" else "train")
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    return report


def real_voice_check(engine: Engine, oracle, real_dir: str | Path, avatars, clips: int = 4, seed: int = 0,
                     split: str = "test") -> dict:
    """Real recorded voices of speakers never trained on (the real-speech folder's test split; a
    run can be watched on its training split's voices without touching the held-out ones):
    - the avatar a voice makes: the oracle's gender (and age) of faces made from each clip, the
      gender head chosen by the model itself ("auto", as the app does) and told ("known");
    - the voice an avatar makes: each clip converted toward the held-out synthetic avatars of the
      other gender and of its own; the mean F0 should move toward the avatar's register: up for a
      male voice to a female avatar, down for a female voice to a male avatar.
    avatars: held-out synthetic speakers (their first face is the avatar, the sources are others')."""
    from PIL import Image

    from .data.datasets import load_real_speech

    speakers = [s for s in load_real_speech(real_dir).speakers if s.split == split]
    if not speakers:
        raise UserError(f"{real_dir} has no {split}-split real speakers")
    rng = np.random.default_rng(seed)
    by_gender = {g: [a for a in avatars if a.gender == g] for g in ("female", "male")}
    sources = [a.faces[1 % len(a.faces)] for a in avatars[:4]]
    faces = {"auto": [], "known": []}
    moves = {"male->female": [], "female->male": [], "male->male": [], "female->female": []}
    rows = []
    for s in speakers:
        for path in s.voices[:clips]:
            wav = audio.load_audio(path)
            row = {"speaker": s.id, "gender": s.gender, "clip": Path(path).name, "f0": mean_f0(wav)}
            for mode in faces:
                made = engine.face_from_voice(sources, wav, None if mode == "auto" else s.gender)
                preds = predict(oracle, made)
                faces[mode] += [p["gender"] == s.gender for p in preds]
                row[f"face_gender_{mode}"] = [p["gender"] for p in preds]
            for target in ("female", "male"):
                avatar = by_gender[target][int(rng.integers(len(by_gender[target])))]
                converted = engine.voice_from_face(wav, Image.open(avatar.faces[0]))
                f0 = mean_f0(converted)
                shift = 12 * np.log2(f0 / row["f0"]) if f0 > 0 and row["f0"] > 0 else float("nan")
                row[f"semitones_to_{target}"] = float(shift)
                moves[f"{s.gender}->{target}"].append(float(shift))
            rows.append(row)

    def direction(key: str, sign: int) -> dict:
        values = [v for v in moves[key] if np.isfinite(v)]
        return {"clips": len(values), "moved_toward": float(np.mean([sign * v > 0 for v in values])) if values else None,
                "mean_semitones": float(np.mean(values)) if values else None}

    return {"split": split, "speakers": len(speakers), "clips": len(rows),
            "avatar_gender_right_auto": float(np.mean(faces["auto"])),
            "avatar_gender_right_known": float(np.mean(faces["known"])),
            "male_voice_to_female_avatar": direction("male->female", +1),
            "female_voice_to_male_avatar": direction("female->male", -1),
            "male_voice_to_male_avatar": direction("male->male", 0),
            "female_voice_to_female_avatar": direction("female->female", 0),
            "per_clip": rows}


FRAME_BUZZ_HZ = audio.SAMPLE_RATE / audio.HOP  # 80 Hz: a vocoder lost on its input rings at the mel frame rate


def vocoders_on_real_conversions(checkpoint: str | Path, real_dir: str | Path, corpus: str | Path,
                                 speakers: int = 12, clips: int = 2, seed: int = 1,
                                 vocoders: tuple[str, ...] = ("neural", "griffin-lim")) -> dict:
    """Which vocoder survives the mels a model makes from real voices: real speakers of the
    *training* split (the test speakers stay unseen), each clip converted toward a held-out
    avatar of each gender (validation split) and vocoded by the model's neural vocoder and by
    Griffin-Lim (`vocoders`: which of the two). Per vocoder: the share of outputs whose median F0 sits at the mel frame rate
    (an 80 Hz buzz instead of a voice) and how often F0 moves toward the avatar's register.
    A vocoder trained on synthetic speech can resynthesise held-out synthetic clips well and
    still ring on these, which `evaluate_vocoder` cannot see."""
    from PIL import Image

    from .data.datasets import load_real_speech

    real = [s for s in load_real_speech(real_dir).speakers if s.split != "test" and s.voices]
    rng = np.random.default_rng(seed)
    picked = [real[i] for i in rng.choice(len(real), min(speakers, len(real)), replace=False)]
    held = [s for s in load_synthetic(corpus).speakers if s.split == "val" and s.faces]
    avatars = {g: [s for s in held if s.gender == g][:3] for g in ("female", "male")}
    sources = []  # (speaker index, gender, waveform, its F0), read once for both vocoders
    for k, s in enumerate(picked):
        for path in s.voices[:clips]:
            wav = audio.load_audio(path)
            sources.append((k, s.gender, wav, mean_f0(wav)))
    out = {}
    for choice in vocoders:
        engine = Engine(align_faces=False)
        engine.load(checkpoint, "cpu", choice)
        buzz, toward = [], []
        for k, gender, wav, f0_source in sources:
            for target in ("female", "male"):
                group = avatars[target]
                made = engine.voice_from_face(wav, Image.open(group[k % len(group)].faces[0]))
                f0 = mean_f0(made)
                buzz.append(bool(abs(f0 - FRAME_BUZZ_HZ) < 3))
                if target != gender and f0 > 0 and f0_source > 0:
                    toward.append(bool((f0 > f0_source) == (target == "female")))
        out[choice] = {"frame_rate_buzz": float(np.mean(buzz)), "f0_toward_avatar": float(np.mean(toward)),
                       "outputs": len(buzz)}
    return out


def _self_restyle(engine: Engine, speakers, per_speaker: int) -> dict:
    """A face restyled with its own style should come back unchanged: mean absolute pixel error
    (0..1) between G(x, E(x)) and x at the model size."""
    errors = []
    for s in speakers:
        for path in s.faces[:per_speaker]:
            made = engine.face_from_style(path, engine.style_of_face(path, s.gender))
            source = face.prepare_face(face.load_image(path), made.size[0], None)
            errors.append(np.abs(np.asarray(made, np.float32) - np.asarray(source, np.float32)).mean() / 255)
    return {"mean_abs_error": float(np.mean(errors)), "faces": len(errors)}


def _retrieval(engine: Engine, speakers) -> dict:
    """Top-1/top-5 of each speaker's voice style finding their own face style (cosine)."""
    face = np.stack([np.mean([engine.style_of_face(p, s.gender).vector for p in s.faces[:3]], 0) for s in speakers])
    voice = np.stack([np.mean([engine.style_of_voice(p, s.gender).vector for p in s.voices[:3]], 0) for s in speakers])
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    voice /= np.linalg.norm(voice, axis=1, keepdims=True)
    ranks = np.argsort(-(voice @ face.T), axis=1)
    hits = [list(r).index(i) for i, r in enumerate(ranks)]
    return {"top1": float(np.mean([h < 1 for h in hits])), "top5": float(np.mean([h < 5 for h in hits])),
            "chance_top1": 1 / len(speakers)}


def _contact_sheet(rows, info, path: Path) -> None:
    from PIL import Image, ImageDraw

    size = 128
    sheet = Image.new("RGB", (3 * size, 24 + len(rows) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(("source", "reference speaker", "output")):
        draw.text((c * size + 6, 6), title, fill="black")
    for r, images in enumerate(rows):
        for c, img in enumerate(images):
            sheet.paste(img.convert("RGB").resize((size, size)), (c * size, 24 + r * size))
    sheet.save(path)


def markdown(r: dict) -> str:
    v2f, f2v, vc = r["voice_to_face"], r["face_to_voice"], r["voice_to_voice"]
    pct = lambda x: f"{100 * x:.1f} %" if isinstance(x, float) else str(x)  # noqa: E731
    lines = [f"# Evaluation of {Path(r['checkpoint']).name}", "",
             f"Model: {r['model']['preset']} preset, {r['model']['steps']} steps, vocoder {r['model']['vocoder']}, "
             f"read-outs: {', '.join(r['model'].get('readouts') or ['none'])} (with f0_register, conversions are "
             "transposed to the style's register; core/engine.py voice_from_style). "
             f"Corpus: {r['corpus']} ({r['held_out_speakers']} held-out {r.get('split', 'test')} speakers). "
             f"{r['seconds']} s.", "",
             "## Voice -> face (attribute oracle accuracy)", "",
             "| | " + " | ".join(ATTRIBUTES) + " | mean |", "|---" * (len(ATTRIBUTES) + 2) + "|"]
    for key in ("generated", "ceiling_real_renders", "floor_source_unchanged", "floor_random_reference"):
        lines.append(f"| {key} | " + " | ".join(pct(v2f[key][a]) for a in ATTRIBUTES) + f" | {pct(v2f[key]['mean'])} |")
    lines += ["", f"Generated / ceiling: {v2f['ratio_to_ceiling']:.2f} (target >= 0.80).", ""]
    if "fine_detail" in v2f:  # reports from before 2026-12-04 lack it
        lines += [f"Fine detail of the generated faces against the reference speakers' renders at the model's size "
                  f"(mean |Laplacian|, training/image_detail.py): {v2f['fine_detail']['sharpness']:.2f} "
                  f"(< 1: softer), of their colour {v2f['fine_detail']['colour_detail']:.2f} (> 1: coloured specks).", ""]
    lines += [f"A face restyled with its own style: mean absolute error {r['face_to_face_self']['mean_abs_error']:.3f} "
              f"(0..1 pixel scale, {r['face_to_face_self']['faces']} faces; target <= 0.08).", "",
              "## Face -> voice", "", "| measure | converted | source (floor) |", "|---|---|---|",
              f"| F0 relative error | {pct(f2v['f0_rel_error'])} | {pct(f2v['f0_rel_error_source_floor'])} |",
              f"| syllable-rate relative error | {pct(f2v['rate_rel_error'])} | {pct(f2v['rate_rel_error_source_floor'])} |"]
    if isinstance(f2v.get("speaker_similarity"), float):
        lines.append(f"| d-vector similarity to reference | {f2v['speaker_similarity']:.3f} | "
                     f"{f2v['speaker_similarity_source_floor']:.3f} |")
    lines += ["", "## Voice -> voice (one-shot)", ""]
    for key, value in vc.items():
        lines.append(f"- {key}: {value:.3f}" if isinstance(value, float) else f"- {key}: {value}")
    lines += ["", "## Retrieval (voice style -> face style)", ""]
    for key, value in r["retrieval"].items():
        lines.append(f"- {key}: top-1 {pct(value['top1'])}, top-5 {pct(value['top5'])} (chance {pct(value['chance_top1'])})")
    d = r["diversity"]
    lines += ["", "## Diversity", "", f"- mean pairwise pixel L1 over {d['references']} references: "
              f"{d['mean_pairwise_pixel_l1']:.4f}; distinct oracle attribute sets: {d['distinct_oracle_attribute_sets']}",
              f"- {d['note']}", "", "![contact sheet](contact-sheet.png)", ""]
    if "real_voices" in r:
        rv = r["real_voices"]
        which = "held-out" if rv.get("split", "test") == "test" else "training-split, not held-out"
        lines += [f"## Real voices ({which} real speakers)", "",
                  f"{rv['speakers']} speakers, {rv['clips']} clips. Avatar gender right (oracle): "
                  f"{pct(rv['avatar_gender_right_auto'])} with the model's own gender estimate, "
                  f"{pct(rv['avatar_gender_right_known'])} when told the speaker's gender.", "",
                  "| voice -> avatar | clips | F0 moved toward the avatar | mean change (semitones) |", "|---|---|---|---|"]
        for key in ("male_voice_to_female_avatar", "female_voice_to_male_avatar"):
            d = rv[key]
            moved = pct(d["moved_toward"]) if d["moved_toward"] is not None else "-"
            mean = f"{d['mean_semitones']:+.1f}" if d["mean_semitones"] is not None else "-"
            lines.append(f"| {key.replace('_', ' ')} | {d['clips']} | {moved} | {mean} |")
        for key in ("male_voice_to_male_avatar", "female_voice_to_female_avatar"):
            d = rv[key]
            mean = f"{d['mean_semitones']:+.1f}" if d["mean_semitones"] is not None else "-"
            lines.append(f"| {key.replace('_', ' ')} | {d['clips']} | (same register) | {mean} |")
        lines.append("")
    return "\n".join(lines)
