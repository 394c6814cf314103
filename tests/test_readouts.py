"""Read-outs fitted on a trained model (training/readouts.py): the fits, and the Engine's use of
them (face gender for "auto", the voice register a conversion transposes to), kept through
export and absent (the fallbacks) in a model without them."""
import shutil

import numpy as np
import pytest
import torch
from conftest import speech_like
from PIL import Image

from core import audio, checkpoint
from core import engine as engine_module
from core.engine import Engine, Style
from training.data import synth
from training.data.datasets import load_synthetic
from training.readouts import attach_readouts, fit_logistic, fit_ridge


def test_the_fits_read_raw_features_with_the_standardisation_folded_in():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    features = torch.randn(200, 16, generator=gen) * 50 + 100  # large, offset nuisance dimensions
    features[:, 3] = labels * 2.0 + 0.3 * torch.randn(200, generator=gen)  # one small informative one
    weight, bias = fit_logistic(features, labels, classes=2)
    assert weight.shape == (2, 16) and bias.shape == (2,)
    assert ((features @ weight.T + bias).argmax(1) == labels).float().mean() == 1.0
    targets = 5.0 + 0.1 * features[:, 7] - 0.2 * features[:, 3]
    weight, bias = fit_ridge(features, targets, l2=1e-6)
    torch.testing.assert_close(features @ weight + bias, targets, atol=1e-3, rtol=0)


def test_pitch_shift_moves_the_register_by_whole_semitones_and_keeps_the_length():
    wav = speech_like(1.0, f0=150.0)
    up = audio.pitch_shift(wav, 12)
    assert up.shape == wav.shape
    assert 12 * np.log2(audio.median_f0([up]) / audio.median_f0([wav])) == pytest.approx(12, abs=1.0)
    assert audio.pitch_shift(wav, 0.2) is wav  # under half a semitone: untouched


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("readouts") / "corpus"
    synth.synthesize_corpus(out, synth.SynthOptions(speakers=8, utts=2, faces=2, seed=3, engines=("espeak",),
                                                    kind_mix=(1, 0, 0)), workers=1, progress=False)
    return out


def test_attached_readouts_decide_auto_gender_and_the_transposition_and_survive_export(tiny_checkpoint, corpus,
                                                                                          tmp_path, monkeypatch):
    with_readouts = tmp_path / "with.safetensors"
    info = attach_readouts(tiny_checkpoint, corpus, with_readouts, per_speaker=2, rendered=24, progress=False)
    trained_faces = sum(min(2, len(s.faces)) for s in load_synthetic(corpus).speakers if s.split == "train")
    assert info["face_gender"]["train_faces"] == trained_faces + 24 * 4  # + 24 rendered identities in 4 poses
    assert info["f0_register"]["train_styles"] > 0
    trained = [s for s in synth.load_manifest(corpus)["speakers"] if s["split"] == "train"]
    assert info["face_styles"] == {g: sum(s["gender"] == g for s in trained) for g in ("female", "male")}
    assert checkpoint.load_tensors(with_readouts)[1]["meta"]["readouts"] == info

    plain = Engine(align_faces=False)
    plain.load(tiny_checkpoint, "cpu")
    assert plain.face_gender is None and plain.f0_register is None  # the fallbacks decide
    assert plain.face_styles == {}
    voice = plain.style_of_voice(speech_like(1.5, f0=220.0))
    assert plain.snap_to_faces(voice) is voice  # nothing to snap onto
    latent = plain.sample_style("female", 0)
    assert plain.register_of(latent) is None and plain.transposition(speech_like(1.0), latent) == 0

    engine = Engine(align_faces=False)
    engine.load(with_readouts, "cpu")
    weight, bias = engine.face_gender
    assert engine.face_features([Image.new("RGB", (64, 64))] * 3).shape == (3, weight.shape[1])
    face = Image.new("RGB", (64, 64), (200, 150, 120))
    for forced in (0, 1):  # a bias that swamps the features decides the head, and so the style
        engine.face_gender = (weight * 0, torch.tensor([10.0, -10.0]) * (1 if forced == 0 else -1))
        style = engine.style_of_face(face)
        assert style.gender == engine.cfg.genders[forced]
        np.testing.assert_allclose(style.vector, engine.style_of_face(face, style.gender).vector, atol=1e-6)

    # the register: a voice reference's own F0, else the read-out of the style
    low, high = speech_like(1.5, f0=110.0), speech_like(1.5, f0=220.0)
    assert engine.style_of_voice(high).f0_hz == pytest.approx(220.0, rel=0.1)
    assert engine.transposition(low, engine.style_of_voice(high)) == 12
    assert engine.transposition(high, engine.style_of_voice(low)) == -12
    w, _ = engine.f0_register
    engine.f0_register = (w * 0, torch.tensor([np.log(110.0 * 2 ** (5 / 12))]))  # every style: 5 semitones up
    assert engine.register_of(latent) == pytest.approx(110.0 * 2 ** (5 / 12), rel=1e-4)
    assert engine.transposition(low, latent) == 5
    monkeypatch.setattr(engine_module, "LANDING_TOLERANCE", float("inf"))  # retries: tests/test_engine.py
    heard = []  # the median F0 of each clip the engine makes a mel of
    engine._mel, real_mel = (lambda wav: heard.append(audio.median_f0([wav])) or real_mel(wav)), engine._mel
    assert engine.voice_from_style(low, latent).shape == low.shape
    assert len(heard) == 2  # the source for G_A, and the source 5 semitones up for JDC's F0 features
    assert sorted(round(12 * np.log2(f / 110.0)) for f in heard) == [0, 5]
    heard.clear()
    assert engine.voice_from_style(low, latent, transpose=False).shape == low.shape
    assert len(heard) == 1

    exported = tmp_path / "exported.safetensors"
    checkpoint.export_inference(with_readouts, exported, dtype=torch.float16)
    again = Engine(align_faces=False)
    again.load(exported, "cpu")
    torch.testing.assert_close(again.face_gender[0], weight.half().float())
    assert again.f0_register is not None
    assert {g: len(v) for g, v in again.face_styles.items()} == info["face_styles"]
    mixed = Style(latent.vector, "female", "mix")
    assert mixed.f0_hz is None and again.register_of(mixed) is not None


