"""Real speech from Debian packages (training/data/real_speech.py) on fake package trees: speakers
from credits and file names, genders from credits or F0, joined short items, held-out test
speakers, resume; and the evaluation's real-voice checks on it."""
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like

from core import audio
from training.data import real_speech
from training.data.datasets import load_real_speech
from training.data.real_speech import Source, prepare_real_speech


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Two fake packages: one credited female speaker with whole prompts at 16 kHz, and a game whose
    file names say who speaks (one low, one high voice, no credits) in short items to be joined."""
    root = tmp_path_factory.mktemp("usr-share")
    prompts = root / "prompts" / "en"
    prompts.mkdir(parents=True)
    for k in range(4):
        sf.write(prompts / f"p{k}.wav", np.pad(0.3 * speech_like(1.2, f0=210, rate=16000, seed=k), 4000), 16000)
    (prompts / "silence").mkdir()  # as Asterisk's voices ship silence/1..10.wav
    sf.write(prompts / "silence" / "2.wav", np.zeros(32000, np.float32), 16000)
    game = root / "game"
    game.mkdir()
    for who, f0 in (("lo", 110), ("hi", 240)):
        for k in range(24):
            sf.write(game / f"lvl{k % 3}-{who}-{k}.ogg", 0.2 * speech_like(0.4, f0=f0, seed=k), audio.SAMPLE_RATE)
    return [Source("fake-prompts", "fake-prompts-pkg", "CC-BY-3.0", "en", "A. Speaker", f"{prompts}/**/*.wav",
                   speaker="alice", genders={"alice": "female"}),
            Source("fake-game", "fake-game-pkg", "GPL-2", "cs", "a game cast", f"{game}/*.ogg",
                   speaker_regex=r"^[a-z0-9]+-([a-z]+)-", join=True)]


@pytest.fixture(scope="module")
def real_dir(packages, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(real_speech, "SOURCES", tuple(packages))
    out = tmp_path_factory.mktemp("real")
    prepare_real_speech(out, test_speakers=("fake-game-lo",), progress=False)
    yield out
    mp.undo()


def test_speakers_genders_splits_and_utterances(real_dir):
    manifest = json.loads((real_dir / "manifest.json").read_text())
    speakers = {s["speaker"]: s for s in manifest["speakers"]}
    assert set(speakers) == {"fake-prompts", "fake-game-lo", "fake-game-hi"}
    assert speakers["fake-prompts"]["gender"] == "female" and speakers["fake-prompts"]["gender_from"] == "credits"
    assert speakers["fake-game-lo"]["gender"] == "male" and speakers["fake-game-lo"]["gender_from"].startswith("F0")
    assert speakers["fake-game-hi"]["gender"] == "female"
    assert [s["split"] for s in manifest["speakers"] if s["split"] == "test"] == ["test"]
    assert speakers["fake-game-lo"]["split"] == "test" and speakers["fake-prompts"]["licence"] == "CC-BY-3.0"
    by_speaker = {}
    for u in manifest["utterances"]:
        by_speaker.setdefault(u["speaker"], []).append(u["seconds"])
        wav, rate = sf.read(real_dir / u["path"])
        assert rate == audio.SAMPLE_RATE and abs(wav.size / rate - u["seconds"]) < 1e-3
        assert np.sqrt(np.mean(wav ** 2)) >= audio.SILENCE_RMS  # the silent file stayed out
    assert len(by_speaker["fake-prompts"]) == 4  # whole prompts; 0.25 s of silence each side trimmed to 0.05 s
    assert all(1.2 <= s <= 1.2 + 2 * 0.05 + 0.02 for s in by_speaker["fake-prompts"]), by_speaker["fake-prompts"]
    # 24 items of 0.4 s joined with 0.15 s pauses into 3-6 s utterances
    assert all(3.0 <= s <= 6.0 for s in by_speaker["fake-game-hi"]) and len(by_speaker["fake-game-hi"]) == 4
    data = load_real_speech(real_dir)
    assert {s.id: s.split for s in data.speakers}["fake-game-lo"] == "test" and not data.skipped


def test_resume_reuses_finished_speakers(real_dir, packages, monkeypatch):
    before = (real_dir / "manifest.json").read_text()
    monkeypatch.setattr(real_speech, "SOURCES", tuple(packages))
    monkeypatch.setattr(real_speech, "read_any", lambda path: pytest.fail("a finished speaker was read again"))
    prepare_real_speech(real_dir, test_speakers=("fake-game-lo",), progress=False)
    after = json.loads((real_dir / "manifest.json").read_text())
    assert after["speakers"] == json.loads(before)["speakers"]


def test_a_speakers_clips_do_not_depend_on_other_speakers(tmp_path, monkeypatch):
    """Subsampled clips are drawn per speaker: another subsampled speaker before it (another
    package installed, or finished before a resume) leaves its choice alone."""
    monkeypatch.setattr(real_speech, "MAX_CLIPS", 3)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for k in range(12):  # 220 ways to choose 3
        sf.write(prompts / f"p{k:02d}.wav", 0.3 * speech_like(1.0, f0=150 + 10 * k, seed=k), audio.SAMPLE_RATE)
    source = lambda name: Source(name, f"{name}-pkg", "GPL-2", "en", "", f"{prompts}/*.wav", speaker="x",  # noqa: E731
                                 genders={"x": "male"})
    chosen = []
    for sources in ((source("b"),), (source("a"), source("b"))):
        monkeypatch.setattr(real_speech, "SOURCES", sources)
        out = tmp_path / f"out{len(sources)}"
        prepare_real_speech(out, progress=False)
        clips = sorted((out / "audio" / "b").glob("*.flac"))
        chosen.append([round(float(np.abs(sf.read(p)[0]).sum()), 3) for p in clips])
    assert len(chosen[0]) == 3 and chosen[0] == chosen[1]


def test_nothing_installed_is_a_clear_error(tmp_path, monkeypatch):
    from conftest import expect_user_error

    monkeypatch.setattr(real_speech, "SOURCES", (Source("x", "x-pkg", "GPL", "en", "", f"{tmp_path}/none/*.wav"),))
    expect_user_error(lambda: prepare_real_speech(tmp_path / "out", progress=False), "no real speech", "--list")


def test_real_voice_check_reads_only_the_asked_split(real_dir, monkeypatch):
    """The held-out speakers by default; a run is watched on its training split without them."""
    from types import SimpleNamespace

    from conftest import expect_user_error
    from PIL import Image

    from training import evaluate

    heard = []

    class StubEngine:  # records which clips it was given; faces always read as female
        def face_from_voice(self, sources, wav, gender):
            heard.append(len(wav))
            return [Image.new("RGB", (8, 8))] * len(sources)

        def voice_from_face(self, wav, avatar):
            return wav

    monkeypatch.setattr(evaluate, "predict", lambda oracle, faces: [{"gender": "female"} for _ in faces])
    avatar = Image.new("RGB", (8, 8))
    avatar_path = real_dir / "avatar.png"
    avatar.save(avatar_path)
    avatars = [SimpleNamespace(gender=g, faces=[avatar_path, avatar_path]) for g in ("female", "male")]
    splits = {s.id: s.split for s in load_real_speech(real_dir).speakers}
    for split in ("test", "train"):
        heard.clear()
        report = evaluate.real_voice_check(StubEngine(), None, real_dir, avatars, clips=1, split=split)
        assert report["speakers"] == sum(v == split for v in splits.values())
        assert {row["speaker"] for row in report["per_clip"]} == {k for k, v in splits.items() if v == split}
        assert len(heard) == 2 * report["clips"]  # a face per clip with the model's gender and with the known one
        female_share = np.mean([row["gender"] == "female" for row in report["per_clip"]])
        assert report["avatar_gender_right_known"] == pytest.approx(female_share)  # every face reads female
    expect_user_error(lambda: evaluate.real_voice_check(StubEngine(), None, real_dir, avatars, split="val"),
                      "no val-split")
