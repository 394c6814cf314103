"""`xfavot eval`: the report runs end to end on a small corpus and a tiny model, with sane numbers."""
import json

import numpy as np
import pytest
from conftest import SR, speech_like

from training.data import synth
from training.evaluate import _accuracy, _rel, _retrieval, syllable_rate, word_errors
from xfavot_studio import cli


@pytest.fixture(scope="module")
def eval_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "corpus"
    synth.synthesize_corpus(out, synth.SynthOptions(speakers=12, utts=3, faces=3, seed=11, engines=("espeak",),
                                                    test_fraction=0.3, kind_mix=(1, 0, 0)),
                            workers=1, progress=False)
    return out


def test_word_errors():
    assert word_errors("The cat sat.", "the cat sat") == (0, 3)
    assert word_errors("the cat sat", "a cat") == (2, 3)


def test_syllable_rate_tracks_syllables():
    t = np.arange(int(2.0 * SR)) / SR
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))  # a steady vowel
    slow = 0.2 * voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) ** 2       # 2 syllables / s
    fast = 0.2 * voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 5 * t)) ** 2       # 5 syllables / s
    assert 1.5 < syllable_rate(slow.astype(np.float32)) < 2.5
    assert 4.5 < syllable_rate(fast.astype(np.float32)) < 5.5


def test_attribute_accuracy_known_answer():
    truth = [dict(gender="f", age="a", build="b", energy="e")] * 4
    preds = [dict(gender="f", age="a", build="b", energy="e"), dict(gender="m", age="a", build="b", energy="x"),
             dict(gender="f", age="z", build="b", energy="x"), dict(gender="m", age="z", build="z", energy="x")]
    acc = _accuracy(preds, truth)
    assert acc == {"gender": 0.5, "age": 0.5, "build": 0.75, "energy": 0.25, "mean": 0.5}
    assert _rel(12.0, 10.0) == pytest.approx(0.2) and _rel(8.0, 10.0) == pytest.approx(0.2)


class _Styles:
    """A stand-in engine whose face and voice styles are given vectors."""

    def __init__(self, faces, voices):
        self.faces, self.voices = faces, voices

    def style_of_face(self, path, gender):
        return type("S", (), {"vector": self.faces[path]})()

    def style_of_voice(self, path, gender):
        return type("S", (), {"vector": self.voices[path]})()


def test_retrieval_known_answer():
    # 6 speakers with one-hot face styles: 0-2 speak in their own style (rank 0), 3 and 5 find
    # their own face second, 4 finds it last (no ties anywhere)
    eye = np.eye(6, dtype=np.float32)
    last = eye[0] + 0.5 * eye[1] + 0.4 * eye[2] + 0.3 * eye[3] + 0.2 * eye[5] + 0.1 * eye[4]
    voices = {0: eye[0], 1: eye[1], 2: eye[2], 3: 0.8 * eye[4] + 0.5 * eye[3], 4: last, 5: eye[2] + 0.5 * eye[5]}
    speakers = [type("Spk", (), {"faces": [f"f{i}"], "voices": [f"v{i}"], "gender": "female"})() for i in range(6)]
    engine = _Styles({f"f{i}": eye[i] for i in range(6)}, {f"v{i}": v for i, v in voices.items()})
    r = _retrieval(engine, speakers)
    assert r["top1"] == pytest.approx(3 / 6)  # speakers 0, 1, 2
    assert r["top5"] == pytest.approx(5 / 6)  # all but speaker 4
    assert r["chance_top1"] == pytest.approx(1 / 6)


def test_eval_report(eval_corpus, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["eval", "--checkpoint", str(tiny_checkpoint), "--corpus", str(eval_corpus),
                     "--out", str(out), "--retrieval-speakers", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    v2f = report["voice_to_face"]
    assert v2f["ceiling_real_renders"]["mean"] == 1.0  # the oracle reads real renders perfectly
    for key in ("generated", "floor_source_unchanged", "floor_random_reference"):
        row = v2f[key]
        attrs = [row[a] for a in ("gender", "age", "build", "energy")]
        assert row["mean"] == pytest.approx(np.mean(attrs))  # the mean is of the four attributes
        n = report["held_out_speakers"] * 4  # faces scored per row: each attribute a share of them
        assert all(abs(a * n - round(a * n)) < 1e-6 for a in attrs), (key, attrs)
    assert set(report["retrieval"]) == {"3_speakers", f"{report['held_out_speakers']}_speakers"}
    assert report["retrieval"]["3_speakers"]["chance_top1"] == pytest.approx(1 / 3)
    detail = v2f["fine_detail"]  # an untrained tiny G_I's faces are nothing like the renders
    assert set(detail) == {"sharpness", "colour_detail"} and all(np.isfinite(v) and v > 0 for v in detail.values())
    assert "Fine detail of the generated faces" in (out / "report.md").read_text()
    f2v = report["face_to_voice"]
    assert np.isfinite(f2v["f0_rel_error"]) and np.isfinite(f2v["f0_rel_error_source_floor"])
    assert report["diversity"]["references"] == report["held_out_speakers"] - 1
    assert (out / "contact-sheet.png").is_file() and list(out.glob("*-voice-from-face-*.wav"))
    assert "Voice -> face" in capsys.readouterr().out


def test_recognizer_is_independent_of_decoding_order(tmp_path):
    from training.evaluate import Recognizer

    asr = Recognizer()
    if asr.decoder is None:
        pytest.skip(asr.reason)
    a, b = speech_like(1.5, f0=120), speech_like(1.5, f0=220, seed=2)
    first = asr(a)
    asr(b)
    assert asr(a) == first