def test_a_voice_style_snaps_onto_the_nearest_face_styles_of_its_gender(engine):
    """snap_to_faces: the softmax(cosine / temperature)-weighted mean of the nearest training-face
    styles of the voice's gender; face_from_style uses it for voice styles only (snap=False: never)."""
    from core import engine as engine_module

    gen = torch.Generator().manual_seed(0)
    dim = engine.cfg.style_dim
    bank = {"female": torch.randn(6, dim, generator=gen), "male": torch.randn(5, dim, generator=gen)}
    engine.face_styles = bank
    try:
        near = bank["female"][2] + 0.05 * torch.randn(dim, generator=gen)
        voice = Style(near.numpy(), "female", "voice", f0_hz=200.0)
        snapped = engine.snap_to_faces(voice)
        assert (snapped.gender, snapped.source, snapped.f0_hz) == ("female", "voice", 200.0)
        cos = torch.nn.functional.cosine_similarity(bank["female"], near[None], dim=1)
        top = cos.topk(engine_module.SNAP_NEIGHBOURS)
        expected = (top.values / engine_module.SNAP_TEMPERATURE).softmax(0) @ bank["female"][top.indices]
        np.testing.assert_allclose(snapped.vector, expected.numpy(), atol=1e-5)
        target = bank["female"][2].numpy()
        assert np.linalg.norm(snapped.vector - target) < np.linalg.norm(near.numpy() - target)
        as_male = engine.snap_to_faces(Style(near.numpy(), "male", "voice"))  # its own gender's faces only
        assert min(np.linalg.norm(as_male.vector - b.numpy()) for b in bank["female"]) > 1.0

        face = Image.new("RGB", (64, 64), (200, 150, 120))
        made = np.asarray(engine.face_from_style(face, voice, hold_gender=False))
        as_face_style = Style(snapped.vector, "female", "face")
        np.testing.assert_array_equal(made, np.asarray(engine.face_from_style(face, as_face_style)))
        raw = np.asarray(engine.face_from_style(face, voice, hold_gender=False, snap=False))
        np.testing.assert_array_equal(raw, np.asarray(engine.face_from_style(face, Style(voice.vector, "female", "face"))))
        assert np.abs(raw.astype(int) - made).mean() > 0.5
    finally:
        engine.face_styles = {}
