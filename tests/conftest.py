import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from core import checkpoint, config, model

SR = 24000


def pytest_collection_modifyitems(config, items):
    """`slow` tests (long end-to-end runs) only run with XFAVOT_SLOW=1, as .ci/run sets."""
    if os.environ.get("XFAVOT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set XFAVOT_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def speech_like(seconds: float, f0: float = 150.0, rate: int = SR, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like test signal: harmonics of a gliding F0 with a syllable envelope + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    wav = 0.2 * wav * envelope + 0.003 * rng.standard_normal(t.size)
    return wav.astype(np.float32)


def expect_user_error(fn, *words) -> str:
    """fn() must raise UserError with a one-line message containing every word."""
    from core.errors import UserError

    with pytest.raises(UserError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = config.preset("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    checkpoint.save_model(path, model.build_networks(cfg), cfg, {"steps": 0})
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """A small set of valid input files."""
    d = tmp_path_factory.mktemp("media")
    sf.write(d / "voice.wav", speech_like(2.0), SR)
    sf.write(d / "voice2.wav", speech_like(1.5, f0=220, seed=1), SR)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (150, 120, 3), dtype=np.uint8)).save(d / "face.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "face64.png")
    return d


@pytest.fixture(scope="session")
def engine(tiny_checkpoint):
    from core.engine import Engine

    e = Engine(batch_size=2, align_faces=False)
    e.load(tiny_checkpoint, "cpu")
    return e


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """The app's data folder (settings, model library) in a fresh temporary place."""
    monkeypatch.setenv("XFAVOT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
