"""The embedded default model (resources/default): shipped, small, complete, and every task and the
CLI run on it offline with the bundled samples."""
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from core import checkpoint
from core.engine import DEFAULT_CHECKPOINT, RESOURCES, Engine
from tests.test_cli import xfavot

SAMPLES = RESOURCES / "samples"
FACES = sorted((SAMPLES / "faces").glob("*.png"))
VOICES = sorted((SAMPLES / "voices").glob("*.flac"))


@pytest.fixture(scope="module")
def default_engine():
    engine = Engine(align_faces=False)
    engine.load(device="cpu")  # no path: the embedded default
    return engine


def test_the_default_model_is_shipped_within_budget():
    assert DEFAULT_CHECKPOINT.is_file(), "resources/default/xfavot-default.safetensors is missing"
    assert DEFAULT_CHECKPOINT.stat().st_size <= 40 * 2**20
    tensors, header = checkpoint.load_tensors(DEFAULT_CHECKPOINT)
    floats = {t.dtype for t in tensors.values() if t.is_floating_point()}
    assert floats == {torch.float16}
    assert header["config"]["preset"] == "cpu"
    assert header["meta"]["steps"] > 0 and header["meta"].get("vocoder")
    assert any(k.startswith("vocoder.") for k in tensors) and any(k.startswith("jdc.") for k in tensors)


def test_default_model_loads_with_either_vocoder(default_engine):
    info = default_engine.info
    assert set(info.genders) == {"female", "male"} and len(info.speakers) > 0
    preferred = info.meta["preferred_vocoder"]  # measured by the recipe; "auto" follows it
    assert default_engine.vocoder.kind == ("griffin-lim" if preferred == "griffin-lim" else "neural")
    neural = Engine(align_faces=False)
    neural.load(device="cpu", vocoder="neural")
    assert neural.vocoder.kind == "neural"
    out = neural.voice_from_voice(VOICES[0], VOICES[5])
    assert out.shape == sf.read(VOICES[0])[0].shape and np.isfinite(out).all()


def test_every_task_runs_on_the_samples(default_engine):
    size = default_engine.cfg.img_size
    source = Image.open(FACES[0]).convert("RGB")
    a = default_engine.face_from_voice(FACES[0], VOICES[1])
    b = default_engine.face_from_voice(FACES[0], VOICES[6])
    assert a.size == (size, size)
    # the output depends on the reference, and is not the source passed through
    assert np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() > 1.0
    assert np.abs(np.asarray(a, float) - np.asarray(source.resize((size, size)), float)).mean() > 1.0
    assert default_engine.face_from_face(FACES[0], FACES[5]).size == (size, size)
    src = sf.read(VOICES[0])[0]
    for out in (default_engine.voice_from_face(VOICES[0], FACES[5]), default_engine.voice_from_voice(VOICES[0], VOICES[5])):
        assert out.shape == src.shape and np.isfinite(out).all()
        assert 0.01 < np.sqrt(np.mean(out ** 2)) and np.abs(out).max() <= 1.0  # audible, not clipped garbage
    for domain in default_engine.domains:
        style = default_engine.sample_style(domain, seed=3)
        assert default_engine.face_from_style(FACES[1], style).size == (size, size)


def test_the_cli_uses_the_default_offline(tmp_path):
    r = xfavot("face-from-voice", "--no-align", "--source", FACES[2], "--reference", VOICES[3], "--out", tmp_path / "o.png")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "o.png").size[0] > 0
    r = xfavot("voice-from-face", "--source", VOICES[2], "--reference", FACES[3], "--out", tmp_path / "o.wav")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "o.wav").frames == sf.info(VOICES[2]).frames


def test_the_model_library_names_its_vocoder():
    from core.checkpoint import describe, vocoder_label

    assert describe(DEFAULT_CHECKPOINT, builtin=True).vocoder == "Vocos, 13500 steps"
    assert vocoder_label({"name": "untrained"}) == "Griffin-Lim"
